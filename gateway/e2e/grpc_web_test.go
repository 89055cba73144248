package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// grpcWebFilter is the grpc_web filter's http_filter table.
const grpcWebFilter = `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.grpc_web"`

// grpcWebFrame is a gRPC(-Web) frame: flags, big-endian length, payload.
func grpcWebFrame(flags byte, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32([]byte{flags}, uint32(len(payload)))
	return append(b, payload...)
}

// grpcWebResult is a parsed gRPC-Web response body.
type grpcWebResult struct {
	messages [][]byte
	trailers map[string]string // from the trailers frame; nil if none
}

// parseGRPCWeb reads the frames of a gRPC-Web response body; text bodies
// are base64 decoded group by group first (each frame is padded on its
// own).
func parseGRPCWeb(t *testing.T, body []byte, text bool) grpcWebResult {
	t.Helper()
	if text {
		var raw []byte
		if len(body)%4 != 0 {
			t.Fatalf("text body of length %d: %q", len(body), body)
		}
		for i := 0; i < len(body); i += 4 {
			b, err := base64.StdEncoding.DecodeString(string(body[i : i+4]))
			if err != nil {
				t.Fatalf("text body %q: %v", body, err)
			}
			raw = append(raw, b...)
		}
		body = raw
	}
	var r grpcWebResult
	for len(body) > 0 {
		if len(body) < 5 {
			t.Fatalf("truncated frame header %q", body)
		}
		n := int(binary.BigEndian.Uint32(body[1:5]))
		if len(body) < 5+n {
			t.Fatalf("frame of %d bytes, %d left", n, len(body)-5)
		}
		payload := body[5 : 5+n]
		if body[0]&0x80 != 0 {
			if r.trailers != nil {
				t.Fatalf("second trailers frame")
			}
			r.trailers = map[string]string{}
			for _, line := range strings.Split(strings.TrimSuffix(string(payload), "\r\n"), "\r\n") {
				k, v, _ := strings.Cut(line, ":")
				r.trailers[k] = v
			}
		} else {
			if r.trailers != nil {
				t.Fatalf("message after the trailers frame")
			}
			r.messages = append(r.messages, payload)
		}
		body = body[5+n:]
	}
	return r
}

// grpcWebCall sends a gRPC-Web unary call for the health service through
// client to base, binary or text, and returns the response and its body.
func grpcWebCall(t *testing.T, client *http.Client, base, method, service string, text bool) (*http.Response, []byte) {
	t.Helper()
	msg, err := proto.Marshal(&healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatal(err)
	}
	body := grpcWebFrame(0, msg)
	ct := "application/grpc-web+proto"
	if text {
		body = []byte(base64.StdEncoding.EncodeToString(body))
		ct = "application/grpc-web-text"
	}
	req, err := http.NewRequest("POST", base+method, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", ct)
	req.Header.Set("x-grpc-web", "1")
	req.Header.Set("x-user-agent", "grpc-web-javascript/0.1")
	if text {
		req.Header.Set("accept", "application/grpc-web-text")
	}
	return do(t, client, req)
}

// A gRPC-Web client (a hand-built request over HTTP/1.1, as a browser
// sends it) reaches a grpc-go server behind an HTTP/2 cluster through the
// grpc_web filter, binary and base64 text: it gets the response message
// and, in a trailers frame at the end of the body, grpc-status 0. An
// error the server answers trailers-only (NotFound for an unknown
// service) comes as grpc-status in the response head, and so does a local
// reply (no route: UNIMPLEMENTED).
func TestGRPCWebBridgesToAGRPCUpstream(t *testing.T) {
	up := grpcHealthUpstream(t)
	routes, clusters := grpcRoutes(up)
	p := gwtest.Start(t, withHTTPFilter(config(1, routes, clusters...), grpcWebFilter))
	base := "http://" + p.Addr("http")
	for _, c := range []struct {
		name   string
		client *http.Client
		major  int
	}{{"HTTP/1.1", newClient(nil), 1}, {"HTTP/2", h2cClient(nil), 2}} {
		for _, text := range []bool{false, true} {
			what := c.name
			wantCT := "application/grpc-web+proto"
			if text {
				what += " text"
				wantCT = "application/grpc-web-text+proto"
			}
			resp, body := grpcWebCall(t, c.client, base, "/grpc.health.v1.Health/Check", "up", text)
			if resp.StatusCode != 200 || resp.ProtoMajor != c.major || resp.Header.Get("content-type") != wantCT {
				t.Fatalf("%s: %s %d %v, want %d over HTTP/%d with content-type %s", what, resp.Proto, resp.StatusCode, resp.Header, 200, c.major, wantCT)
			}
			r := parseGRPCWeb(t, body, text)
			if len(r.messages) != 1 || r.trailers["grpc-status"] != "0" {
				t.Fatalf("%s: %d messages, trailers %v; want one message and grpc-status 0", what, len(r.messages), r.trailers)
			}
			var hc healthpb.HealthCheckResponse
			if err := proto.Unmarshal(r.messages[0], &hc); err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("%s: response message %q: %v, %v; want SERVING", what, r.messages[0], hc.GetStatus(), err)
			}
			if len(resp.Trailer) != 0 {
				t.Fatalf("%s: HTTP trailers %v next to the trailers frame", what, resp.Trailer)
			}

			resp, body = grpcWebCall(t, c.client, base, "/grpc.health.v1.Health/Check", "nosuch", text)
			if resp.StatusCode != 200 || resp.Header.Get("grpc-status") != "5" || resp.Header.Get("content-type") != wantCT || len(body) != 0 {
				t.Fatalf("%s unknown service: %d %v body %q; want a trailers-only grpc-status 5", what, resp.StatusCode, resp.Header, body)
			}
			resp, body = grpcWebCall(t, c.client, base, "/nowhere.Service/Call", "", text)
			if resp.StatusCode != 200 || resp.Header.Get("grpc-status") != "12" || resp.Header.Get("content-type") != wantCT ||
				resp.Header.Get("grpc-message") != "Not Found (route_not_found, NR)" || len(body) != 0 {
				t.Fatalf("%s no route: %d %v body %q; want a trailers-only grpc-status 12", what, resp.StatusCode, resp.Header, body)
			}
		}
	}
}

// A grpc-web-text body is decoded across the chunks it arrives in, and a
// body that is not base64 gets a gRPC-Web INTERNAL status (the filter's
// 400), without reaching the upstream.
func TestGRPCWebTextBodyInPiecesAndInvalidBase64(t *testing.T) {
	up := grpcHealthUpstream(t)
	routes, clusters := grpcRoutes(up)
	p := gwtest.Start(t, withHTTPFilter(config(1, routes, clusters...), grpcWebFilter))
	url := "http://" + p.Addr("http") + "/grpc.health.v1.Health/Check"
	msg, _ := proto.Marshal(&healthpb.HealthCheckRequest{Service: "up"})
	enc := base64.StdEncoding.EncodeToString(grpcWebFrame(0, msg))

	// The body is written in pieces of three bytes, each a chunk of the
	// chunked request body, flushed on its own.
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(enc); i += 3 {
			if _, err := pw.Write([]byte(enc[i:min(i+3, len(enc))])); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", url, pr)
	req.Header.Set("content-type", "application/grpc-web-text")
	resp, body := do(t, newClient(nil), req)
	r := parseGRPCWeb(t, body, false)
	if resp.StatusCode != 200 || len(r.messages) != 1 || r.trailers["grpc-status"] != "0" {
		t.Fatalf("body in pieces: %d %v, %d messages, trailers %v", resp.StatusCode, resp.Header, len(r.messages), r.trailers)
	}

	for _, bad := range []string{"AAA*AAAA", enc[:len(enc)-1]} {
		req, _ := http.NewRequest("POST", url, strings.NewReader(bad))
		req.Header.Set("content-type", "application/grpc-web-text")
		resp, body := do(t, newClient(nil), req)
		if resp.StatusCode != 200 || resp.Header.Get("grpc-status") != "13" ||
			resp.Header.Get("grpc-message") != "Bad gRPC-web request, invalid base64 data." || len(body) != 0 {
			t.Fatalf("body %q: %d %v body %q; want grpc-status 13 with the filter's message", bad, resp.StatusCode, resp.Header, body)
		}
	}
}

// Requests that are not gRPC-Web pass the filter untouched, and so do
// their responses.
func TestGRPCWebLeavesOtherRequestsAlone(t *testing.T) {
	up := headerEchoUpstream(t)
	p := gwtest.Start(t, withHTTPFilter(simpleConfig(1, up.Addr), grpcWebFilter))
	req, _ := http.NewRequest("POST", "http://"+p.Addr("http")+"/x", strings.NewReader("QUJD"))
	req.Header.Set("content-type", "text/plain")
	resp, _ := do(t, newClient(nil), req)
	if resp.StatusCode != 200 || resp.Header.Get("x-up-content-type") != "text/plain" ||
		resp.Header.Get("x-up-body-len") != "4" || resp.Header.Get("x-up-te") != "" || resp.Header.Get("grpc-status") != "" {
		t.Fatalf("plain request: %d %v", resp.StatusCode, resp.Header)
	}
}

// A gRPC-Web request answered with an HTTP error by an upstream that does
// not speak gRPC keeps the HTTP status, gets the grpc-status it maps to
// (503: UNAVAILABLE) and loses the error's body.
func TestGRPCWebNonGRPCErrorBecomesAGRPCStatus(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>overloaded</html>", 503)
	}))
	p := gwtest.Start(t, withHTTPFilter(simpleConfig(1, up.Addr), grpcWebFilter))
	for _, text := range []bool{false, true} {
		resp, body := grpcWebCall(t, newClient(nil), "http://"+p.Addr("http"), "/pkg.Svc/M", "", text)
		if resp.StatusCode != 503 || resp.Header.Get("grpc-status") != "14" ||
			resp.Header.Get("grpc-message") != "Service Unavailable" || len(body) != 0 ||
			!strings.HasPrefix(resp.Header.Get("content-type"), "application/grpc-web") {
			t.Fatalf("text=%v: %d %v body %q; want 503 with grpc-status 14 and no body", text, resp.StatusCode, resp.Header, body)
		}
	}
}

// With a compressor that compresses gRPC-Web responses after the grpc_web
// filter (in the encode order), the trailers frame is inside the gzip
// stream, before its end.
func TestGRPCWebTrailersFrameIsCompressedWithTheBody(t *testing.T) {
	up := grpcHealthUpstream(t)
	routes, clusters := grpcRoutes(up)
	cfg := withHTTPFilter(config(1, routes, clusters...), `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.compressor"
      [listener.filter_chain.filter.config.http_filter.config]
      min_content_length = 0
      content_type = ["application/grpc-web+proto"]`+grpcWebFilter)
	p := gwtest.Start(t, cfg)
	msg, _ := proto.Marshal(&healthpb.HealthCheckRequest{Service: "up"})
	req, _ := http.NewRequest("POST", "http://"+p.Addr("http")+"/grpc.health.v1.Health/Check", bytes.NewReader(grpcWebFrame(0, msg)))
	req.Header.Set("content-type", "application/grpc-web+proto")
	req.Header.Set("accept-encoding", "gzip")
	c := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{DisableCompression: true}}
	resp, body := do(t, c, req)
	if resp.StatusCode != 200 || resp.Header.Get("content-encoding") != "gzip" {
		t.Fatalf("%d %v, want a gzipped 200", resp.StatusCode, resp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gzip stream: %v", err)
	}
	if r := parseGRPCWeb(t, plain, false); len(r.messages) != 1 || r.trailers["grpc-status"] != "0" {
		t.Fatalf("decompressed body: %d messages, trailers %v", len(r.messages), r.trailers)
	}
}
