package extauthz

import (
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/rbacmatch"
	"github.com/sluice-proxy/sluice/plugins/authapi"
)

func ptr(s string) *string { return &s }

func mustList(t *testing.T, ms ...rbacmatch.StringMatcher) headerList {
	t.Helper()
	l, err := compileHeaderList("k", ms)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestHeaderListMatchesEnvoyStringMatchers(t *testing.T) {
	l := mustList(t,
		rbacmatch.StringMatcher{Exact: ptr("cookie")},
		rbacmatch.StringMatcher{Prefix: "x-auth-"},
		rbacmatch.StringMatcher{Suffix: "-token"},
		rbacmatch.StringMatcher{Contains: "forwarded"},
		rbacmatch.StringMatcher{Regex: `x-b3-(trace|span)id`},
		rbacmatch.StringMatcher{Exact: ptr("X-Tenant"), IgnoreCase: true},
	)
	for name, want := range map[string]bool{
		"cookie": true, "cookies": false, "x-auth-user": true, "x-auth": false, "csrf-token": true,
		"x-forwarded-for": true, "x-b3-traceid": true, "x-b3-sampled": false, "x-tenant": true,
		"authorization": false, "": false,
	} {
		if got := l.Match(name); got != want {
			t.Errorf("Match(%q) = %v, want %v", name, got, want)
		}
	}
	if mustList(t).Match("cookie") {
		t.Error("an empty list matched")
	}
	if _, err := compileHeaderList("k", []rbacmatch.StringMatcher{{Prefix: "a", Suffix: "b"}}); err == nil || !strings.Contains(err.Error(), "k[0]") {
		t.Errorf("two kinds in one matcher: %v, want an error naming k[0]", err)
	}
}

func fields(kv ...string) []httpfilter.Field {
	var fs []httpfilter.Field
	for i := 0; i+1 < len(kv); i += 2 {
		fs = append(fs, httpfilter.Field{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return fs
}

func opts(os []*authapi.HeaderValueOption) string {
	var b []string
	for _, o := range os {
		s := o.Header.Key + "=" + o.Header.Value
		if o.Append {
			s = "+" + s
		}
		b = append(b, s)
	}
	return strings.Join(b, " ")
}

func TestHTTPServiceRequestHead(t *testing.T) {
	s := &httpService{prefix: "/oauth2/auth", allowed: mustList(t, rbacmatch.StringMatcher{Exact: ptr("cookie")}),
		add: fields("x-from", "sluice", "cookie", "fixed")}
	h := &httpfilter.RequestHeaders{Method: []byte("HEAD"), Authority: []byte("app.example"), Path: []byte("/a?b=c"),
		Headers: httpfilter.Headers{Fields: fields("authorization", "Bearer x", "cookie", "s=1", "x-secret", "no", "content-length", "9")}}
	head := s.head(h, true)
	if string(head.Method) != "HEAD" || string(head.Authority) != "app.example" || string(head.Path) != "/oauth2/auth/a?b=c" {
		t.Fatalf("head %s %s %s, want HEAD app.example /oauth2/auth/a?b=c", head.Method, head.Authority, head.Path)
	}
	var got []string
	for _, f := range head.Fields {
		got = append(got, string(f.Name)+"="+string(f.Value))
	}
	if want := "authorization=Bearer x cookie=fixed x-from=sluice x-envoy-auth-partial-body=true"; strings.Join(got, " ") != want {
		t.Fatalf("fields %q, want %q", strings.Join(got, " "), want)
	}
}

func TestHTTPServiceAnswer(t *testing.T) {
	s := &httpService{
		upSet:    mustList(t, rbacmatch.StringMatcher{Prefix: "x-auth-"}),
		upAppend: mustList(t, rbacmatch.StringMatcher{Exact: ptr("x-tags")}, rbacmatch.StringMatcher{Exact: ptr("x-absent")}),
		clientOK: mustList(t, rbacmatch.StringMatcher{Exact: ptr("set-cookie")}),
	}
	req := &httpfilter.RequestHeaders{Headers: httpfilter.Headers{Fields: fields("x-tags", "a")}}
	ok := s.answer(&httpfilter.ResponseHeaders{Status: 200, Headers: httpfilter.Headers{Fields: fields(
		"x-auth-user", "alice", "content-length", "0", "x-tags", "b", "x-absent", "c", "set-cookie", "s=1", "other", "o",
		"x-envoy-auth-headers-to-remove", " X-Drop , host,,bad name", "host", "h")}}, req).GetOk()
	if ok == nil {
		t.Fatal("200 did not allow")
	}
	if got, want := opts(ok.Headers), "x-auth-user=alice +x-tags=b"; got != want {
		t.Errorf("upstream headers %q, want %q", got, want)
	}
	if got, want := opts(ok.ResponseHeadersToAdd), "+set-cookie=s=1"; got != want {
		t.Errorf("client headers %q, want %q", got, want)
	}
	if got, want := strings.Join(ok.HeadersToRemove, " "), "x-drop"; got != want {
		t.Errorf("headers to remove %q, want %q", got, want)
	}

	deny := &httpfilter.ResponseHeaders{Status: 302, Headers: httpfilter.Headers{Fields: fields(
		"location", "/login", "set-cookie", "a=1", "set-cookie", "b=2", "host", "h", "transfer-encoding", "chunked",
		"content-type", "text/html", "www-authenticate", "Basic")}}
	d := s.answer(deny, req).GetDenied()
	if d == nil || d.Status != 302 {
		t.Fatalf("302 gave %v, want a denial with 302", d)
	}
	if got, want := opts(d.Headers), "location=/login set-cookie=a=1 +set-cookie=b=2 content-type=text/html www-authenticate=Basic"; got != want {
		t.Errorf("default client headers %q, want %q", got, want)
	}
	s.client = append(mustList(t, rbacmatch.StringMatcher{Exact: ptr("set-cookie")}), exactNames("content-length", "www-authenticate", "location")...)
	d = s.answer(deny, req).GetDenied()
	if got, want := opts(d.Headers), "location=/login set-cookie=a=1 +set-cookie=b=2 www-authenticate=Basic"; got != want {
		t.Errorf("listed client headers %q, want %q", got, want)
	}
	if err := authapi.Validate(s.answer(deny, req)); err != nil {
		t.Errorf("a denial failed validation: %v", err)
	}
}
