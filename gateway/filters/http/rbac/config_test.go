package rbac_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/config"
	_ "github.com/sluice-proxy/sluice/gateway/filters/all"
	"github.com/sluice-proxy/sluice/gateway/server"
)

// file is a whole config whose rbac table ends with table, on line 17.
func file(table string) string {
	return fmt.Sprintf(`[[listener]]
name = "l"
address = "127.0.0.1:0"
[[listener.filter_chain]]
[[listener.filter_chain.filter]]
name = "sluice.filters.network.http_connection_manager"
[listener.filter_chain.filter.config]
stat_prefix = "t"
route_config = "r"
[[listener.filter_chain.filter.config.http_filter]]
name = "sluice.filters.http.rbac"
[listener.filter_chain.filter.config.http_filter.config]
action = "ALLOW"
[[listener.filter_chain.filter.config.http_filter.config.policy]]
name = "p"
principals = [{ any = true }]
%s
[[listener.filter_chain.filter.config.http_filter]]
name = "sluice.filters.http.router"
[[route_config]]
name = "r"
[[route_config.virtual_host]]
name = "all"
domains = ["*"]
[[route_config.virtual_host.route]]
match = { prefix = "/open" }
cluster = "up"
disabled_filters = ["sluice.filters.http.rbac"]
[[cluster]]
name = "up"
endpoints = ["127.0.0.1:1"]
`, table)
}

// load parses the file and builds it without side effects, as sluice
// validate and a reload do.
func load(table string) error {
	cfg, err := config.Parse("rbac.toml", []byte(file(table)))
	if err != nil {
		return err
	}
	g, err := server.Build(cfg, server.Options{DryRun: true})
	if err != nil {
		return err
	}
	g.Close()
	return nil
}

// TestConfigIsStrict: the loader refuses unknown keys and bad values in
// the filter's table, nested rules included, naming the file, the line
// and the key; a valid table (with the filter disabled on a route) loads.
func TestConfigIsStrict(t *testing.T) {
	if err := load(`permissions = [{ url_path = { prefix = "/a" } }]`); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	const prefix = "listener[0].filter_chain[0].filter[0].config.http_filter[0].config."
	for _, tc := range []struct{ table, key, msg string }{
		{`permissions = [{ url_path = { prefix = "/a", sufix = "b" } }]`, "policy[0].permissions[0].url_path.sufix", "unknown key"},
		{`permissions = [{ and_rules = [{ metods = ["GET"] }] }]`, "policy[0].permissions[0].and_rules[0].metods", "unknown key"},
		{`permissions = [{ methods = "GET" }]`, "policy[0].permissions[0].methods", ""},
		{`permissions = [{ destination_ip = ["300.0.0.1"] }]`, "policy[0].permissions[0].destination_ip", "invalid address"},
		{`permissions = [{ header = { name = "x", regex = "(" } }]`, "policy[0].permissions[0].header", "regex"},
	} {
		err := load(tc.table)
		var ce *config.Error
		if !errors.As(err, &ce) || ce.File != "rbac.toml" || ce.Line < 14 || ce.Line > 17 ||
			!strings.HasPrefix(ce.Key, prefix+tc.key) || !strings.Contains(ce.Msg, tc.msg) {
			t.Errorf("%s:\n  error %v; want rbac.toml:14..17: %s%s: %s", tc.table, err, prefix, tc.key, tc.msg)
		}
	}
}
