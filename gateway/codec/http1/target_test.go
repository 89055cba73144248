package http1

import (
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// Tricky authorities and methods, for the agreement of the exported checks
// with the request-line parser.
var (
	trickyAuthorities = []string{
		"example.com", "example.com:8080", "example.com:", "example.com:0", "EXAMPLE.com:65536",
		"[::1]", "[::1]:443", "[::1]:", "[fe80::1%25eth0]", "[::1", "::1]", "[]", "[::1]x", "[::1]:a", "[[::1]]",
		"1.2.3.4", "1.2.3.4:80", ":80", ":", "a:b:c", "a::80", "a:8 0", "a:-1", "a:+1",
		"a%2Db", "a%2", "a%zz", "%", "%41%42",
		"user@host", "user:pw@host:80", "@host", "host@",
		"caf\xc3\xa9.example", "\xff", "a\x00b", "a\x01", "\x7f", "a\tb",
		"a/b", "a?b", "a#b", "a\\b", "a\"b", "a<b>", "a{b}", "a|b", "a^b", "a`b",
		"-._~!$&'()*+,;=", "", "x",
	}
	trickyMethods = []string{
		"GET", "get", "CONNECT", "M-SEARCH", "X!#$%&'*+-.^_`|~9", "",
		"G T", "G\tT", "G:T", "G/T", "G(T)", "G,T", "G;T", "G=T", "G@T", "G?T", "G[T]", "G{T}", "G\"T", "G\\T",
		"G\x00T", "G\x7fT", "GÉT", "G\xffT",
	}
)

// parseAccepts reports whether the parser accepts the request head.
func parseAccepts(head string) bool {
	rd := NewReader(strings.NewReader(head))
	return rd.ReadRequest(new(Request), nil) == nil
}

// hostLineSafe reports whether a can go into a Host field verbatim: no line
// break, and nothing the field parser trims as whitespace around a value.
func hostLineSafe(a string) bool {
	if strings.ContainsAny(a, "\r\n") {
		return false
	}
	return a == strings.Trim(a, " \t")
}

// requestLineSafe reports whether s can go into the request line as one
// element: no space (the separator) and no line break.
func requestLineSafe(s string) bool { return !strings.ContainsAny(s, " \r\n") }

// checkAuthorityAgreement asserts that ValidAuthority gives the parser's
// verdict on a as a Host field (any port), as a CONNECT target (a port
// required) and as an absolute-form authority (any port).
func checkAuthorityAgreement(t *testing.T, a string) {
	t.Helper()
	if hostLineSafe(a) {
		got := ValidAuthority(a, false)
		want := parseAccepts("GET / HTTP/1.1\r\nHost: " + a + "\r\n\r\n")
		if got != want {
			t.Errorf("ValidAuthority(%q, false) = %v, the parser on Host: %v", a, got, want)
		}
	}
	if !requestLineSafe(a) {
		if ValidAuthority(a, false) || ValidAuthority(a, true) {
			t.Errorf("ValidAuthority(%q) accepts what cannot be a request-line element", a)
		}
		return
	}
	got := ValidAuthority(a, true)
	want := parseAccepts("CONNECT " + a + " HTTP/1.1\r\nHost: h:1\r\n\r\n")
	if got != want {
		t.Errorf("ValidAuthority(%q, true) = %v, the parser on a CONNECT target: %v", a, got, want)
	}
	if !strings.ContainsAny(a, "/?") {
		got := ValidAuthority(a, false)
		want := parseAccepts("GET http://" + a + "/p HTTP/1.1\r\nHost: h\r\n\r\n")
		if got != want {
			t.Errorf("ValidAuthority(%q, false) = %v, the parser on an absolute-form target: %v", a, got, want)
		}
	}
}

// checkMethodAgreement asserts that ValidMethod gives the parser's verdict
// on m as the request line's method.
func checkMethodAgreement(t *testing.T, m string) {
	t.Helper()
	if !requestLineSafe(m) {
		if ValidMethod(m) {
			t.Errorf("ValidMethod(%q) accepts what cannot be a request-line element", m)
		}
		return
	}
	target := "/"
	switch m {
	case "CONNECT":
		target = "h:1"
	case "OPTIONS":
		target = "*"
	}
	got := ValidMethod(m)
	want := parseAccepts(m + " " + target + " HTTP/1.1\r\nHost: h:1\r\n\r\n")
	if got != want {
		t.Errorf("ValidMethod(%q) = %v, the parser: %v", m, got, want)
	}
}

func TestExportedChecksAgreeWithParser(t *testing.T) {
	for _, a := range trickyAuthorities {
		checkAuthorityAgreement(t, a)
	}
	for _, m := range trickyMethods {
		checkMethodAgreement(t, m)
	}
	// The table must exercise both verdicts of every check.
	var acc, rej int
	for _, a := range trickyAuthorities {
		if ValidAuthority(a, true) {
			acc++
		} else {
			rej++
		}
	}
	for _, m := range trickyMethods {
		if ValidMethod(m) {
			acc++
		} else {
			rej++
		}
	}
	if acc == 0 || rej == 0 {
		t.Fatalf("table accepted %d, rejected %d: it must have both", acc, rej)
	}
}

func TestExportedChecks(t *testing.T) {
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"authority host", ValidAuthority("example.com", false), true},
		{"authority ipv6 port", ValidAuthority("[::1]:443", true), true},
		{"authority without required port", ValidAuthority("example.com", true), false},
		{"authority empty required port", ValidAuthority("example.com:", true), false},
		{"authority empty port", ValidAuthority("example.com:", false), true},
		{"authority userinfo", ValidAuthority("user@host", false), false},
		{"authority non-ascii", ValidAuthority("caf\xc3\xa9", false), false},
		{"authority control", ValidAuthority("a\x01", false), false},
		{"authority longer than 256", ValidAuthority(strings.Repeat("a", 300)+":1", true), true},
		{"authority longer than 256 invalid", ValidAuthority(strings.Repeat("a", 300)+"@", false), false},
		{"method token", ValidMethod("M-SEARCH"), true},
		{"method empty", ValidMethod(""), false},
		{"method separator", ValidMethod("G:T"), false},
		{"path slash", ValidPath("/a?b"), true},
		{"path asterisk", ValidPath("*"), true},
		{"path empty", ValidPath(""), false},
		{"path relative", ValidPath("a"), false},
		{"path fragment", ValidPath("/a#b"), false},
		{"path space", ValidPath("/a b"), false},
		{"path non-ascii", ValidPath("/caf\xc3\xa9"), false},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// FuzzExportedChecksAgreeWithParser holds ValidAuthority and ValidMethod to
// the parser's verdict on arbitrary strings.
func FuzzExportedChecksAgreeWithParser(f *testing.F) {
	for _, a := range trickyAuthorities {
		f.Add(a)
	}
	for _, m := range trickyMethods {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 1024 {
			return // the parser's line limit would decide
		}
		checkAuthorityAgreement(t, s)
		checkMethodAgreement(t, s)
	})
}

// The field checks other codecs call accept what x/net's httpguts accepts
// (the definitions HTTP/2's header blocks were checked with before).
func checkFieldAgreement(t *testing.T, s string) {
	t.Helper()
	if got, want := ValidFieldValue(s), httpguts.ValidHeaderFieldValue(s); got != want {
		t.Errorf("ValidFieldValue(%q) = %v, httpguts: %v", s, got, want)
	}
	if got, want := ValidFieldName(s), httpguts.ValidHeaderFieldName(s); got != want {
		t.Errorf("ValidFieldName(%q) = %v, httpguts: %v", s, got, want)
	}
}

var trickyFields = []string{
	"", "x", "x-a", "X-Upper", "a b", "a:b", "a\tb", "a\x00", "\x7f", "caf\xc3\xa9", "\xff",
	"value with spaces and\ttab", "12345678", "1234567\x01", "12345678\x1f", "abcdefghijklmno\x7fp",
	"!#$%&'*+-.^_`|~", "a\"b", "a(b)", "a,b", "a;b", "a=b", "a\r\nb",
}

func TestFieldChecksAgreeWithHTTPGuts(t *testing.T) {
	for _, s := range trickyFields {
		checkFieldAgreement(t, s)
	}
}

func FuzzFieldChecksAgreeWithHTTPGuts(f *testing.F) {
	for _, s := range trickyFields {
		f.Add(s)
	}
	f.Fuzz(checkFieldAgreement)
}

func TestAuthorityHost(t *testing.T) {
	for in, want := range map[string]string{
		"example.com": "example.com", "example.com:8443": "example.com", "[::1]:443": "::1",
		"[::1]": "::1", "10.0.0.1:80": "10.0.0.1", "": "",
	} {
		if got := AuthorityHost([]byte(in)); got != want {
			t.Errorf("AuthorityHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHasToken(t *testing.T) {
	for _, tc := range []struct {
		list, token string
		want        bool
	}{
		{"max-age=0, No-Transform", "no-transform", true},
		{"no-transformx", "no-transform", false},
		{"gzip;q=0.5 ,\tbr", "br", true},
		{"gzip;q=0.5", "gzip", true},
		{"accept-encoding, *", "*", true},
		{"", "*", false},
	} {
		if got := HasToken([]byte(tc.list), tc.token); got != tc.want {
			t.Errorf("HasToken(%q, %q) = %v, want %v", tc.list, tc.token, got, tc.want)
		}
	}
}
