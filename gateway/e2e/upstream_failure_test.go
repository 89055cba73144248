package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// An upstream response that turns out broken in the middle of its body:
// when nothing of it has left sluice yet (its head and the body so far are
// still in the connection's write buffer), the client gets a 502 naming
// the failure and the connection closes, not an empty reply; once part of
// it has left, the connection closes short of the announced length.
func TestUpstreamFailureMidBodyIsA502WhileNothingLeft(t *testing.T) {
	up := testutil.RawUpstream(t, func(c net.Conn) {
		req, err := testutil.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		if req.URL.Path == "/big" {
			// 64 KiB of 100 KiB: past the write buffer, part of it
			// leaves before the upstream closes
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", 100<<10, strings.Repeat("b", 64<<10))
			return
		}
		// A chunk, then an invalid chunk size, in one write: found in
		// the same read as the first chunk, before anything is written.
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
	})
	p := gwtest.Start(t, simpleConfig(1, up.Addr))

	c := dial(t, p.Addr("http"))
	fmt.Fprintf(c, "GET /small HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	resp, body := readResponse(t, br, "GET")
	if resp.StatusCode != 502 || !strings.Contains(string(body), "upstream_protocol_error") || !resp.Close {
		t.Fatalf("small: status %d, Connection: close %v, body %q; want 502 naming the protocol error, closing", resp.StatusCode, resp.Close, body)
	}
	assertClosed(t, c, br)

	c = dial(t, p.Addr("http"))
	fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
	br = bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("big: %v", err)
	}
	got, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || err == nil || int64(len(got)) >= resp.ContentLength {
		t.Fatalf("big: status %d, %d of %d bytes, error %v; want 200 cut short", resp.StatusCode, len(got), resp.ContentLength, err)
	}
}
