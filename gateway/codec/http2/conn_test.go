package http2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	xh2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func testOpts() Options { return Options{MaxConcurrentStreams: 100} }

// pattern returns n bytes that differ with their offset, so that a lost,
// repeated or reordered chunk shows.
func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i/251)
	}
	return p
}

// Writes large enough to be framed from the handler's own slice and small
// ones that collect in the stream's buffer arrive whole and in order, with
// the buffer written before a large write that follows it; and the handler
// may reuse its slice once Write returned.
func TestLargeAndSmallWritesKeepTheirOrder(t *testing.T) {
	body := pattern(40000)
	sizes := []int{5000, 100, 10000, 3, 4096, 4095, 1, 16705}
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scratch := make([]byte, 0, len(body))
		off := 0
		for _, n := range sizes {
			scratch = append(scratch[:0], body[off:off+n]...)
			if _, err := w.Write(scratch); err != nil {
				return
			}
			clear(scratch) // the codec must not keep a reference to it
			off += n
		}
	}))
	resp, err := h2cClient(t).Get("http://" + s.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes (%v), equal to the %d written: %v", len(got), err, len(body), bytes.Equal(got, body))
	}
}

func TestGetAndPostWithBodiesBothWays(t *testing.T) {
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "hello "+r.RequestURI)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("X-Got", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	client := h2cClient(t)

	resp, err := client.Get("http://" + s.addr + "/a/b")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(body) != "hello /a/b" ||
		resp.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("GET: %v %d %d %q %v", err, resp.StatusCode, resp.ProtoMajor, body, resp.Header)
	}

	sent := pattern(300 << 10)
	resp, err = client.Post("http://"+s.addr+"/echo", "application/octet-stream", bytes.NewReader(sent))
	if err != nil {
		t.Fatal(err)
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Got") != strconv.Itoa(len(sent)) || !bytes.Equal(body, sent) {
		t.Fatalf("POST: %v %d %v, %d bytes back (equal %v)", err, resp.StatusCode, resp.Header, len(body), bytes.Equal(body, sent))
	}
}

// The client's stream window is 16 KiB: the handler's single Write of a
// larger body returns only after the client has granted it all, the server
// never sends beyond the window, and every byte arrives in order.
func TestDownloadWaitsForTheClientsWindow(t *testing.T) {
	const window = 16384
	want := pattern(200 << 10)
	wrote := make(chan struct{})
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(want)
		close(wrote)
	}))
	rc := dialRaw(t, s.addr, xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: window})
	if err := rc.fr.WriteWindowUpdate(0, 1<<30); err != nil {
		t.Fatal(err)
	}
	rc.headers(1, "GET", true)

	var got []byte
	granted := window
	for {
		f := rc.next()
		switch f := f.(type) {
		case *xh2.RSTStreamFrame, *xh2.GoAwayFrame:
			t.Fatalf("unexpected %v", f)
		case *xh2.DataFrame:
			got = append(got, f.Data()...)
			if len(got) > granted {
				t.Fatalf("server sent %d bytes, the window allowed %d", len(got), granted)
			}
			if f.StreamEnded() {
				if !bytes.Equal(got, want) {
					t.Fatalf("got %d bytes, want %d (equal %v)", len(got), len(want), bytes.Equal(got, want))
				}
				recv(t, "the handler's Write", wrote)
				return
			}
			if len(got) == granted {
				select {
				case <-wrote:
					t.Fatalf("Write returned with %d of %d bytes sent", len(got), len(want))
				default:
				}
				granted += 10000
				if err := rc.fr.WriteWindowUpdate(1, 10000); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// A 200 KiB upload on a 16 KiB stream window (64 KiB connection window),
// read by a handler that reads only when told to: the server grants the
// client no more than the handler has read, the client (which sends only
// what it is granted) never gets an error, and the handler gets every
// byte.
func TestUploadIsCreditedAsTheHandlerReads(t *testing.T) {
	const window = 16384
	opts := testOpts()
	opts.InitialStreamWindowSize = window
	sent := pattern(200 << 10)
	readReq := make(chan int)
	var consumed atomic.Int64
	type result struct {
		body []byte
		err  error
	}
	done := make(chan result, 1)
	s := startServer(t, opts, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		for n := range readReq {
			buf := make([]byte, n)
			if _, err := io.ReadFull(r.Body, buf); err != nil {
				done <- result{err: err}
				return
			}
			body = append(body, buf...)
			consumed.Add(int64(n))
			readReq <- n
		}
		rest, err := io.ReadAll(r.Body)
		done <- result{append(body, rest...), err}
		io.WriteString(w, "ok")
	}))
	rc := dialRaw(t, s.addr)
	rc.headers(1, "POST", false)

	off := 0
	streamWin, connWin := int64(window), int64(initialWindow)
	streamGranted, connGranted := int64(window), int64(initialWindow)
	for off < len(sent) {
		if n := int(min(streamWin, connWin, 16384, int64(len(sent)-off))); n > 0 {
			rc.data(1, false, sent[off:off+n])
			off += n
			streamWin -= int64(n)
			connWin -= int64(n)
			continue
		}
		// Out of window: let the handler read part of what it has, then
		// wait for the credit.
		n := int(min(5000, int64(off)-consumed.Load()))
		readReq <- n
		recv(t, "the handler's read", readReq)
		for streamWin <= 0 || connWin <= 0 {
			switch f := rc.next().(type) {
			case *xh2.WindowUpdateFrame:
				inc := int64(f.Increment)
				if f.StreamID == 0 {
					connWin += inc
					connGranted += inc
				} else {
					streamWin += inc
					streamGranted += inc
				}
				// The connection's first WINDOW_UPDATE may restore its
				// window to the configured size: allow it.
				if streamGranted > window+consumed.Load() || connGranted > int64(initialWindow)+consumed.Load() {
					t.Fatalf("granted %d (stream) %d (connection) with %d bytes read", streamGranted, connGranted, consumed.Load())
				}
			case *xh2.RSTStreamFrame, *xh2.GoAwayFrame:
				t.Fatalf("unexpected %v", f)
			}
		}
	}
	rc.data(1, true, nil)
	close(readReq)
	res := recv(t, "the request body", done)
	if res.err != nil || !bytes.Equal(res.body, sent) {
		t.Fatalf("handler read %d bytes (equal %v), error %v", len(res.body), bytes.Equal(res.body, sent), res.err)
	}
	if status, body := rc.response(1); status != 200 || string(body) != "ok" {
		t.Fatalf("response %d %q", status, body)
	}
}

func TestTrailersBothWays(t *testing.T) {
	type seen struct{ trailer, body string }
	got := make(chan seen, 1)
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// (Request.Trailer may be read only after the body's EOF.)
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Trailer.Get("X-Req-Sum"), string(body)}
		w.Header().Set(http.TrailerPrefix+"X-Resp-Sum", "resp-42")
		io.WriteString(w, "body")
	}))
	req, err := http.NewRequest("POST", "http://"+s.addr+"/", io.NopCloser(strings.NewReader("payload")))
	if err != nil {
		t.Fatal(err)
	}
	req.Trailer = http.Header{"X-Req-Sum": {"req-42"}}
	resp, err := h2cClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(body) != "body" {
		t.Fatalf("response: %v %d %q", err, resp.StatusCode, body)
	}
	if v := resp.Trailer.Get("X-Resp-Sum"); v != "resp-42" {
		t.Errorf("response trailer %q, want resp-42 (trailers %v)", v, resp.Trailer)
	}
	if _, ok := resp.Header[http.TrailerPrefix+"X-Resp-Sum"]; ok {
		t.Error("the trailer was sent in the response head")
	}
	v := recv(t, "the handler", got)
	if v.body != "payload" || v.trailer != "req-42" {
		t.Errorf("handler saw body %q, trailer %q", v.body, v.trailer)
	}
}

func TestStreamsBeyondMaxConcurrentStreamsAreRefused(t *testing.T) {
	opts := testOpts()
	opts.MaxConcurrentStreams = 1
	release := make(chan struct{})
	s := startServer(t, opts, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "first")
	}))
	rc := dialRaw(t, s.addr)
	rc.until("the server's SETTINGS", func(f xh2.Frame) bool {
		sf, ok := f.(*xh2.SettingsFrame)
		if !ok || sf.IsAck() {
			return false
		}
		if v, _ := sf.Value(xh2.SettingMaxConcurrentStreams); v != 1 {
			t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d", v)
		}
		return true
	})
	rc.headers(1, "GET", true)
	rc.headers(3, "GET", true)
	if code := rc.rst(3); code != xh2.ErrCodeRefusedStream {
		t.Fatalf("stream 3 reset with %v, want REFUSED_STREAM", code)
	}
	close(release)
	if status, body := rc.response(1); status != 200 || string(body) != "first" {
		t.Fatalf("stream 1: %d %q", status, body)
	}
	// With stream 1 done, a new stream is served.
	rc.headers(5, "GET", true)
	if status, _ := rc.response(5); status != 200 {
		t.Fatalf("stream 5: %d", status)
	}
}

func TestShutdownIsTwoGoAwaysAndWaitsForOpenStreams(t *testing.T) {
	started := make(chan string, 4)
	release := make(chan struct{})
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- r.RequestURI
		<-release
		io.WriteString(w, "done "+r.RequestURI)
	}))
	rc := dialRaw(t, s.addr)
	rc.headers(1, "GET", true, ":path", "/one")
	_ = recv(t, "stream 1's handler", started)
	c := s.conn(t)
	// The final GOAWAY must wait for the PING's answer, not for the
	// one-second bound, which a loaded machine could reach first.
	c.mu.Lock()
	c.shutdownRTT = time.Hour
	c.mu.Unlock()
	c.Shutdown()

	ga := rc.until("the first GOAWAY", func(f xh2.Frame) bool { _, ok := f.(*xh2.GoAwayFrame); return ok }).(*xh2.GoAwayFrame)
	if ga.LastStreamID != maxWindow || ga.ErrCode != xh2.ErrCodeNo {
		t.Fatalf("first GOAWAY: last stream %d, code %v", ga.LastStreamID, ga.ErrCode)
	}
	ping := rc.next()
	pf, ok := ping.(*xh2.PingFrame)
	if !ok || pf.IsAck() {
		t.Fatalf("after the first GOAWAY: %v, want a PING", ping)
	}
	// A stream opened before the client answers the PING is still served.
	rc.headers(3, "GET", true)
	if err := rc.fr.WritePing(true, pf.Data); err != nil {
		t.Fatal(err)
	}
	_ = recv(t, "stream 3's handler", started)
	ga = rc.until("the final GOAWAY", func(f xh2.Frame) bool {
		switch f := f.(type) {
		case *xh2.GoAwayFrame:
			return true
		case *xh2.MetaHeadersFrame, *xh2.DataFrame, *xh2.RSTStreamFrame:
			t.Fatalf("before the final GOAWAY: %v", f)
		}
		return false
	}).(*xh2.GoAwayFrame)
	if ga.LastStreamID != 3 || ga.ErrCode != xh2.ErrCodeNo {
		t.Fatalf("final GOAWAY: last stream %d, code %v", ga.LastStreamID, ga.ErrCode)
	}
	// A stream after the final GOAWAY is ignored.
	rc.headers(5, "GET", true)
	close(release)
	got := map[uint32]string{}
	for ended := 0; ended < 2; {
		f := rc.next()
		if f.Header().StreamID == 5 {
			t.Fatalf("stream 5 was served after the final GOAWAY: %v", f)
		}
		switch f := f.(type) {
		case *xh2.DataFrame:
			got[f.StreamID] += string(f.Data())
			if f.StreamEnded() {
				ended++
			}
		case *xh2.MetaHeadersFrame:
			if f.StreamEnded() {
				ended++
			}
		case *xh2.RSTStreamFrame:
			t.Fatalf("stream %d reset with %v", f.StreamID, f.ErrCode)
		}
	}
	if got[1] != "done /one" || got[3] != "done /" {
		t.Fatalf("responses %v", got)
	}
	rc.closed()
	// The connection closed once its streams were done: a handler run for
	// stream 5 would have said so by then.
	select {
	case u := <-started:
		t.Fatalf("a handler ran after the final GOAWAY: %s", u)
	default:
	}
}

func TestIdleTimeoutSendsGoAwayAndCloses(t *testing.T) {
	opts := testOpts()
	opts.IdleTimeout = 100 * time.Millisecond
	s := startServer(t, opts, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rc := dialRaw(t, s.addr)
	ga := rc.until("GOAWAY", func(f xh2.Frame) bool { _, ok := f.(*xh2.GoAwayFrame); return ok }).(*xh2.GoAwayFrame)
	if ga.ErrCode != xh2.ErrCodeNo || ga.LastStreamID != 0 {
		t.Fatalf("GOAWAY last stream %d code %v", ga.LastStreamID, ga.ErrCode)
	}
	rc.closed()
}

func TestClientResetCancelsTheRequestContext(t *testing.T) {
	started := make(chan struct{})
	result := make(chan error, 1)
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			result <- r.Context().Err()
		case <-time.After(waitLimit):
			result <- errors.New("context not canceled")
		}
	}))
	rc := dialRaw(t, s.addr)
	rc.headers(1, "GET", true)
	recv(t, "the handler", started)
	if err := rc.fr.WriteRSTStream(1, xh2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, "the request context's end", result); !errors.Is(err, context.Canceled) {
		t.Fatalf("context error %v", err)
	}
}

func TestHandlerAbortResetsTheStream(t *testing.T) {
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.RequestURI == "/after-head" {
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
		}
		panic(http.ErrAbortHandler)
	}))
	rc := dialRaw(t, s.addr)
	rc.headers(1, "GET", true)
	if code := rc.rst(1); code != xh2.ErrCodeInternal {
		t.Fatalf("stream 1 reset with %v", code)
	}
	rc.headers(3, "GET", true, ":path", "/after-head")
	var sawData bool
	f := rc.until("RST_STREAM on stream 3", func(f xh2.Frame) bool {
		switch f := f.(type) {
		case *xh2.DataFrame:
			if f.StreamID == 3 {
				sawData = true
				if f.StreamEnded() {
					t.Fatal("the aborted response ended normally")
				}
			}
		case *xh2.RSTStreamFrame:
			return f.StreamID == 3
		}
		return false
	}).(*xh2.RSTStreamFrame)
	if f.ErrCode != xh2.ErrCodeInternal || !sawData {
		t.Fatalf("stream 3 reset with %v, data before it %v", f.ErrCode, sawData)
	}
}

func TestHeaderListOverTheLimitGets431(t *testing.T) {
	opts := testOpts()
	opts.MaxHeaderListSize = 1024
	var served atomic.Bool
	s := startServer(t, opts, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served.Store(true) }))
	rc := dialRaw(t, s.addr)
	// Over the limit in fields shorter than it, in one frame: x/net's
	// Framer ends the connection for a field longer than the limit, a
	// frame over four times it, or a CONTINUATION past it.
	big := strings.Repeat("a", 400)
	rc.headers(1, "GET", true, "x-big-1", big, "x-big-2", big, "x-big-3", big)
	if status, _ := rc.response(1); status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d", status)
	}
	if served.Load() {
		t.Fatal("the handler ran")
	}
	// The connection goes on.
	rc.headers(3, "GET", true, "x-small", "b")
	if status, _ := rc.response(3); status != 200 || !served.Load() {
		t.Fatalf("next stream: %d, served %v", status, served.Load())
	}
}

func TestExpectContinueIsSentOnTheFirstBodyRead(t *testing.T) {
	started := make(chan struct{}, 1)
	readNow := make(chan struct{})
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-readNow:
		case <-r.Context().Done():
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Write(body)
	}))
	rc := dialRaw(t, s.addr)
	rc.headers(1, "POST", false, "expect", "100-continue", "content-length", "5")
	// The handler runs but has not read: the server answers a PING sent
	// now, and nothing of stream 1 may come before that answer.
	recv(t, "the handler", started)
	if err := rc.fr.WritePing(false, [8]byte{1}); err != nil {
		t.Fatal(err)
	}
	rc.until("PING ACK", func(f xh2.Frame) bool {
		if f.Header().StreamID == 1 {
			t.Fatalf("before the first read: %v", f)
		}
		p, ok := f.(*xh2.PingFrame)
		return ok && p.IsAck()
	})
	// The first read sends it: the client has sent no body byte yet, so
	// the read is still waiting when the 100 arrives.
	close(readNow)
	hf := rc.until("100", func(f xh2.Frame) bool { return f.Header().StreamID == 1 }).(*xh2.MetaHeadersFrame)
	if s := hf.PseudoValue("status"); s != "100" || hf.StreamEnded() {
		t.Fatalf("first head %q (end stream %v)", s, hf.StreamEnded())
	}
	rc.data(1, true, []byte("hello"))
	if status, body := rc.response(1); status != 200 || string(body) != "hello" {
		t.Fatalf("response %d %q", status, body)
	}
}

// blockedReadHandler starts a body read that has nothing to read, ends it
// with unblock once proceed is closed and reports the read's error. The
// request expects 100-continue: the read sends the 100 under the
// connection's lock, which it keeps until it waits, and unblock needs that
// lock; so a client that got the 100 before closing proceed makes unblock
// end a read that is waiting, not one yet to start.
func blockedReadHandler(proceed <-chan struct{}, unblock func(w http.ResponseWriter, r *http.Request), result chan<- error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errc := make(chan error, 1)
		go func() {
			_, err := r.Body.Read(make([]byte, 10))
			errc <- err
		}()
		select {
		case <-proceed:
		case <-r.Context().Done():
			result <- fmt.Errorf("no go-ahead: %w", r.Context().Err())
			return
		}
		unblock(w, r)
		select {
		case err := <-errc:
			result <- err
		case <-r.Context().Done():
			result <- fmt.Errorf("read not unblocked: %w", r.Context().Err())
		}
	})
}

// startBlockedRead sends the request of blockedReadHandler, waits for the
// 100 (Continue) that shows its read waits, and lets unblock run.
func startBlockedRead(t *testing.T, rc *rawClient, proceed chan<- struct{}) {
	t.Helper()
	rc.headers(1, "POST", false, "expect", "100-continue")
	hf := rc.until("100 (the read waits)", func(f xh2.Frame) bool { return f.Header().StreamID == 1 }).(*xh2.MetaHeadersFrame)
	if s := hf.PseudoValue("status"); s != "100" {
		t.Fatalf("first head %q, want 100", s)
	}
	close(proceed)
}

func TestRequestBodyCloseUnblocksARead(t *testing.T) {
	result := make(chan error, 1)
	proceed := make(chan struct{})
	s := startServer(t, testOpts(), blockedReadHandler(proceed, func(w http.ResponseWriter, r *http.Request) {
		r.Body.Close()
	}, result))
	rc := dialRaw(t, s.addr)
	startBlockedRead(t, rc, proceed)
	err := recv(t, "the read", result)
	if err == nil || err == io.EOF || errors.Is(err, context.Canceled) {
		t.Fatalf("read error %v", err)
	}
	if status, _ := rc.response(1); status != 200 {
		t.Fatalf("status %d", status)
	}
}

func TestPastReadDeadlineUnblocksARead(t *testing.T) {
	result := make(chan error, 1)
	proceed := make(chan struct{})
	s := startServer(t, testOpts(), blockedReadHandler(proceed, func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
			panic(err)
		}
	}, result))
	rc := dialRaw(t, s.addr)
	startBlockedRead(t, rc, proceed)
	if err := recv(t, "the read", result); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read error %v", err)
	}
	if status, _ := rc.response(1); status != 200 {
		t.Fatalf("status %d", status)
	}
}

func TestContentLengthMismatchResetsTheStream(t *testing.T) {
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
	}))
	rc := dialRaw(t, s.addr)
	// Shorter than declared.
	rc.headers(1, "POST", false, "content-length", "10")
	rc.data(1, true, []byte("abc"))
	if code := rc.rst(1); code != xh2.ErrCodeProtocol {
		t.Fatalf("short body: stream reset with %v", code)
	}
	// Longer than declared.
	rc.headers(3, "POST", false, "content-length", "2")
	rc.data(3, false, []byte("abc"))
	if code := rc.rst(3); code != xh2.ErrCodeProtocol {
		t.Fatalf("long body: stream reset with %v", code)
	}
	// A declared body on a stream that ends with its head.
	rc.headers(5, "POST", true, "content-length", "2")
	if code := rc.rst(5); code != xh2.ErrCodeProtocol {
		t.Fatalf("no body: stream reset with %v", code)
	}
	// A matching one is served.
	rc.headers(7, "POST", false, "content-length", "3")
	rc.data(7, true, []byte("abc"))
	if status, _ := rc.response(7); status != 200 {
		t.Fatalf("status %d", status)
	}
}

// A handler out of window whose frames fail to write (the connection's
// writer failed) gets an error instead of waiting for a WINDOW_UPDATE that
// cannot come.
func TestWriteFailureEndsAWriteWaitingForWindow(t *testing.T) {
	proceed := make(chan struct{})
	result := make(chan error, 1)
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-proceed:
		case <-r.Context().Done():
		}
		_, err := w.Write(make([]byte, 5000))
		result <- err
	}))
	rc := dialRaw(t, s.addr, xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: 0})
	rc.headers(1, "GET", true)
	// The PING's answer shows the server has the client's SETTINGS.
	if err := rc.fr.WritePing(false, [8]byte{2}); err != nil {
		t.Fatal(err)
	}
	rc.until("PING ACK", func(f xh2.Frame) bool { p, ok := f.(*xh2.PingFrame); return ok && p.IsAck() })
	s.failWrites.Store(true)
	close(proceed)
	if err := recv(t, "the handler's Write", result); err == nil {
		t.Fatal("Write succeeded on a failed connection")
	}
	rc.closed()
}

// fieldWriter is the field-list API of the stream (the ResponseWriter).
type fieldWriter interface {
	RequestFields() []hpack.HeaderField
	WriteHeaderFields(code int, fields []httpfilter.Field)
	WriteTrailerFields(fields []httpfilter.Field)
}

func field(name, value string) httpfilter.Field {
	return httpfilter.Field{Name: []byte(name), Value: []byte(value)}
}

// With RawFields the handler gets the request fields as decoded and
// answers with field lists: connection-specific fields are left out of
// both the head and the trailers.
func TestRawFieldsAndFieldListResponses(t *testing.T) {
	opts := testOpts()
	opts.RawFields = true
	got := make(chan []hpack.HeaderField, 1)
	s := startServer(t, opts, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fw := w.(fieldWriter)
		got <- append([]hpack.HeaderField(nil), fw.RequestFields()...)
		if len(r.Header) != 0 {
			t.Errorf("Request.Header %v with RawFields", r.Header)
		}
		fw.WriteHeaderFields(201, []httpfilter.Field{field("x-a", "1"), field("connection", "close"), field("x-b", "2")})
		fw.WriteTrailerFields([]httpfilter.Field{field("x-sum", "s"), field("upgrade", "h2c")})
		io.WriteString(w, "body")
	}))
	rc := dialRaw(t, s.addr)
	rc.headers(1, "GET", true, "cookie", "a=1", "x-one", "v", "cookie", "b=2")
	fields := recv(t, "the handler", got)
	want := []hpack.HeaderField{{Name: "cookie", Value: "a=1"}, {Name: "x-one", Value: "v"}, {Name: "cookie", Value: "b=2"}}
	if fmt.Sprint(fields) != fmt.Sprint(want) {
		t.Fatalf("request fields %v, want %v", fields, want)
	}
	var head, trailers []hpack.HeaderField
	var body []byte
	for done := false; !done; {
		switch f := rc.next().(type) {
		case *xh2.MetaHeadersFrame:
			if head == nil {
				head = f.Fields
			} else {
				trailers = f.Fields
			}
			done = f.StreamEnded()
		case *xh2.DataFrame:
			body = append(body, f.Data()...)
			done = f.StreamEnded()
		case *xh2.RSTStreamFrame:
			t.Fatalf("reset with %v", f.ErrCode)
		}
	}
	if fmt.Sprint(head) != fmt.Sprint([]hpack.HeaderField{{Name: ":status", Value: "201"}, {Name: "x-a", Value: "1"}, {Name: "x-b", Value: "2"}}) ||
		fmt.Sprint(trailers) != fmt.Sprint([]hpack.HeaderField{{Name: "x-sum", Value: "s"}}) || string(body) != "body" {
		t.Fatalf("head %v, body %q, trailers %v", head, body, trailers)
	}
}

// AfterReset runs its function when the client resets the stream, and at
// once when registered on a stream already reset.
func TestAfterResetRunsOnTheClientsReset(t *testing.T) {
	type resetter interface {
		AfterReset(f func()) (stop func() bool)
	}
	registered := make(chan struct{})
	ran := make(chan string, 2)
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs := w.(resetter)
		rs.AfterReset(func() { ran <- "first" })
		close(registered)
		select {
		case <-r.Context().Done():
		case <-time.After(waitLimit):
			return
		}
		rs.AfterReset(func() { ran <- "late" })
	}))
	rc := dialRaw(t, s.addr)
	rc.headers(1, "GET", true)
	recv(t, "the handler", registered)
	if err := rc.fr.WriteRSTStream(1, xh2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	a, b := recv(t, "AfterReset", ran), recv(t, "AfterReset", ran)
	if !(a == "first" && b == "late" || a == "late" && b == "first") {
		t.Fatalf("ran %q and %q", a, b)
	}
}

// A request whose :method, :path or :authority could not be an HTTP/1.1
// request line's is malformed (RFC 9113 §8.3.1): its stream is reset with
// PROTOCOL_ERROR and the handler never sees it; the connection goes on.
func TestMalformedRequestTargetsAreReset(t *testing.T) {
	var served atomic.Int32
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
	}))
	rc := dialRaw(t, s.addr)
	id := uint32(1)
	for _, tc := range []struct {
		method string
		fields []string
	}{
		{"GET", []string{":path", "/a b"}},
		{"GET", []string{":path", "/a\x7fb"}},
		{"GET", []string{":path", "a"}},
		{"GET", []string{":path", "/a#frag"}},
		{"GET", []string{":path", "*"}},
		{"G ET", nil},
		{"GET", []string{":authority", "user@example.test"}},
		{"GET", []string{":authority", "exa mple.test"}},
	} {
		rc.headers(id, tc.method, true, tc.fields...)
		if code := rc.rst(id); code != xh2.ErrCodeProtocol {
			t.Errorf("%s %q: stream reset with %v, want PROTOCOL_ERROR", tc.method, tc.fields, code)
		}
		id += 2
	}
	rc.headers(id, "OPTIONS", true, ":path", "*")
	if status, _ := rc.response(id); status != 200 {
		t.Fatalf("OPTIONS *: status %d", status)
	}
	if n := served.Load(); n != 1 {
		t.Fatalf("the handler served %d requests, want only the valid one", n)
	}
}

// Without RawFields the request has the URL of the http.Handler contract.
func TestRequestURLIsParsed(t *testing.T) {
	got := make(chan string, 1)
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Path + " " + r.URL.RawQuery + " " + r.RequestURI
	}))
	rc := dialRaw(t, s.addr)
	rc.headers(1, "GET", true, ":path", "/a/b?c=d")
	if status, _ := rc.response(1); status != 200 {
		t.Fatalf("status %d", status)
	}
	if u := recv(t, "the handler's URL", got); u != "/a/b c=d /a/b?c=d" {
		t.Fatalf("URL %q", u)
	}
}

// Header blocks that decode but break RFC 9113 §8.2-8.3 (an uppercase
// field name, a pseudo-field after a regular one, an unknown or repeated
// pseudo-field, a response pseudo-field, a value with a control character
// or with leading or trailing whitespace) reset their stream with PROTOCOL_ERROR and reach no handler; the HPACK
// state stays in step, so the connection serves the next request.
func TestMalformedHeaderBlocksAreStreamErrors(t *testing.T) {
	var served atomic.Int32
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
	}))
	rc := dialRaw(t, s.addr)
	id := uint32(1)
	for _, fields := range [][]string{
		{"X-Upper", "1"},
		{"x-a", "1", ":path", "/late"},
		{":bogus", "1"},
		{":status", "200"},
		{"x-ctl", "a\x01b"},
		{"x-lead", " a"},
		{"x-trail", "a\t"},
	} {
		rc.hbuf.Reset()
		all := []string{":method", "GET", ":scheme", "http", ":authority", "example.test", ":path", "/"}
		all = append(all, fields...)
		for i := 0; i+1 < len(all); i += 2 {
			rc.enc.WriteField(hpack.HeaderField{Name: all[i], Value: all[i+1]})
		}
		if err := rc.fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		if code := rc.rst(id); code != xh2.ErrCodeProtocol {
			t.Errorf("%q: stream reset with %v, want PROTOCOL_ERROR", fields, code)
		}
		id += 2
	}
	rc.headers(id, "GET", true, "x-fine", "yes")
	if status, _ := rc.response(id); status != 200 {
		t.Fatalf("the request after them: status %d", status)
	}
	if n := served.Load(); n != 1 {
		t.Fatalf("the handler served %d requests, want 1", n)
	}
}

// A handler that answers without reading the body the client sent gives
// that body's connection window back: the client may send as much again
// on the next stream (without it, its bytes would exceed the window and
// end the connection with FLOW_CONTROL_ERROR).
func TestUnreadRequestBodyGivesTheConnectionWindowBack(t *testing.T) {
	proceed := make(chan struct{})
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			<-proceed
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		io.Copy(io.Discard, r.Body)
	}))
	rc := dialRaw(t, s.addr)
	body := make([]byte, 15000)
	send := func(id uint32, end bool) {
		for i := range 4 { // 60,000 bytes, under the 65,535 of either window
			rc.data(id, end && i == 3, body)
		}
	}
	rc.headers(1, "POST", false, ":path", "/refuse")
	send(1, false)
	// The PING's ACK says the server has read the body (frames are
	// processed in order); then the handler answers without reading it.
	if err := rc.fr.WritePing(false, [8]byte{7}); err != nil {
		t.Fatal(err)
	}
	rc.until("PING ACK", func(f xh2.Frame) bool { p, ok := f.(*xh2.PingFrame); return ok && p.IsAck() })
	close(proceed)
	if status, _ := rc.response(1); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("stream 1: status %d", status)
	}
	rc.headers(3, "POST", false, ":path", "/read")
	send(3, true)
	f := rc.until("stream 3's response or a GOAWAY", func(f xh2.Frame) bool {
		_, goaway := f.(*xh2.GoAwayFrame)
		h, ok := f.(*xh2.MetaHeadersFrame)
		return goaway || ok && h.StreamID == 3
	})
	if g, ok := f.(*xh2.GoAwayFrame); ok {
		t.Fatalf("GOAWAY %v: the unread body's connection window was not given back", g.ErrCode)
	}
	if st := f.(*xh2.MetaHeadersFrame).PseudoValue("status"); st != "200" {
		t.Fatalf("stream 3: status %s", st)
	}
}

// Shutdown called before Serve (a connection accepted as its worker
// drains) sends its GOAWAY after the server's SETTINGS, which must be the
// first frame (RFC 9113 §3.4).
func TestShutdownBeforeServeSendsSettingsFirst(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	c := NewConn(netTransport{a, nil}, testOpts(), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	c.Shutdown()
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := readPreface(a); err != nil {
			a.Close()
			return
		}
		c.Serve()
	}()
	b.SetDeadline(time.Now().Add(waitLimit))
	if _, err := b.Write([]byte(Preface)); err != nil {
		t.Fatal(err)
	}
	if err := xh2.NewFramer(b, nil).WriteSettings(); err != nil {
		t.Fatal(err)
	}
	fr := xh2.NewFramer(nil, b)
	var kinds []string
	for len(kinds) < 2 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %v: %v", kinds, err)
		}
		if _, ack := f.(*xh2.WindowUpdateFrame); !ack {
			kinds = append(kinds, f.Header().Type.String())
		}
	}
	if kinds[0] != "SETTINGS" || kinds[1] != "GOAWAY" {
		t.Fatalf("the server's first frames are %v, want SETTINGS then GOAWAY", kinds)
	}
	b.Close()
	recv(t, "Serve's end", served)
}

// Trailers the client had in flight when the server answered and reset the
// stream (RST_STREAM(NO_ERROR): the response ended before the request) are
// ignored (RFC 9113 §5.1), not a connection error, and their header block
// still reaches the HPACK decoder: a field the trailers added to the
// dynamic table decodes on the next stream.
func TestTrailersAfterTheServersResetAreIgnored(t *testing.T) {
	seen := make(chan string, 2)
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Trailer")
	}))
	rc := dialRaw(t, s.addr)
	rc.answeredBeforeItsBody(1)
	// The trailers: the encoder adds the field to its dynamic table.
	rc.hbuf.Reset()
	if err := rc.enc.WriteField(hpack.HeaderField{Name: "x-trailer", Value: "in-flight"}); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteHeaders(xh2.HeadersFrameParam{
		StreamID: 1, BlockFragment: rc.hbuf.Bytes(), EndStream: true, EndHeaders: true,
	}); err != nil {
		t.Fatal(err)
	}
	rc.headers(3, "GET", true, "x-trailer", "in-flight")
	if status, _ := rc.response(3); status != 200 {
		t.Fatalf("next stream: status %d", status)
	}
	if v := recv(t, "stream 1", seen); v != "" {
		t.Fatalf("stream 1 saw x-trailer %q", v)
	}
	if v := recv(t, "stream 3", seen); v != "in-flight" {
		t.Fatalf("stream 3 saw x-trailer %q, want the indexed field", v)
	}
}

// DATA the client had in flight when the server ended a stream with
// RST_STREAM(NO_ERROR) (its response done before the request body) is
// ignored (RFC 9113 §5.1): no RST_STREAM answers it, and its bytes still
// give the connection's window back. DATA on a stream that ended both ways
// without a reset still gets RST_STREAM(STREAM_CLOSED).
func TestDataAfterTheServersResetIsIgnored(t *testing.T) {
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rc := dialRaw(t, s.addr)
	rc.answeredBeforeItsBody(1)
	// Three quarters of the connection's initial window (65,535).
	chunk := make([]byte, 16384)
	for range 3 {
		rc.data(1, false, chunk)
	}
	rc.headers(3, "GET", true)
	var resets []string
	status := 0
	rc.until("stream 3's response", func(f xh2.Frame) bool {
		switch f := f.(type) {
		case *xh2.RSTStreamFrame:
			resets = append(resets, fmt.Sprintf("stream %d: %v", f.StreamID, f.ErrCode))
		case *xh2.MetaHeadersFrame:
			if f.StreamID == 3 {
				status, _ = strconv.Atoi(f.PseudoValue("status"))
				return f.StreamEnded()
			}
		case *xh2.DataFrame:
			return f.StreamID == 3 && f.StreamEnded()
		}
		return false
	})
	if status != 200 || len(resets) > 0 {
		t.Fatalf("stream 3 status %d, resets %v: want 200 and no RST_STREAM for the in-flight data", status, resets)
	}
	// Stream 3 ended both ways, with no reset: its DATA is an error.
	rc.data(3, false, []byte("late"))
	if code := rc.rst(3); code != xh2.ErrCodeStreamClosed {
		t.Fatalf("DATA on a closed stream: RST_STREAM %v, want STREAM_CLOSED", code)
	}
	// Another three quarters of the window: within it only if the ignored
	// bytes were given back.
	rc.headers(5, "POST", false)
	for range 3 {
		rc.data(5, false, chunk)
	}
	if err := rc.fr.WritePing(false, [8]byte{5}); err != nil {
		t.Fatal(err)
	}
	rc.until("PING ACK", func(f xh2.Frame) bool {
		if g, ok := f.(*xh2.GoAwayFrame); ok {
			t.Fatalf("GOAWAY %v: the ignored data's window was not given back", g.ErrCode)
		}
		p, ok := f.(*xh2.PingFrame)
		return ok && p.IsAck()
	})
}

// A HEADERS frame whose padding is longer than its payload never gets its
// header block to the HPACK decoder, whose state would then differ from
// the client's: a connection error (GOAWAY PROTOCOL_ERROR), not a stream
// error (RFC 9113 §6.2).
func TestHeadersWithPaddingOverThePayloadAreAConnectionError(t *testing.T) {
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rc := dialRaw(t, s.addr)
	rc.headers(1, "GET", true)
	if status, _ := rc.response(1); status != 200 {
		t.Fatalf("status %d", status)
	}
	rc.hbuf.Reset()
	for _, hf := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "example.test"}, {Name: ":path", Value: "/"}, {Name: "x-indexed", Value: "v"}} {
		rc.enc.WriteField(hf)
	}
	block := rc.hbuf.Bytes()
	payload := append([]byte{byte(len(block) + 1)}, block...) // the pad length
	flags := xh2.FlagHeadersPadded | xh2.FlagHeadersEndHeaders | xh2.FlagHeadersEndStream
	if err := rc.fr.WriteRawFrame(xh2.FrameHeaders, flags, 3, payload); err != nil {
		t.Fatal(err)
	}
	f := rc.until("GOAWAY", func(f xh2.Frame) bool {
		if r, ok := f.(*xh2.RSTStreamFrame); ok {
			t.Fatalf("stream %d reset with %v: a stream error", r.StreamID, r.ErrCode)
		}
		_, ok := f.(*xh2.GoAwayFrame)
		return ok
	}).(*xh2.GoAwayFrame)
	if f.ErrCode != xh2.ErrCodeProtocol || f.LastStreamID != 1 {
		t.Fatalf("GOAWAY %v last stream %d, want PROTOCOL_ERROR and 1", f.ErrCode, f.LastStreamID)
	}
	rc.closed()
}

// Options without MaxConcurrentStreams advertise and apply the default
// (100), not 0, which would refuse every stream.
func TestZeroMaxConcurrentStreamsMeansTheDefault(t *testing.T) {
	s := startServer(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rc := dialRaw(t, s.addr)
	sf := rc.until("SETTINGS", func(f xh2.Frame) bool {
		sf, ok := f.(*xh2.SettingsFrame)
		return ok && !sf.IsAck()
	}).(*xh2.SettingsFrame)
	if v, ok := sf.Value(xh2.SettingMaxConcurrentStreams); !ok || v != defaultMaxConcurrentStreams {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d (sent %v), want %d", v, ok, defaultMaxConcurrentStreams)
	}
	rc.headers(1, "GET", true)
	if status, _ := rc.response(1); status != 200 {
		t.Fatalf("status %d", status)
	}
}

// A connection error is logged (debug) with the connection's id and the
// codec, which the manager passes as Options.ConnID.
func TestConnectionErrorsAreLoggedWithTheConnection(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	opts := testOpts()
	opts.Log, opts.ConnID = zap.New(core), 42
	s := startServer(t, opts, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rc := dialRaw(t, s.addr)
	if err := rc.fr.WriteRawFrame(xh2.FrameData, 0, 0, []byte("x")); err != nil { // DATA on stream 0
		t.Fatal(err)
	}
	rc.until("GOAWAY", func(f xh2.Frame) bool { _, ok := f.(*xh2.GoAwayFrame); return ok })
	rc.closed()
	var got []observer.LoggedEntry
	for deadline := time.Now().Add(waitLimit); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if got = logs.FilterMessage("http2 connection error").All(); len(got) > 0 {
			break
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d lines %q, want one (all lines: %v)", len(got), "http2 connection error", logs.All())
	}
	fields := got[0].ContextMap()
	if fields["conn"] != uint64(42) || fields["codec"] != "http2" || fields["error"] == nil {
		t.Errorf("line's fields %v, want conn 42, codec http2 and the error", fields)
	}
}

// Between flushes a connection holds no frame buffer: an idle connection
// keeps none, however large the frames it built last (a response's
// headers and small DATA frames go through it).
func TestIdleConnectionHoldsNoFrameBuffer(t *testing.T) {
	body := pattern(3000) // DATA below directPayload: copied into the frame buffer
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-padding", strings.Repeat("p", 2000))
		w.Write(body)
	}))
	rc := dialRaw(t, s.addr)
	rc.headers(1, "GET", true)
	if status, got := rc.response(1); status != 200 || !bytes.Equal(got, body) {
		t.Fatalf("status %d, %d bytes", status, len(got))
	}
	var c *Conn
	select {
	case c = <-s.conns:
	case <-time.After(waitLimit):
		t.Fatal("no connection")
	}
	// The stream's goroutine flushes the response before it ends; the
	// connection's last flush may follow the client's read of the data.
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		held := c.wbuf != nil || c.wbufBox != nil
		c.mu.Unlock()
		if !held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle connection still holds a frame buffer of %d bytes", cap(c.wbuf))
		}
	}
}

// A reset stream leaves the client's concurrency limit at once, but its
// handler may still run: handlers, not open streams, are bounded by
// MaxConcurrentStreams. New streams wait for the handlers of reset ones
// (and run, in order, as those return); a reset waiting stream never gets
// one; more than 4×MaxConcurrentStreams waiting is a connection error
// ENHANCE_YOUR_CALM (the "rapid reset" attack, CVE-2023-44487).
func TestHandlersOfResetStreamsCountAgainstMaxConcurrentStreams(t *testing.T) {
	opts := testOpts()
	opts.MaxConcurrentStreams = 2
	var running, peak, served atomic.Int32
	release := make(chan struct{})
	s := startServer(t, opts, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		served.Add(1)
		<-release // a handler slow to notice its reset
		io.WriteString(w, r.URL.Path)
	}))
	// served reaching n, or staying below it, within d.
	reaches := func(n int32, d time.Duration) bool {
		for deadline := time.Now().Add(d); served.Load() < n && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		return served.Load() >= n
	}
	rc := dialRaw(t, s.addr)
	// Two streams whose handlers hold on after their reset.
	for _, id := range []uint32{1, 3} {
		rc.headers(id, "GET", true, ":path", "/hold")
		if err := rc.fr.WriteRSTStream(id, xh2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
	}
	if !reaches(2, waitLimit) {
		t.Fatalf("%d handlers started, want 2", served.Load())
	}
	// Stream 5 waits; stream 7 is reset while waiting and never runs.
	rc.headers(5, "GET", true, ":path", "/next")
	rc.headers(7, "GET", true, ":path", "/reset-while-waiting")
	if err := rc.fr.WriteRSTStream(7, xh2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	// A PING answered shows that the server processed all of it; a
	// handler started for stream 5 would then run within moments.
	if err := rc.fr.WritePing(false, [8]byte{1}); err != nil {
		t.Fatal(err)
	}
	rc.until("the PING's ACK", func(f xh2.Frame) bool { p, ok := f.(*xh2.PingFrame); return ok && p.IsAck() })
	if reaches(3, 300*time.Millisecond) {
		t.Fatalf("%d handlers started with two running, want 2", served.Load())
	}
	close(release)
	if status, body := rc.response(5); status != 200 || string(body) != "/next" {
		t.Fatalf("stream 5: %d %q", status, body)
	}
	if p := peak.Load(); p > 2 {
		t.Fatalf("%d handlers ran at once, want at most 2", p)
	}
	if n := served.Load(); n != 3 {
		t.Fatalf("%d handlers ran, want 3 (not the stream reset while it waited)", n)
	}

	// A client resetting streams faster than their handlers return is
	// cut off once 8 wait.
	release2 := make(chan struct{})
	defer close(release2)
	s2 := startServer(t, opts, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release2 }))
	rc2 := dialRaw(t, s2.addr)
	for id := uint32(1); id < 2*(2+8); id += 2 {
		rc2.headers(id, "GET", true)
		if err := rc2.fr.WriteRSTStream(id, xh2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
	}
	rc2.headers(2*(2+8)+1, "GET", true) // the eleventh stream: two run, eight wait
	f := rc2.until("GOAWAY", func(f xh2.Frame) bool { _, ok := f.(*xh2.GoAwayFrame); return ok })
	if code := f.(*xh2.GoAwayFrame).ErrCode; code != xh2.ErrCodeEnhanceYourCalm {
		t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", code)
	}
}

// Frames with nothing in them and no END_STREAM (CVE-2019-9518; an endless
// run of empty CONTINUATION frames) cost the server work for nothing: one
// is let through, a second in a row is a connection error
// ENHANCE_YOUR_CALM (Envoy's max_consecutive_inbound_frames_with_empty_payload
// default). A frame with a payload starts the count again.
func TestConsecutiveEmptyFramesAreAConnectionError(t *testing.T) {
	s := startServer(t, testOpts(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	calm := func(rc *rawClient) {
		t.Helper()
		f := rc.until("GOAWAY", func(f xh2.Frame) bool { _, ok := f.(*xh2.GoAwayFrame); return ok })
		if code := f.(*xh2.GoAwayFrame).ErrCode; code != xh2.ErrCodeEnhanceYourCalm {
			t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", code)
		}
	}

	// Empty DATA frames alternating with data are fine.
	rc := dialRaw(t, s.addr)
	rc.headers(1, "POST", false)
	rc.data(1, false, nil)
	rc.data(1, false, []byte("ab"))
	rc.data(1, false, nil)
	rc.data(1, true, []byte("c"))
	if status, body := rc.response(1); status != 200 || string(body) != "abc" {
		t.Fatalf("stream 1: %d %q", status, body)
	}
	// Two empty ones in a row are not.
	rc.headers(3, "POST", false)
	rc.data(3, false, nil)
	rc.data(3, false, nil)
	calm(rc)

	// Nor is a header block that never ends.
	rc = dialRaw(t, s.addr)
	rc.enc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
	if err := rc.fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.hbuf.Bytes()}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := rc.fr.WriteContinuation(1, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	calm(rc)
}
