package accesslog

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

func TestStartTimeFormats(t *testing.T) {
	rec := sampleRecord() // 2024-04-15T20:17:00.310Z
	rec.Info.Start = rec.Info.Start.Add(4_567 * time.Nanosecond)
	for _, tc := range []struct{ format, want string }{
		{"%START_TIME(%Y/%m/%dT%H:%M:%S%z)%", "2024/04/15T20:17:00+0000"},
		{"%START_TIME(%s)%", "1713212220"},
		{"%START_TIME(%s.%3f)%", "1713212220.310"},
		{"%START_TIME(%6f)%", "310004"},
		{"%START_TIME(%f)%", "310004567"},
		{"%START_TIME(%1f)%", "3"},
		{"%START_TIME(%F %T)%", "2024-04-15 20:17:00"},
		{"%START_TIME(%d/%b/%Y:%H:%M:%S %z)%", "15/Apr/2024:20:17:00 +0000"},
		{"%START_TIME(%a %A %B %j %y %I%p)%", "Mon Monday April 106 24 08PM"},
		{"%START_TIME(Jan 2006 %%)%", "Jan 2006 %"}, // text is never a Go layout
		{"[%START_TIME(%H)%] %RESPONSE_CODE%", "[20] 503"},
	} {
		if got := format(t, tc.format, rec); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.format, got, tc.want)
		}
	}
	rec.Info.Start = time.Date(2024, 1, 2, 3, 4, 5, 7_000_000, time.UTC)
	if got := format(t, "%START_TIME(%3f|%6f)%", rec); got != "007|007000" {
		t.Errorf("fraction with leading zeros: got %q", got)
	}
	if got := format(t, "%START_TIME(%s)%", &Record{Info: &httpfilter.StreamInfo{}}); got != "-" {
		t.Errorf("no start: got %q, want -", got)
	}
}

func TestMoreOperators(t *testing.T) {
	t.Setenv("SLUICE_TEST_ENV", "blue")
	rec := sampleRecord()
	rec.Info.ConnectionID = 42
	rec.Info.DownstreamDirectRemote = netip.MustParseAddrPort("10.9.9.9:4000")
	rec.Info.ResponseFlags = httpfilter.FlagNoHealthyUpstream | httpfilter.FlagUpstreamConnectionFailure
	empty := &Record{Info: &httpfilter.StreamInfo{}}
	for _, tc := range []struct{ format, want, wantEmpty string }{
		{"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "192.0.2.7", "-"},
		{"%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "127.0.0.1", "-"},
		{"%DOWNSTREAM_REMOTE_PORT%", "51000", "-"},
		{"%DOWNSTREAM_LOCAL_PORT%", "8080", "-"},
		{"%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%", "10.9.9.9:4000", "-"},
		{"%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%", "10.9.9.9", "-"},
		{"%RESPONSE_FLAGS_LONG%", "NoHealthyUpstream,UpstreamConnectionFailure", "-"},
		{"%CONNECTION_ID%", "42", "0"},
		{"%REQ_WITHOUT_QUERY(:PATH)%", "/a", "-"},
		{"%REQ_WITHOUT_QUERY(X-NONE?:PATH):1%", "/", "-"},
		{"%ENVIRONMENT(SLUICE_TEST_ENV)%", "blue", "blue"},
		{"%ENVIRONMENT(SLUICE_TEST_ENV):2%", "bl", "bl"},
		{"%ENVIRONMENT(SLUICE_TEST_UNSET_ENV)%", "-", "-"},
		{"%DOWNSTREAM_TLS_VERSION%", "-", "-"}, // plaintext
		{"%GRPC_STATUS%", "-", "-"},            // not a gRPC request
	} {
		if got := format(t, tc.format, rec); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.format, got, tc.want)
		}
		if got := format(t, tc.format, empty); got != tc.wantEmpty {
			t.Errorf("%s, empty record: got %q, want %q", tc.format, got, tc.wantEmpty)
		}
	}
}

func TestGRPCStatusOperator(t *testing.T) {
	grpcReq := func() *Record {
		rec := sampleRecord()
		rec.Request.Add("content-type", "application/grpc")
		return rec
	}
	for _, tc := range []struct {
		name    string
		edit    func(*Record)
		camel   string
		snake   string
		number  string
		healthy bool
	}{
		{"from the trailers", func(r *Record) { r.Info.GRPCStatus, r.Info.GRPCStatusSet = 1, true }, "Canceled", "CANCELLED", "1", false},
		{"from the head", func(r *Record) { r.Response.Add("grpc-status", "0") }, "OK", "OK", "0", true},
		{"from the HTTP status", func(r *Record) {}, "Unavailable", "UNAVAILABLE", "14", false}, // 503
		{"not a number", func(r *Record) { r.Response.Add("grpc-status", "x") }, "-1", "-1", "-1", false},
		{"beyond the known", func(r *Record) { r.Info.GRPCStatus, r.Info.GRPCStatusSet = 20, true }, "InvalidCode", "InvalidCode", "20", false},
	} {
		rec := grpcReq()
		tc.edit(rec)
		for form, want := range map[string]string{"%GRPC_STATUS%": tc.camel, "%GRPC_STATUS(CAMEL_STRING)%": tc.camel, "%GRPC_STATUS(SNAKE_STRING)%": tc.snake, "%GRPC_STATUS(NUMBER)%": tc.number} {
			if got := format(t, form, rec); got != want {
				t.Errorf("%s: %s = %q, want %q", tc.name, form, got, want)
			}
		}
	}
}

func TestTLSOperators(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("spiffe://example.org/client")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0xabc123),
		Subject:      pkix.Name{CommonName: "client", Organization: []string{"Example"}},
		Issuer:       pkix.Name{CommonName: "client", Organization: []string{"Example"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"a.example.org", "b.example.org"},
		URIs:         []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	rec := sampleRecord()
	rec.Info.TLS = &tls.ConnectionState{Version: tls.VersionTLS12, CipherSuite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		PeerCertificates: []*x509.Certificate{cert}}
	for _, tc := range []struct{ format, want string }{
		{"%DOWNSTREAM_TLS_VERSION%", "TLSv1.2"},
		{"%DOWNSTREAM_TLS_CIPHER%", "ECDHE-ECDSA-AES128-GCM-SHA256"},
		{"%DOWNSTREAM_PEER_SUBJECT%", "CN=client,O=Example"},
		{"%DOWNSTREAM_PEER_ISSUER%", "CN=client,O=Example"},
		{"%DOWNSTREAM_PEER_URI_SAN%", "spiffe://example.org/client"},
		{"%DOWNSTREAM_PEER_DNS_SAN%", "a.example.org,b.example.org"},
		{"%DOWNSTREAM_PEER_FINGERPRINT_256%", hex.EncodeToString(sum[:])},
		{"%DOWNSTREAM_PEER_SERIAL%", "abc123"},
	} {
		if got := format(t, tc.format, rec); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.format, got, tc.want)
		}
	}
	rec.Info.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
	for format_, want := range map[string]string{"%DOWNSTREAM_TLS_VERSION%": "TLSv1.3", "%DOWNSTREAM_TLS_CIPHER%": "TLS_AES_128_GCM_SHA256", "%DOWNSTREAM_PEER_SUBJECT%": "-"} {
		if got := format(t, format_, rec); got != want {
			t.Errorf("TLS 1.3 without a client certificate: %s = %q, want %q", format_, got, want)
		}
	}
}

func TestTimingOperators(t *testing.T) {
	rec := sampleRecord() // Duration 25.9 ms
	start := rec.Info.Start
	rec.Info.DownstreamRequestEnd = start.Add(3 * time.Millisecond)
	rec.Info.UpstreamRequestSent = start.Add(4 * time.Millisecond)
	rec.Info.UpstreamResponseStart = start.Add(20 * time.Millisecond)
	rec.Info.UpstreamAttempts = 2
	empty := &Record{Info: &httpfilter.StreamInfo{Start: start}, Duration: time.Millisecond}
	for _, tc := range []struct{ format, want, wantEmpty string }{
		{"%REQUEST_DURATION%", "3", "-"},
		{"%REQUEST_TX_DURATION%", "4", "-"},
		{"%RESPONSE_DURATION%", "20", "-"},
		{"%RESPONSE_TX_DURATION%", "5", "-"}, // 25.9 - 20
		{"%UPSTREAM_REQUEST_ATTEMPT_COUNT%", "2", "0"},
	} {
		if got := format(t, tc.format, rec); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.format, got, tc.want)
		}
		if got := format(t, tc.format, empty); got != tc.wantEmpty {
			t.Errorf("%s, stream that never went upstream: got %q, want %q", tc.format, got, tc.wantEmpty)
		}
	}
}
