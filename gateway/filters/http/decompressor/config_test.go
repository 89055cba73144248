package decompressor

import (
	"errors"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/sluice-proxy/sluice/gateway/internal/coding"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

func TestConfigErrorsNameTheKey(t *testing.T) {
	for text, key := range map[string]string{
		``: "decompressor_library",
		`decompressor_library = { name = "a", library = "lz4" }`:                          "decompressor_library.library",
		`decompressor_library = { library = "gzip" }`:                                     "decompressor_library.name",
		`decompressor_library = { name = "a.b", library = "gzip" }`:                       "decompressor_library.name",
		`decompressor_library = { name = "a", library = "gzip", max_inflate_ratio = 0 }`:  "decompressor_library.max_inflate_ratio",
		`decompressor_library = { name = "a", library = "br", max_inflate_ratio = 10 }`:   "decompressor_library.library",
		`decompressor_library = { name = "a", library = "zstd", max_inflate_ratio = -1 }`: "decompressor_library.max_inflate_ratio",
	} {
		var c Config
		if _, err := toml.Decode(text, &c); err != nil {
			t.Fatal(err)
		}
		_, err := c.Build(&registry.BuildContext{})
		var fe *registry.FieldError
		if !errors.As(err, &fe) || fe.Key != key {
			t.Errorf("%s: %v, want an error for key %s", text, err, key)
		}
	}
	var c Config
	toml.Decode(`decompressor_library = { name = "a", library = "brotli", max_inflate_ratio = 1000 }
request_direction_config = { common_config = { enabled = false }, advertise_accept_encoding = false }
response_direction_config = { common_config = { ignore_no_transform_header = true } }`, &c)
	v, err := c.Build(&registry.BuildContext{})
	if err != nil {
		t.Fatal(err)
	}
	fa := v.(*Factory)
	if fa.lib != coding.Brotli || fa.coding != "br" || fa.ratio != 1000 || fa.req.enabled || !fa.resp.enabled || !fa.resp.ignoreNoTransform || fa.advertise {
		t.Errorf("built %+v", fa)
	}
}

func TestHeaderRewrites(t *testing.T) {
	fa := build(t, true)
	for _, tc := range []struct{ ae, want string }{
		{"", "gzip"}, {"br", "br,gzip"}, {"GZIP;q=0.1, br", "br,gzip"}, {"gzip", "gzip"},
	} {
		fl := fa.NewFilter(nil).(*filter)
		h := newReq()
		if tc.ae != "" {
			h.Add("accept-encoding", tc.ae)
		}
		fl.DecodeHeaders(h, true)
		if got := string(h.Get("accept-encoding")); got != tc.want {
			t.Errorf("accept-encoding %q became %q, want %q", tc.ae, got, tc.want)
		}
	}
	for _, tc := range []struct {
		ce, cc string
		dec    bool
		left   string
	}{{"gzip", "", true, ""}, {"Gzip, br", "", true, "br"}, {"br, gzip", "", false, "br, gzip"},
		{"gzip", "no-cache, no-transform", false, "gzip"}, {"", "", false, ""}} {
		fl := fa.NewFilter(nil).(*filter)
		h := newReq()
		h.Add("content-length", "10")
		if tc.ce != "" {
			h.Add("content-encoding", tc.ce)
		}
		if tc.cc != "" {
			h.Add("cache-control", tc.cc)
		}
		fl.DecodeHeaders(h, false)
		if (fl.req != nil) != tc.dec || string(h.Get("content-encoding")) != tc.left || (h.Get("content-length") == nil) != tc.dec {
			t.Errorf("content-encoding %q, cache-control %q: decompressing %v, content-encoding now %q, content-length %q",
				tc.ce, tc.cc, fl.req != nil, h.Get("content-encoding"), h.Get("content-length"))
		}
		fl.OnDestroy()
	}
}
