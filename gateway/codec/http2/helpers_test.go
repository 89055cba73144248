package http2

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xh2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// waitLimit bounds every wait of these tests.
const waitLimit = 10 * time.Second

// netTransport is a Transport over a net.Conn: Write writes synchronously,
// which is what the connection needs (its bytes are not kept). With fail
// set, writes fail (a connection whose writer failed).
type netTransport struct {
	nc   net.Conn
	fail *atomic.Bool
}

func (t netTransport) Read(p []byte) (int, error) { return t.nc.Read(p) }
func (t netTransport) Close() error               { return t.nc.Close() }

func (t netTransport) Write(p []byte) (int, error) {
	if t.fail != nil && t.fail.Load() {
		return 0, errors.New("test transport: write failed")
	}
	return t.nc.Write(p)
}

// testServer accepts TCP connections on 127.0.0.1 and serves each with a
// Conn.
type testServer struct {
	addr  string
	conns chan *Conn
	// failWrites makes the connections' writes fail.
	failWrites atomic.Bool
}

// startServer serves h with opts; the test's cleanup requires every Serve
// to return (after the clients, which close first).
func startServer(t *testing.T, opts Options, h http.Handler) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{addr: ln.Addr().String(), conns: make(chan *Conn, 16)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c := NewConn(netTransport{nc, &s.failWrites}, opts, h)
			s.conns <- c
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := readPreface(nc); err != nil {
					nc.Close()
					return
				}
				c.Serve()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Error("Serve did not return after the clients closed")
		}
	})
	return s
}

// readPreface reads and checks the client preface, which the caller of
// Serve does, within waitLimit.
func readPreface(nc net.Conn) error {
	_ = nc.SetReadDeadline(time.Now().Add(waitLimit))
	defer nc.SetReadDeadline(time.Time{})
	b := make([]byte, len(Preface))
	if _, err := io.ReadFull(nc, b); err != nil {
		return err
	}
	if string(b) != Preface {
		return errors.New("bad preface")
	}
	return nil
}

// conn returns the server side of the next accepted connection.
func (s *testServer) conn(t *testing.T) *Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(waitLimit):
		t.Fatal("no connection accepted")
		return nil
	}
}

// h2cClient is x/net/http2's client speaking h2c with prior knowledge.
func h2cClient(t *testing.T) *http.Client {
	tr := &xh2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitLimit}
}

// rawClient speaks frames to the server: what x/net's client would not
// send, and what it would hide.
type rawClient struct {
	t    *testing.T
	nc   net.Conn
	fr   *xh2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
}

// dialRaw connects, sends the preface and a SETTINGS frame with settings.
// Every read and write of the client ends by the deadline.
func dialRaw(t *testing.T, addr string, settings ...xh2.Setting) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if err := nc.SetDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	rc := &rawClient{t: t, nc: nc, fr: xh2.NewFramer(nc, nc)}
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rc.enc = hpack.NewEncoder(&rc.hbuf)
	if _, err := nc.Write([]byte(Preface)); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return rc
}

// next returns the next frame, answering SETTINGS with an ACK on the way
// (the frame is still returned).
func (rc *rawClient) next() xh2.Frame {
	rc.t.Helper()
	f, err := rc.fr.ReadFrame()
	if err != nil {
		rc.t.Fatalf("read frame: %v", err)
	}
	if sf, ok := f.(*xh2.SettingsFrame); ok && !sf.IsAck() {
		if err := rc.fr.WriteSettingsAck(); err != nil {
			rc.t.Fatal(err)
		}
	}
	return f
}

// until reads frames until match returns true for one, which it returns.
func (rc *rawClient) until(what string, match func(xh2.Frame) bool) xh2.Frame {
	rc.t.Helper()
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("waiting for %s: %v", what, err)
		}
		if sf, ok := f.(*xh2.SettingsFrame); ok && !sf.IsAck() {
			if err := rc.fr.WriteSettingsAck(); err != nil {
				rc.t.Fatal(err)
			}
		}
		if match(f) {
			return f
		}
	}
}

// rst waits for a RST_STREAM on id and returns its code.
func (rc *rawClient) rst(id uint32) xh2.ErrCode {
	rc.t.Helper()
	f := rc.until("RST_STREAM on stream "+strconv.Itoa(int(id)), func(f xh2.Frame) bool {
		r, ok := f.(*xh2.RSTStreamFrame)
		return ok && r.StreamID == id
	})
	return f.(*xh2.RSTStreamFrame).ErrCode
}

// answeredBeforeItsBody sends a POST on id with the start of a body and
// requires the handler's 200 and then RST_STREAM(NO_ERROR): the server's
// answer to a response that ended before its request.
func (rc *rawClient) answeredBeforeItsBody(id uint32) {
	rc.t.Helper()
	rc.headers(id, "POST", false)
	rc.data(id, false, []byte("abc"))
	if status, _ := rc.response(id); status != 200 {
		rc.t.Fatalf("stream %d: status %d", id, status)
	}
	if code := rc.rst(id); code != xh2.ErrCodeNo {
		rc.t.Fatalf("stream %d reset with %v, want NO_ERROR", id, code)
	}
}

// response reads stream id's final response: its status and body (the
// DATA frames up to END_STREAM). Informational heads are skipped.
func (rc *rawClient) response(id uint32) (int, []byte) {
	rc.t.Helper()
	status := 0
	var body []byte
	for {
		f := rc.next()
		if f.Header().StreamID != id {
			continue
		}
		switch f := f.(type) {
		case *xh2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "" {
				n, _ := strconv.Atoi(s)
				if n >= 200 {
					status = n
				}
			}
			if f.StreamEnded() {
				return status, body
			}
		case *xh2.DataFrame:
			body = append(body, f.Data()...)
			if f.StreamEnded() {
				return status, body
			}
		case *xh2.RSTStreamFrame:
			rc.t.Fatalf("stream %d reset with %v", id, f.ErrCode)
		}
	}
}

// headers sends a request head on id: method and path, then the fields
// given as name, value pairs.
func (rc *rawClient) headers(id uint32, method string, end bool, fields ...string) {
	rc.t.Helper()
	rc.hbuf.Reset()
	// A pseudo-header among fields replaces the default one.
	all := []string{":method", method, ":scheme", "http", ":authority", "example.test", ":path", "/"}
	for i := 0; i+1 < len(fields); i += 2 {
		if strings.HasPrefix(fields[i], ":") {
			for j := 0; j < len(all); j += 2 {
				if all[j] == fields[i] {
					all[j+1] = fields[i+1]
				}
			}
			continue
		}
		all = append(all, fields[i], fields[i+1])
	}
	for i := 0; i+1 < len(all); i += 2 {
		if err := rc.enc.WriteField(hpack.HeaderField{Name: all[i], Value: all[i+1]}); err != nil {
			rc.t.Fatal(err)
		}
	}
	if err := rc.fr.WriteHeaders(xh2.HeadersFrameParam{
		StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndStream: end, EndHeaders: true,
	}); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawClient) data(id uint32, end bool, p []byte) {
	rc.t.Helper()
	if err := rc.fr.WriteData(id, end, p); err != nil {
		rc.t.Fatal(err)
	}
}

// closed waits for the server to close the connection: reads end with
// EOF (frames before it are skipped).
func (rc *rawClient) closed() {
	rc.t.Helper()
	for {
		_, err := rc.fr.ReadFrame()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			rc.t.Fatalf("connection not closed: %v", err)
		}
		return
	}
}

// recv receives from ch within waitLimit.
func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}
