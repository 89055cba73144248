package config

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzLoad checks that no input panics or hangs the loader, that every
// error is a located *Error, and that a loaded config has every filter
// resolved.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(baseTOML))
	f.Fuzz(func(t *testing.T, data []byte) {
		indexLines(data) // any bytes, not only valid TOML
		c, err := Parse("fuzz.toml", data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *config.Error: %v", err, err)
			}
			if ce.Line < 0 || ce.Line > bytes.Count(data, []byte("\n"))+1 || ce.Msg == "" {
				t.Fatalf("bad error %#v", ce)
			}
			return
		}
		for _, l := range c.Listeners {
			for _, fc := range l.FilterChains {
				checkFilters(t, fc.Filters)
			}
			checkFilters(t, l.ListenerFilters)
		}
	})
}

func checkFilters(t *testing.T, fs []Filter) {
	t.Helper()
	for _, f := range fs {
		if f.Decoded == nil || f.Path == "" {
			t.Fatalf("filter %q not resolved: path %q", f.Name, f.Path)
		}
		if n, ok := f.Decoded.(NestedFilters); ok {
			_, _, nested := n.Nested()
			checkFilters(t, nested)
		}
	}
}

func TestFullSeedIsValid(t *testing.T) {
	// The "02_full" seed is the realistic example of the corpus; keep it
	// valid so that the fuzzer starts from a config that loads.
	c := parse(t, fullSeed(t))
	if len(c.Listeners) != 1 || len(c.Listeners[0].FilterChains[0].Filters) != 2 || len(c.RouteConfigs[0].VirtualHosts) != 2 {
		t.Fatalf("unexpected shape: %+v", c)
	}
}
