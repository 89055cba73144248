package config

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/registry"
)

func TestStatsdAndPluginTables(t *testing.T) {
	c := parse(t, baseTOML+`
[statsd]
address = "127.0.0.1:8125"
prefix = "sluice"

[[plugin]]
name = "apikey"
path = "/usr/lib/sluice/apikey"
args = ["-keys", "/etc/keys"]
env = { A = "1" }
`)
	if c.Statsd.FlushInterval.Duration != 5*time.Second || c.Statsd.Prefix != "sluice" {
		t.Errorf("statsd = %+v, want the default 5s flush interval", c.Statsd)
	}
	if p := c.Plugin("apikey"); p == nil || p.Args[1] != "/etc/keys" || p.Env["A"] != "1" {
		t.Errorf("plugin apikey = %+v", p)
	}
	if err := c.CheckPluginRefs(); err != nil {
		t.Errorf("CheckPluginRefs: %v", err)
	}
	for _, tc := range []struct{ name, toml, err string }{
		{"statsd address", "[statsd]\naddress = \"nowhere\"\n", "statsd.address"},
		{"statsd interval", "[statsd]\naddress = \"127.0.0.1:1\"\nflush_interval = \"-1s\"\n", "statsd.flush_interval"},
		{"plugin name", "[[plugin]]\nname = \"A b\"\npath = \"/a\"\n", "plugin[0]"},
		{"duplicate plugin", "[[plugin]]\nname = \"a\"\npath = \"/a\"\n[[plugin]]\nname = \"a\"\npath = \"/b\"\n", "duplicate plugin name"},
		{"plugin sha256", "[[plugin]]\nname = \"a\"\npath = \"/a\"\nsha256 = \"xyz\"\n", "sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) { parseErr(t, baseTOML+tc.toml, tc.err) })
	}
}

// pluginFilterConfig is a filter config that names a plugin, as ext_authz's
// does.
type pluginFilterConfig struct{ Plugin string }

func (*pluginFilterConfig) Build(*registry.BuildContext) (any, error) { return nil, nil }

func TestCheckPluginRefsNamesTheMissingPlugin(t *testing.T) {
	c := parse(t, baseTOML+"[[plugin]]\nname = \"apikey\"\npath = \"/a\"\n")
	fc := &c.Listeners[0].FilterChains[0]
	fc.Filters = append(fc.Filters, Filter{Name: "authz", Path: "listener[0].filter_chain[0].filter[1]",
		Decoded: &pluginFilterConfig{Plugin: "apikey"}})
	if err := c.CheckPluginRefs(); err != nil {
		t.Fatalf("plugin apikey exists: %v", err)
	}
	fc.Filters[1].Decoded = &pluginFilterConfig{Plugin: "jwt"}
	if err := c.CheckPluginRefs(); err == nil || !strings.Contains(err.Error(), `no [[plugin]] is named "jwt"`) {
		t.Fatalf("CheckPluginRefs = %v, want an error naming jwt", err)
	}
}

func TestRelativePluginPathIsRelativeToTheConfigFile(t *testing.T) {
	c, err := Parse("/etc/sluice/sluice.toml", []byte(baseTOML+"[[plugin]]\nname = \"a\"\npath = \"../../usr/lib/sluice/a\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Plugin("a").Path; got != "/usr/lib/sluice/a" {
		t.Fatalf("plugin path %q, want /usr/lib/sluice/a", got)
	}
}
