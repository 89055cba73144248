package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// An HTTP/1.1 client that goes away while its request waits at the
// upstream is noticed (within a second or two) and the upstream request is
// aborted: the upstream sees its connection closed long before it would
// have answered, and the access log has flag DC, as Envoy's and nginx's
// do. A client that stays gets its slow answer.
func TestHTTP1ClientGoneAbortsTheUpstreamRequest(t *testing.T) {
	gone := make(chan string, 4) // paths whose client-side connection the upstream saw end
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			gone <- r.URL.Path
			return
		case <-time.After(2500 * time.Millisecond): // longer than two looks
		}
		io.WriteString(w, "slow answer")
	}))
	log := t.TempDir() + "/access.log"
	cfg := strings.Replace(simpleConfig(1, up.Addr), "[[listener.filter_chain.filter.config.http_filter]]",
		fmt.Sprintf("[[listener.filter_chain.filter.config.access_log]]\n      path = %q\n      format = \"%%REQ(:PATH)%% %%RESPONSE_FLAGS%%\\n\"\n      [[listener.filter_chain.filter.config.http_filter]]", log), 1)
	p := gwtest.Start(t, cfg)

	// The client that stays.
	stayed := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Timeout: ioTimeout}).Get("http://" + p.Addr("http") + "/stays")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "slow answer" {
				err = fmt.Errorf("status %d, body %q", resp.StatusCode, b)
			}
		}
		stayed <- err
	}()

	// The client that goes.
	c := dial(t, p.Addr("http"))
	fmt.Fprintf(c, "GET /goes HTTP/1.1\r\nHost: a\r\n\r\n")
	c.Close()
	select {
	case path := <-gone:
		// before the upstream's answer at 2.5 s
		if path != "/goes" {
			t.Fatalf("the upstream saw %s end, want /goes", path)
		}
	case <-time.After(ioTimeout):
		t.Fatal("the upstream request was not aborted after the client went away")
	}
	if err := <-stayed; err != nil {
		t.Fatalf("the client that stayed: %v", err)
	}
	var lines string
	for deadline := time.Now().Add(ioTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(log)
		if lines = string(b); strings.Contains(lines, "/goes ") && strings.Contains(lines, "/stays ") {
			break
		}
	}
	if !strings.Contains(lines, "/goes DC\n") || !strings.Contains(lines, "/stays -\n") {
		t.Fatalf("access log %q, want /goes with flag DC and /stays with none", lines)
	}
}

// Over TLS too, where a client closing properly sends close_notify before
// its FIN: the alert's bytes wait unread on the socket, and the FIN behind
// them is what counts.
func TestHTTP1ClientGoneOverTLSAbortsTheUpstreamRequest(t *testing.T) {
	gone := make(chan struct{}, 1)
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			gone <- struct{}{}
		case <-time.After(ioTimeout):
		}
	}))
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "gone.test")
	p := gwtest.Start(t, tlsListenerConfig(fmt.Sprintf("  [[listener.filter_chain.tls.certificate]]\n  cert_file = %q\n  key_file = %q\n", cert, key), cluster("up", up.Addr)))
	c, err := tls.Dial("tcp", p.Addr("https"), &tls.Config{ServerName: "gone.test", RootCAs: ca.Pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /goes HTTP/1.1\r\nHost: gone.test\r\n\r\n")
	// close_notify, then FIN, with the socket left open: a close with the
	// server's unread session tickets would send a reset instead.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := c.NetConn().(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gone:
	case <-time.After(ioTimeout):
		t.Fatal("the upstream request was not aborted after the TLS client went away")
	}
}

// And when the cluster speaks HTTP/2 upstream: the HTTP/1.1 client going
// away cancels the upstream stream.
func TestHTTP1ClientGoneCancelsAnHTTP2UpstreamRequest(t *testing.T) {
	gone := make(chan struct{}, 1)
	addr, _ := h2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			gone <- struct{}{}
		case <-time.After(ioTimeout):
		}
	}), false)
	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "up"), cluster("up", addr)+"protocol = \"http2\"\n"))
	c := dial(t, p.Addr("http"))
	fmt.Fprintf(c, "GET /goes HTTP/1.1\r\nHost: a\r\n\r\n")
	c.Close()
	select {
	case <-gone:
	case <-time.After(ioTimeout):
		t.Fatal("the upstream HTTP/2 request was not cancelled after the client went away")
	}
}
