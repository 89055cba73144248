package extauthz

import (
	"maps"
	"testing"
)

func TestPerRouteValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    PerRoute
		ok   bool
	}{
		{"disabled", PerRoute{Disabled: true}, true},
		{"check settings", PerRoute{CheckSettings: &CheckSettings{ContextExtensions: map[string]string{"a": "b"}}}, true},
		{"neither", PerRoute{}, false},
		{"both", PerRoute{Disabled: true, CheckSettings: &CheckSettings{}}, false},
		{"empty key", PerRoute{CheckSettings: &CheckSettings{ContextExtensions: map[string]string{"": "b"}}}, false},
	} {
		if err := tc.p.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestMergeExtensions(t *testing.T) {
	f := &Factory{extensions: map[string]string{"tier": "base", "team": "core"}}
	got := f.mergeExtensions(map[string]string{"tier": "gold", "route": "r"})
	if want := map[string]string{"tier": "gold", "team": "core", "route": "r"}; !maps.Equal(got, want) {
		t.Errorf("merged %v, want %v", got, want)
	}
	if f.extensions["tier"] != "base" {
		t.Error("the merge modified the filter's extensions")
	}
	if got := f.mergeExtensions(nil); got != nil {
		t.Errorf("no route extensions: %v, want nil (the filter's)", got)
	}
	route := map[string]string{"a": "b"}
	if got := (&Factory{}).mergeExtensions(route); !maps.Equal(got, route) {
		t.Errorf("filter without extensions: %v", got)
	}
}
