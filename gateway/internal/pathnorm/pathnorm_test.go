package pathnorm

import (
	"bytes"
	"strings"
	"testing"
)

var (
	norm      = Options{Normalize: true}
	merge     = Options{MergeSlashes: true}
	edge      = Options{Normalize: true, MergeSlashes: true}
	unescape  = Options{EscapedSlashes: UnescapeAndForward}
	normUnesc = Options{Normalize: true, EscapedSlashes: UnescapeAndForward}
)

type vector struct {
	in, want string
	outcome  Outcome
}

func check(t *testing.T, o Options, vv []vector) {
	t.Helper()
	for _, v := range vv {
		got, oc := o.Apply(nil, []byte(v.in))
		if oc != v.outcome || (oc != Reject && string(got) != v.want) {
			t.Errorf("%+v.Apply(%q) = %q, %v; want %q, %v", o, v.in, got, oc, v.want, v.outcome)
		}
	}
}

// TestNormalizeEnvoyVectors holds Envoy's PathUtilityTest vectors for
// canonicalPath (test/common/http/path_utility_test.cc) that apply to an
// origin-form path.
func TestNormalizeEnvoyVectors(t *testing.T) {
	check(t, norm, []vector{
		// AlreadyNormalPaths
		{"/xyz", "/xyz", Unchanged},
		{"/x/y/z", "/x/y/z", Unchanged},
		// NormalizeValidPaths
		{"/a/b/../c", "/a/c", Changed},
		{"/a/b/./c", "/a/b/c", Changed},
		{"/a/b/../../../../c", "/c", Changed},
		{"/a/..\\c", "/c", Changed},
		{"/%c0%af", "/%c0%af", Unchanged},
		{"/%5c%25", "/%5c%25", Unchanged},
		{"/a/b/%2E%2E/c", "/a/c", Changed},
		{"/a/b/%2E./c", "/a/c", Changed},
		{"/a/b/%2E/c", "/a/b/c", Changed},
		{"/../a/b", "/a/b", Changed},
		{"/./a/b", "/a/b", Changed},
		{"/xyz/..;foo=bar/abc", "/abc", Changed},
		{"/..;foo=bar/abc", "/abc", Changed},
		{"/xyz/..;foo=bar", "/", Changed},
		{"/xyz/.;foo=bar/abc", "/xyz/abc", Changed},
		{"/.;foo=bar/abc", "/abc", Changed},
		{"/xyz/.;foo=bar", "/xyz/", Changed},
		{"/xyz/..;foo=bar/.;v1=2,v2=3/abc", "/abc", Changed},
		{"/..;foo=bar/abc/.;mmm", "/abc/", Changed},
		{"/.;aaa/..;foo=bar/abc/.;mmm", "/abc/", Changed},
		{"/xyz/..;foo=bar/.;fff=zzz", "/", Changed},
		{"/xyz/..;foo=bar/.;fff=zzz?blah=woops", "/?blah=woops", Changed},
		{"/xyz/..;foo=bar/.;fff=zzz/remain;blah-bluh?query", "/remain;blah-bluh?query", Changed},
		// NormalizeCasePath
		{"/A/B/C", "/A/B/C", Unchanged},
		{"/a/b/%2e%2e/c", "/a/c", Changed},
		{"/a/%2F%2f/c", "/a/%2F%2f/c", Unchanged},
		// InvalidPaths
		{"/xyz/.%00../abc", "", Reject},
		{"/xyz/%00.%00./abc", "", Reject},
		{"/xyz/AAAAA%%0000/abc", "", Reject},
	})
}

// TestNormalize covers the rest: unreserved escapes, escaping, dot
// segments at the edges, what is left alone, and what is rejected.
func TestNormalize(t *testing.T) {
	check(t, norm, []vector{
		{"/", "/", Unchanged},
		{"/%61dmin", "/admin", Changed},
		{"/%41%5a%30%2D%2e%5F%7e", "/AZ0-._~", Changed},
		{"/a/..", "/", Changed},
		{"/a/b/..", "/a/", Changed},
		{"/a/.", "/a/", Changed},
		{"/..", "/", Changed},
		{"/.", "/", Changed},
		{"/a//../b", "/a/b", Changed}, // the empty segment is the one removed
		{"/a/..b/.c/...", "/a/..b/.c/...", Unchanged},
		{"/.well-known/x", "/.well-known/x", Unchanged},
		{"/a/...;x", "/a/...;x", Unchanged},
		{"/a/b;x/..", "/a/", Changed},
		{"/a?x=/../b", "/a?x=/../b", Unchanged}, // the query is left alone
		{"/a/../b?%zz=//#", "", Reject},
		{"/a?q#f", "", Reject},
		{"/a#f", "", Reject},
		{"/a b\"<>^`{|}", "/a%20b%22%3C%3E%5E%60%7B%7C%7D", Changed},
		{"/caf\xc3\xa9\x7f\x01", "/caf%C3%A9%7F%01", Changed},
		{"/a\x00", "", Reject},
		{"/%zz", "", Reject},
		{"/a%4", "", Reject},
		{"/a%", "", Reject},
		{"/a%2", "", Reject},
		{"/%25%2F%3f", "/%25%2F%3f", Unchanged},
		{"/a//b", "/a//b", Unchanged}, // merge_slashes is apart
		{"*", "*", Unchanged},
		{"example.com:443", "example.com:443", Unchanged},
		{"", "", Unchanged},
	})
}

// TestMergeSlashesEnvoyVectors holds Envoy's MergeSlashes vectors for an
// origin-form path.
func TestMergeSlashesEnvoyVectors(t *testing.T) {
	check(t, merge, []vector{
		{"/a//b/c/", "/a/b/c/", Changed},
		{"/a", "/a", Unchanged},
		{"//a/b/c", "/a/b/c", Changed},
		{"/a//b/c", "/a/b/c", Changed},
		{"/a/b/c//", "/a/b/c/", Changed},
		{"/a///b/c", "/a/b/c", Changed},
		{"/a////b/c", "/a/b/c", Changed},
		{"/a//b?a=///c", "/a/b?a=///c", Changed},
		{"/a//b?", "/a/b?", Changed},
		{"//a/?b", "/a/?b", Changed},
		// merging alone decodes and removes nothing
		{"/a/../b/%61", "/a/../b/%61", Unchanged},
	})
}

// TestEscapedSlashesEnvoyVectors holds Envoy's UnescapeSlashes vectors for
// an origin-form path, with UNESCAPE_AND_FORWARD and no other option.
func TestEscapedSlashesEnvoyVectors(t *testing.T) {
	check(t, unescape, []vector{
		{"/a%2Fb%2fc/", "/a/b/c/", Changed},
		{"/%2b", "/%2b", Unchanged},
		{"/a/b/c", "/a/b/c", Unchanged},
		{"/abc%2", "/abc%2", Unchanged},
		{"/foo%", "/foo%", Unchanged},
		{"/a%2F", "/a/", Changed},
		{"/%%2fa/", "/%/a/", Changed},
		{"/%2%2fa/", "/%2/a/", Changed},
		{"/a%5Cb%5cc/", "/a\\b\\c/", Changed},
		{"/x/%2E%2e/z%2f%2Fabc%5C../def", "/x/%2E%2e/z//abc\\../def", Changed},
		{"/%2fa%5Cb%2fc%5c?%2fabcd%5C%%2f%", "//a\\b/c\\?%2fabcd%5C%%2f%", Changed},
	})
}

// TestEscapedSlashesActions: each action on "/a%2Fb", alone and with
// normalization (where "%5C" becomes '/' and the segments it makes count).
func TestEscapedSlashesActions(t *testing.T) {
	check(t, Options{}, []vector{{"/a%2Fb", "/a%2Fb", Unchanged}})
	check(t, Options{EscapedSlashes: RejectRequest}, []vector{
		{"/a%2Fb", "", Reject}, {"/a%5cb", "", Reject}, {"/a/b?x=%2F", "/a/b?x=%2F", Unchanged},
	})
	check(t, Options{EscapedSlashes: UnescapeAndRedirect, Normalize: true, MergeSlashes: true}, []vector{
		{"/a%2Fb", "/a/b", Redirect}, {"/a/%2F/b?q=%2F", "/a/b?q=%2F", Redirect}, {"/a/%2e%2E/b", "/b", Changed},
	})
	check(t, normUnesc, []vector{
		{"/admin%2F..%2F..%2Fsecret", "/secret", Changed},
		{"/a%5C..%5Cb", "/b", Changed},
		{"/a%2Fb", "/a/b", Changed},
	})
	check(t, norm, []vector{{"/admin%2F..%2Fsecret", "/admin%2F..%2Fsecret", Unchanged}})
}

// TestEdgeDefaults: sluice's defaults (normalize and merge) bring the
// usual bypass forms of /admin back to /admin.
func TestEdgeDefaults(t *testing.T) {
	for _, in := range []string{"/admin", "//admin", "/./admin", "/a/../admin", "/%61dmin", "/%61%64%6D%69%6E",
		"/x/..;y/admin", "\\admin", "/\\admin", "///a/b/../../admin", "/admin/.", "/admin/x/.."} {
		got, oc := edge.Apply(nil, []byte(in))
		want := "/admin"
		if strings.HasSuffix(in, "..") || strings.HasSuffix(in, ".") {
			want = "/admin/"
		}
		if in == "\\admin" {
			want = "\\admin" // not origin-form: left alone
		}
		if string(got) != want || oc == Reject {
			t.Errorf("Apply(%q) = %q, %v; want %q", in, got, oc, want)
		}
	}
}

// TestApplyReusesDst: a changed path goes into the scratch's storage.
func TestApplyReusesDst(t *testing.T) {
	dst := make([]byte, 0, 64)
	scratch := dst
	got, oc := edge.Apply(&scratch, []byte("/a/../b"))
	if oc != Changed || string(got) != "/b" || &got[0] != &dst[:1][0] {
		t.Fatalf("Apply = %q, %v, not in dst", got, oc)
	}
	in := []byte("/plain/path?q=1")
	got, oc = edge.Apply(&scratch, in)
	if oc != Unchanged || &got[0] != &in[0] {
		t.Fatalf("Apply of a plain path = %q, %v, not the input", got, oc)
	}
}

// TestKeptEscapesReuseScratch: a path whose escapes all stay is copied to
// be checked and comes back Unchanged; the copy's storage stays in the
// scratch, so the next such path costs no allocation.
func TestKeptEscapesReuseScratch(t *testing.T) {
	p := []byte("/caf%C3%A9/men%C3%BC?q=%20")
	var scratch []byte
	got, oc := edge.Apply(&scratch, p)
	if oc != Unchanged || &got[0] != &p[0] || cap(scratch) == 0 {
		t.Fatalf("Apply(%q) = %q, %v, scratch cap %d; want the input, Unchanged, a kept scratch", p, got, oc, cap(scratch))
	}
	if n := testing.AllocsPerRun(100, func() { edge.Apply(&scratch, p) }); n != 0 {
		t.Fatalf("%v allocations per path with kept escapes", n)
	}
}

func TestParseAction(t *testing.T) {
	for i, n := range actionNames {
		a, err := ParseAction(n)
		if err != nil || a != EscapedSlashesAction(i) || a.String() != n {
			t.Errorf("ParseAction(%q) = %v, %v", n, a, err)
		}
	}
	if a, err := ParseAction("IMPLEMENTATION_SPECIFIC_DEFAULT"); err != nil || a != KeepUnchanged {
		t.Errorf("ParseAction(IMPLEMENTATION_SPECIFIC_DEFAULT) = %v, %v", a, err)
	}
	if _, err := ParseAction("keep_unchanged"); err == nil {
		t.Error("ParseAction accepted a lowercase name")
	}
}

// TestPlainPathNoAlloc: the common case allocates nothing.
func TestPlainPathNoAlloc(t *testing.T) {
	p := []byte("/api/v1/users/12345/profile.json?fields=name,email&x=/../")
	o := Options{Normalize: true, MergeSlashes: true, EscapedSlashes: RejectRequest}
	if n := testing.AllocsPerRun(100, func() { o.Apply(nil, p) }); n != 0 {
		t.Fatalf("%v allocations per plain path", n)
	}
	dst := make([]byte, 0, 128)
	q := []byte("/a/./b/%61/..//c")
	if n := testing.AllocsPerRun(100, func() { o.Apply(&dst, q) }); n != 0 {
		t.Fatalf("%v allocations per changed path with a dst of room", n)
	}
}

var benchPaths = []struct{ name, path string }{
	{"plain", "/api/v1/users/12345/profile.json?fields=name,email"},
	{"dots", "/api/v1/../v2/./users/%61bc//profile.json?fields=name"},
}

// BenchmarkApply measures the normalizer with sluice's defaults on a
// typical path (no change: the fast scan alone) and on one that changes.
func BenchmarkApply(b *testing.B) {
	for _, bp := range benchPaths {
		b.Run(bp.name, func(b *testing.B) {
			p := []byte(bp.path)
			dst := make([]byte, 0, 128)
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				out, _ := edge.Apply(&dst, p)
				if bytes.Equal(out, p) && bp.name != "plain" {
					b.Fatal("unchanged")
				}
			}
		})
	}
}
