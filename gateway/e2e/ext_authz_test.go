package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
	"github.com/sluice-proxy/sluice/gateway/plugin/plugintest"
)

// testPlugins is the import path of the misbehaving and scripted plugins.
const testPlugins = "github.com/sluice-proxy/sluice/plugins/internal/testplugins/"

// pluginBin builds the test plugin name into the test's temporary
// directory and returns its path.
func pluginBin(t *testing.T, name string) string {
	t.Helper()
	return plugintest.Build(t, testPlugins+name)
}

// authzConfig returns a config with one HTTP listener "http" (extra listener
// lines in listenerLines) whose connection manager runs ext_authz with the
// [[plugin]] "auth" at bin (extra plugin lines in pluginLines) and the
// filter config lines filterLines, then the router to upstream. Routes
// under /open disable the filter.
func authzConfig(bin, upstream, pluginLines, filterLines, listenerLines string) string {
	return fmt.Sprintf(`
[server]
workers = 1
drain_timeout = "2s"

[[plugin]]
name = "auth"
path = %q
%s

[[listener]]
name = "http"
address = "127.0.0.1:0"
%s

  [[listener.filter_chain]]
  name = "default"

    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "ingress_http"
    route_config = "local"

      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.ext_authz"
      [listener.filter_chain.filter.config.http_filter.config]
      plugin = "auth"
%s

      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"

[[route_config]]
name = "local"

  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
`, bin, pluginLines, listenerLines, filterLines) +
		route(`prefix = "/open"`, "up", `disabled_filters = ["sluice.filters.http.ext_authz"]`) +
		route(`prefix = "/"`, "up") + cluster("up", upstream)
}

// headerEchoUpstream answers with every request header as x-up-<name> and
// the request body's length as x-up-body-len.
func headerEchoUpstream(t *testing.T) *testutil.Server {
	t.Helper()
	return testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range r.Header {
			w.Header()["X-Up-"+k] = v
		}
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("x-up-body-len", strconv.FormatInt(n, 10))
	}))
}

// startAuthz starts sluice on cfg and waits until the plugin runs.
func startAuthz(t *testing.T, cfg string, opts ...gwtest.Option) *gwtest.Proxy {
	t.Helper()
	p := gwtest.Start(t, cfg, opts...)
	p.WaitLog(t, "plugin: running", nil, ioTimeout)
	return p
}

// A body larger than gRPC's default 4 MiB message limit, within
// max_request_bytes, reaches the plugin: the SDK's server accepts check
// requests as large as the filter may send.
func TestExtAuthzSendsBodiesLargerThanFourMiB(t *testing.T) {
	up := headerEchoUpstream(t)
	p := startAuthz(t, authzConfig(pluginBin(t, "echo"), up.Addr, "",
		"      with_request_body = { max_request_bytes = 8388608 }\n      timeout = \"10s\"",
		"per_connection_buffer_limit_bytes = 16777216"))
	c := newClient(nil)
	const n = 5 << 20
	req, err := http.NewRequest("POST", "http://"+p.Addr("http")+"/upload", bytes.NewReader(bytes.Repeat([]byte("b"), n)))
	if err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, c, req)
	if resp.StatusCode != 200 {
		t.Fatalf("POST of %d bytes: status %d body %q, want 200", n, resp.StatusCode, body)
	}
	if got := resp.Header.Get("x-up-x-body-len"); got != strconv.Itoa(n) {
		t.Fatalf("plugin saw a body of %q bytes, want %d", got, n)
	}
	if got := resp.Header.Get("x-up-body-len"); got != strconv.Itoa(n) {
		t.Fatalf("upstream got a body of %q bytes, want %d", got, n)
	}
}

// A denied response's headers replace the local reply's own (Envoy: append
// defaults to false in DeniedHttpResponse): a plugin that answers JSON gets
// one Content-Type, its own. Framing stays the reply's: a Content-Length
// from the plugin that does not match the body must not desynchronise the
// connection.
func TestExtAuthzDeniedHeadersReplaceTheLocalReplys(t *testing.T) {
	up := headerEchoUpstream(t)
	p := startAuthz(t, authzConfig(pluginBin(t, "echo"), up.Addr, "", "", ""))
	c := dial(t, p.Addr("http"))
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "GET /a HTTP/1.1\r\nHost: x\r\nx-deny: 401\r\nx-deny-header-content-type: application/json\r\n"+
		"x-deny-header-content-length: 3\r\n\r\n")
	resp, body := readResponse(t, br, "GET")
	if resp.StatusCode != 401 || string(body) != "denied by plugin\n" {
		t.Fatalf("denied: status %d body %q, want 401 and the plugin's body", resp.StatusCode, body)
	}
	if ct := resp.Header.Values("Content-Type"); len(ct) != 1 || ct[0] != "application/json" {
		t.Fatalf("denied reply Content-Type = %q, want only the plugin's application/json", ct)
	}
	if resp.Header.Get("x-deny-reason") != "test" {
		t.Fatalf("denied reply lost the plugin's x-deny-reason: %v", resp.Header)
	}
	// The connection still frames requests: the next one is answered.
	fmt.Fprintf(c, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ = readResponse(t, br, "GET")
	if resp.StatusCode != 200 || resp.Header.Get("x-up-x-auth-user") != "tester" {
		t.Fatalf("next request on the connection: status %d, headers %v", resp.StatusCode, resp.Header)
	}
}

// A [[plugin]]'s env overrides a variable of the same name that the plugin
// would otherwise inherit from sluice's environment.
func TestExtAuthzPluginEnvOverridesInheritedVariables(t *testing.T) {
	up := headerEchoUpstream(t)
	p := startAuthz(t, authzConfig(pluginBin(t, "echo"), up.Addr, `env = { SLUICE_TEST_PLUGIN_ENV = "from-config" }`, "", ""),
		gwtest.WithEnv("SLUICE_TEST_PLUGIN_ENV=from-sluice"))
	resp, _ := get(t, newClient(nil), "http://"+p.Addr("http")+"/")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("x-up-x-plugin-env"); got != "from-config" {
		t.Fatalf("plugin's SLUICE_TEST_PLUGIN_ENV = %q, want the config's from-config", got)
	}
}

// A plugin that sets a framing header (content-length, transfer-encoding)
// on an allowed request answered garbage: the request gets the failure
// mode, and never reaches the upstream framed by the plugin's value (a
// shorter content-length would smuggle the rest of the body to the
// upstream as a request of its own).
func TestExtAuthzFramingMutationsAreInvalid(t *testing.T) {
	up := headerEchoUpstream(t)
	p := startAuthz(t, authzConfig(pluginBin(t, "echo"), up.Addr, "", "", ""))
	c := newClient(nil)
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	req, err := http.NewRequest("POST", "http://"+p.Addr("http")+"/upload", strings.NewReader("x"+smuggled))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-allow-header-content-length", "1")
	resp, body := do(t, c, req)
	if resp.StatusCode != 403 {
		t.Fatalf("content-length from the plugin: status %d body %q, want the failure mode 403", resp.StatusCode, body)
	}
	resp, body = get(t, c, "http://"+p.Addr("http")+"/get", "x-allow-response-header-transfer-encoding", "chunked")
	if resp.StatusCode != 403 {
		t.Fatalf("transfer-encoding on the response from the plugin: status %d body %q, want 403", resp.StatusCode, body)
	}
	if targets := up.Targets(); len(targets) != 0 {
		t.Fatalf("the upstream saw %q, want nothing", targets)
	}
}

// A plugin that fails one check with a gRPC Unavailable error of its own
// (its backend is down) costs that request its failure mode, and nothing
// else: a check in flight on the same worker at that moment still gets its
// answer (the worker's connection to the plugin is not torn down), and the
// plugin keeps its process.
func TestExtAuthzPluginUnavailableErrorSparesConcurrentChecks(t *testing.T) {
	up := headerEchoUpstream(t)
	dir := t.TempDir()
	fifo, release := filepath.Join(dir, "pending"), filepath.Join(dir, "release")
	for _, f := range []string{fifo, release} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := startAuthz(t, authzConfig(pluginBin(t, "crash"), up.Addr,
		fmt.Sprintf("env = { SLUICE_TEST_FIFO = %q, SLUICE_TEST_RELEASE = %q }", fifo, release),
		// The held check spans the test's steps, each bounded by
		// ioTimeout: on a loaded machine 10s ran out and failed it 403.
		`      timeout = "60s"`, ""))
	base := "http://" + p.Addr("http")

	held := make(chan int, 1)
	go func() {
		resp, err := newClient(nil).Get(base + "/hold")
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	f, err := os.Open(fifo) // returns once the plugin opened it for writing
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(f).ReadString('\n')
	f.Close()
	if line != "pending\n" {
		t.Fatalf("plugin said %q", line)
	}
	// The /hold check is in the plugin: another one fails meanwhile.
	if resp, _ := get(t, newClient(nil), base+"/unavailable"); resp.StatusCode != 403 {
		t.Fatalf("check failing with Unavailable: status %d, want the failure mode 403", resp.StatusCode)
	}
	// The plugin opens the release FIFO for reading after it said
	// "pending", maybe not yet on a loaded machine: a blocking open for
	// writing waits for it (bounded, in case it never comes).
	opened := make(chan *os.File, 1)
	go func() {
		rel, err := os.OpenFile(release, os.O_WRONLY, 0)
		if err != nil {
			rel = nil
		}
		opened <- rel
	}()
	select {
	case rel := <-opened:
		if rel == nil {
			t.Fatal("open the release FIFO failed")
		}
		rel.WriteString("go\n")
		rel.Close()
	case <-time.After(ioTimeout):
		t.Fatal("the plugin never opened the release FIFO")
	}
	select {
	case code := <-held:
		if code != 200 {
			t.Fatalf("check in flight when another failed with Unavailable: status %d, want 200", code)
		}
	case <-time.After(ioTimeout):
		t.Fatal("the held request got no answer")
	}
}

// What a plugin writes to its standard error reaches sluice's log: lines
// from the log package (the process's stderr, which the supervisor reads)
// and lines written to os.Stderr while it serves (which go-plugin sends to
// the attached workers).
func TestExtAuthzPluginOutputReachesTheLog(t *testing.T) {
	up := headerEchoUpstream(t)
	p := startAuthz(t, authzConfig(pluginBin(t, "crash"), up.Addr, "", "", ""))
	if resp, _ := get(t, newClient(nil), "http://"+p.Addr("http")+"/log"); resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	for _, note := range []string{"crash: note via log", "crash: note via os.Stderr"} {
		p.WaitLog(t, "", func(e map[string]any) bool {
			msg, _ := e["msg"].(string)
			return strings.Contains(msg, note) && e["plugin"] == "auth"
		}, ioTimeout)
	}
}

// The jwt plugin forwards chosen claims as request headers; a client must
// not be able to supply such a header itself when its (valid) token lacks
// the claim: the upstream would take the forged value for a verified one.
func TestJWTPluginForwardedClaimHeadersCannotBeForged(t *testing.T) {
	up := headerEchoUpstream(t)
	dir := t.TempDir()
	secret := "0123456789abcdef0123456789abcdef"
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := plugintest.Build(t, "github.com/sluice-proxy/sluice/plugins/jwt")
	p := startAuthz(t, authzConfig(bin, up.Addr,
		fmt.Sprintf(`args = ["-hs256-secret-file", %q, "-claims", "sub=x-jwt-sub,email=x-jwt-email"]`, secretFile), "", ""))
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := get(t, newClient(nil), "http://"+p.Addr("http")+"/",
		"authorization", "Bearer "+tok, "x-jwt-email", "admin@example.com", "x-jwt-sub", "mallory")
	if resp.StatusCode != 200 {
		t.Fatalf("valid token: status %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("x-up-x-jwt-sub"); got != "alice" {
		t.Fatalf("upstream x-jwt-sub = %q, want the token's alice", got)
	}
	if got := resp.Header.Values("x-up-x-jwt-email"); len(got) != 0 {
		t.Fatalf("upstream x-jwt-email = %q for a token without an email claim: the client's forged value passed", got)
	}
}

// The apikey plugin forwards a key's name as x-api-key-name; a client
// presenting an unnamed key must not be able to supply that header itself.
func TestAPIKeyPluginNameHeaderCannotBeForged(t *testing.T) {
	up := headerEchoUpstream(t)
	keys := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(keys, []byte("k-alice alice\nk-anon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := plugintest.Build(t, "github.com/sluice-proxy/sluice/plugins/apikey")
	p := startAuthz(t, authzConfig(bin, up.Addr, fmt.Sprintf(`args = ["-keys", %q]`, keys), "", ""))
	c := newClient(nil)
	url := "http://" + p.Addr("http") + "/"
	resp, _ := get(t, c, url, "x-api-key", "k-alice", "x-api-key-name", "admin")
	if resp.StatusCode != 200 || resp.Header.Get("x-up-x-api-key-name") != "alice" {
		t.Fatalf("named key: status %d, upstream x-api-key-name %q, want 200 and alice", resp.StatusCode, resp.Header.Get("x-up-x-api-key-name"))
	}
	resp, _ = get(t, c, url, "x-api-key", "k-anon", "x-api-key-name", "admin")
	if resp.StatusCode != 200 {
		t.Fatalf("unnamed key: status %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Values("x-up-x-api-key-name"); len(got) != 0 {
		t.Fatalf("unnamed key: upstream x-api-key-name = %q, want none: the client's forged value passed", got)
	}
}

// The network ext_authz filter counts its outcomes in the stats the admin
// API serves, under ext_authz.<stat_prefix>. (Envoy's names): a connection
// allowed, one denied, and one whose check timed out (fail closed).
func TestNetworkExtAuthzCountsOutcomesInStats(t *testing.T) {
	up := echoUpstream(t)
	cfg := fmt.Sprintf(tcpHead, 1) +
		fmt.Sprintf("\n[[plugin]]\nname = \"auth\"\npath = %q\n\n[[plugin]]\nname = \"hang\"\npath = %q\n", pluginBin(t, "echo"), pluginBin(t, "hang")) +
		tcpListener("allow", "127.0.0.1:0", netFilter("ext_authz", `plugin = "auth"`, `stat_prefix = "tcp_auth"`), tcpProxy(`cluster = "up"`)) +
		tcpListener("deny", "127.0.0.1:0", netFilter("ext_authz", `plugin = "auth"`, `stat_prefix = "tcp_auth"`, `context_extensions = { deny = "yes" }`), tcpProxy(`cluster = "up"`)) +
		tcpListener("hang", "127.0.0.1:0", netFilter("ext_authz", `plugin = "hang"`, `stat_prefix = "tcp_hang"`, `timeout = "50ms"`), tcpProxy(`cluster = "up"`)) +
		cluster("up", up.Addr) + "\n[admin]\naddress = \"127.0.0.1:0\"\n"
	p := gwtest.Start(t, cfg)
	p.WaitLog(t, "plugin: running", func(e map[string]any) bool { return e["plugin"] == "auth" }, ioTimeout)
	p.WaitLog(t, "plugin: running", func(e map[string]any) bool { return e["plugin"] == "hang" }, ioTimeout)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)

	echoes(t, dial(t, p.Addr("allow")))
	for _, l := range []string{"deny", "hang"} {
		c := dial(t, p.Addr(l))
		if roundTrip(c, "hello") {
			t.Fatalf("listener %s: the connection echoed, want it closed", l)
		}
	}
	for name, want := range map[string]float64{
		"ext_authz.tcp_auth.ok": 1, "ext_authz.tcp_auth.denied": 1, "ext_authz.tcp_auth.error": 0,
		"ext_authz.tcp_hang.error": 1, "ext_authz.tcp_hang.timeout": 1, "ext_authz.tcp_hang.failure_mode_allowed": 0,
		"ext_authz.tcp_auth.cx_closed": 1, "ext_authz.tcp_hang.cx_closed": 1, // the denied and the failed connection
	} {
		waitCounter(t, admin, name, want)
		if _, ok := adminCounters(t, admin)[name]; !ok {
			t.Errorf("counter %s missing from /stats", name)
		}
	}
}

// Over mutual TLS the check carries the client certificate's principal
// (first DNS SAN here) and the SNI, also on a resumed session.
func TestExtAuthzSeesTheClientCertificate(t *testing.T) {
	ca := testutil.NewCA(t)
	srvCert, srvKey, _ := ca.Leaf(t, "127.0.0.1", "a.test")
	_, _, client := ca.Leaf(t, "client.test")
	up := headerEchoUpstream(t)
	cfg := authzConfig(pluginBin(t, "echo"), up.Addr, "", "", "")
	cfg = strings.Replace(cfg, "  name = \"default\"\n", fmt.Sprintf("  name = \"default\"\n  [listener.filter_chain.tls]\n"+
		"  ca_file = %q\n  [[listener.filter_chain.tls.certificate]]\n  cert_file = %q\n  key_file = %q\n", ca.File, srvCert, srvKey), 1)
	p := startAuthz(t, cfg)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "a.test",
		Certificates: []tls.Certificate{client}, ClientSessionCache: tls.NewLRUClientSessionCache(4)}}
	c := &http.Client{Transport: tr, Timeout: ioTimeout}
	for i := range 2 {
		resp, _ := get(t, c, "https://"+p.Addr("http")+"/x")
		if resp.StatusCode != 200 || resp.Header.Get("x-up-x-principal") != "client.test" || resp.Header.Get("x-up-x-sni") != "a.test" {
			t.Fatalf("connection %d (resumed %v): status %d, plugin saw principal %q sni %q, want client.test and a.test", i,
				resp.TLS.DidResume, resp.StatusCode, resp.Header.Get("x-up-x-principal"), resp.Header.Get("x-up-x-sni"))
		}
		tr.CloseIdleConnections()
	}
}
