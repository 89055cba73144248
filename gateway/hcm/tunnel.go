package hcm

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// Tunnels over HTTP/2 and HTTP/3, and the idle timeout of every tunnel.
//
// An HTTP/2 or HTTP/3 stream is a tunnel request when it is a CONNECT:
// with a :protocol pseudo-header (extended CONNECT, RFC 8441 and 9220;
// the HTTP/2 codec puts it in a ":protocol" header, quic-go in
// Request.Proto) it is
// presented to the filter chain as the HTTP/1.1 upgrade it stands
// for, as Envoy does: method GET, the :protocol value as the upgrade (the
// router adds Upgrade and Connection towards the upstream), and a
// Sec-WebSocket-Key made up when the client sent none (RFC 8441 has none;
// HTTP/1.1 WebSocket servers require one). A plain CONNECT stays a CONNECT
// with its authority as path. The stream has no request body for the
// chain: its DATA frames are the tunnel's bytes. The upstream's 101 (or the
// router's 200 for CONNECT) becomes a 200 on the stream, without
// Sec-WebSocket-Accept, and bytes are copied between the stream and the
// upstream connection until one side ends.

// h2Upgrade recognises a tunnel request on an HTTP/2 or HTTP/3 stream,
// rewrites h into what the chain sees (see above) and records the upgrade
// in hs.upgrade ("" for an ordinary request).
func (hs *h2stream) h2Upgrade(h *httpfilter.RequestHeaders, r *http.Request) {
	hs.upgrade = ""
	proto := ""
	for i := 0; i < len(h.Fields); i++ {
		if string(h.Fields[i].Name) == ":protocol" {
			proto = string(h.Fields[i].Value)
			h.Fields = append(h.Fields[:i], h.Fields[i+1:]...)
			i--
		}
	}
	if r.Method != http.MethodConnect {
		return
	}
	if proto == "" && hs.proto == protoHTTP3 && !strings.HasPrefix(r.Proto, "HTTP/") {
		proto = r.Proto // quic-go's http3 server puts :protocol in Proto
	}
	if proto == "" {
		hs.upgrade = "CONNECT"
		return
	}
	hs.upgrade = proto
	h.Method = methodGET
	if strings.EqualFold(proto, "websocket") && !h.Has("sec-websocket-key") {
		var k [16]byte
		_, _ = rand.Read(k[:])
		h.Add("sec-websocket-key", base64.StdEncoding.EncodeToString(k[:]))
	}
}

var methodGET = []byte("GET")

// h2Tunnel is Tunnel on an HTTP/2 or HTTP/3 stream: it answers 200 on the
// stream, then copies upstream bytes into DATA frames on the stream's
// goroutine and the stream's DATA into upstream on a second one. The
// client's END_STREAM is passed on as a half-close; the upstream's end
// ends the stream (END_STREAM leaves when the handler returns, and the
// client's side is then reset with NO_ERROR if still open). An error either way resets the stream.
func (s *stream) h2Tunnel(h *httpfilter.ResponseHeaders, up httpfilter.TunnelConn) error {
	if s.ended() || s.respStarted {
		return errStreamEnded
	}
	for i := len(s.encoders) - 1; i >= 0; i-- {
		s.encoders[i].EncodeHeaders(h, false)
	}
	hs := s.h2
	if h.Status == 101 {
		h.Status = 200
	}
	hdr := hs.w.Header()
	setH2Fields(hdr, &h.Headers)
	delete(hdr, "sec-websocket-accept")
	delete(hdr, "content-length")
	s.respStarted = true
	s.resp = h
	s.info.ResponseCode = h.Status
	hs.w.WriteHeader(h.Status)
	if hs.flusher != nil {
		hs.flusher.Flush()
	}
	if err := hs.r.Context().Err(); err != nil {
		s.downstreamGone()
		return errStreamEnded
	}
	st := s.conn.f.stats
	st.DownstreamCxUpgradesTotal.Inc()
	st.DownstreamCxUpgradesActive.Inc()
	defer st.DownstreamCxUpgradesActive.Dec()

	body := hs.r.Body
	var closeBody sync.Once
	abortAll := func() {
		_ = up.Close()
		closeBody.Do(func() { _ = body.Close() })
	}
	idle := s.watchTunnel(abortAll)
	var received int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, bodyChunk)
		var err error
		received, err = io.CopyBuffer(writerOnly{up}, idle.reader(body), buf)
		if err != nil || up.CloseWrite() != nil {
			_ = up.Close()
		}
	}()
	if s.bodyBuf == nil {
		s.bodyBuf = make([]byte, bodyChunk)
	}
	sent, upErr := io.CopyBuffer(flushWriter{hs}, idle.reader(up), s.bodyBuf)
	if upErr != nil {
		abortAll()
	}
	// The upstream ended (or failed): stop reading the stream.
	closeBody.Do(func() { _ = body.Close() })
	<-done
	idle.stop()
	s.info.BytesReceived += received
	s.info.BytesSent += sent
	if idle.fired() {
		s.info.ResponseFlags |= httpfilter.FlagStreamIdleTimeout
		st.DownstreamRqIdleTimeout.Inc()
		s.reset = true
	} else if upErr != nil {
		// A failed downstream direction closed up, so it shows here too.
		s.reset = true
	}
	s.respDone, s.bodyDone = true, true
	return nil
}

// flushWriter writes upstream bytes to the stream and flushes each chunk,
// so that tunnelled messages are not held in the server's buffer.
type flushWriter struct{ hs *h2stream }

func (w flushWriter) Write(p []byte) (int, error) {
	n, err := w.hs.w.Write(p)
	if err == nil && w.hs.flusher != nil {
		w.hs.flusher.Flush()
		err = w.hs.r.Context().Err()
	}
	return n, err
}

// tunnelIdle closes a tunnel on which no byte moved either way for the
// manager's stream_idle_timeout (Envoy applies the stream idle timeout to
// upgraded streams): each read that returns bytes notes the time, and a
// timer checks it when the timeout would expire.
type tunnelIdle struct {
	d       time.Duration
	last    atomic.Int64 // unix nanoseconds of the last byte seen
	timer   *time.Timer
	expired atomic.Bool
	mu      sync.Mutex
	stopped bool
}

// watchTunnel starts the idle watch of a tunnel of s; onIdle aborts both
// directions. With stream_idle_timeout 0 the watch does nothing.
func (s *stream) watchTunnel(onIdle func()) *tunnelIdle {
	t := &tunnelIdle{d: s.conn.f.cfg.StreamIdleTimeout.Duration}
	if t.d <= 0 {
		return t
	}
	t.last.Store(time.Now().UnixNano())
	t.mu.Lock()
	defer t.mu.Unlock()
	t.timer = time.AfterFunc(t.d, func() { t.check(onIdle) })
	return t
}

func (t *tunnelIdle) check(onIdle func()) {
	quiet := time.Since(time.Unix(0, t.last.Load()))
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	if quiet < t.d {
		t.timer.Reset(t.d - quiet)
		return
	}
	t.expired.Store(true)
	onIdle()
}

// stop ends the watch; fired reports afterwards whether it closed the
// tunnel.
func (t *tunnelIdle) stop() {
	if t.d <= 0 {
		return
	}
	t.mu.Lock()
	t.stopped = true
	t.timer.Stop()
	t.mu.Unlock()
}

func (t *tunnelIdle) fired() bool { return t.expired.Load() }

// reader returns r noting activity on t (r itself without a timeout). Like
// readerOnly it hides WriterTo, so that io.CopyBuffer uses its buffer.
func (t *tunnelIdle) reader(r io.Reader) io.Reader {
	if t.d <= 0 {
		return readerOnly{r}
	}
	return idleReader{r, t}
}

type idleReader struct {
	r io.Reader
	t *tunnelIdle
}

func (r idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.last.Store(time.Now().UnixNano())
	}
	return n, err
}
