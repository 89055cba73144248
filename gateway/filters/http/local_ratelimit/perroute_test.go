package localratelimit

import (
	"errors"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

func TestPerRouteValidate(t *testing.T) {
	good := func() Config {
		return Config{StatPrefix: "r", TokenBucket: TokenBucket{MaxTokens: 1, FillInterval: config.Duration{Duration: time.Second}}}
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		key  string // "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no stat_prefix", func(c *Config) { c.StatPrefix = "" }, "stat_prefix"},
		{"status", func(c *Config) { c.Status = 200 }, "status"},
		{"headers mode", func(c *Config) { c.EnableXRateLimitHeaders = "ON" }, "enable_x_ratelimit_headers"},
		{"empty bucket", func(c *Config) { c.TokenBucket.MaxTokens = 0 }, "token_bucket"},
		{"descriptor bucket", func(c *Config) { c.Descriptors = []Descriptor{{Header: "x"}} }, "descriptor[0].token_bucket"},
	} {
		c := good()
		tc.mod(&c)
		err := c.Validate()
		var fe *registry.FieldError
		switch {
		case tc.key == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.key != "" && (!errors.As(err, &fe) || fe.Key != tc.key):
			t.Errorf("%s: error %v, want one about %s", tc.name, err, tc.key)
		}
	}
	c := good()
	v, err := c.BuildPerRoute(&registry.BuildContext{Path: "p"})
	if f, ok := v.(*Factory); err != nil || !ok || f.StatPrefix() != "r" {
		t.Errorf("BuildPerRoute = %#v, %v", v, err)
	}
}
