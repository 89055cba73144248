package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestMaxRequestsPerConnection checks max_requests_per_connection = 2: an
// HTTP/1.1 connection answers its second request with Connection: close
// and closes; an HTTP/2 connection sends GOAWAY with its second stream,
// finishes both and closes; each connection that
// reaches the limit counts once in downstream_cx_max_requests_reached.
func TestMaxRequestsPerConnection(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	p := gwtest.Start(t, h2Config("max_requests_per_connection = 2", route(`prefix = "/"`, "up"), cluster("up", up.Addr))+
		"\n[admin]\naddress = \"127.0.0.1:0\"\n")
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)

	c := dial(t, p.Addr("http"))
	br := bufio.NewReader(c)
	for i := 1; i <= 2; i++ {
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || string(body) != "ok" || resp.Close != (i == 2) {
			t.Fatalf("HTTP/1.1 request %d: %d %q close=%v; want 200, Connection: close only on the second", i, resp.StatusCode, body, resp.Close)
		}
	}
	assertClosed(t, c, br)
	waitCounter(t, admin, "http.ingress_http.downstream_cx_max_requests_reached", 1)

	// HTTP/2, raw frames: stream 1, then stream 3; the second brings the
	// GOAWAY (graceful: 2^31-1, then the last stream), both complete, and
	// the connection closes.
	conn, fr := rawH2Get(t, p.Addr("http"), "/")
	conn.SetDeadline(time.Now().Add(ioTimeout))
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	ended := map[uint32]bool{}
	var goaways []uint32
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break // closed after the final GOAWAY
		}
		ackControl(fr, f)
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			goaways = append(goaways, f.LastStreamID)
		case *http2.DataFrame:
			if f.StreamEnded() {
				ended[f.StreamID] = true
				if f.StreamID == 1 {
					fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
				}
			}
		}
	}
	if !ended[1] || !ended[3] || len(goaways) == 0 || goaways[len(goaways)-1] != 3 {
		t.Fatalf("HTTP/2: streams ended %v, GOAWAY last-stream ids %v; want 1 and 3 answered, then GOAWAY naming 3", ended, goaways)
	}
	waitCounter(t, admin, "http.ingress_http.downstream_cx_max_requests_reached", 2)
}
