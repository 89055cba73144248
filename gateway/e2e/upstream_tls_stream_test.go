package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestStreamedBodyToATLSUpstreamIsNotCutShortByASessionTicket checks that
// a request body streamed to a TLS 1.3 upstream over a fresh connection
// reaches it whole. Such an upstream (here one that asks for a client
// certificate, as OpenSSL-based servers always do) sends its session
// tickets after the client's handshake is over: they wait on the socket,
// unread, while the request goes out. They are TLS records, not a
// response: taking them for an early answer would stop the body half way
// and leave the upstream waiting for the rest until the route timeout.
func TestStreamedBodyToATLSUpstreamIsNotCutShortByASessionTicket(t *testing.T) {
	ca := testutil.NewCA(t)
	_, _, pair := ca.Leaf(t, "up.test")
	firstPart := make(chan struct{})
	ln := testutil.ListenTCP(t)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		close(firstPart)
		rest, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "got %s%s", buf, rest)
	})}
	hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequestClientCert}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })

	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "up", `timeout = "20s"`),
		cluster("up", ln.Addr().String())+"[cluster.tls]\ninsecure_skip_verify = true\n"))
	c := dial(t, p.Addr("http"))
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabcde")
	select {
	case <-firstPart:
	case <-time.After(ioTimeout):
		t.Fatal("the first part of the body never reached the upstream")
	}
	fmt.Fprintf(c, "fghij")
	start := time.Now()
	c.SetDeadline(time.Now().Add(ioTimeout))
	resp, body := readResponse(t, br, "POST")
	if resp.StatusCode != 200 || string(body) != "got abcdefghij" {
		t.Fatalf("streamed body to a TLS upstream: %d %q after %v; want 200 \"got abcdefghij\"", resp.StatusCode, body, time.Since(start))
	}
}
