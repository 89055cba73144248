package fault_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/config"
	_ "github.com/sluice-proxy/sluice/gateway/filters/all"
	"github.com/sluice-proxy/sluice/gateway/server"
)

// file is a whole config whose fault table is table (from line 12) and
// whose route /r has the per-route table perRoute (from line 27).
func file(table, perRoute string) string {
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
name = "sluice.filters.http.fault"
[listener.filter_chain.filter.config.http_filter.config]
%s
[[listener.filter_chain.filter.config.http_filter]]
name = "sluice.filters.http.router"
[[cluster]]
name = "up"
endpoints = ["127.0.0.1:1"]
[[route_config]]
name = "r"
[[route_config.virtual_host]]
name = "all"
domains = ["*"]
[[route_config.virtual_host.route]]
match = { prefix = "/r" }
cluster = "up"
[route_config.virtual_host.route.typed_per_filter_config."sluice.filters.http.fault"]
%s
`, table, perRoute)
}

// load parses the file and builds it without side effects, as sluice
// validate and a reload do.
func load(table, perRoute string) error {
	cfg, err := config.Parse("fault.toml", []byte(file(table, perRoute)))
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
// the filter's table and in its per-route tables, naming the file, the
// line and the key; valid tables load.
func TestConfigIsStrict(t *testing.T) {
	for _, ok := range []struct{ table, perRoute string }{
		{`abort = { http_status = 503, percentage = 0.5 }`, `disabled = true`},
		{`delay = { fixed_delay = "1s" }` + "\nmax_active_faults = 0", `abort = { grpc_status = 0 }`},
		{`response_rate_limit = { fixed_limit_kbps = 64, percentage = 12.5 }`, `response_rate_limit = { header_limit = true }`},
		{`abort = { header_abort = true }` + "\ndelay = { header_delay = true, percentage = 100 }\nupstream_cluster = \"up\"\ndownstream_nodes = [\"n\"]\nheaders = [{ name = \"x-fault\", exact = \"yes\" }]",
			`delay = { fixed_delay = "10ms" }`},
	} {
		if err := load(ok.table, ok.perRoute); err != nil {
			t.Errorf("valid config %q / %q: %v", ok.table, ok.perRoute, err)
		}
	}
	const prefix = "listener[0].filter_chain[0].filter[0].config.http_filter[0].config"
	const routePrefix = `route_config[0].virtual_host[0].route[0].typed_per_filter_config."sluice.filters.http.fault"`
	const good = `disabled = true`
	for _, tc := range []struct {
		table, perRoute, key, msg string
		route                     bool
	}{
		{`abort = { http_status = 503, percent = 5 }`, good, ".abort.percent", "unknown key", false},
		{`abort = { http_status = 600 }`, good, ".abort.http_status", "200 … 599", false},
		{`abort = { http_status = 199 }`, good, ".abort.http_status", "200 … 599", false},
		{`abort = { grpc_status = 17 }`, good, ".abort.grpc_status", "0 … 16", false},
		{`abort = { grpc_status = -1 }`, good, ".abort.grpc_status", "0 … 16", false},
		{`abort = { http_status = 503, grpc_status = 14 }`, good, ".abort", "exactly one", false},
		{`abort = { percentage = 10 }`, good, ".abort", "exactly one", false},
		{`abort = { http_status = 503, percentage = 100.5 }`, good, ".abort.percentage", "0 … 100", false},
		{`abort = { http_status = 503, percentage = -1 }`, good, ".abort.percentage", "0 … 100", false},
		{`abort = { http_status = 503, percentage = "50" }`, good, ".abort.percentage", "", false},
		{`delay = { fixed_delay = "1s", header_delay = true }`, good, ".delay", "exactly one", false},
		{`delay = { fixed_delay = "0s" }`, good, ".delay.fixed_delay", "more than 0", false},
		{`delay = { fixed_delay = "1s", percentage = 101 }`, good, ".delay.percentage", "0 … 100", false},
		{`max_active_faults = 1`, good, ".abort", "at least one of abort, delay and response_rate_limit", false},
		{`response_rate_limit = { fixed_limit_kbps = 0 }`, good, ".response_rate_limit", "exactly one", false},
		{`response_rate_limit = { fixed_limit_kbps = -2 }`, good, ".response_rate_limit.fixed_limit_kbps", "must be 1", false},
		{`response_rate_limit = { fixed_limit_kbps = 8, header_limit = true }`, good, ".response_rate_limit", "exactly one", false},
		{`response_rate_limit = { header_limit = true, percentage = 200 }`, good, ".response_rate_limit.percentage", "0 … 100", false},
		{`abort = { http_status = 503 }`, "disabled = true\nresponse_rate_limit = { header_limit = true }", ".disabled", "not both", true},
		{"abort = { http_status = 503 }\nmax_active_faults = -1", good, ".max_active_faults", "0 or more", false},
		{"abort = { http_status = 503 }\nheaders = [{ name = \"X-Up\" }]", good, ".headers[0].name", "lowercase", false},
		{"abort = { http_status = 503 }\nheaders = [{ name = \"x\", regex = \"(\" }]", good, ".headers[0].regex", "regex", false},
		{"abort = { http_status = 503 }\ndownstream_nodes = [\"\"]", good, ".downstream_nodes[0]", "empty", false},
		{`abort = { http_status = 503 }`, "disabled = true\nabort = { http_status = 500 }", ".disabled", "not both", true},
		{`abort = { http_status = 503 }`, `abort = { http_status = 700 }`, ".abort.http_status", "200 … 599", true},
		{`abort = { http_status = 503 }`, `dellay = { fixed_delay = "1s" }`, ".dellay", "unknown key", true},
	} {
		err := load(tc.table, tc.perRoute)
		want, lo, hi := prefix+tc.key, 12, 14
		if tc.route {
			want, lo, hi = routePrefix+tc.key, 26, 29
		}
		var ce *config.Error
		if !errors.As(err, &ce) || ce.File != "fault.toml" || ce.Line < lo || ce.Line > hi ||
			!strings.HasPrefix(ce.Key, want) || !strings.Contains(ce.Msg, tc.msg) {
			t.Errorf("%q / %q:\n  error %v; want fault.toml:%d..%d: %s: %s", tc.table, tc.perRoute, err, lo, hi, want, tc.msg)
		}
	}
}
