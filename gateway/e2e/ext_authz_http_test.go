package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// authzHTTPServer is a forward-auth service in the manner of oauth2-proxy's
// /oauth2/auth, scripted by the original request's path (after the
// "/auth" path_prefix): /accepted answers 202 (allowing, as
// oauth2-proxy's /oauth2/auth does), /deny answers 401 with WWW-Authenticate, /login
// 302 to a login page with two cookies, /boom 503, /slow nothing until the
// check is abandoned; anything else 200, echoing what the check carried as
// x-seen-* headers and naming the user in x-auth-user.
func authzHTTPServer(t *testing.T) *testutil.Server {
	t.Helper()
	seen := func(v string) string {
		if v == "" {
			return "-"
		}
		return v
	}
	return testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p := strings.TrimPrefix(r.URL.Path, "/auth")
		switch {
		case strings.HasPrefix(p, "/deny"):
			w.Header().Set("WWW-Authenticate", `Basic realm="sluice"`)
			w.Header().Set("X-Denied", "yes")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, "who are you?\n")
		case strings.HasPrefix(p, "/login"):
			w.Header().Set("Location", "https://login.example/start?rd="+url.QueryEscape("http://"+r.Host+p))
			w.Header().Add("Set-Cookie", "csrf=1; Path=/")
			w.Header().Add("Set-Cookie", "next=2; Path=/")
			w.WriteHeader(http.StatusFound)
		case strings.HasPrefix(p, "/accepted"):
			// oauth2-proxy's /oauth2/auth allows with 202.
			w.Header().Set("X-Auth-User", "ada")
			w.WriteHeader(http.StatusAccepted)
		case strings.HasPrefix(p, "/boom"):
			w.WriteHeader(http.StatusServiceUnavailable)
		case strings.HasPrefix(p, "/slow"):
			select {
			case <-r.Context().Done():
			case <-time.After(ioTimeout):
			}
		default:
			h := w.Header()
			h.Set("x-seen-method", r.Method)
			h.Set("x-seen-uri", r.RequestURI)
			h.Set("x-seen-host", r.Host)
			h.Set("x-seen-authorization", seen(r.Header.Get("Authorization")))
			h.Set("x-seen-cookie", seen(r.Header.Get("Cookie")))
			h.Set("x-seen-secret", seen(r.Header.Get("X-Secret")))
			h.Set("x-seen-from", seen(r.Header.Get("X-From")))
			h.Set("x-seen-length", fmt.Sprint(r.ContentLength))
			h.Set("x-seen-body", seen(string(body)))
			h.Set("x-auth-user", "alice")
			h.Set("x-auth-client", "hello")
			h.Set("x-tags", "authz")
			h.Set("x-not-listed", "no")
			h.Set("x-envoy-auth-headers-to-remove", "x-drop-me")
		}
	}))
}

// authzHTTPConfig returns a config with an admin API, ext_authz asking the
// http_service of cluster "authz" at authz (with filterLines before the
// service's table) in front of the router to upstream; routes under /open
// disable the filter.
func authzHTTPConfig(upstream, authz, filterLines, serviceLines string) string {
	cfg := config(1, route(`prefix = "/open"`, "up", `disabled_filters = ["sluice.filters.http.ext_authz"]`)+route(`prefix = "/"`, "up"),
		cluster("up", upstream), cluster("authz", authz)) + "\n[admin]\naddress = \"127.0.0.1:0\"\n"
	return withHTTPFilter(cfg, `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.ext_authz"
      [listener.filter_chain.filter.config.http_filter.config]
`+filterLines+`
      [listener.filter_chain.filter.config.http_filter.config.http_service]
      server_uri = { uri = "http://authz.local:4180", cluster = "authz" }
`+serviceLines)
}

// oauth2ProxyService is the http_service of the allow and deny tests.
const oauth2ProxyService = `
      path_prefix = "/auth"
      authorization_request = { allowed_headers = [{ exact = "cookie" }, { prefix = "x-allowed-" }], headers_to_add = [{ key = "X-From", value = "sluice" }] }
      authorization_response = { allowed_upstream_headers = [{ prefix = "x-seen-" }, { exact = "x-auth-user" }], allowed_upstream_headers_to_append = [{ exact = "x-tags" }], allowed_client_headers_on_success = [{ exact = "x-auth-client" }] }
`

// bothProtocols runs f with an HTTP/1.1 and an HTTP/2 (prior knowledge)
// client, neither following redirects.
func bothProtocols(t *testing.T, f func(t *testing.T, c *http.Client, major int)) {
	t.Run("http1", func(t *testing.T) { f(t, newClient(nil), 1) })
	t.Run("http2", func(t *testing.T) {
		c := h2cClient(nil)
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		f(t, c, 2)
	})
}

// An allowed request reaches the upstream with the headers the service
// named in allowed_upstream_headers set (and x-tags appended), the
// headers it listed in x-envoy-auth-headers-to-remove removed, and its
// allowed_client_headers_on_success on the response. The check carried
// the request's method, Host, path_prefix + path and query, Authorization,
// the allowed headers and headers_to_add, and not the others.
func TestExtAuthzHTTPServiceAllowsAndInjectsHeaders(t *testing.T) {
	up := headerEchoUpstream(t)
	authz := authzHTTPServer(t)
	p := gwtest.Start(t, authzHTTPConfig(up.Addr, authz.Addr, `      with_request_body = { max_request_bytes = 1024 }`, oauth2ProxyService))
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	checks := int64(0)
	bothProtocols(t, func(t *testing.T, c *http.Client, major int) {
		req, err := http.NewRequest("GET", "http://"+p.Addr("http")+"/app/x?q=1&r=a%20b", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "app.example"
		req.Header.Set("Authorization", "Bearer t0k")
		req.Header.Set("Cookie", "_oauth2_proxy=abc")
		req.Header.Set("X-Secret", "not for the auth service")
		req.Header.Set("X-Tags", "client")
		req.Header.Set("X-Drop-Me", "1")
		resp, body := do(t, c, req)
		checks++
		if resp.ProtoMajor != major || resp.StatusCode != 200 {
			t.Fatalf("got %s %d %q, want HTTP/%d 200", resp.Proto, resp.StatusCode, body, major)
		}
		for name, want := range map[string]string{
			"x-up-x-auth-user":                    "alice",
			"x-up-x-seen-method":                  "GET",
			"x-up-x-seen-uri":                     "/auth/app/x?q=1&r=a%20b",
			"x-up-x-seen-host":                    "app.example",
			"x-up-x-seen-authorization":           "Bearer t0k",
			"x-up-x-seen-cookie":                  "_oauth2_proxy=abc",
			"x-up-x-seen-secret":                  "-", // not in allowed_headers
			"x-up-x-seen-from":                    "sluice",
			"x-up-x-seen-length":                  "0",
			"x-up-x-not-listed":                   "",
			"x-up-x-drop-me":                      "",
			"x-up-x-envoy-auth-headers-to-remove": "",
			"x-auth-client":                       "hello",
		} {
			if got := resp.Header.Get(name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		if got := strings.Join(resp.Header.Values("x-up-x-tags"), ","); got != "client,authz" {
			t.Errorf("upstream x-tags = %q, want the client's then the service's: client,authz", got)
		}

		// with_request_body: the check carries the body.
		req, err = http.NewRequest("POST", "http://"+p.Addr("http")+"/app/upload", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		resp, body = do(t, c, req)
		checks++
		if resp.StatusCode != 200 || resp.Header.Get("x-up-x-seen-body") != "hello" || resp.Header.Get("x-up-x-seen-length") != "5" ||
			resp.Header.Get("x-up-x-seen-method") != "POST" || resp.Header.Get("x-up-body-len") != "5" {
			t.Fatalf("POST: status %d body %q, service saw %s body %q length %s, upstream got %s bytes; want 200, POST, hello, 5, 5",
				resp.StatusCode, body, resp.Header.Get("x-up-x-seen-method"), resp.Header.Get("x-up-x-seen-body"),
				resp.Header.Get("x-up-x-seen-length"), resp.Header.Get("x-up-body-len"))
		}

		// A route that disables the filter is not checked.
		before := authz.RequestCount()
		resp, _ = get(t, c, "http://"+p.Addr("http")+"/open/x")
		if resp.StatusCode != 200 || resp.Header.Get("x-up-x-auth-user") != "" || authz.RequestCount() != before {
			t.Fatalf("/open: status %d, x-auth-user %q, checks %d -> %d; want 200 unchecked",
				resp.StatusCode, resp.Header.Get("x-up-x-auth-user"), before, authz.RequestCount())
		}
	})
	waitCounter(t, admin, "http.ingress_http.ext_authz.ok", float64(checks))
}

// A denial reaches the client with the service's status, body and
// headers (WWW-Authenticate; by default all but Host), and a redirect to a
// login page with its Location and both cookies; the upstream is not
// contacted, and the access log shows flag UAEX.
func TestExtAuthzHTTPServiceDenialsReachTheClient(t *testing.T) {
	up := headerEchoUpstream(t)
	authz := authzHTTPServer(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := strings.Replace(authzHTTPConfig(up.Addr, authz.Addr, "", oauth2ProxyService), `route_config = "local"`, fmt.Sprintf(`route_config = "local"
      [[listener.filter_chain.filter.config.access_log]]
      path = %q
      format = "%%REQ(:PATH)%% %%RESPONSE_CODE%% %%RESPONSE_FLAGS%%\n"`, logPath), 1)
	p := gwtest.Start(t, cfg)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	bothProtocols(t, func(t *testing.T, c *http.Client, major int) {
		resp, body := get(t, c, "http://"+p.Addr("http")+"/deny/x")
		if resp.StatusCode != 401 || string(body) != "who are you?\n" ||
			resp.Header.Get("WWW-Authenticate") != `Basic realm="sluice"` || resp.Header.Get("X-Denied") != "yes" {
			t.Fatalf("/deny: %d %q WWW-Authenticate %q X-Denied %q; want 401, the service's body and headers",
				resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"), resp.Header.Get("X-Denied"))
		}
		resp, body = get(t, c, "http://"+p.Addr("http")+"/login/page?a=1", "host", "app.example")
		want := "https://login.example/start?rd=" + url.QueryEscape("http://app.example/login/page")
		if resp.StatusCode != 302 || resp.Header.Get("Location") != want {
			t.Fatalf("/login: %d %q Location %q; want 302 to %s", resp.StatusCode, body, resp.Header.Get("Location"), want)
		}
		if got := strings.Join(resp.Header.Values("Set-Cookie"), " | "); got != "csrf=1; Path=/ | next=2; Path=/" {
			t.Fatalf("/login: Set-Cookie %q, want both of the service's cookies", got)
		}
	})
	if n := up.RequestCount(); n != 0 {
		t.Fatalf("upstream saw %d requests, want none", n)
	}
	waitCounter(t, admin, "http.ingress_http.ext_authz.denied", 4)
	waitCounter(t, admin, "http.ingress_http.ext_authz.ok", 0)
	var lines []string
	for deadline := time.Now().Add(ioTimeout); len(lines) < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("the access log has %d of 4 lines: %q", len(lines), lines)
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process appends to
		b, err := os.ReadFile(logPath)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"); len(lines) == 1 && lines[0] == "" {
			lines = nil
		}
	}
	want := "/deny/x 401 UAEX|/login/page?a=1 302 UAEX|/deny/x 401 UAEX|/login/page?a=1 302 UAEX"
	if got := strings.Join(lines, "|"); got != want {
		t.Fatalf("access log %q, want %q (flag UAEX on each denial)", got, want)
	}
}

// A 5xx from the service, a check past the timeout and a service that is
// down are errors: status_on_error (403 by default) without
// failure_mode_allow, and the request let through with
// x-envoy-auth-failure-mode-allowed with it.
func TestExtAuthzHTTPServiceErrors(t *testing.T) {
	up := headerEchoUpstream(t)
	authz := authzHTTPServer(t)
	t.Run("fail closed", func(t *testing.T) {
		p := gwtest.Start(t, authzHTTPConfig(up.Addr, authz.Addr, `      timeout = "300ms"`, oauth2ProxyService))
		admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
		bothProtocols(t, func(t *testing.T, c *http.Client, major int) {
			resp, body := get(t, c, "http://"+p.Addr("http")+"/boom")
			if resp.StatusCode != 403 {
				t.Fatalf("/boom (503 from the service): %d %q, want 403 (status_on_error)", resp.StatusCode, body)
			}
			start := time.Now()
			resp, body = get(t, c, "http://"+p.Addr("http")+"/slow")
			if resp.StatusCode != 403 {
				t.Fatalf("/slow: %d %q, want 403 (status_on_error)", resp.StatusCode, body)
			}
			if d := time.Since(start); d > ioTimeout/2 {
				t.Fatalf("/slow answered after %v: the check outlived its 300ms timeout", d)
			}
		})
		waitCounter(t, admin, "http.ingress_http.ext_authz.error", 4)
		waitCounter(t, admin, "http.ingress_http.ext_authz.timeout", 2)
		if n := up.RequestCount(); n != 0 {
			t.Fatalf("upstream saw %d requests, want none", n)
		}
	})
	t.Run("service down", func(t *testing.T) {
		down := testutil.ListenTCP(t)
		addr := down.Addr().String()
		down.Close()
		p := gwtest.Start(t, authzHTTPConfig(up.Addr, addr, "      status_on_error = 503", ""))
		resp, body := get(t, newClient(nil), "http://"+p.Addr("http")+"/x")
		if resp.StatusCode != 503 {
			t.Fatalf("service down: %d %q, want 503 (status_on_error)", resp.StatusCode, body)
		}
	})
	t.Run("failure_mode_allow", func(t *testing.T) {
		down := testutil.ListenTCP(t)
		addr := down.Addr().String()
		down.Close()
		p := gwtest.Start(t, authzHTTPConfig(up.Addr, addr, "      failure_mode_allow = true", ""))
		admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
		bothProtocols(t, func(t *testing.T, c *http.Client, major int) {
			resp, body := get(t, c, "http://"+p.Addr("http")+"/x", "x-envoy-auth-failure-mode-allowed", "forged")
			if resp.StatusCode != 200 || resp.Header.Get("x-up-x-envoy-auth-failure-mode-allowed") != "true" {
				t.Fatalf("service down, failure_mode_allow: %d %q, upstream x-envoy-auth-failure-mode-allowed %q; want 200 and true",
					resp.StatusCode, body, resp.Header.Get("x-up-x-envoy-auth-failure-mode-allowed"))
			}
		})
		waitCounter(t, admin, "http.ingress_http.ext_authz.failure_mode_allowed", 2)
	})
}

// The service's answer is read on kept-alive connections: many checks
// reuse one connection to the service rather than dialling one each.
func TestExtAuthzHTTPServiceKeepsConnectionsAlive(t *testing.T) {
	up := headerEchoUpstream(t)
	authz := authzHTTPServer(t)
	p := gwtest.Start(t, authzHTTPConfig(up.Addr, authz.Addr, "", oauth2ProxyService))
	c := newClient(nil)
	for i := range 20 {
		if resp, body := get(t, c, "http://"+p.Addr("http")+"/x"); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := authz.ConnCount(); n > 2 {
		t.Fatalf("20 sequential checks opened %d connections to the service, want them kept alive", n)
	}
}

// http_service's mistakes are refused by validate with the file, line and
// key.
func TestExtAuthzHTTPServiceConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, filter, service, line, key string
	}{
		{"unknown cluster", "", "", `cluster = "authz"`, `http_service\.server_uri\.cluster: unknown cluster "nope"`},
		{"plugin too", `      plugin_path = "/bin/sh"`, "", `plugin_path = "/bin/sh"`, `plugin_path: set exactly one of plugin, plugin_path and http_service`},
		{"bad matcher", "", `      authorization_request = { allowed_headers = [{ exact = "a", prefix = "b" }] }`, `allowed_headers = [`,
			`http_service\.authorization_request\.allowed_headers\[0\]: set exactly one of`},
		{"path prefix", "", `      path_prefix = "auth"`, `path_prefix = "auth"`, `http_service\.path_prefix: "auth" must start with /`},
		{"two timeouts", `      timeout = "1s"`, `      server_uri = { uri = "http://a", cluster = "authz", timeout = "1s" }`, `timeout = "1s" }`,
			`http_service\.server_uri\.timeout: set either`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := authzHTTPConfig("127.0.0.1:1", "127.0.0.1:1", tc.filter, tc.service)
			if tc.name == "unknown cluster" {
				cfg = strings.Replace(cfg, `cluster = "authz" }`, `cluster = "nope" }`, 1)
				tc.line = `cluster = "nope"`
			}
			if strings.HasPrefix(tc.service, "      server_uri") {
				cfg = strings.Replace(cfg, "      server_uri = { uri = \"http://authz.local:4180\", cluster = \"authz\" }\n", "", 1)
			}
			path := filepath.Join(t.TempDir(), "bad.toml")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out := gwtest.Exec(t, 30*time.Second, "validate", "-c", path)
			if code != 1 {
				t.Fatalf("validate exit code %d, want 1; output:\n%s", code, out)
			}
			if want := fmt.Sprintf("%s:%d:", path, lineOf(t, cfg, tc.line)); !strings.Contains(out, want) {
				t.Errorf("validate output does not name %q; output:\n%s", want, out)
			}
			if !regexp.MustCompile(tc.key).MatchString(out) {
				t.Errorf("validate output does not match %s; output:\n%s", tc.key, out)
			}
		})
	}
}

// TestExtAuthzHTTPServiceAllowsOnAny2xx checks that a 2xx other than 200
// allows, as nginx's auth_request does (oauth2-proxy's /oauth2/auth answers
// 202): the request reaches the upstream with the allowed headers.
func TestExtAuthzHTTPServiceAllowsOnAny2xx(t *testing.T) {
	up := headerEchoUpstream(t)
	authz := authzHTTPServer(t)
	p := gwtest.Start(t, authzHTTPConfig(up.Addr, authz.Addr, "", oauth2ProxyService))
	bothProtocols(t, func(t *testing.T, c *http.Client, major int) {
		resp, body := get(t, c, "http://"+p.Addr("http")+"/accepted/x")
		if resp.StatusCode != 200 || resp.Header.Get("x-up-x-auth-user") != "ada" {
			t.Fatalf("202 from the service: %d %q, upstream x-auth-user %q; want 200 from the upstream and ada",
				resp.StatusCode, body, resp.Header.Get("x-up-x-auth-user"))
		}
	})
}
