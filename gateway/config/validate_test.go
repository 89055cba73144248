package config

import (
	"errors"
	"strings"
	"testing"
)

// withRoute returns a config whose only route has the given body.
func withRoute(body string) string {
	return listenerTOML + clusterTOML + `[[route_config]]
name = "main"
[[route_config.virtual_host]]
domains = ["*"]
[[route_config.virtual_host.route]]
` + body
}

// withCluster returns a config whose clusters are given by text (the route
// points at "backend").
func withCluster(text string) string {
	return listenerTOML + text + routeTOML
}

// withDomains returns a config with virtual hosts given by text.
func withDomains(text string) string {
	return listenerTOML + clusterTOML + "[[route_config]]\nname = \"main\"\n" + text
}

// twoChains is a valid config whose listener has two chains with the
// given match tables (inline table bodies).
func twoChains(a, b string) string {
	chain := func(m string) string {
		return "[[listener.filter_chain]]\nmatch = { " + m + " }\n[[listener.filter_chain.filter]]\n" +
			"name = \"sluice.filters.network.test_hcm\"\n[listener.filter_chain.filter.config]\nstat_prefix = \"s\"\n" +
			"route_config = \"main\"\n[[listener.filter_chain.filter.config.http_filter]]\nname = \"sluice.filters.http.test_router\"\n"
	}
	return "[[listener]]\nname = \"l\"\naddress = \"127.0.0.1:0\"\n" +
		"[[listener.listener_filter]]\nname = \"sluice.filters.listener.tls_inspector\"\n" +
		chain(a) + chain(b) + clusterTOML + routeTOML
}

// noInspector is twoChains without its tls_inspector.
func noInspector(text string) string {
	return strings.Replace(text, "[[listener.listener_filter]]\nname = \"sluice.filters.listener.tls_inspector\"\n", "", 1)
}

// chainTOML is a listener whose only chain holds the given filter tables.
func chainTOML(filters string) string {
	return "[[listener]]\nname = \"l\"\naddress = \"127.0.0.1:0\"\n[[listener.filter_chain]]\n" + filters
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string // want "" means the config is valid
	}{
		// server
		{"workers negative", baseTOML + "[server]\nworkers = -1\n", "t.toml:28: server.workers: must be between 0 and 1024, got -1"},
		{"workers too many", baseTOML + "[server]\nworkers = 5000\n", "server.workers: must be between 0 and 1024"},
		{"gomaxprocs negative", baseTOML + "[server]\ngomaxprocs = -2\n", "server.gomaxprocs: must be between 0 and 1024"},
		{"gomaxprocs too many", baseTOML + "[server]\ngomaxprocs = 4096\n", "server.gomaxprocs: must be between"},
		{"drain timeout negative", baseTOML + "[server]\ndrain_timeout = \"-1s\"\n", "server.drain_timeout: must not be negative"},
		{"drain strategy unknown", baseTOML + "[server]\ndrain_strategy = \"fast\"\n", `server.drain_strategy: must be gradual or immediate, got "fast"`},
		{"drain strategy immediate", baseTOML + "[server]\ndrain_strategy = \"immediate\"\n", ""},
		{"control socket too long", baseTOML + "[server]\ncontrol_socket = \"/" + strings.Repeat("x", 120) + "\"\n", "server.control_socket: path longer than"},
		// statsd
		{"statsd tcp cluster", baseTOML + "[statsd]\ntcp_cluster_name = \"backend\"\n", ""},
		{"statsd tcp unknown cluster", baseTOML + "[statsd]\ntcp_cluster_name = \"nope\"\n", `statsd.tcp_cluster_name: unknown cluster "nope"`},
		{"statsd address and tcp cluster", baseTOML + "[statsd]\naddress = \"127.0.0.1:8125\"\ntcp_cluster_name = \"backend\"\n", "statsd.tcp_cluster_name: set either address or tcp_cluster_name, not both"},
		{"retry budget percent too high", strings.Replace(baseTOML, "[[cluster]]\n", "[[cluster]]\ncircuit_breakers = { retry_budget = { budget_percent = 120.0 } }\n", 1), "circuit_breakers.retry_budget.budget_percent: must be between 0 and 100, got 120"},
		{"high priority thresholds", strings.Replace(baseTOML, "[[cluster]]\n", "[[cluster]]\ncircuit_breakers = { high = { max_requests = 10, retry_budget = { budget_percent = 50.0 } } }\n", 1), ""},
		{"high priority max_requests negative", strings.Replace(baseTOML, "[[cluster]]\n", "[[cluster]]\ncircuit_breakers = { high = { max_requests = -1 } }\n", 1), "circuit_breakers.high.max_requests: must be >= 0"},
		{"high priority max_connections", strings.Replace(baseTOML, "[[cluster]]\n", "[[cluster]]\ncircuit_breakers = { high = { max_connections = 5 } }\n", 1), ""},
		{"high priority max_connections negative", strings.Replace(baseTOML, "[[cluster]]\n", "[[cluster]]\ncircuit_breakers = { high = { max_connections = -1 } }\n", 1), "circuit_breakers.high.max_connections: must be >= 0"},
		{"retry budget min negative", strings.Replace(baseTOML, "[[cluster]]\n", "[[cluster]]\ncircuit_breakers = { retry_budget = { min_retry_concurrency = -1 } }\n", 1), "circuit_breakers.retry_budget.min_retry_concurrency: must be >= 0"},
		// log
		{"log level unknown", baseTOML + "[log]\nlevel = \"loud\"\n", `log.level: must be debug, info, warn or error, got "loud"`},
		{"log level debug", baseTOML + "[log]\nlevel = \"debug\"\n", ""},
		{"log format unknown", baseTOML + "[log]\nformat = \"xml\"\n", `log.format: must be json or console, got "xml"`},
		{"log format console", baseTOML + "[log]\nformat = \"console\"\n", ""},
		// admin
		{"admin bad address", baseTOML + "[admin]\naddress = \"localhost\"\n", `admin.address: invalid address "localhost"`},
		{"admin non-loopback", baseTOML + "[admin]\naddress = \"0.0.0.0:9901\"\n", `t.toml:28: admin.address: "0.0.0.0:9901" is not a loopback address`},
		{"admin empty host", baseTOML + "[admin]\naddress = \":9901\"\n", "is not a loopback address"},
		{"admin non-loopback allowed", baseTOML + "[admin]\naddress = \"0.0.0.0:9901\"\nallow_non_loopback = true\n", ""},
		{"admin localhost", baseTOML + "[admin]\naddress = \"localhost:9901\"\n", ""},
		{"admin ipv6 loopback", baseTOML + "[admin]\naddress = \"[::1]:0\"\n", ""},
		{"admin on a listener's address", strings.Replace(baseTOML, `address = "127.0.0.1:0"`, `address = "127.0.0.1:9901"`, 1) + "[admin]\naddress = \"127.0.0.1:9901\"\n",
			`t.toml:28: admin.address: "127.0.0.1:9901" overlaps listener[0] "public" ("127.0.0.1:9901"), whose socket would keep the admin API from starting`},
		{"admin under a wildcard listener", strings.Replace(baseTOML, `address = "127.0.0.1:0"`, `address = "0.0.0.0:9901"`, 1) + "[admin]\naddress = \"localhost:9901\"\n", "overlaps listener[0]"},
		{"admin on another loopback address", strings.Replace(baseTOML, `address = "127.0.0.1:0"`, `address = "127.0.0.2:9901"`, 1) + "[admin]\naddress = \"127.0.0.1:9901\"\n", ""},
		{"admin ipv6 beside an ipv4 wildcard", strings.Replace(baseTOML, `address = "127.0.0.1:0"`, `address = "0.0.0.0:9901"`, 1) + "[admin]\naddress = \"[::1]:9901\"\n", ""},
		{"admin port too big", baseTOML + "[admin]\naddress = \"127.0.0.1:70000\"\n", "port must be a number from 0 to 65535"},
		// listeners
		{"listener missing name", strings.Replace(baseTOML, "name = \"public\"\n", "", 1), "t.toml:1: listener[0].name: missing name"},
		{"listener duplicate name", baseTOML + strings.Replace(listenerTOML, "127.0.0.1:0", "127.0.0.1:1", 1), `t.toml:28: listener[1].name: duplicate name "public"`},
		{"listener missing address", strings.Replace(baseTOML, "address = \"127.0.0.1:0\"\n", "", 1), "t.toml:1: listener[0].address: missing address"},
		{"listener bad address", strings.Replace(baseTOML, "127.0.0.1:0", "127.0.0.1", 1), `t.toml:3: listener[0].address: invalid address "127.0.0.1": want host:port`},
		{"listener bad port", strings.Replace(baseTOML, "127.0.0.1:0", "127.0.0.1:http", 1), "port must be a number"},
		{"listener bad host", strings.Replace(baseTOML, "127.0.0.1:0", "bad host!:80", 1), `bad host "bad host!"`},
		{"listener all interfaces", strings.Replace(baseTOML, "127.0.0.1:0", ":8080", 1), ""},
		{"listener duplicate address", strings.Replace(baseTOML, "127.0.0.1:0", "127.0.0.1:8080", 1) +
			strings.Replace(strings.Replace(listenerTOML, "127.0.0.1:0", "127.0.0.1:8080", 1), "public", "other", 1),
			`listener[1].address: address "127.0.0.1:8080" already used by listener[0]`},
		{"listener duplicate port 0 allowed", baseTOML + strings.Replace(listenerTOML, "public", "other", 1), ""},
		{"listener no filter chain", "[[listener]]\nname = \"l\"\naddress = \"127.0.0.1:0\"\n" + clusterTOML + routeTOML, `t.toml:1: listener[0]: listener "l" has no filter_chain`},
		{"filter chain without filter", chainTOML("") + clusterTOML + routeTOML, "t.toml:4: listener[0].filter_chain[0]: filter_chain has no filter"},
		{"duplicate filter chain name", chainTOML("name = \"a\"\n[[listener.filter_chain.filter]]\nname = \"sluice.filters.network.test_hcm\"\n[[listener.filter_chain]]\nname = \"a\"\n[[listener.filter_chain.filter]]\nname = \"sluice.filters.network.test_hcm\"\n"),
			`listener[0].filter_chain[1].name: duplicate filter_chain name "a"`},
		{"overlapping server names", twoChains(`server_names = ["a.test", "b.test"]`, `server_names = ["B.test"]`),
			"listener[0].filter_chain[1].match: ambiguous: overlaps the match criteria of listener[0].filter_chain[0]"},
		{"overlapping alpn", twoChains(`application_protocols = ["h2", "http/1.1"]`, `application_protocols = ["http/1.1"]`),
			"listener[0].filter_chain[1].match: ambiguous: overlaps"},
		{"overlapping source prefix", twoChains(`source_prefix_ranges = ["10.0.0.0/8", "192.0.2.1"]`, `source_prefix_ranges = ["192.0.2.1/32"]`),
			"listener[0].filter_chain[1].match: ambiguous: overlaps"},
		{"identical criteria", twoChains(`server_names = ["a.test"]`, `server_names = ["a.test"]`),
			"listener[0].filter_chain[1].match: ambiguous: same match criteria as listener[0].filter_chain[0]"},
		{"disjoint server names", twoChains(`server_names = ["a.test"]`, `server_names = ["*.a.test"]`), ""},
		{"server names without tls_inspector", noInspector(twoChains(`server_names = ["a.test"]`, `server_names = ["*.a.test"]`)),
			`t.toml:5: listener[0].filter_chain[0].match.server_names: no connection can match: the SNI is read by the listener filter sluice.filters.listener.tls_inspector, which this listener lacks (add [[listener.listener_filter]] name = "sluice.filters.listener.tls_inspector" to listener "l")`},
		{"tls transport without tls_inspector", noInspector(twoChains(`transport_protocol = "tls"`, `transport_protocol = "raw_buffer"`)),
			"listener[0].filter_chain[0].match.transport_protocol: no connection can match: TLS is detected by the listener filter sluice.filters.listener.tls_inspector"},
		{"raw_buffer transport without tls_inspector", noInspector(twoChains(`transport_protocol = "raw_buffer"`, `destination_port = 80`)), ""},
		{"application protocols without an inspector", noInspector(twoChains(`application_protocols = ["h2c"]`, `destination_port = 80`)),
			"listener[0].filter_chain[0].match.application_protocols: no connection can match: application protocols are read by the listener filter"},
		{"application protocols with http_inspector", strings.Replace(twoChains(`application_protocols = ["h2c"]`, `destination_port = 80`), "tls_inspector", "http_inspector", 1), ""},
		{"different criteria", twoChains(`server_names = ["a.test"]`, `server_names = ["a.test"], transport_protocol = "tls"`), ""},
		{"backlog negative", strings.Replace(baseTOML, "address = \"127.0.0.1:0\"\n", "address = \"127.0.0.1:0\"\nbacklog = -1\n", 1), "listener[0].backlog: must be >= 0"},
		{"buffer limit negative", strings.Replace(baseTOML, "address = \"127.0.0.1:0\"\n", "address = \"127.0.0.1:0\"\nper_connection_buffer_limit_bytes = -1\n", 1), "listener[0].per_connection_buffer_limit_bytes: must be >= 0"},
		{"listener filters timeout negative", strings.Replace(baseTOML, "address = \"127.0.0.1:0\"\n", "address = \"127.0.0.1:0\"\nlistener_filters_timeout = \"-5s\"\n", 1), "t.toml:4: listener[0].listener_filters_timeout: must not be negative"},
		{"terminal filter not last", chainTOML("[[listener.filter_chain.filter]]\nname = \"sluice.filters.network.test_hcm\"\n[[listener.filter_chain.filter]]\nname = \"sluice.filters.network.test_cfg\"\n"),
			`t.toml:6: listener[0].filter_chain[0].filter[0].name: terminal filter "sluice.filters.network.test_hcm" must be the last of its chain`},
		{"last filter not terminal", chainTOML("[[listener.filter_chain.filter]]\nname = \"sluice.filters.network.test_cfg\"\n"),
			`listener[0].filter_chain[0].filter[0].name: the last filter of a chain must be terminal`},
		{"nested last filter not terminal", strings.Replace(baseTOML, "\n[[listener.filter_chain.filter.config.http_filter]]\nname = \"sluice.filters.http.test_router\"", "", 1),
			`t.toml:11: listener[0].filter_chain[0].filter[0].config.http_filter[0].name: the last filter of a chain must be terminal`},
		// clusters
		{"cluster missing name", withCluster("[[cluster]]\nendpoints = [\"127.0.0.1:1\"]\n"), "t.toml:16: cluster[0].name: missing name"},
		{"cluster duplicate name", withCluster(clusterTOML + clusterTOML), `t.toml:20: cluster[1].name: duplicate name "backend"`},
		{"cluster type", withCluster(clusterTOML + "type = \"dns\"\n"), `cluster[0].type: unsupported cluster type "dns"`},
		{"endpoint weights count", withCluster(clusterTOML + "endpoint_weights = [1, 2]\n"), `cluster[0].endpoint_weights: has 2 weights for 1 endpoints`},
		{"endpoint weight range", withCluster(clusterTOML + "endpoint_weights = [0]\n"), `cluster[0].endpoint_weights: weight 0 not in 1..128`},
		{"cluster lb policy", withCluster(clusterTOML + "lb_policy = \"fastest\"\n"), `cluster[0].lb_policy: unsupported lb_policy "fastest"`},
		{"cluster no endpoints", withCluster("[[cluster]]\nname = \"backend\"\n"), `t.toml:16: cluster[0].endpoints: cluster "backend" has no endpoints`},
		{"original_dst cluster", withCluster("[[cluster]]\nname = \"backend\"\ntype = \"original_dst\"\nuse_http_header = true\n"), ""},
		{"original_dst cluster endpoints", withCluster(clusterTOML + "type = \"original_dst\"\n"), "cluster[0].endpoints: an original_dst cluster has no endpoints"},
		{"original_dst cluster lb policy", withCluster("[[cluster]]\nname = \"backend\"\ntype = \"original_dst\"\nlb_policy = \"random\"\n"), "cluster[0].lb_policy: an original_dst cluster's lb_policy is cluster_provided"},
		{"original_dst cluster cleanup negative", withCluster("[[cluster]]\nname = \"backend\"\ntype = \"original_dst\"\ncleanup_interval = \"-1s\"\n"), "cluster[0].cleanup_interval: must be positive"},
		{"original_dst cluster health check", withCluster("[[cluster]]\nname = \"backend\"\ntype = \"original_dst\"\n[[cluster.health_check]]\ntimeout = \"1s\"\ninterval = \"1s\"\n"), "an original_dst cluster has no health checks"},
		{"cluster_provided on static", withCluster(clusterTOML + "lb_policy = \"cluster_provided\"\n"), "cluster[0].lb_policy: cluster_provided is the policy of original_dst clusters"},
		{"use_http_header on static", withCluster(clusterTOML + "use_http_header = true\n"), "cleanup_interval and use_http_header are for original_dst clusters"},
		{"virtual listener", baseTOML + "[[listener]]\nname = \"v\"\naddress = \"10.0.0.1:80\"\nbind_to_port = false\n[[listener.filter_chain]]\n[[listener.filter_chain.filter]]\nname = \"sluice.filters.network.test_hcm\"\n[listener.filter_chain.filter.config]\nstat_prefix = \"v\"\nroute_config = \"main\"\n", ""},
		{"virtual listener port 0", baseTOML + "[[listener]]\nname = \"v\"\naddress = \"10.0.0.1:0\"\nbind_to_port = false\n[[listener.filter_chain]]\n[[listener.filter_chain.filter]]\nname = \"sluice.filters.network.test_hcm\"\n[listener.filter_chain.filter.config]\nstat_prefix = \"v\"\nroute_config = \"main\"\n", "listener[1].address: a listener with bind_to_port = false needs a port"},
		{"virtual listener host name", baseTOML + "[[listener]]\nname = \"v\"\naddress = \"db.local:80\"\nbind_to_port = false\n[[listener.filter_chain]]\n[[listener.filter_chain.filter]]\nname = \"sluice.filters.network.test_hcm\"\n[listener.filter_chain.filter.config]\nstat_prefix = \"v\"\nroute_config = \"main\"\n", "needs an IP address"},
		{"virtual listener use_original_dst", baseTOML + "[[listener]]\nname = \"v\"\naddress = \"10.0.0.1:80\"\nbind_to_port = false\nuse_original_dst = true\n[[listener.filter_chain]]\n[[listener.filter_chain.filter]]\nname = \"sluice.filters.network.test_hcm\"\n[listener.filter_chain.filter.config]\nstat_prefix = \"v\"\nroute_config = \"main\"\n", "listener[1].use_original_dst: a listener with bind_to_port = false accepts nothing to hand over"},
		{"cluster empty endpoints", withCluster("[[cluster]]\nname = \"backend\"\nendpoints = []\n"), `t.toml:18: cluster[0].endpoints: cluster "backend" has no endpoints`},
		{"endpoint bad", withCluster("[[cluster]]\nname = \"backend\"\nendpoints = [\n  \"127.0.0.1:1\",\n  \"nope\",\n]\n"), `t.toml:20: cluster[0].endpoints[1]: invalid address "nope"`},
		{"endpoint port 0", withCluster("[[cluster]]\nname = \"backend\"\nendpoints = [\"127.0.0.1:0\"]\n"), `cluster[0].endpoints[0]: endpoint "127.0.0.1:0" has port 0`},
		{"endpoint no host", withCluster("[[cluster]]\nname = \"backend\"\nendpoints = [\":80\"]\n"), `cluster[0].endpoints[0]: endpoint ":80" has no host`},
		{"endpoint hostname", withCluster("[[cluster]]\nname = \"backend\"\nendpoints = [\"app.internal:80\", \"[::1]:81\"]\n"), ""},
		{"connect timeout negative", withCluster(clusterTOML + "connect_timeout = \"-1ms\"\n"), "t.toml:19: cluster[0].connect_timeout: must not be negative"},
		{"idle timeout negative", withCluster(clusterTOML + "idle_timeout = \"-1m\"\n"), "cluster[0].idle_timeout: must not be negative"},
		{"max connection duration negative", withCluster(clusterTOML + "max_connection_duration = \"-1s\"\n"), "cluster[0].max_connection_duration: must not be negative"},
		{"max idle negative", withCluster(clusterTOML + "max_idle_connections = -1\n"), "cluster[0].max_idle_connections: must be >= 0"},
		{"cluster buffer negative", withCluster(clusterTOML + "per_connection_buffer_limit_bytes = -1\n"), "cluster[0].per_connection_buffer_limit_bytes: must be >= 0"},
		// route configs and virtual hosts
		{"route config missing name", listenerTOML + clusterTOML + "[[route_config]]\n", "t.toml:19: route_config[0].name: missing name"},
		{"route config duplicate name", baseTOML + "[[route_config]]\nname = \"main\"\n", `t.toml:28: route_config[1].name: duplicate name "main"`},
		{"virtual host no domains", withDomains("[[route_config.virtual_host]]\nname = \"v\"\n"), "t.toml:21: route_config[0].virtual_host[0].domains: virtual_host has no domains"},
		{"two catch-all domains", withDomains("[[route_config.virtual_host]]\ndomains = [\"*\"]\n[[route_config.virtual_host]]\ndomains = [\"*\"]\n"),
			`t.toml:24: route_config[0].virtual_host[1].domains[0]: domain "*" already used by route_config[0].virtual_host[0].domains[0]`},
		{"wildcard in the middle", withDomains("[[route_config.virtual_host]]\ndomains = [\"a.*.com\"]\n"), `route_config[0].virtual_host[0].domains[0]: invalid wildcard in domain "a.*.com"`},
		{"wildcard without dot", withDomains("[[route_config.virtual_host]]\ndomains = [\"*foo.com\"]\n"), `invalid wildcard in domain "*foo.com"`},
		{"wildcard alone with dot", withDomains("[[route_config.virtual_host]]\ndomains = [\"*.\"]\n"), `invalid wildcard in domain "*."`},
		{"empty domain", withDomains("[[route_config.virtual_host]]\ndomains = [\"\"]\n"), "domains[0]: empty domain"},
		{"duplicate domain across virtual hosts", withDomains("[[route_config.virtual_host]]\ndomains = [\"a.example.com\", \"*.example.com\", \"example.*\"]\n[[route_config.virtual_host]]\ndomains = [\"A.example.com\"]\n"),
			`route_config[0].virtual_host[1].domains[0]: duplicate domain "A.example.com" (also route_config[0].virtual_host[0].domains[0])`},
		{"same domain in two route configs", baseTOML + "[[route_config]]\nname = \"other\"\n[[route_config.virtual_host]]\ndomains = [\"*\"]\n", ""},
		// routes
		{"route without match", withRoute("cluster = \"backend\"\n"), "t.toml:23: route_config[0].virtual_host[0].route[0].match: set exactly one of path, prefix and regex"},
		{"route with two matches", withRoute("match = { prefix = \"/\", path = \"/a\" }\ncluster = \"backend\"\n"), "t.toml:24: route_config[0].virtual_host[0].route[0].match: set exactly one of path, prefix and regex"},
		{"path without slash", withRoute("match = { path = \"a\" }\ncluster = \"backend\"\n"), `route[0].match.path: must start with "/"`},
		{"prefix without slash", withRoute("match = { prefix = \"a\" }\ncluster = \"backend\"\n"), `route[0].match.prefix: must start with "/"`},
		{"regex invalid", withRoute("match = { regex = \"/(a\" }\ncluster = \"backend\"\n"), "route[0].match.regex: invalid regex"},
		{"regex valid", withRoute("match = { regex = \"/a/[0-9]+\" }\ncluster = \"backend\"\n"), ""},
		{"route without action", withRoute("match = { prefix = \"/\" }\n"), "t.toml:23: route_config[0].virtual_host[0].route[0]: set exactly one of cluster, weighted_clusters, direct_response and redirect"},
		{"route with two actions", withRoute("match = { prefix = \"/\" }\ncluster = \"backend\"\ndirect_response = { status = 200 }\n"), "route[0]: set exactly one of cluster, weighted_clusters, direct_response and redirect"},
		{"dangling cluster", withRoute("match = { prefix = \"/\" }\ncluster = \"nope\"\n"), `t.toml:25: route_config[0].virtual_host[0].route[0].cluster: unknown cluster "nope"`},
		{"direct response status low", withRoute("match = { prefix = \"/\" }\ndirect_response = { status = 199 }\n"), "route[0].direct_response.status: must be between 200 and 599, got 199"},
		{"direct response status high", withRoute("match = { prefix = \"/\" }\ndirect_response = { status = 600 }\n"), "direct_response.status: must be between 200 and 599, got 600"},
		{"direct response missing status", withRoute("match = { prefix = \"/\" }\n[route_config.virtual_host.route.direct_response]\nbody = \"hi\"\n"), "t.toml:25: route_config[0].virtual_host[0].route[0].direct_response.status: must be between 200 and 599, got 0"},
		{"direct response ok", withRoute("match = { path = \"/health\" }\ndirect_response = { status = 200, body = \"ok\" }\n"), ""},
		{"redirect status", withRoute("match = { prefix = \"/\" }\nredirect = { status = 305 }\n"), "route[0].redirect.status: must be 301, 302, 303, 307 or 308, got 305"},
		{"redirect default status", withRoute("match = { prefix = \"/\" }\nredirect = { https_redirect = true }\n"), ""},
		{"redirect scheme conflict", withRoute("match = { prefix = \"/\" }\nredirect = { https_redirect = true, scheme = \"http\" }\n"), "route[0].redirect.scheme: conflicts with https_redirect"},
		{"redirect path without slash", withRoute("match = { prefix = \"/\" }\nredirect = { path = \"x\" }\n"), `route[0].redirect.path: must start with "/"`},
		{"prefix rewrite with path match", withRoute("match = { path = \"/a\" }\ncluster = \"backend\"\nprefix_rewrite = \"/b\"\n"), "route[0].prefix_rewrite: only allowed with a prefix match"},
		{"upgrade websocket and CONNECT", withRoute("match = { prefix = \"/\" }\ncluster = \"backend\"\nupgrade = [\"websocket\", \"CONNECT\"]\n"), ""},
		{"upgrade unknown", withRoute("match = { prefix = \"/\" }\ncluster = \"backend\"\nupgrade = [\"websocket\", \"h2c\"]\n"), `route[0].upgrade[1]: must be "websocket" or "CONNECT", got "h2c"`},
		{"priority high", withRoute("match = { prefix = \"/\" }\ncluster = \"backend\"\npriority = \"high\"\n"), ""},
		{"priority unknown", withRoute("match = { prefix = \"/\" }\ncluster = \"backend\"\npriority = \"urgent\"\n"), `route[0].priority: must be "default" or "high", got "urgent"`},
		{"upgrade without cluster", withRoute("match = { prefix = \"/\" }\ndirect_response = { status = 200 }\nupgrade = [\"websocket\"]\n"), "route[0].upgrade: needs a cluster"},
		{"prefix rewrite with prefix match", withRoute("match = { prefix = \"/a\" }\ncluster = \"backend\"\nprefix_rewrite = \"/b\"\n"), ""},
		{"grpc retry conditions", withRoute("match = { prefix = \"/\" }\ncluster = \"backend\"\nretry_policy = { retry_on = [\"unavailable\", \"cancelled\", \"deadline-exceeded\", \"internal\", \"resource-exhausted\", \"5xx\"] }\n"), ""},
		{"retry condition unknown", withRoute("match = { prefix = \"/\" }\ncluster = \"backend\"\nretry_policy = { retry_on = [\"unavilable\"] }\n"), `route[0].retry_policy.retry_on: unsupported retry condition "unavilable"`},
		{"grpc timeout header max", withRoute("match = { prefix = \"/\" }\ncluster = \"backend\"\nmax_stream_duration = { grpc_timeout_header_max = \"5s\", grpc_timeout_header_offset = \"10ms\" }\n"), ""},
		{"grpc timeout header max negative", withRoute("match = { prefix = \"/\" }\ncluster = \"backend\"\nmax_stream_duration = { grpc_timeout_header_max = \"-1s\" }\n"), "route[0].max_stream_duration.grpc_timeout_header_max: must not be negative"},
		{"max stream duration unknown key", withRoute("match = { prefix = \"/\" }\ncluster = \"backend\"\nmax_stream_duration = { max_stream_duration = \"1s\" }\n"), "max_stream_duration"},
		{"max stream duration without cluster", withRoute("match = { prefix = \"/\" }\ndirect_response = { status = 200 }\nmax_stream_duration = { grpc_timeout_header_max = \"1s\" }\n"), "route[0].max_stream_duration: needs a cluster"},
		{"route timeout negative", withRoute("match = { prefix = \"/\" }\ncluster = \"backend\"\ntimeout = \"-1s\"\n"), "route[0].timeout: must not be negative"},
		{"disabled filter unknown", withRoute("match = { prefix = \"/\" }\ncluster = \"backend\"\ndisabled_filters = [\"sluice.filters.http.nope\"]\n"), `route[0].disabled_filters[0]: unknown http filter "sluice.filters.http.nope"`},
		{"disabled filter of wrong kind", withRoute("match = { prefix = \"/\" }\ncluster = \"backend\"\ndisabled_filters = [\"sluice.filters.network.test_cfg\"]\n"), `is a filter of kind network, not http`},
		{"disabled filter known", withRoute("match = { prefix = \"/\" }\ncluster = \"backend\"\ndisabled_filters = [\"sluice.filters.http.test_cfg\"]\n"), ""},
		// header matchers
		{"header name uppercase", withRoute("match = { prefix = \"/\", headers = [{ name = \"X-A\" }] }\ncluster = \"backend\"\n"), `route[0].match.headers[0].name: header name "X-A" must be a non-empty lowercase token`},
		{"header name empty", withRoute("match = { prefix = \"/\", headers = [{ exact = \"a\" }] }\ncluster = \"backend\"\n"), `match.headers[0].name: header name "" must be a non-empty lowercase token`},
		{"header name with space", withRoute("match = { prefix = \"/\", headers = [{ name = \"x a\" }] }\ncluster = \"backend\"\n"), `header name "x a"`},
		{"header two matchers", withRoute("match = { prefix = \"/\", headers = [{ name = \"x-a\" }, { name = \"x-b\", exact = \"1\", present = true }] }\ncluster = \"backend\"\n"), "route[0].match.headers[1]: set at most one of exact, prefix, regex and present"},
		{"header regex invalid", withRoute("match = { prefix = \"/\", headers = [{ name = \"x-a\", regex = \"(\" }] }\ncluster = \"backend\"\n"), "match.headers[0].regex: invalid regex"},
		{"header matchers valid", withRoute("match = { prefix = \"/\", headers = [{ name = \"x-a\", prefix = \"v\", invert = true }, { name = \"x-b\", present = false }] }\ncluster = \"backend\"\n"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "" {
				parse(t, tc.text)
				return
			}
			parseErr(t, tc.text, tc.want)
		})
	}
}

func TestValidateReportsEveryProblemInFileOrder(t *testing.T) {
	text := baseTOML + "[server]\nworkers = -1\ndrain_strategy = \"x\"\n[log]\nlevel = \"x\"\n"
	err := parseErr(t, text, "")
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		"t.toml:28: server.workers: must be between 0 and 1024, got -1",
		`t.toml:29: server.drain_strategy: must be gradual or immediate, got "x"`,
		`t.toml:31: log.level: must be debug, info, warn or error, got "x"`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("errors:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "server.workers" || ce.Line != 28 {
		t.Fatalf("errors.As found %+v, want the server.workers error", ce)
	}
}

// A negative drain_timeout is reported once, at its own line: the default
// drain_jitter derived from it (min(5s, drain_timeout)) used to add a
// second error about a key the file does not set, at line 1.
func TestNegativeDrainTimeoutIsOneError(t *testing.T) {
	err := parseErr(t, baseTOML+"[server]\ndrain_timeout = \"-1s\"\n", "")
	if want := "t.toml:28: server.drain_timeout: must not be negative, got -1s"; err.Error() != want {
		t.Fatalf("errors:\n%v\nwant only:\n%s", err, want)
	}
}
