package xfcc

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func testCert(t *testing.T, raw string, cn string, dns []string, uris ...string) *x509.Certificate {
	t.Helper()
	c := &x509.Certificate{Raw: []byte(raw), Subject: pkix.Name{CommonName: cn, Organization: []string{"Acme, Inc."}}, DNSNames: dns}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		c.URIs = append(c.URIs, pu)
	}
	return c
}

// TestAppendBuildsEnvoysElement checks the element's fields, order and
// quoting against Envoy's mutateXfccRequestHeader: By= per local URI SAN,
// Hash=, then Cert, Chain, Subject, URI, DNS as asked.
func TestAppendBuildsEnvoysElement(t *testing.T) {
	local := testCert(t, "local", "sluice", nil, "spiffe://td/sluice", "spiffe://td/edge")
	leaf := testCert(t, "leaf?+/= \n", "client", []string{"a.test", "b.test"}, "spiffe://td/client")
	inter := testCert(t, "intermediate", "int", nil)
	sum := sha256.Sum256(leaf.Raw)
	hash := hex.EncodeToString(sum[:])
	enc := func(c *x509.Certificate) string {
		p := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
		return strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D").Replace(p)
	}
	for _, tc := range []struct {
		name  string
		local *x509.Certificate
		d     Details
		want  string
	}{
		{"minimal", nil, Details{}, "Hash=" + hash},
		{"by", local, Details{}, "By=spiffe://td/sluice;By=spiffe://td/edge;Hash=" + hash},
		{"all", local, Details{Subject: true, Cert: true, Chain: true, DNS: true, URI: true},
			"By=spiffe://td/sluice;By=spiffe://td/edge;Hash=" + hash + `;Cert="` + enc(leaf) + `";Chain="` + enc(leaf) + enc(inter) +
				`";Subject="CN=client,O=Acme\, Inc.";URI=spiffe://td/client;DNS=a.test;DNS=b.test`},
	} {
		got := string(Append(nil, tc.local, []*x509.Certificate{leaf, inter}, tc.d))
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
		els, err := Parse(got)
		if err != nil || len(els) != 1 {
			t.Fatalf("%s: Parse(%q) = %v, %v; want one element", tc.name, got, els, err)
		}
		if h := els[0].Get("hash"); len(h) != 1 || h[0] != hash {
			t.Errorf("%s: parsed Hash %v", tc.name, h)
		}
	}
	// No SANs: URI= is there, empty; no DNS=; Subject="" when empty.
	bare := &x509.Certificate{Raw: []byte("bare")}
	got := string(Append(nil, nil, []*x509.Certificate{bare}, Details{Subject: true, URI: true, DNS: true}))
	if !strings.HasSuffix(got, `;Subject="";URI=`) {
		t.Errorf("bare certificate: %s", got)
	}
	if got := Append(nil, local, nil, Details{Subject: true}); len(got) != 0 {
		t.Errorf("no peer certificate: %q, want nothing", got)
	}
}

// TestParse checks the element and pair splitting, quoting and errors.
func TestParse(t *testing.T) {
	got, err := Parse(`By=spiffe://a;Hash=ab;Subject="CN=x,O=\"q\";=", ,URI=spiffe://b?x=1 ; DNS=c`)
	want := []Element{
		{{"By", "spiffe://a"}, {"Hash", "ab"}, {"Subject", `CN=x,O="q";=`}},
		{{"URI", "spiffe://b?x=1"}, {"DNS", "c"}},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{`Hash`, `=x`, `Subject="open`, `Subject="a"b`, `a;b=c`, `a=b"c`} {
		if els, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %q, want an error", bad, els)
		}
	}
	if els, err := Parse(""); err != nil || len(els) != 0 {
		t.Errorf("Parse(\"\") = %v, %v", els, err)
	}
}
