package headermatch

import (
	"errors"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

func TestMatch(t *testing.T) {
	yes, no := true, false
	h := &httpfilter.RequestHeaders{Method: []byte("POST"), Path: []byte("/api/v1?q"), Authority: []byte("a.example"), Scheme: []byte("https")}
	h.Add("x-v", "2")
	h.Add("x-v", "3")
	h.Add("x-empty", "")
	for _, tc := range []struct {
		c    Config
		want bool
	}{
		{Config{Name: "x-v", Exact: "2"}, true},  // the first value
		{Config{Name: "x-v", Exact: "3"}, false}, // not the second
		{Config{Name: "x-v", Prefix: "2"}, true},
		{Config{Name: "x-v", Regex: "[0-9]"}, true},
		{Config{Name: "x-v", Regex: "2|3x"}, true},
		{Config{Name: "x-v", Regex: "x"}, false}, // anchored
		{Config{Name: "x-empty"}, true},          // presence
		{Config{Name: "x-none"}, false},
		{Config{Name: "x-none", Present: &no}, true},
		{Config{Name: "x-v", Present: &yes, Invert: true}, false},
		{Config{Name: "x-none", Exact: "2", Invert: true}, true},
		{Config{Name: ":method", Exact: "POST"}, true},
		{Config{Name: ":path", Prefix: "/api/"}, true},
		{Config{Name: ":authority", Exact: "a.example"}, true},
		{Config{Name: "host", Exact: "a.example"}, true},
		{Config{Name: ":scheme", Exact: "http"}, false},
	} {
		m, err := tc.c.Compile()
		if err != nil {
			t.Fatalf("%+v: %v", tc.c, err)
		}
		if got := m.Match(h); got != tc.want {
			t.Errorf("%+v: Match = %v, want %v", tc.c, got, tc.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	yes := true
	for _, tc := range []struct {
		c   Config
		key string
	}{
		{Config{}, "name"},
		{Config{Name: "X-Up"}, "name"},
		{Config{Name: ":status"}, "name"},
		{Config{Name: "a b"}, "name"},
		{Config{Name: "x", Regex: "("}, "regex"},
		{Config{Name: "x", Exact: "a", Present: &yes}, ""},
	} {
		_, err := tc.c.Compile()
		var fe *registry.FieldError
		if !errors.As(err, &fe) || fe.Key != tc.key {
			t.Errorf("%+v: error %v, want one for key %q", tc.c, err, tc.key)
		}
	}
}
