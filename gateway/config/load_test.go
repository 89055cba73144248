package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseUnknownKeys(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"top level", "bogus = 1\n" + baseTOML, "t.toml:1: bogus: unknown key"},
		{"server table", baseTOML + "[server]\nworkerz = 2\n", "t.toml:28: server.workerz: unknown key"},
		{"listener", strings.Replace(baseTOML, "address =", "adress =", 1), "t.toml:3: listener[0].adress: unknown key"},
		{"second listener, last table", baseTOML + strings.Replace(strings.Replace(listenerTOML, "public", "other", 1), "reuse_port", "", 1) + "reuse_prot = false\n",
			"t.toml:42: listener[1].filter_chain[0].filter[0].config.http_filter[1].reuse_prot: unknown key"},
		{"filter table", strings.Replace(baseTOML, "name = \"sluice.filters.network.test_hcm\"\n", "name = \"sluice.filters.network.test_hcm\"\ntyped = 1\n", 1),
			"t.toml:7: listener[0].filter_chain[0].filter[0].typed: unknown key"},
		{"filter config", strings.Replace(baseTOML, "stat_prefix =", "stat_prefx =", 1),
			"t.toml:8: listener[0].filter_chain[0].filter[0].config.stat_prefx: unknown key"},
		{"filter config in second listener", baseTOML + strings.Replace(strings.Replace(listenerTOML, "public", "other", 1), "stat_prefix =", "stat_prefx =", 1),
			"t.toml:34: listener[1].filter_chain[0].filter[0].config.stat_prefx: unknown key"},
		{"nested http filter config", strings.Replace(baseTOML, "header = ", "heder = ", 1),
			"t.toml:13: listener[0].filter_chain[0].filter[0].config.http_filter[0].config.heder: unknown key"},
		{"nested http filter config sub-table", strings.Replace(baseTOML, "header = \"x-a\"\n", "header = \"x-a\"\nretry = { max = 1, min = 0 }\n", 1),
			"t.toml:14: listener[0].filter_chain[0].filter[0].config.http_filter[0].config.retry.min: unknown key"},
		{"config of a filter without keys", baseTOML + "[listener.filter_chain.filter.config.http_filter.config]\nx = 1\n",
			"t.toml:28: listener[0].filter_chain[0].filter[0].config.http_filter[1].config.x: unknown key"},
		{"listener filter config", strings.Replace(baseTOML, "[[listener.filter_chain]]\n",
			"[[listener.listener_filter]]\nname = \"sluice.filters.listener.test_cfg\"\nconfig = { sni = true, timout = \"1s\" }\n[[listener.filter_chain]]\n", 1),
			"t.toml:6: listener[0].listener_filter[0].config.timout: unknown key"},
		{"inline table", strings.Replace(baseTOML, `match = { prefix = "/" }`, `match = { prefix = "/", prefx = "/a" }`, 1),
			"t.toml:25: route_config[0].virtual_host[0].route[0].match.prefx: unknown key"},
		{"array of inline tables", strings.Replace(baseTOML, `match = { prefix = "/" }`, "match = { prefix = \"/\", headers = [\n  { name = \"a\" },\n  { name = \"b\", exactly = \"c\" },\n] }", 1),
			"t.toml:27: route_config[0].virtual_host[0].route[0].match.headers[1].exactly: unknown key"},
		{"dotted key", baseTOML + "[server]\nadmin.address = \"x\"\n", "t.toml:28: server.admin: unknown key"},
		{"after multi-line string", baseTOML + "[log]\nlevel = \"\"\"\ninfo\n[server]\nx = 1\n\"\"\"\nfromat = 'json'\n",
			"t.toml:33: log.fromat: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) { parseErr(t, tc.text, tc.want) })
	}
}

func TestParseWrongTypes(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"integer as string", baseTOML + "[server]\nworkers = \"two\"\n", "t.toml:28: server.workers: expected integer, found string"},
		{"string as integer", strings.Replace(baseTOML, `"127.0.0.1:0"`, "8080", 1), "t.toml:3: listener[0].address: expected string, found integer"},
		{"bool as string", baseTOML + "[admin]\nallow_non_loopback = \"yes\"\n", "admin.allow_non_loopback: expected boolean, found string"},
		{"bad duration", baseTOML + "[server]\ndrain_timeout = \"10 parsecs\"\n", `t.toml:28: server.drain_timeout: invalid value "10 parsecs"`},
		{"duration as integer", baseTOML + "[server]\ndrain_timeout = 10\n", `server.drain_timeout: invalid value "10"`},
		{"array expected", strings.Replace(baseTOML, `endpoints = ["127.0.0.1:8080"]`, `endpoints = "127.0.0.1:8080"`, 1), "t.toml:18: cluster[0].endpoints: expected array, found string"},
		{"array element", strings.Replace(baseTOML, `endpoints = ["127.0.0.1:8080"]`, "endpoints = [\n\"a:1\",\n2,\n]", 1), "t.toml:20: cluster[0].endpoints[1]: expected string, found integer"},
		{"table expected", "listener = 5\n", "t.toml:1: listener: expected array, found integer"},
		{"filter config not a table", chainTOML("[[listener.filter_chain.filter]]\nname = \"sluice.filters.network.test_hcm\"\nconfig = 5\n"),
			"t.toml:7: listener[0].filter_chain[0].filter[0].config: expected table, found integer"},
		{"filter config value", strings.Replace(baseTOML, "header = \"x-a\"\n", "header = \"x-a\"\nsmall = 300\n", 1),
			"t.toml:14: listener[0].filter_chain[0].filter[0].config.http_filter[0].config.small: 300 is out of range for int8"},
		{"filter config array", strings.Replace(baseTOML, "header = \"x-a\"\n", "tags = \"a\"\n", 1),
			"t.toml:13: listener[0].filter_chain[0].filter[0].config.http_filter[0].config.tags: expected array, found string"},
		{"filter config map value", strings.Replace(baseTOML, "header = \"x-a\"\n", "limits = { a = 1, b = \"2\" }\n", 1),
			"t.toml:13: listener[0].filter_chain[0].filter[0].config.http_filter[0].config.limits.b: expected integer, found string"},
		{"datetime as string", baseTOML + "[log]\nlevel = 1979-05-27\n", "t.toml:28: log.level: expected string, found datetime"},
	} {
		t.Run(tc.name, func(t *testing.T) { parseErr(t, tc.text, tc.want) })
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"unclosed header", "[server\nworkers = 1\n", "t.toml:2: expected '.' or ']' to end table name"},
		{"unterminated string", baseTOML + "[log]\nlevel = \"info\n", "t.toml:28: "},
		{"duplicate key", baseTOML + "[log]\nlevel = \"info\"\nlevel = \"warn\"\n", "t.toml:29: "},
		{"missing value", "[server]\n\nworkers =\n", "t.toml:3: "},
		{"bad escape", "[log]\nlevel = \"\\q\"\n", "t.toml:2: "},
		{"arrays nested too deep", "[log]\nlevel = 1\nx = " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n", "t.toml:3: keys nested deeper than 32 levels"},
		{"dotted key too long", "[server]\n" + strings.Repeat("a.", 40) + "b = 1\n", "t.toml:2: keys nested deeper than 32 levels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := parseErr(t, tc.text, tc.want)
			var ce *Error
			if errors.As(err, &ce); ce.Msg == "" {
				t.Fatalf("error %q has no message", err)
			}
		})
	}
}

func TestParseFilterNames(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"unknown network filter", strings.Replace(baseTOML, "network.test_hcm", "network.nope", 1),
			`t.toml:6: listener[0].filter_chain[0].filter[0].name: unknown network filter "sluice.filters.network.nope" (registered: sluice.filters.network.test_cfg, sluice.filters.network.test_hcm)`},
		{"unknown nested http filter", strings.Replace(baseTOML, "http.test_cfg", "http.nope", 1),
			`t.toml:11: listener[0].filter_chain[0].filter[0].config.http_filter[0].name: unknown http filter "sluice.filters.http.nope" (registered: sluice.filters.http.test_cfg, sluice.filters.http.test_per_route, sluice.filters.http.test_router)`},
		{"unknown listener filter", strings.Replace(baseTOML, "[[listener.filter_chain]]\n", "[[listener.listener_filter]]\nname = \"x\"\n[[listener.filter_chain]]\n", 1),
			`t.toml:5: listener[0].listener_filter[0].name: unknown listener filter "x" (registered: sluice.filters.listener.http_inspector, sluice.filters.listener.test_cfg, sluice.filters.listener.tls_inspector)`},
		{"http filter in network chain", strings.Replace(baseTOML, "network.test_hcm", "http.test_router", 1),
			`listener[0].filter_chain[0].filter[0].name: "sluice.filters.http.test_router" is a filter of kind http, not network`},
		{"missing filter name", strings.Replace(baseTOML, "name = \"sluice.filters.http.test_router\"\n", "", 1),
			"t.toml:14: listener[0].filter_chain[0].filter[0].config.http_filter[1].name: missing filter name"},
	} {
		t.Run(tc.name, func(t *testing.T) { parseErr(t, tc.text, tc.want) })
	}
}

func TestParseDecodesFilters(t *testing.T) {
	text := strings.Replace(baseTOML, "[[listener.filter_chain]]\n",
		"[[listener.listener_filter]]\nname = \"sluice.filters.listener.test_cfg\"\nconfig = { timeout = \"2s\", sni = true }\n[[listener.filter_chain]]\n", 1)
	text = strings.Replace(text, "header = \"x-a\"\n", "header = \"x-a\"\ntags = [\"a\", \"b\"]\nRETRY.max = 3\nextra = { a = { b = [{ c = 1 }] } }\n", 1)
	c := parse(t, text)
	l := &c.Listeners[0]

	lf := l.ListenerFilters[0]
	lc, ok := lf.Decoded.(*testListenerCfg)
	if !ok || lc.Timeout.Seconds() != 2 || !lc.SNI || lf.Path != "listener[0].listener_filter[0]" {
		t.Fatalf("listener filter: path %q decoded %#v", lf.Path, lf.Decoded)
	}
	nf := l.FilterChains[0].Filters[0]
	hcm, ok := nf.Decoded.(*testHCMCfg)
	if !ok || hcm.StatPrefix != "ingress" || hcm.RouteConfig != "main" || nf.Path != "listener[0].filter_chain[0].filter[0]" {
		t.Fatalf("network filter: path %q decoded %#v", nf.Path, nf.Decoded)
	}
	if len(hcm.HTTPFilters) != 2 {
		t.Fatalf("got %d http filters, want 2", len(hcm.HTTPFilters))
	}
	hf := hcm.HTTPFilters[0]
	hc, ok := hf.Decoded.(*testHTTPCfg)
	if !ok || hc.Header != "x-a" || strings.Join(hc.Tags, ",") != "a,b" || hc.Retry.Max != 3 {
		t.Fatalf("http filter: decoded %#v", hf.Decoded)
	}
	if a, _ := hc.Extra["a"].(map[string]any); a == nil || a["b"] == nil {
		t.Fatalf("free-form table: %#v", hc.Extra)
	}
	if hf.Path != "listener[0].filter_chain[0].filter[0].config.http_filter[0]" {
		t.Fatalf("http filter path %q", hf.Path)
	}
	rf := hcm.HTTPFilters[1]
	if _, ok := rf.Decoded.(*testRouterCfg); !ok || rf.Path != "listener[0].filter_chain[0].filter[0].config.http_filter[1]" {
		t.Fatalf("router: path %q decoded %#v", rf.Path, rf.Decoded)
	}
}

func TestParseFilterWithoutConfigKeepsDefaults(t *testing.T) {
	text := strings.Replace(baseTOML, "[listener.filter_chain.filter.config.http_filter.config]\nheader = \"x-a\"\n", "", 1)
	c := parse(t, text)
	hcm := c.Listeners[0].FilterChains[0].Filters[0].Decoded.(*testHCMCfg)
	hc, ok := hcm.HTTPFilters[0].Decoded.(*testHTTPCfg)
	if !ok || hc.Header != "x-default" {
		t.Fatalf("decoded %#v, want the defaults of New", hcm.HTTPFilters[0].Decoded)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.toml")
	if err := os.WriteFile(path, []byte(baseTOML), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Path != path || string(c.Source) != baseTOML {
		t.Fatalf("Path %q, Source %d bytes", c.Path, len(c.Source))
	}
	if err := os.WriteFile(path, []byte("oops = 1\n"+baseTOML), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || err.Error() != path+":1: oops: unknown key" {
		t.Fatalf("Load error %v, want %s:1: oops: unknown key", err, path)
	}
	_, err = Load(filepath.Join(t.TempDir(), "missing.toml"))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "config: ") {
		t.Fatalf("Load of a missing file: %v", err)
	}
}

func TestLookups(t *testing.T) {
	c := parse(t, baseTOML)
	if rc := c.RouteConfig("main"); rc == nil || rc != &c.RouteConfigs[0] {
		t.Fatalf("RouteConfig(main) = %v", rc)
	}
	if rc := c.RouteConfig("nope"); rc != nil {
		t.Fatalf("RouteConfig(nope) = %v", rc)
	}
	if cl := c.Cluster("backend"); cl == nil || cl != &c.Clusters[0] {
		t.Fatalf("Cluster(backend) = %v", cl)
	}
	if cl := c.Cluster("nope"); cl != nil {
		t.Fatalf("Cluster(nope) = %v", cl)
	}
}

func TestFieldError(t *testing.T) {
	c := parse(t, baseTOML)
	f := c.Listeners[0].FilterChains[0].Filters[0].Decoded.(*testHCMCfg).HTTPFilters[0]
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"field error", registryErrorf("header", "must be lowercase"), "t.toml:13: listener[0].filter_chain[0].filter[0].config.http_filter[0].config.header: must be lowercase"},
		{"wrapped field error", wrapErr(registryErrorf("tags", "must not be empty")), "t.toml:12: listener[0].filter_chain[0].filter[0].config.http_filter[0].config.tags: must not be empty"},
		{"plain error", errors.New("cannot dial plugin"), "t.toml:10: listener[0].filter_chain[0].filter[0].config.http_filter[0]: cannot dial plugin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.FieldError(f.Path, tc.err)
			var ce *Error
			if !errors.As(err, &ce) || err.Error() != tc.want {
				t.Fatalf("FieldError = %v, want %s", err, tc.want)
			}
		})
	}
	t.Run("config error passes through", func(t *testing.T) {
		in := &Error{File: "x", Line: 1, Key: "k", Msg: "m"}
		if err := c.FieldError(f.Path, in); err != in {
			t.Fatalf("FieldError = %v, want the same *Error", err)
		}
	})
	t.Run("nil", func(t *testing.T) {
		if err := c.FieldError(f.Path, nil); err != nil {
			t.Fatalf("FieldError(nil) = %v", err)
		}
	})
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "a.toml", Line: 3, Key: "server.workers", Msg: "bad"}, "a.toml:3: server.workers: bad"},
		{Error{File: "a.toml", Key: "server.workers", Msg: "bad"}, "a.toml: server.workers: bad"},
		{Error{File: "a.toml", Line: 2, Msg: "bad"}, "a.toml:2: bad"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.e.Error(); got != tc.want {
				t.Fatalf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}
