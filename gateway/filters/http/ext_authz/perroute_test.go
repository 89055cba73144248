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

// Per-route tables merge as Envoy's ExtAuthzPerRoute: the more specific
// decides disabled, its context extensions go over the less specific's.
func TestPerRouteMerge(t *testing.T) {
	build := func(p PerRoute) *perRoute {
		v, err := p.BuildPerRoute(nil)
		if err != nil {
			t.Fatal(err)
		}
		return v.(*perRoute)
	}
	ctx := func(kv ...string) PerRoute {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return PerRoute{CheckSettings: &CheckSettings{ContextExtensions: m}}
	}
	vh, off := build(ctx("site", "main", "tier", "base")), build(PerRoute{Disabled: true})
	for _, tc := range []struct {
		name       string
		more, less *perRoute
		disabled   bool
		want       map[string]string
	}{
		{"route over vh", build(ctx("tier", "gold", "route", "r")), vh, false, map[string]string{"site": "main", "tier": "gold", "route": "r"}},
		{"empty check_settings keeps the vh's", build(ctx()), vh, false, map[string]string{"site": "main", "tier": "base"}},
		{"disabled wins over vh", off, vh, true, nil},
		{"check_settings re-enables", build(ctx("a", "b")), off, false, map[string]string{"a": "b"}},
	} {
		got := tc.more.MergePerRoute(tc.less).(*perRoute)
		if got.disabled != tc.disabled || !maps.Equal(got.extensions, tc.want) {
			t.Errorf("%s: disabled %v extensions %v, want %v %v", tc.name, got.disabled, got.extensions, tc.disabled, tc.want)
		}
	}
	if vh.extensions["tier"] != "base" {
		t.Error("the merge modified the less specific value")
	}
}
