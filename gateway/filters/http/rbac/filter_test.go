package rbac

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// callbacks is the least a stream offers a decoder filter.
type callbacks struct {
	info  httpfilter.StreamInfo
	reply *httpfilter.LocalReply
}

func (c *callbacks) StreamID() uint64                                      { return 1 }
func (c *callbacks) ConnectionID() uint64                                  { return 1 }
func (c *callbacks) Info() *httpfilter.StreamInfo                          { return &c.info }
func (c *callbacks) Route() httpfilter.Route                               { return nil }
func (c *callbacks) ClearRouteCache()                                      {}
func (c *callbacks) ContinueDecoding()                                     {}
func (c *callbacks) SendLocalReply(r httpfilter.LocalReply)                { c.reply = &r }
func (c *callbacks) EncodeHeaders(*httpfilter.ResponseHeaders, bool) error { return nil }
func (c *callbacks) EncodeData(*buffer.Buffer, bool) error                 { return nil }
func (c *callbacks) EncodeTrailers(*httpfilter.Headers) error              { return nil }
func (c *callbacks) Encode1xxHeaders(*httpfilter.ResponseHeaders) error    { return nil }
func (c *callbacks) Post(fn func())                                        { fn() }

// build decodes text as the filter's table, strictly, and builds it.
func build(t testing.TB, text string) *Factory {
	t.Helper()
	f, err := buildErr(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return f
}

func buildErr(text string) (*Factory, error) {
	var c Config
	md, err := toml.Decode(text, &c)
	if err != nil {
		return nil, err
	}
	if u := md.Undecoded(); len(u) > 0 {
		return nil, errors.New("undecoded " + u[0].String())
	}
	return c.build(nil, "http.test.")
}

// req is a request for Decide: method, path, header fields as name, value
// pairs; the stream comes from 10.0.0.1:5000 (directly from 192.0.2.9)
// to 10.1.0.1:443 with SNI a.example.com.
func req(method, path string, fields ...string) (*httpfilter.RequestHeaders, *httpfilter.StreamInfo) {
	h := &httpfilter.RequestHeaders{Method: []byte(method), Path: []byte(path), Scheme: []byte("https"), Authority: []byte("a.example.com")}
	for i := 0; i+1 < len(fields); i += 2 {
		h.Add(fields[i], fields[i+1])
	}
	return h, &httpfilter.StreamInfo{
		DownstreamRemote:       netip.MustParseAddrPort("10.0.0.1:5000"),
		DownstreamDirectRemote: netip.MustParseAddrPort("192.0.2.9:6000"),
		DownstreamLocal:        netip.MustParseAddrPort("10.1.0.1:443"),
		ServerName:             "a.example.com",
	}
}

// policy1 is a one-policy ALLOW table with the given permission and
// principal (inline TOML tables).
func policy1(permission, principal string) string {
	return "[[policy]]\nname = \"p\"\npermissions = [" + permission + "]\nprincipals = [" + principal + "]\n"
}

func TestPermissionsMatch(t *testing.T) {
	h := func(fields ...string) []string { return fields }
	cases := []struct {
		perm   string
		method string
		path   string
		fields []string
		want   bool
	}{
		{`{ any = true }`, "GET", "/", nil, true},
		{`{ methods = ["GET", "HEAD"] }`, "HEAD", "/", nil, true},
		{`{ methods = ["GET"] }`, "POST", "/", nil, false},
		{`{ methods = ["GET"] }`, "get", "/", nil, false},
		{`{ url_path = { exact = "/admin" } }`, "GET", "/admin?x=1", nil, true},
		{`{ url_path = { exact = "/admin" } }`, "GET", "/admin/", nil, false},
		{`{ url_path = { prefix = "/api/" } }`, "GET", "/api/v1", nil, true},
		{`{ url_path = { prefix = "/API/", ignore_case = true } }`, "GET", "/api/v1", nil, true},
		{`{ url_path = { suffix = ".php" } }`, "GET", "/x.php?a=.js", nil, true},
		{`{ url_path = { suffix = ".php" } }`, "GET", "/x.js?a=.php", nil, false},
		{`{ url_path = { regex = "/u/[0-9]+" } }`, "GET", "/u/42", nil, true},
		{`{ url_path = { regex = "/u/[0-9]+" } }`, "GET", "/u/42/x", nil, false},
		{`{ url_path = { contains = "/../" } }`, "GET", "/a/../b", nil, true},
		{`{ header = { name = "x-token", exact = "s3" } }`, "GET", "/", h("x-token", "s3"), true},
		{`{ header = { name = "X-Token", exact = "s3" } }`, "GET", "/", h("x-token", "S3"), false},
		{`{ header = { name = "x-token", exact = "s3", ignore_case = true } }`, "GET", "/", h("x-token", "S3"), true},
		{`{ header = { name = "x-token", exact = "s3", invert_match = true } }`, "GET", "/", h("x-token", "s4"), true},
		{`{ header = { name = "x-token", exact = "s3", invert_match = true } }`, "GET", "/", nil, false},
		{`{ header = { name = "x-token", present = true } }`, "GET", "/", h("x-token", ""), true},
		{`{ header = { name = "x-token", present = true } }`, "GET", "/", nil, false},
		{`{ header = { name = "x-token", present = true, invert_match = true } }`, "GET", "/", nil, true},
		{`{ header = { name = "x-token", present = true, invert_match = true } }`, "GET", "/", h("x-token", "a"), false},
		{`{ header = { name = "x-a", exact = "1,2,3" } }`, "GET", "/", h("x-a", "1", "x-b", "0", "x-a", "2", "x-a", "3"), true},
		{`{ header = { name = "x-a", prefix = "bear" } }`, "GET", "/", h("x-a", "bearer t"), true},
		{`{ header = { name = "x-a", suffix = "json" } }`, "GET", "/", h("x-a", "app/json"), true},
		{`{ header = { name = "x-a", contains = "oo" } }`, "GET", "/", h("x-a", "foo"), true},
		{`{ header = { name = "x-a", regex = "v[0-9]" } }`, "GET", "/", h("x-a", "v1"), true},
		{`{ header = { name = "x-a", regex = "v[0-9]" } }`, "GET", "/", h("x-a", "v12"), false},
		{`{ header = { name = ":method", exact = "DELETE" } }`, "DELETE", "/", nil, true},
		{`{ header = { name = ":path", prefix = "/a?" } }`, "GET", "/a?b", nil, true},
		{`{ header = { name = ":authority", exact = "a.example.com" } }`, "GET", "/", nil, true},
		{`{ header = { name = "host", suffix = ".example.com" } }`, "GET", "/", nil, true},
		{`{ header = { name = ":scheme", exact = "https" } }`, "GET", "/", nil, true},
		{`{ destination_ip = ["10.1.0.0/16"] }`, "GET", "/", nil, true},
		{`{ destination_ip = ["10.2.0.0/16", "::1"] }`, "GET", "/", nil, false},
		{`{ destination_port = 443 }`, "GET", "/", nil, true},
		{`{ destination_port = 80 }`, "GET", "/", nil, false},
		{`{ requested_server_name = { suffix = ".example.com" } }`, "GET", "/", nil, true},
		{`{ requested_server_name = { exact = "b.example.com" } }`, "GET", "/", nil, false},
		{`{ and_rules = [{ methods = ["GET"] }, { url_path = { prefix = "/a" } }] }`, "GET", "/a", nil, true},
		{`{ and_rules = [{ methods = ["GET"] }, { url_path = { prefix = "/a" } }] }`, "GET", "/b", nil, false},
		{`{ or_rules = [{ methods = ["PUT"] }, { url_path = { prefix = "/a" } }] }`, "GET", "/a", nil, true},
		{`{ not_rule = { methods = ["GET"] } }`, "GET", "/", nil, false},
		{`{ not_rule = { methods = ["GET"] } }`, "POST", "/", nil, true},
	}
	for _, tc := range cases {
		f := build(t, policy1(tc.perm, `{ any = true }`))
		got, i := f.Decide(req(tc.method, tc.path, tc.fields...))
		if got != tc.want || (i == 0) != tc.want {
			t.Errorf("%s on %s %s %v: allowed %v (policy %d), want %v", tc.perm, tc.method, tc.path, tc.fields, got, i, tc.want)
		}
	}
}

func TestPrincipalsMatch(t *testing.T) {
	cases := []struct {
		principal string
		fields    []string
		want      bool
	}{
		{`{ any = true }`, nil, true},
		{`{ source_ip = ["10.0.0.0/24"] }`, nil, true},
		{`{ source_ip = ["10.0.0.0/24"] }`, []string{"x-forwarded-for", "203.0.113.1"}, true},
		{`{ source_ip = ["192.0.2.9"] }`, nil, false},
		{`{ direct_remote_ip = ["192.0.2.9"] }`, nil, true},
		{`{ direct_remote_ip = ["10.0.0.1"] }`, nil, false},
		{`{ remote_ip = ["10.0.0.1"] }`, nil, true},
		{`{ remote_ip = ["203.0.113.0/24"] }`, []string{"x-forwarded-for", "198.51.100.1, 203.0.113.7"}, true},
		{`{ remote_ip = ["198.51.100.1"] }`, []string{"x-forwarded-for", "198.51.100.1, 203.0.113.7"}, false},
		{`{ remote_ip = ["203.0.113.7"] }`, []string{"x-forwarded-for", "198.51.100.1", "x-forwarded-for", "203.0.113.7"}, true},
		{`{ remote_ip = ["2001:db8::/32"] }`, []string{"x-forwarded-for", " 2001:db8::5 "}, true},
		{`{ remote_ip = ["10.0.0.1"] }`, []string{"x-forwarded-for", "garbage"}, true},
		{`{ remote_ip = ["10.0.0.1"] }`, []string{"x-forwarded-for", "fe80::1%eth0"}, true},
		{`{ header = { name = "x-user", exact = "alice" } }`, []string{"x-user", "alice"}, true},
		{`{ header = { name = "x-user", exact = "alice" } }`, []string{"x-user", "bob"}, false},
		{`{ authenticated = {} }`, nil, false},
		{`{ and_ids = [{ source_ip = ["10.0.0.1"] }, { header = { name = "x-user", present = true } }] }`, []string{"x-user", "a"}, true},
		{`{ and_ids = [{ source_ip = ["10.0.0.1"] }, { header = { name = "x-user", present = true } }] }`, nil, false},
		{`{ or_ids = [{ source_ip = ["10.9.9.9"] }, { header = { name = "x-user", present = true } }] }`, []string{"x-user", "a"}, true},
		{`{ not_id = { source_ip = ["10.0.0.0/8"] } }`, nil, false},
	}
	for _, tc := range cases {
		f := build(t, policy1(`{ any = true }`, tc.principal))
		if got, _ := f.Decide(req("GET", "/", tc.fields...)); got != tc.want {
			t.Errorf("%s with %v: allowed %v, want %v", tc.principal, tc.fields, got, tc.want)
		}
	}
}

// TestAuthenticatedMatchesSANsThenSubject: a verified client certificate
// matches by URI SAN, then DNS SAN, then subject; an unverified one, or
// none, matches nothing.
func TestAuthenticatedMatchesSANsThenSubject(t *testing.T) {
	u, _ := url.Parse("spiffe://example.org/ns/web")
	cert := &x509.Certificate{URIs: []*url.URL{u}, DNSNames: []string{"web.internal"}, Subject: pkix.Name{CommonName: "web", Organization: []string{"Example"}}}
	verified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}
	unverified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	cases := []struct {
		principal string
		cs        *tls.ConnectionState
		want      bool
	}{
		{`{ authenticated = {} }`, verified, true},
		{`{ authenticated = {} }`, unverified, false},
		{`{ authenticated = {} }`, &tls.ConnectionState{}, false},
		{`{ authenticated = { principal_name = { exact = "spiffe://example.org/ns/web" } } }`, verified, true},
		{`{ authenticated = { principal_name = { prefix = "spiffe://example.org/" } } }`, unverified, false},
		{`{ authenticated = { principal_name = { exact = "web.internal" } } }`, verified, true},
		{`{ authenticated = { principal_name = { exact = "CN=web,O=Example" } } }`, verified, true},
		{`{ authenticated = { principal_name = { exact = "other" } } }`, verified, false},
	}
	for _, tc := range cases {
		f := build(t, policy1(`{ any = true }`, tc.principal))
		h, info := req("GET", "/")
		info.TLS = tc.cs
		if got, _ := f.Decide(h, info); got != tc.want {
			t.Errorf("%s: allowed %v, want %v", tc.principal, got, tc.want)
		}
	}
}

// TestFirstMatchingPolicyDecides: policies are tried in order, the first
// whose permissions and principals both match decides, under both
// actions; ALLOW without a match denies, DENY without one allows.
func TestFirstMatchingPolicyDecides(t *testing.T) {
	policies := `
[[policy]]
name = "admin-office"
permissions = [{ url_path = { prefix = "/admin" } }]
principals = [{ source_ip = ["10.0.0.0/24"] }]
[[policy]]
name = "reads"
permissions = [{ methods = ["GET", "HEAD"] }]
principals = [{ any = true }]
`
	allow, deny := build(t, policies), build(t, "action = \"DENY\"\n"+policies)
	for _, tc := range []struct {
		method, path string
		policy       int
	}{
		{"POST", "/admin/x", 0}, {"GET", "/x", 1}, {"POST", "/x", -1}, {"GET", "/admin", 0},
	} {
		h, info := req(tc.method, tc.path)
		if ok, i := allow.Decide(h, info); ok != (tc.policy >= 0) || i != tc.policy {
			t.Errorf("ALLOW %s %s: %v by %d, want %v by %d", tc.method, tc.path, ok, i, tc.policy >= 0, tc.policy)
		}
		if ok, i := deny.Decide(h, info); ok != (tc.policy < 0) || i != tc.policy {
			t.Errorf("DENY %s %s: %v by %d, want %v by %d", tc.method, tc.path, ok, i, tc.policy < 0, tc.policy)
		}
	}
	if ok, _ := build(t, "").Decide(req("GET", "/")); ok {
		t.Error("ALLOW without policies allowed a request")
	}
}

func TestFilterAnswers403AndCounts(t *testing.T) {
	f := build(t, policy1(`{ methods = ["GET"] }`, `{ any = true }`))
	run := func(method string) (*callbacks, httpfilter.HeadersStatus) {
		h, info := req(method, "/")
		cb := &callbacks{info: *info}
		fl := f.NewFilter(cb).(httpfilter.DecoderFilter)
		defer fl.OnDestroy()
		return cb, fl.DecodeHeaders(h, true)
	}
	if cb, s := run("GET"); s != httpfilter.HeadersContinue || cb.reply != nil {
		t.Fatalf("allowed: status %v, reply %+v", s, cb.reply)
	}
	cb, s := run("POST")
	if s != httpfilter.HeadersStopIteration || cb.reply == nil {
		t.Fatalf("denied: status %v, no reply", s)
	}
	r := cb.reply
	if r.Status != 403 || r.Body != "RBAC: access denied" || r.Flags != httpfilter.FlagRBACAccessDenied ||
		r.Details != "rbac_access_denied_matched_policy[none]" || r.Flags.String() != "RBAC" {
		t.Errorf("reply %+v (flags %s)", r, r.Flags)
	}
	d := build(t, "action = \"DENY\"\n"+policy1(`{ methods = ["DELETE"] }`, `{ any = true }`))
	h, info := req("DELETE", "/")
	cb = &callbacks{info: *info}
	d.NewFilter(cb).(httpfilter.DecoderFilter).DecodeHeaders(h, true)
	if cb.reply == nil || cb.reply.Details != "rbac_access_denied_matched_policy[p]" {
		t.Errorf("DENY reply %+v, want details naming policy p", cb.reply)
	}
	if st := f.Stats(); st.Allowed.Value() != 1 || st.Denied.Value() != 1 || st.ShadowAllowed.Value()+st.ShadowDenied.Value() != 0 {
		t.Errorf("allowed %d denied %d shadow %d/%d; want 1 1 0 0", st.Allowed.Value(), st.Denied.Value(), st.ShadowAllowed.Value(), st.ShadowDenied.Value())
	}
}

func TestShadowCountsAndLetsEverythingThrough(t *testing.T) {
	f := build(t, "shadow = true\n"+policy1(`{ methods = ["GET"] }`, `{ any = true }`))
	for _, m := range []string{"GET", "POST", "POST"} {
		h, info := req(m, "/")
		cb := &callbacks{info: *info}
		if s := f.NewFilter(cb).(httpfilter.DecoderFilter).DecodeHeaders(h, true); s != httpfilter.HeadersContinue || cb.reply != nil {
			t.Fatalf("%s: status %v, reply %+v; want it through", m, s, cb.reply)
		}
	}
	if st := f.Stats(); st.ShadowAllowed.Value() != 1 || st.ShadowDenied.Value() != 2 || st.Allowed.Value()+st.Denied.Value() != 0 {
		t.Errorf("shadow allowed %d denied %d, allowed %d denied %d; want 1 2 0 0", st.ShadowAllowed.Value(), st.ShadowDenied.Value(), st.Allowed.Value(), st.Denied.Value())
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct{ text, key, want string }{
		{`action = "LOG"`, "action", "must be"},
		{"[[policy]]\npermissions = [{ any = true }]\nprincipals = [{ any = true }]", "policy[0].name", "required"},
		{"[[policy]]\nname = \"a\"\nprincipals = [{ any = true }]", "policy[0].permissions", "required"},
		{"[[policy]]\nname = \"a\"\npermissions = [{ any = true }]", "policy[0].principals", "required"},
		{policy1(`{ any = true }`, `{ any = true }`) + strings.Replace(policy1(`{ any = true }`, `{ any = true }`), `"p"`, `"p"`, 1), "policy[1].name", "duplicate"},
		{policy1(`{}`, `{ any = true }`), "policy[0].permissions[0]", "exactly one"},
		{policy1(`{ any = true, methods = ["GET"] }`, `{ any = true }`), "policy[0].permissions[0]", "exactly one"},
		{policy1(`{ methods = [] }`, `{ any = true }`), "policy[0].permissions[0].methods", "empty"},
		{policy1(`{ url_path = { prefix = "/a", suffix = "b" } }`, `{ any = true }`), "policy[0].permissions[0].url_path", "exactly one"},
		{policy1(`{ url_path = { regex = "(" } }`, `{ any = true }`), "policy[0].permissions[0].url_path", "regex"},
		{policy1(`{ url_path = { regex = "a", ignore_case = true } }`, `{ any = true }`), "policy[0].permissions[0].url_path", "ignore_case"},
		{policy1(`{ header = { exact = "a" } }`, `{ any = true }`), "policy[0].permissions[0].header.name", "invalid header name"},
		{policy1(`{ header = { name = "x", present = true, exact = "a" } }`, `{ any = true }`), "policy[0].permissions[0].header.present", "exactly one"},
		{policy1(`{ header = { name = "x" } }`, `{ any = true }`), "policy[0].permissions[0].header", "exactly one"},
		{policy1(`{ destination_ip = ["10.0.0.0/33"] }`, `{ any = true }`), "policy[0].permissions[0].destination_ip", "invalid address"},
		{policy1(`{ destination_ip = [] }`, `{ any = true }`), "policy[0].permissions[0].destination_ip", "empty"},
		{policy1(`{ destination_port = 70000 }`, `{ any = true }`), "policy[0].permissions[0].destination_port", "not in"},
		{policy1(`{ and_rules = [{ any = true }, { methods = ["GET"], any = true }] }`, `{ any = true }`), "policy[0].permissions[0].and_rules[1]", "exactly one"},
		{policy1(`{ not_rule = { url_path = {} } }`, `{ any = true }`), "policy[0].permissions[0].not_rule.url_path", "exactly one"},
		{policy1(`{ any = true }`, `{ remote_ip = ["fe80::1%eth0"] }`), "policy[0].principals[0].remote_ip", "zones"},
		{policy1(`{ any = true }`, `{ source_ip = ["nope"] }`), "policy[0].principals[0].source_ip", "invalid"},
		{policy1(`{ any = true }`, `{ direct_remote_ip = ["1.2.3.4/40"] }`), "policy[0].principals[0].direct_remote_ip", "invalid"},
		{policy1(`{ any = true }`, `{ authenticated = { principal_name = {} } }`), "policy[0].principals[0].authenticated.principal_name", "exactly one"},
		{policy1(`{ any = true }`, `{ or_ids = [] }`), "policy[0].principals[0].or_ids", "empty"},
		{policy1(`{ any = true }`, `{ not_id = { any = false } }`), "policy[0].principals[0].not_id", "exactly one"},
		{policy1(`{ any = true }`, `{ any = true, source_ip = ["10.0.0.1"] }`), "policy[0].principals[0]", "exactly one"},
		{policy1(`{ any = true }`, "{ not_id = "+strings.Repeat("{ not_id = ", 20)+"{ any = true }"+strings.Repeat(" }", 21)), "policy[0].principals[0]", "nested deeper"},
	}
	for _, tc := range cases {
		_, err := buildErr(tc.text)
		var fe *registry.FieldError
		if !errors.As(err, &fe) || !strings.HasPrefix(fe.Key, tc.key) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s\n  error %v; want key %s and %q", tc.text, err, tc.key, tc.want)
		}
	}
}

func TestLastForwardedFor(t *testing.T) {
	for _, tc := range []struct {
		v, want string
	}{
		{"1.2.3.4", "1.2.3.4"}, {"1.2.3.4, 5.6.7.8", "5.6.7.8"}, {"a,\t::1 ", "::1"}, {"1.2.3.4,", ""},
		{"", ""}, {"1.2.3.4:80", ""}, {"[::1]", ""}, {"fe80::1%eth0", ""}, {"unknown", ""},
	} {
		a, ok := LastForwardedFor([]byte(tc.v))
		if got := ""; ok {
			got = a.String()
			if got != tc.want {
				t.Errorf("%q: %s, want %q", tc.v, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("%q: none, want %s", tc.v, tc.want)
		}
	}
}
