package buffer

import (
	"errors"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/registry"
)

func TestPerRouteValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    PerRoute
		key  string // "" for valid
	}{
		{"limit", PerRoute{MaxRequestBytes: 10}, ""},
		{"disabled", PerRoute{Disabled: true}, ""},
		{"neither", PerRoute{}, "-"},
		{"both", PerRoute{Disabled: true, MaxRequestBytes: 10}, "-"},
		{"negative", PerRoute{MaxRequestBytes: -1}, "max_request_bytes"},
		{"too large", PerRoute{MaxRequestBytes: maxRequestBytes + 1}, "max_request_bytes"},
	} {
		err := tc.p.Validate()
		var fe *registry.FieldError
		switch {
		case tc.key == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.key != "" && !errors.As(err, &fe):
			t.Errorf("%s: error %v, want a FieldError", tc.name, err)
		case tc.key != "" && tc.key != "-" && fe.Key != tc.key:
			t.Errorf("%s: key %q, want %q", tc.name, fe.Key, tc.key)
		}
	}
	v, err := (&PerRoute{MaxRequestBytes: 7}).BuildPerRoute(&registry.BuildContext{})
	if pr, ok := v.(*perRoute); err != nil || !ok || pr.max != 7 || pr.disabled {
		t.Errorf("BuildPerRoute = %#v, %v", v, err)
	}
}
