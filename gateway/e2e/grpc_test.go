package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// grpcHealthUpstream serves grpc.health.v1 (with service "up" SERVING)
// over h2c on a loopback port and returns its address.
func grpcHealthUpstream(t *testing.T) string {
	t.Helper()
	ln := testutil.ListenTCP(t)
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// grpcDial returns a health client speaking gRPC over h2c to addr.
func grpcDial(t *testing.T, addr string) healthpb.HealthClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

// grpcCheck calls Check for service with the given metadata (name, value
// pairs), bounded by ioTimeout.
func grpcCheck(hc healthpb.HealthClient, service string, md ...string) (*healthpb.HealthCheckResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	return hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
}

// grpcRoutes routes /grpc.health.v1.Health/ to cluster "up" (HTTP/2) and
// /dead/ to cluster "dead", where nothing listens; every other path has no
// route.
func grpcRoutes(up string) (routes string, clusters []string) {
	return route(`prefix = "/grpc.health.v1.Health/"`, "up") + route(`prefix = "/dead/"`, "dead"),
		[]string{cluster("up", up) + "protocol = \"http2\"\n", cluster("dead", up)}
}

// A gRPC request through sluice to a gRPC server behind an HTTP/2 cluster
// gets the server's answers: a message and status OK, and an error status
// (NotFound for an unknown service) carried in trailers.
func TestGRPCIsProxiedToAnHTTP2Upstream(t *testing.T) {
	up := grpcHealthUpstream(t)
	routes, clusters := grpcRoutes(up)
	p := gwtest.Start(t, config(1, routes, clusters...))
	hc := grpcDial(t, p.Addr("http"))
	resp, err := grpcCheck(hc, "up")
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check(up) through sluice: %v, %v; want SERVING", resp, err)
	}
	_, err = grpcCheck(hc, "nosuch")
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Check(nosuch) through sluice: %v; want the upstream's NotFound", err)
	}
	// Server streaming: Watch sends the current status as its first message.
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "up"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch(up) first message: %v, %v; want SERVING", m, err)
	}
}

// sluice's own answers to gRPC requests are gRPC trailers-only responses,
// whose grpc-status a gRPC client reports: Unimplemented for no route (404),
// Unavailable for an upstream that refuses connections (503). The access
// log records what was sent, 200, with the local reply's response flags,
// as Envoy does.
func TestGRPCLocalRepliesAreTrailersOnlyResponses(t *testing.T) {
	dead := testutil.DeadAddr(t)
	routes, clusters := grpcRoutes(dead)
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := gwtest.Start(t, h2Config(fmt.Sprintf(`
      [[listener.filter_chain.filter.config.access_log]]
      path = %q
      [listener.filter_chain.filter.config.access_log.json_format]
      path = "%%REQ(:PATH)%%"
      code = "%%RESPONSE_CODE%%"
      flags = "%%RESPONSE_FLAGS%%"
      grpc = "%%RESP(GRPC-STATUS)%%"`, logPath), routes, clusters...))
	cc, err := grpc.NewClient("passthrough:///"+p.Addr("http"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	for _, c := range []struct {
		method string
		code   codes.Code
		msg    string
		flags  string
	}{
		{"/nowhere.Service/Call", codes.Unimplemented, "Not Found (route_not_found, NR)", "NR"},
		{"/dead/Call", codes.Unavailable, "Service Unavailable (", "UF"},
		{"/grpc.health.v1.Health/Check", codes.Unavailable, "Service Unavailable (", "UF"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		err := cc.Invoke(ctx, c.method, &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
		cancel()
		st, _ := status.FromError(err)
		// (grpc-go makes up a status from an HTTP error: the message
		// tells the two apart)
		if st.Code() != c.code || !strings.HasPrefix(st.Message(), c.msg) {
			t.Errorf("%s: got %v, want %v with a message starting %q", c.method, err, c.code, c.msg)
		}
	}
	var lines []map[string]string
	for deadline := time.Now().Add(ioTimeout); len(lines) < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("access log has %d lines, want 3", len(lines))
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process appends to
		lines = readJSONLines(t, logPath)
	}
	for _, l := range lines {
		want, grpcStatus := "UF", "14"
		if l["path"] == "/nowhere.Service/Call" {
			want, grpcStatus = "NR", "12"
		}
		if l["code"] != "200" || l["flags"] != want || l["grpc"] != grpcStatus {
			t.Errorf("access log line %v: want code 200, flags %s, grpc-status %s", l, want, grpcStatus)
		}
	}
}

// An ext_authz denial of a gRPC request reaches the client as the gRPC
// status its HTTP status maps to: 403 is PermissionDenied, 401
// Unauthenticated; the denial's own headers come along.
func TestGRPCExtAuthzDenialIsAGRPCStatus(t *testing.T) {
	up := grpcHealthUpstream(t)
	cfg := authzConfig(pluginBin(t, "echo"), up, "", "", "")
	cfg = strings.Replace(cfg, fmt.Sprintf("endpoints = [%q]", up), fmt.Sprintf("endpoints = [%q]\nprotocol = \"http2\"", up), 1)
	p := startAuthz(t, cfg)
	hc := grpcDial(t, p.Addr("http"))
	if resp, err := grpcCheck(hc, "up"); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("allowed Check: %v, %v; want SERVING", resp, err)
	}
	for deny, want := range map[string]codes.Code{"403": codes.PermissionDenied, "401": codes.Unauthenticated} {
		var hdr metadata.MD
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		ctx = metadata.AppendToOutgoingContext(ctx, "x-deny", deny)
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "up"}, grpc.Trailer(&hdr))
		cancel()
		if st, _ := status.FromError(err); st.Code() != want || st.Message() != "denied by plugin" {
			t.Errorf("denied with %s: got %v, want %v \"denied by plugin\"", deny, err, want)
		}
		if got := hdr.Get("x-deny-reason"); len(got) != 1 || got[0] != "test" {
			t.Errorf("denied with %s: trailers-only metadata %v lack the denial's x-deny-reason", deny, hdr)
		}
	}
}

// The conversion does not depend on the downstream protocol: HTTP/1.1 and
// HTTP/3 requests with content-type application/grpc get a trailers-only
// 200 with grpc-status and grpc-message in the head and no body, where a
// request of another content-type (grpc-web's included) gets the HTTP error.
func TestGRPCLocalReplyOverHTTP1AndHTTP3(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	up := testutil.Upstream(t, http.NotFoundHandler())
	cfg := strings.Replace(h3Config("127.0.0.1:0", "127.0.0.1:0", cert, key, up.Addr),
		`match = { prefix = "/" }`, `match = { prefix = "/up/" }`, 1)
	p := gwtest.Start(t, cfg)

	h3 := h3Client(t, ca)
	h3.Timeout = ioTimeout
	h1 := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool},
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
	}}
	for _, c := range []struct {
		name, url string
		client    *http.Client
		proto     int
	}{
		{"HTTP/1.1", "https://" + p.Addr("https"), h1, 1},
		{"HTTP/3", "https://" + p.Addr("h3"), h3, 3},
	} {
		for _, ct := range []string{"application/grpc", "application/grpc+proto", "application/grpc-web", "text/plain"} {
			req, err := http.NewRequest("POST", c.url+"/pkg.Svc/Method", strings.NewReader("\x00\x00\x00\x00\x00"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("content-type", ct)
			resp, body := do(t, c.client, req)
			what := c.name + " " + ct
			if resp.ProtoMajor != c.proto {
				t.Fatalf("%s: answered over %s", what, resp.Proto)
			}
			if !strings.HasPrefix(ct, "application/grpc") || ct == "application/grpc-web" {
				if resp.StatusCode != 404 || resp.Header.Get("grpc-status") != "" {
					t.Errorf("%s: %d %v; want a plain 404", what, resp.StatusCode, resp.Header)
				}
				continue
			}
			checkTrailersOnly(t, what, resp, body, "12")
			if m := resp.Header.Get("grpc-message"); m != "Not Found (route_not_found, NR)" {
				t.Errorf("%s: grpc-message %q, want the local reply's text", what, m)
			}
		}
	}
}

// checkTrailersOnly checks an HTTP response to a gRPC request is a
// trailers-only response with grpc-status code.
func checkTrailersOnly(t *testing.T, what string, resp *http.Response, body []byte, code string) {
	t.Helper()
	if resp.StatusCode != 200 || resp.Header.Get("content-type") != "application/grpc" ||
		resp.Header.Get("grpc-status") != code || len(body) != 0 {
		t.Errorf("%s: %d %v body %q; want a trailers-only 200 with grpc-status %s", what, resp.StatusCode, resp.Header, body, code)
	}
}

// A trailers-only reply to an HTTP/1.1 gRPC request whose body sluice did
// not read says Connection: close, as the connection does close after it:
// a client that believed it open would lose its next request.
func TestGRPCTrailersOnlyReplyOverHTTP1ClosesHonestly(t *testing.T) {
	p := gwtest.Start(t, config(1, route(`prefix = "/up/"`, "up"), cluster("up", testutil.DeadAddr(t))))
	c := dial(t, p.Addr("http"))
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "POST /pkg.Svc/M HTTP/1.1\r\nHost: x\r\ncontent-type: application/grpc\r\ncontent-length: 5\r\n\r\n\x00\x00\x00\x00\x00")
	resp, body := readResponse(t, br, "POST")
	checkTrailersOnly(t, "HTTP/1.1 no route", resp, body, "12")
	if !resp.Close {
		// then the connection must serve the next request
		fmt.Fprintf(c, "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 404 {
			t.Fatalf("next request on a connection left open: %d", resp.StatusCode)
		}
	}
}
