package accesslog

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

func sampleRecord() *Record {
	req := &httpfilter.RequestHeaders{Method: []byte("GET"), Scheme: []byte("http"), Authority: []byte("example.com"), Path: []byte("/a?b=c")}
	req.Add("user-agent", "curl/8.0")
	req.Add("x-request-id", "rid-1")
	req.Add("x-forwarded-for", "10.0.0.1")
	resp := &httpfilter.ResponseHeaders{Status: 503}
	resp.Add("x-envoy-upstream-service-time", "12")
	resp.Add("content-type", "text/plain")
	return &Record{
		Info: &httpfilter.StreamInfo{
			Start:            time.Date(2024, 4, 15, 20, 17, 0, 310_000_000, time.UTC),
			Protocol:         "HTTP/1.1",
			DownstreamRemote: netip.MustParseAddrPort("192.0.2.7:51000"),
			DownstreamLocal:  netip.MustParseAddrPort("127.0.0.1:8080"),
			ServerName:       "api.example.com",
			RouteName:        "default",
			UpstreamCluster:  "backend",
			UpstreamHost:     "10.1.2.3:80",
			ResponseCode:     503,
			ResponseFlags:    httpfilter.FlagUpstreamConnectionFailure | httpfilter.FlagNoHealthyUpstream,
			ResponseDetails:  "upstream_reset_before_response_started",
			BytesReceived:    17,
			BytesSent:        42,
		},
		Request:  req,
		Response: resp,
		Duration: 25*time.Millisecond + 900*time.Microsecond,
	}
}

func format(t *testing.T, f string, rec *Record) string {
	t.Helper()
	fm, err := Compile(f)
	if err != nil {
		t.Fatalf("Compile(%q): %v", f, err)
	}
	return string(fm.Format(nil, rec))
}

func TestOperators(t *testing.T) {
	rec := sampleRecord()
	empty := &Record{Info: &httpfilter.StreamInfo{}}
	for _, tc := range []struct{ format, want, wantEmpty string }{
		{"%START_TIME%", "2024-04-15T20:17:00.310Z", "-"},
		{"%REQ(:METHOD)%", "GET", "-"},
		{"%REQ(:PATH)%", "/a?b=c", "-"},
		{"%REQ(:AUTHORITY)%", "example.com", "-"},
		{"%REQ(:SCHEME)%", "http", "-"},
		{"%REQ(USER-AGENT)%", "curl/8.0", "-"},
		{"%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "/a?b=c", "-"},
		{"%REQ(X-REQUEST-ID?:PATH)%", "rid-1", "-"},
		{"%REQ(USER-AGENT):4%", "curl", "-"},
		{"%REQ(X-MISSING)%", "-", "-"},
		{"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", "12", "-"},
		{"%RESP(X-NONE?CONTENT-TYPE)%", "text/plain", "-"},
		{"%RESP(CONTENT-TYPE):4%", "text", "-"},
		{"%RESPONSE_CODE%", "503", "0"},
		{"%RESPONSE_FLAGS%", "UH,UF", "-"},
		{"%RESPONSE_CODE_DETAILS%", "upstream_reset_before_response_started", "-"},
		{"%BYTES_RECEIVED%", "17", "0"},
		{"%BYTES_SENT%", "42", "0"},
		{"%DURATION%", "25", "0"},
		{"%UPSTREAM_HOST%", "10.1.2.3:80", "-"},
		{"%UPSTREAM_CLUSTER%", "backend", "-"},
		{"%DOWNSTREAM_REMOTE_ADDRESS%", "192.0.2.7:51000", "-"},
		{"%DOWNSTREAM_LOCAL_ADDRESS%", "127.0.0.1:8080", "-"},
		{"%REQUESTED_SERVER_NAME%", "api.example.com", "-"},
		{"%PROTOCOL%", "HTTP/1.1", "-"},
		{"%ROUTE_NAME%", "default", "-"},
		{"a %PROTOCOL% b", "a HTTP/1.1 b", "a - b"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			if got := format(t, tc.format, rec); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if got := format(t, tc.format, empty); got != tc.wantEmpty {
				t.Errorf("empty record: got %q, want %q", got, tc.wantEmpty)
			}
		})
	}
}

func TestDefaultFormat(t *testing.T) {
	got := format(t, "", sampleRecord())
	want := `[2024-04-15T20:17:00.310Z] "GET /a?b=c HTTP/1.1" 503 UH,UF 17 42 25 12 "10.0.0.1" "curl/8.0" "rid-1" "example.com" "10.1.2.3:80"` + "\n"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, f := range []string{"%NOPE%", "%REQ(A%", "%REQ()%", "%REQ(A):x%", "%REQ(A):0%", "%REQ(A)x%", "50%",
		"%START_TIME(%Q)%", "%START_TIME(%)%", "%START_TIME(%Y%", "%GRPC_STATUS(FOO)%", "%ENVIRONMENT()%",
		"%ENVIRONMENT(HOME)x%", "%REQ_WITHOUT_QUERY()%"} {
		if _, err := Compile(f); !errors.Is(err, ErrFormat) {
			t.Errorf("Compile(%q) = %v, want ErrFormat", f, err)
		}
	}
}

func TestJSONFormat(t *testing.T) {
	rec := sampleRecord()
	rec.Request.Add("x-quote", "a\"b\\c\x01\xff")
	f, err := CompileJSON(map[string]string{
		"status":   "%RESPONSE_CODE%",
		"duration": "%DURATION%",
		"method":   "%REQ(:METHOD)%",
		"line":     "%REQ(:METHOD)% %REQ(:PATH)%",
		"weird":    "%REQ(X-QUOTE)%",
		"missing":  "%REQ(X-NONE)%",
		"flags":    "%RESPONSE_FLAGS%",
		"ua":       "%REQ(USER-AGENT):4%",
	})
	if err != nil {
		t.Fatal(err)
	}
	line := f.Format(nil, rec)
	if !strings.HasSuffix(string(line), "}\n") {
		t.Fatalf("line %q", line)
	}
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("invalid JSON %q: %v", line, err)
	}
	want := map[string]any{
		"status": 503.0, "duration": 25.0, "method": "GET", "line": "GET /a?b=c",
		"weird": "a\"b\\c\x01?", "missing": nil, "flags": "UH,UF", "ua": "curl",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if _, err := CompileJSON(map[string]string{"x": "%BAD%"}); !errors.Is(err, ErrFormat) {
		t.Errorf("bad json_format accepted: %v", err)
	}
}

func TestConfigFormatter(t *testing.T) {
	for _, c := range []Config{{}, {Path: "x", Format: "a", JSONFormat: map[string]string{"a": "b"}}} {
		if _, err := c.Formatter(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func BenchmarkFormatDefault(b *testing.B) {
	f, _ := Compile("")
	rec := sampleRecord()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = f.Format(buf[:0], rec)
	}
}

func BenchmarkFormatJSON(b *testing.B) {
	f, _ := CompileJSON(map[string]string{"status": "%RESPONSE_CODE%", "path": "%REQ(:PATH)%", "ua": "%REQ(USER-AGENT)%", "start": "%START_TIME%", "flags": "%RESPONSE_FLAGS%"})
	rec := sampleRecord()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = f.Format(buf[:0], rec)
	}
}

func TestFormatDoesNotAllocate(t *testing.T) {
	f, _ := Compile("")
	rec := sampleRecord()
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = f.Format(buf[:0], rec) }); n != 0 {
		t.Fatalf("Format allocates %v times", n)
	}
}

// TestCompileValue checks header-value formats: missing operands print
// nothing instead of "-", "%%" is a literal '%', and a format without
// operators reports itself literal.
func TestCompileValue(t *testing.T) {
	rec := sampleRecord()
	for _, tc := range []struct{ format, want string }{
		{"%DOWNSTREAM_REMOTE_ADDRESS%", "192.0.2.7:51000"},
		{"[%REQ(x-missing)%]", "[]"},
		{"%REQ(x-missing?user-agent):4%", "curl"},
		{"100%% of %UPSTREAM_CLUSTER%", "100% of backend"},
		{"", ""},
	} {
		f, err := CompileValue(tc.format)
		if err != nil {
			t.Fatalf("CompileValue(%q): %v", tc.format, err)
		}
		if got := string(f.AppendValue(nil, rec)); got != tc.want {
			t.Errorf("CompileValue(%q) formats %q, want %q", tc.format, got, tc.want)
		}
	}
	if lit, ok := mustCompileValue(t, "a %% b").Literal(); !ok || lit != "a % b" {
		t.Errorf("Literal() = %q, %v; want \"a %% b\", true", lit, ok)
	}
	if _, ok := mustCompileValue(t, "a %PROTOCOL%").Literal(); ok {
		t.Error("a format with an operator reports itself literal")
	}
	if got := string(mustCompileValue(t, "%%%PROTOCOL%%%").AppendValue(nil, rec)); got != "%HTTP/1.1%" {
		t.Errorf("%%%%%%PROTOCOL%%%%%% formats %q, want \"%%HTTP/1.1%%\"", got)
	}
}

func mustCompileValue(t *testing.T, s string) *Formatter {
	t.Helper()
	f, err := CompileValue(s)
	if err != nil {
		t.Fatalf("CompileValue(%q): %v", s, err)
	}
	return f
}
