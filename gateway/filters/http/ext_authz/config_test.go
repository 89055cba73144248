package extauthz_test

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	extauthz "github.com/sluice-proxy/sluice/gateway/filters/http/ext_authz"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

func TestConfigBuild(t *testing.T) {
	for _, tc := range []struct {
		name, toml, err string
	}{
		{"named plugin", `plugin = "apikey"`, ""},
		{"all knobs", `plugin = "jwt"
timeout = "1s"
failure_mode_allow = true
status_on_error = 503
with_request_body = { max_request_bytes = 1024, allow_partial_message = true }
allowed_headers = ["Authorization", "cookie"]
context_extensions = { tier = "gold" }`, ""},
		{"no plugin", `timeout = "1s"`, "plugin: plugin: one of plugin and plugin_path is required"},
		{"both", `plugin = "a"
plugin_path = "/bin/sh"`, "exclusive"},
		{"relative path", `plugin_path = "bin/a"`, "plugin_path: "},
		{"missing path", `plugin_path = "/nonexistent/sluice-plugin"`, "plugin_path: stat /nonexistent/sluice-plugin: no such file or directory"},
		{"directory path", `plugin_path = "/tmp"`, "plugin_path: /tmp is not a regular file"},
		{"zero timeout", `plugin = "a"
timeout = "0s"`, "timeout: must be > 0"},
		{"bad status", `plugin = "a"
status_on_error = 99`, "status_on_error"},
		{"no body limit", `plugin = "a"
with_request_body = {}`, "with_request_body.max_request_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, ok := registry.Lookup(extauthz.Name)
			if !ok {
				t.Fatal("filter not registered")
			}
			c := info.New()
			if _, err := toml.Decode(tc.toml, c); err != nil {
				t.Fatal(err)
			}
			_, err := c.Build(&registry.BuildContext{DryRun: true})
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Build = %v, want %q", err, tc.err)
			}
		})
	}
}
