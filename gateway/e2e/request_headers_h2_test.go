package e2e

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// h2RawConn is an HTTP/2 client connection driven frame by frame.
type h2RawConn struct {
	c  net.Conn
	fr *http2.Framer
}

// dialH2Raw opens an HTTP/2 connection to addr (over TLS with ALPN h2 when
// ca is not nil, else h2c with prior knowledge) and sends the preface and
// SETTINGS. Every read and write is bounded by ioTimeout.
func dialH2Raw(t *testing.T, addr string, ca *testutil.CA) *h2RawConn {
	t.Helper()
	c := dial(t, addr)
	if ca != nil {
		tc := tls.Client(c, &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool, NextProtos: []string{"h2"}})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("ALPN %q, want h2", p)
		}
		c = tc
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	// Acknowledge the server's SETTINGS now: no frame may be sent while a
	// header block is open.
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			if err := fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
			return &h2RawConn{c: c, fr: fr}
		}
	}
}

// requestBlock is the HPACK block of GET path on authority h3.test.
func requestBlock(path string) []byte {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "h3.test"}, {":path", path}, {"x-pad", "0123456789abcdef"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return hb.Bytes()
}

// readUntilEnd reads frames, answering SETTINGS and PING when answer is
// true (not while a header block is open), until the connection ends
// (returning the read error) or stream id ends (returning nil, with its
// status and body in *status and *body).
func (h *h2RawConn) readUntilEnd(id uint32, answer bool, status *string, body *[]byte) error {
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return err
		}
		if answer {
			ackControl(h.fr, f)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				*status = f.PseudoValue("status")
				if f.StreamEnded() {
					return nil
				}
			}
		case *http2.DataFrame:
			if f.StreamID == id {
				*body = append(*body, f.Data()...)
				if f.StreamEnded() {
					return nil
				}
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return fmt.Errorf("stream %d reset: %v", id, f.ErrCode)
			}
		case *http2.GoAwayFrame:
			return fmt.Errorf("GOAWAY %v", f.ErrCode)
		}
	}
}

// TestHTTP2RequestHeadersTimeoutClosesAStalledHeaderBlock sends a HEADERS
// frame without END_HEADERS and never the CONTINUATION: once
// request_headers_timeout has passed, sluice closes the connection (over TLS
// and over h2c) and counts downstream_rq_header_timeout. Header blocks that
// end in time, also when the CONTINUATION comes late within the timeout
// and when the connection waits longer than the timeout between requests,
// are served.
func TestHTTP2RequestHeadersTimeoutClosesAStalledHeaderBlock(t *testing.T) {
	// 600 ms, with pauses of 50 ms inside a header block: a loaded
	// machine's scheduling delays stay far inside the margin.
	const timeout = 600 * time.Millisecond
	p, ca, admin := h3ProxyWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}), `request_headers_timeout = "600ms"`)
	const stat = "http.ingress_https.downstream_rq_header_timeout"

	stalled := func(t *testing.T, h *h2RawConn) {
		block := requestBlock("/stalled")
		start := time.Now()
		if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:len(block)/2], EndStream: true}); err != nil {
			t.Fatal(err)
		}
		var status string
		var body []byte
		err := h.readUntilEnd(1, false, &status, &body)
		elapsed := time.Since(start)
		if err == nil {
			t.Fatalf("stream answered %s %q without its CONTINUATION", status, body)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection still open after %v (request_headers_timeout %v)", elapsed, timeout)
		}
		if elapsed < timeout {
			t.Fatalf("connection ended after %v, before request_headers_timeout %v: %v", elapsed, timeout, err)
		}
	}

	t.Run("TLS: stalled block closes the connection", func(t *testing.T) {
		stalled(t, dialH2Raw(t, p.Addr("https"), ca))
		waitCounter(t, admin, stat, 1)
	})

	t.Run("CONTINUATION in time and pauses between requests", func(t *testing.T) {
		before := adminCounters(t, admin)[stat]
		h := dialH2Raw(t, p.Addr("https"), ca)
		for i, id := range []uint32{1, 3} {
			block := requestBlock(fmt.Sprint("/in-time-", i))
			if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[:len(block)/2], EndStream: true}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(timeout / 12) // the block stays open for a while, within the timeout
			if err := h.fr.WriteContinuation(id, true, block[len(block)/2:]); err != nil {
				t.Fatal(err)
			}
			var status string
			var body []byte
			if err := h.readUntilEnd(id, true, &status, &body); err != nil || status != "200" || string(body) != "ok" {
				t.Fatalf("stream %d: status %q body %q err %v; want 200 ok", id, status, body, err)
			}
			time.Sleep(2 * timeout) // no block open: the timeout does not apply
		}
		if got := adminCounters(t, admin)[stat]; got != before {
			t.Fatalf("%s = %v after requests in time, want %v", stat, got, before)
		}
	})

	t.Run("h2c: stalled block closes the connection", func(t *testing.T) {
		up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
		cfg := withHCM(simpleConfig(1, up.Addr), `request_headers_timeout = "600ms"`) + "\n[admin]\naddress = \"127.0.0.1:0\"\n"
		p2 := gwtest.Start(t, cfg)
		admin2, _ := p2.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
		stalled(t, dialH2Raw(t, p2.Addr("http"), nil))
		waitCounter(t, admin2, "http.ingress_http.downstream_rq_header_timeout", 1)
	})
}

// A request with Expect: 100-continue gets its 100 (Continue) head before
// the client sends the body, and the body then reaches the upstream.
func TestHTTP2ExpectContinueGets100BeforeTheBody(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	h := dialH2Raw(t, p.Addr("http"), nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "h2.test"}, {":path", "/"},
		{"content-length", "5"}, {"expect", "100-continue"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for 100 (Continue): %v", err)
		}
		ackControl(h.fr, f)
		if mh, ok := f.(*http2.MetaHeadersFrame); ok && mh.StreamID == 1 {
			if s := mh.PseudoValue("status"); s != "100" || mh.StreamEnded() {
				t.Fatalf("first head on the stream: status %s (end %v), want 100", s, mh.StreamEnded())
			}
			break
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			t.Fatalf("stream reset: %v", rst.ErrCode)
		}
	}
	if err := h.fr.WriteData(1, true, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	var status string
	var body []byte
	if err := h.readUntilEnd(1, true, &status, &body); err != nil {
		t.Fatal(err)
	}
	if status != "200" || string(body) != "hello" {
		t.Fatalf("got %s %q, want 200 \"hello\"", status, body)
	}
}
