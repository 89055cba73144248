package hcm

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/internal/pathnorm"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// TestConfigValidateRejectsNegativeTimeouts checks that every timeout of the
// manager refuses a negative duration, naming its key.
func TestConfigValidateRejectsNegativeTimeouts(t *testing.T) {
	neg := config.Duration{Duration: -time.Second}
	cases := []struct {
		key string
		set func(*Config)
	}{
		{"idle_timeout", func(c *Config) { c.IdleTimeout = &neg }},
		{"request_headers_timeout", func(c *Config) { c.RequestHeadersTimeout = neg }},
		{"stream_idle_timeout", func(c *Config) { c.StreamIdleTimeout = &neg }},
		{"max_connection_duration", func(c *Config) { c.MaxConnectionDuration = neg }},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			c := &Config{StatPrefix: "p", RouteConfig: "r", HTTPFilters: []config.Filter{{Name: "sluice.filters.http.router"}}}
			tc.set(c)
			c.withDefaults()
			err := c.validate()
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe.Key != tc.key || !strings.Contains(err.Error(), "negative") {
				t.Fatalf("validate() = %v, want a FieldError for %s", err, tc.key)
			}
		})
	}
}

// TestConfigTimeoutDefaults checks the timeouts' defaults.
func TestConfigTimeoutDefaults(t *testing.T) {
	c := &Config{}
	c.withDefaults()
	if c.IdleTimeout.Duration != time.Hour || c.RequestHeadersTimeout.Duration != 0 || c.StreamIdleTimeout.Duration != 5*time.Minute ||
		c.MaxConnectionDuration.Duration != 0 {
		t.Fatalf("idle_timeout %v, request_headers_timeout %v, stream_idle_timeout %v, max_connection_duration %v; want 1h, 0, 5m, 0",
			c.IdleTimeout.Duration, c.RequestHeadersTimeout.Duration, c.StreamIdleTimeout.Duration, c.MaxConnectionDuration.Duration)
	}
	zero := &Config{StreamIdleTimeout: &config.Duration{}}
	zero.withDefaults()
	if zero.StreamIdleTimeout.Duration != 0 {
		t.Fatalf("stream_idle_timeout = \"0s\" became %v, want 0 (disabled)", zero.StreamIdleTimeout.Duration)
	}
}

// TestConfigPathNormalization checks the path normalization defaults (on,
// on, KEEP_UNCHANGED), that false turns them off, and that an unknown
// path_with_escaped_slashes_action is refused naming its key.
func TestConfigPathNormalization(t *testing.T) {
	router := []config.Filter{{Name: "sluice.filters.http.router"}}
	c := &Config{StatPrefix: "p", RouteConfig: "r", HTTPFilters: router}
	c.withDefaults()
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	o, err := c.pathOptions()
	if err != nil || o != (pathnorm.Options{Normalize: true, MergeSlashes: true, EscapedSlashes: pathnorm.KeepUnchanged}) {
		t.Fatalf("default path options %+v, %v", o, err)
	}
	off := false
	c = &Config{StatPrefix: "p", RouteConfig: "r", HTTPFilters: router, NormalizePath: &off, MergeSlashes: &off,
		PathWithEscapedSlashesAction: "UNESCAPE_AND_REDIRECT"}
	c.withDefaults()
	if o, err = c.pathOptions(); err != nil || o != (pathnorm.Options{EscapedSlashes: pathnorm.UnescapeAndRedirect}) {
		t.Fatalf("path options %+v, %v", o, err)
	}
	c.PathWithEscapedSlashesAction = "unescape"
	err = c.validate()
	var fe *registry.FieldError
	if !errors.As(err, &fe) || fe.Key != "path_with_escaped_slashes_action" {
		t.Fatalf("validate() = %v, want a FieldError for path_with_escaped_slashes_action", err)
	}
}
