package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// lineOf returns the 1-based line of text that contains substr.
func lineOf(t *testing.T, text, substr string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			return i + 1
		}
	}
	t.Fatalf("config has no line containing %q", substr)
	return 0
}

// TestInvalidConfigsAreRejectedWithFileLineAndKey runs `sluice validate`
// and `sluice run` on broken configs and checks that they exit 1 naming the
// file, the line and the key path, and that run binds nothing.
func TestInvalidConfigsAreRejectedWithFileLineAndKey(t *testing.T) {
	good := simpleConfig(1, "127.0.0.1:1")
	cases := []struct {
		name string
		text string
		line string // a substring of the offending line
		key  string // a regexp the key path must match; empty for syntax errors
	}{
		{
			name: "unknown key",
			text: strings.Replace(good, "drain_timeout = \"10s\"", "drain_timeout = \"10s\"\nworkerz = 3", 1),
			line: "workerz = 3",
			key:  `server\.workerz`,
		},
		{
			name: "wrong type",
			text: strings.Replace(good, "workers = 1", `workers = "two"`, 1),
			line: `workers = "two"`,
			key:  `server\.workers`,
		},
		{
			name: "bad duration",
			text: strings.Replace(good, `drain_timeout = "10s"`, `drain_timeout = "10 parsecs"`, 1),
			line: `drain_timeout = "10 parsecs"`,
			key:  `server\.drain_timeout`,
		},
		{
			name: "dangling cluster",
			text: config(1, route(`prefix = "/"`, "nonexistent"), cluster("up", "127.0.0.1:1")),
			line: `cluster = "nonexistent"`,
			key:  `route_config(\[0\])?\.virtual_host(\[0\])?\.route(\[0\])?\.cluster`,
		},
		{
			name: "TOML syntax error",
			text: strings.Replace(good, "workers = 1", "workers = = 1", 1),
			line: "workers = = 1",
		},
		// The admin API on a listener's address validated, and then
		// sluice ran without it (its bind failure only logged).
		{
			name: "admin on a listener's address",
			text: strings.Replace(good, `address = "127.0.0.1:0"`, `address = "127.0.0.1:1"`, 1) + "\n[admin]\naddress = \"localhost:1\"\n",
			line: `address = "localhost:1"`,
			key:  `admin\.address: "localhost:1" overlaps listener\[0\] "http"`,
		},
		// A chain chosen by SNI on a listener without tls_inspector
		// validated, and then closed every connection: nothing read the SNI.
		{
			name: "server_names without tls_inspector",
			text: strings.Replace(good, "  [[listener.filter_chain]]\n  name = \"default\"\n", "  [[listener.filter_chain]]\n  name = \"default\"\n  match = { server_names = [\"a.example\"] }\n", 1),
			line: `match = { server_names = ["a.example"] }`,
			key:  `listener\[0\]\.filter_chain\[0\]\.match\.server_names: no connection can match: .*add \[\[listener\.listener_filter\]\] name = "sluice\.filters\.listener\.tls_inspector"`,
		},
		// A plugin's executable is checked as certificates are: a mistyped
		// path used to pass, and the plugin then failed to launch forever.
		{
			name: "plugin path missing",
			text: good + "\n[[plugin]]\nname = \"auth\"\npath = \"/nonexistent/sluice-plugin\"\n",
			line: `path = "/nonexistent/sluice-plugin"`,
			key:  `plugin\[0\]\.path: .*no such file`,
		},
		{
			name: "plugin path a directory",
			text: good + "\n[[plugin]]\nname = \"auth\"\npath = \"/\"\n",
			line: `path = "/"`,
			key:  `plugin\[0\]\.path: .*not a regular file`,
		},
		{
			// Relative to the config file: the test writes it beside them.
			name: "plugin not executable",
			text: good + "\n[[plugin]]\nname = \"auth\"\npath = \"plugin.txt\"\n",
			line: `path = "plugin.txt"`,
			key:  `plugin\[0\]\.path: .*not executable`,
		},
		{
			name: "weighted cluster that does not exist",
			text: config(1, "\n    [[route_config.virtual_host.route]]\n    match = { prefix = \"/\" }\n    weighted_clusters = [{ name = \"nope\", weight = 1 }]\n", cluster("up", "127.0.0.1:1")),
			line: `"nope"`,
			key:  `route_config\[0\]\.virtual_host\[0\]\.route\[0\]\.weighted_clusters\[0\]\.name: unknown cluster "nope"`,
		},
		{
			name: "weighted clusters of no weight",
			text: config(1, "\n    [[route_config.virtual_host.route]]\n    match = { prefix = \"/\" }\n    weighted_clusters = [{ name = \"up\", weight = 0 }]\n", cluster("up", "127.0.0.1:1")),
			line: `weighted_clusters`,
			key:  `route\[0\]\.weighted_clusters: the weights add up to 0`,
		},
		{
			name: "header mutation of host",
			text: config(1, route(`prefix = "/"`, "up", `request_headers_to_add = [{ key = "Host", value = "x" }]`), cluster("up", "127.0.0.1:1")),
			line: `key = "Host"`,
			key:  `route_config\[0\]\.virtual_host\[0\]\.route\[0\]\.request_headers_to_add\[0\]\.key: .*cannot be modified`,
		},
		{
			name: "header removal of a pseudo-header",
			text: config(1, route(`prefix = "/"`, "up", `response_headers_to_remove = [":status"]`), cluster("up", "127.0.0.1:1")),
			line: `response_headers_to_remove`,
			key:  `route_config\[0\]\.virtual_host\[0\]\.route\[0\]\.response_headers_to_remove\[0\]: .*token`,
		},
		{
			name: "header value with an unknown operator",
			text: config(1, route(`prefix = "/"`, "up", `response_headers_to_add = [{ key = "x-a", value = "%BOGUS%" }]`), cluster("up", "127.0.0.1:1")),
			line: `%BOGUS%`,
			key:  `route_config\[0\]\.virtual_host\[0\]\.route\[0\]\.response_headers_to_add\[0\]\.value: .*unknown operator`,
		},
		{
			name: "per-route buffer with both disabled and a limit",
			text: withHTTPFilter(config(1, route(`prefix = "/"`, "up")+perFilter("route", "sluice.filters.http.buffer", "disabled = true", "max_request_bytes = 10"),
				cluster("up", "127.0.0.1:1")), bufferFilter(1024)),
			line: `typed_per_filter_config."sluice.filters.http.buffer"`,
			key:  `route_config\[0\]\.virtual_host\[0\]\.route\[0\]\.typed_per_filter_config\."sluice\.filters\.http\.buffer": set exactly one of disabled = true and max_request_bytes`,
		},
		{
			name: "per-virtual-host CORS with an unknown key",
			text: config(1, perFilter("virtual_host", "sluice.filters.http.cors", `allow_origin_string_match = [{ exact = "https://a.example" }]`, `allow_origins = "x"`)+route(`prefix = "/"`, "up"),
				cluster("up", "127.0.0.1:1")),
			line: `allow_origins = "x"`,
			key:  `route_config\[0\]\.virtual_host\[0\]\.typed_per_filter_config\."sluice\.filters\.http\.cors"\.allow_origins: unknown key`,
		},
		{
			name: "per-route local_ratelimit with an empty bucket",
			text: config(1, route(`prefix = "/"`, "up")+perFilter("route", "sluice.filters.http.local_ratelimit", `stat_prefix = "r"`,
				`token_bucket = { max_tokens = 0, fill_interval = "1s" }`), cluster("up", "127.0.0.1:1")),
			line: `token_bucket = { max_tokens = 0`,
			key:  `route\[0\]\.typed_per_filter_config\."sluice\.filters\.http\.local_ratelimit"\.token_bucket: `,
		},
		{
			name: "per-route config of a filter without per-route settings",
			text: config(1, route(`prefix = "/"`, "up")+perFilter("route", "sluice.filters.http.grpc_web", `enabled = false`), cluster("up", "127.0.0.1:1")),
			line: `typed_per_filter_config."sluice.filters.http.grpc_web"`,
			key:  `typed_per_filter_config\."sluice\.filters\.http\.grpc_web": filter "sluice\.filters\.http\.grpc_web" has no per-route settings`,
		},
		{
			name: "per-route config of an unknown filter",
			text: config(1, route(`prefix = "/"`, "up")+perFilter("route", "sluice.filters.http.nope", `x = 1`), cluster("up", "127.0.0.1:1")),
			line: `typed_per_filter_config."sluice.filters.http.nope"`,
			key:  `typed_per_filter_config\."sluice\.filters\.http\.nope": unknown http filter "sluice\.filters\.http\.nope"`,
		},
		{
			name: "regex_rewrite with an invalid pattern",
			text: config(1, route(`prefix = "/"`, "up", `regex_rewrite = { pattern = "(", substitution = "x" }`), cluster("up", "127.0.0.1:1")),
			line: `regex_rewrite`,
			key:  `route_config\[0\]\.virtual_host\[0\]\.route\[0\]\.regex_rewrite\.pattern: invalid regex`,
		},
		{
			name: "regex_rewrite naming a group the pattern lacks",
			text: config(1, route(`prefix = "/"`, "up", `regex_rewrite = { pattern = "/(a)", substitution = '\2' }`), cluster("up", "127.0.0.1:1")),
			line: `regex_rewrite`,
			key:  `route\[0\]\.regex_rewrite\.substitution: \\2 refers to a capture group`,
		},
		{
			name: "prefix_rewrite and regex_rewrite",
			text: config(1, route(`prefix = "/"`, "up", `prefix_rewrite = "/x/"`, `regex_rewrite = { pattern = "a", substitution = "b" }`), cluster("up", "127.0.0.1:1")),
			line: `regex_rewrite`,
			key:  `route\[0\]\.regex_rewrite: set only one of prefix_rewrite and regex_rewrite`,
		},
		{
			name: "host_rewrite and auto_host_rewrite",
			text: config(1, route(`prefix = "/"`, "up", `host_rewrite = "x"`, `auto_host_rewrite = true`), cluster("up", "127.0.0.1:1")),
			line: `auto_host_rewrite`,
			key:  `route\[0\]\.auto_host_rewrite: set only one of host_rewrite and auto_host_rewrite`,
		},
		{
			name: "query parameter matcher with an invalid regex",
			text: config(1, route(`prefix = "/", query_parameters = [{ name = "a", regex = "[" }]`, "up"), cluster("up", "127.0.0.1:1")),
			line: `query_parameters`,
			key:  `route\[0\]\.match\.query_parameters\[0\]\.regex: invalid regex`,
		},
		{
			name: "query parameter matcher with two kinds",
			text: config(1, route(`prefix = "/", query_parameters = [{ name = "a", exact = "1", present = true }]`, "up"), cluster("up", "127.0.0.1:1")),
			line: `query_parameters`,
			key:  `route\[0\]\.match\.query_parameters\[0\]: set at most one of`,
		},
		{
			name: "redirect with path and prefix_rewrite",
			text: config(1, "\n    [[route_config.virtual_host.route]]\n    match = { prefix = \"/\" }\n    redirect = { path = \"/a\", prefix_rewrite = \"/b/\" }\n", cluster("up", "127.0.0.1:1")),
			line: `redirect = {`,
			key:  `route\[0\]\.redirect: set at most one of path, prefix_rewrite and regex_rewrite`,
		},
		{
			name: "redirect regex_rewrite with an invalid pattern",
			text: config(1, "\n    [[route_config.virtual_host.route]]\n    match = { prefix = \"/\" }\n    redirect = { regex_rewrite = { pattern = \"(\", substitution = \"/\" } }\n", cluster("up", "127.0.0.1:1")),
			line: `redirect = {`,
			key:  `route\[0\]\.redirect\.regex_rewrite\.pattern: invalid regex`,
		},
		{
			name: "redirect port out of range",
			text: config(1, "\n    [[route_config.virtual_host.route]]\n    match = { prefix = \"/\" }\n    redirect = { port = 70000 }\n", cluster("up", "127.0.0.1:1")),
			line: `port = 70000`,
			key:  `route\[0\]\.redirect\.port: must be in 1\.\.65535`,
		},
		{
			name: "unknown key in the tracing table",
			text: strings.Replace(good, routerFilter, routerFilter+"\n      [listener.filter_chain.filter.config.tracing]\n      random_samplin = 5\n      provider = { name = \"opentelemetry\", collector_endpoint = \"http://127.0.0.1:4318/v1/traces\" }", 1),
			line: `random_samplin = 5`,
			key:  `tracing\.random_samplin`,
		},
		{
			name: "tracing sampling out of range",
			text: strings.Replace(good, routerFilter, routerFilter+"\n      [listener.filter_chain.filter.config.tracing]\n      random_sampling = 101.5\n      provider = { name = \"opentelemetry\", collector_endpoint = \"http://127.0.0.1:4318/v1/traces\" }", 1),
			line: `random_sampling = 101.5`,
			key:  `tracing\.random_sampling: must be a percentage in 0\.\.100`,
		},
		{
			name: "csrf percentage out of range",
			text: withHTTPFilter(good, csrfFilter+"      filter_enabled = 101\n"),
			line: `filter_enabled = 101`,
			key:  `config\.filter_enabled: must be a percentage`,
		},
		{
			name: "csrf unknown per-route key",
			text: config(1, route(`prefix = "/"`, "up")+perFilter("route", "sluice.filters.http.csrf", "shadow_enable = 100"), cluster("up", "127.0.0.1:1")),
			line: `shadow_enable = 100`,
			key:  `typed_per_filter_config\."sluice\.filters\.http\.csrf"\.shadow_enable`,
		},
		{
			name: "decompressor unknown library",
			text: withHTTPFilter(good, strings.Replace(decompressorFilter, `library = "gzip"`, `library = "lz4"`, 1)),
			line: `library = "lz4"`,
			key:  `decompressor_library\.library: must be gzip, brotli or zstd`,
		},
		{
			name: "decompressor unknown direction key",
			text: withHTTPFilter(good, decompressorFilter+"      response_direction_config = { common_config = { enable = true } }\n"),
			line: `enable = true`,
			key:  `response_direction_config\.common_config\.enable`,
		},
		{
			name: "header append action",
			text: config(1, route(`prefix = "/"`, "up", `response_headers_to_add = [{ key = "x-a", value = "b", append_action = "replace" }]`), cluster("up", "127.0.0.1:1")),
			line: `append_action`,
			key:  `response_headers_to_add\[0\]\.append_action: must be one of`,
		},
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "plugin.txt"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("bad%d.toml", i))
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out := gwtest.Exec(t, 30*time.Second, "validate", "-c", path)
			if code != 1 {
				t.Errorf("validate exit code %d, want 1; output:\n%s", code, out)
			}
			want := fmt.Sprintf("%s:%d:", path, lineOf(t, tc.text, tc.line))
			if !strings.Contains(out, want) {
				t.Errorf("validate output does not name %q; output:\n%s", want, out)
			}
			if tc.key != "" && !regexp.MustCompile(tc.key).MatchString(out) {
				t.Errorf("validate output does not name the key path /%s/; output:\n%s", tc.key, out)
			}
		})
	}

	t.Run("run exits 1 without binding", func(t *testing.T) {
		// Hold the listener's port: a sluice that tried to bind it would
		// fail with "address already in use" instead of the config error.
		addr := testutil.ListenTCP(t).Addr().String()
		text := strings.Replace(config(1, route(`prefix = "/"`, "nonexistent"), cluster("up", "127.0.0.1:1")),
			`address = "127.0.0.1:0"`, fmt.Sprintf("address = %q", addr), 1)
		path := filepath.Join(dir, "run.toml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := gwtest.Exec(t, 30*time.Second, "run", "-c", path)
		if code != 1 {
			t.Errorf("run exit code %d, want 1; output:\n%s", code, out)
		}
		if strings.Contains(out, `"listening"`) || strings.Contains(out, "address already in use") {
			t.Errorf("run with a bad config tried to bind its listener; output:\n%s", out)
		}
		if want := fmt.Sprintf("%s:%d:", path, lineOf(t, text, `cluster = "nonexistent"`)); !strings.Contains(out, want) {
			t.Errorf("run output does not name %q; output:\n%s", want, out)
		}
	})
}
