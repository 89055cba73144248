package http2

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	xh2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/gateway/codec/http1"
)

// Preface is the client connection preface (RFC 9113 §3.4).
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

const (
	// initialWindow is RFC 9113's initial flow-control window.
	initialWindow = 65535
	// maxWindow is the largest flow-control window (2^31-1).
	maxWindow = 1<<31 - 1
	// readFrameSize is the SETTINGS_MAX_FRAME_SIZE sluice keeps (the
	// initial value, as Envoy: a larger one lets one DATA frame exceed a
	// stream window).
	readFrameSize = 16384
	// bufferedData is how many response body bytes a stream collects
	// before it writes them (a flush or the end of the response writes
	// them earlier).
	bufferedData = 4096
	// defaultMaxConcurrentStreams is Options.MaxConcurrentStreams when
	// it is 0.
	defaultMaxConcurrentStreams = 100
	// shutdownRTTLimit bounds the wait for the PING that follows the first
	// GOAWAY of a graceful shutdown (Conn.shutdownRTT).
	shutdownRTTLimit = time.Second
)

// Frame types and flags this file writes (RFC 9113 §6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
)

// settingEnableConnectProtocol is SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441).
const settingEnableConnectProtocol = 0x8

// shutdownPing is the opaque data of the PING sent with the first GOAWAY.
var shutdownPing = [8]byte{'s', 'l', 'u', 'i', 'c', 'e', 'g', 'a'}

// Options are the settings of a connection.
type Options struct {
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS: the
	// streams served at once, beyond which a new one is refused
	// (REFUSED_STREAM); 0: defaultMaxConcurrentStreams (100, Envoy's
	// recommendation for an edge proxy and the manager's default).
	MaxConcurrentStreams uint32
	// InitialStreamWindowSize is SETTINGS_INITIAL_WINDOW_SIZE: the request
	// body bytes a stream buffers before its handler reads them.
	InitialStreamWindowSize uint32
	// InitialConnectionWindowSize is the connection's receive window.
	InitialConnectionWindowSize uint32
	// MaxHeaderListSize is SETTINGS_MAX_HEADER_LIST_SIZE; a larger request
	// header list is answered 431.
	MaxHeaderListSize uint32
	// IdleTimeout closes the connection (GOAWAY first) after this long
	// without a stream; 0: never.
	IdleTimeout time.Duration
	// TLS is the connection's TLS state (Request.TLS); nil: plaintext.
	TLS *tls.ConnectionState
	// RemoteAddr is Request.RemoteAddr.
	RemoteAddr string
	// Log gets protocol errors at the debug level; nil: none. Its lines
	// carry ConnID as "conn" and "codec":"http2" (added per line, not
	// with Logger.With, which would encode them for every connection
	// whether it logs or not).
	Log *zap.Logger
	// ConnID is the connection's id in Log's lines.
	ConnID uint64
	// RawFields leaves Request.Header nil (no map per request) but for
	// the extended CONNECT protocol (":protocol"): the handler reads the
	// request fields as decoded, through the ResponseWriter's
	// RequestFields method.
	RawFields bool
}

// Transport is what a connection reads and writes.
//
// Read is called by Serve's goroutine only. Write is called with the
// connection's lock held, from any goroutine, one call at a time: it must
// not keep p, and it should not block for long (a writer that queues the
// bytes for a goroutine of its own). Close flushes what was written and
// ends the connection's reads: it must unblock a Read under way and fail
// later ones. It may be called more than once, from any goroutine and
// concurrently with Read; a transport may leave the socket's close to
// whoever called Serve, after it returns.
type Transport interface {
	io.Reader
	Write(p []byte) (int, error)
	Close() error
}

// An Idler is a Transport that can hold an idle connection without Serve's
// goroutine.
//
// Serve calls Idle between frames while the connection has no stream and
// is not shutting down, on its own goroutine without the connection's
// lock. Idle reports true when the transport parked the connection: Serve
// (or Resume) then returns true at once, and the transport's owner calls
// Resume when the client sent more. With false, Serve reads the next frame
// as usual; Idle may have read bytes of it, which the transport's next
// Read returns first.
//
// The connection calls Wake, with its lock held and from any goroutine,
// when its last stream ended: Serve may be blocked reading the next frame
// since before. A Read under way, or a later one, then returns (0,
// ErrWoken), as it may at other times; Serve goes back to Idle if it was
// between frames, and reads on otherwise.
type Idler interface {
	Idle() bool
	Wake()
}

// ErrWoken is what the Read of an Idler returns after Wake.
var ErrWoken = errors.New("http2: read woken for the idle check")

// frameReader is what the connection's framer reads: the transport, with
// ErrWoken passed on only between frames (inside a frame the framer would
// lose the bytes it read of it; the read is tried again).
type frameReader struct {
	t        Transport
	boundary bool // no byte of the frame being read was read yet
}

func (r *frameReader) Read(p []byte) (int, error) {
	for {
		n, err := r.t.Read(p)
		if n == 0 && err == ErrWoken && !r.boundary {
			continue
		}
		if n > 0 {
			r.boundary = false
		}
		return n, err
	}
}

// Conn is one server HTTP/2 connection. Its methods are safe for
// concurrent use.
type Conn struct {
	t       Transport
	opts    Options
	handler http.Handler
	fr      *xh2.Framer
	rd      frameReader // fr's reader; Serve's
	idler   Idler       // t, when it is one

	mu        sync.Mutex
	streams   map[uint32]*stream
	maxStream uint32  // largest stream id the client opened
	wbuf      []byte  // frames being built, written by flush; nil between flushes
	wbufBox   *[]byte // wbuf's box in wbufPool, nil with wbuf
	hbuf      []byte  // header block scratch
	hdec      *hpack.Decoder
	block     headerBlock // the request header block being read (Serve's)
	// outbound flow control and the client's settings
	sendWindow    int64
	peerWindow    int64 // SETTINGS_INITIAL_WINDOW_SIZE of the client
	peerFrameSize int
	// inbound flow control of the connection
	recvAvail  int64 // bytes the client may still send
	recvUnsent int64 // consumed bytes not credited back yet
	// settings and shutdown
	unackedSettings int
	sawSettings     bool
	shutdown        bool   // the first GOAWAY was sent
	started         bool   // Serve sent the server's SETTINGS
	shutdownAtStart bool   // Shutdown was called before Serve sent them
	finalGoaway     bool   // the final GOAWAY was sent: no new stream
	lastStream      uint32 // the final GOAWAY's last stream id
	shutdownTimer   *time.Timer
	shutdownRTT     time.Duration // shutdownRTTLimit; tests raise it
	idleTimer       *time.Timer
	closed          bool // the connection ended
	writeErr        error
	// sentResets are the streams of the last RST_STREAM frames the
	// server sent (0: none), nextReset where the next one goes.
	sentResets [16]uint32
	nextReset  uint32
	// handlers counts the stream handlers running, including those of
	// streams already reset; queued holds new streams waiting for one of
	// them to return (see startLocked).
	handlers int
	queued   []*stream
	// emptyFrames counts the empty frames in a row (see countEmpty).
	emptyFrames int
}

// NewConn returns a connection reading and writing t, whose streams h
// serves: Request.Body is the request body, the ResponseWriter also
// implements http.Flusher and SetReadDeadline (http.ResponseController),
// and panicking with http.ErrAbortHandler resets the stream.
func NewConn(t Transport, opts Options, h http.Handler) *Conn {
	c := &Conn{
		t:             t,
		opts:          opts,
		handler:       h,
		streams:       make(map[uint32]*stream),
		sendWindow:    initialWindow,
		peerWindow:    initialWindow,
		peerFrameSize: readFrameSize,
		recvAvail:     initialWindow,
		shutdownRTT:   shutdownRTTLimit,
	}
	c.idler, _ = t.(Idler)
	if c.opts.MaxConcurrentStreams == 0 {
		c.opts.MaxConcurrentStreams = defaultMaxConcurrentStreams
	}
	if c.opts.InitialStreamWindowSize == 0 {
		c.opts.InitialStreamWindowSize = initialWindow
	}
	if c.opts.InitialConnectionWindowSize < initialWindow {
		c.opts.InitialConnectionWindowSize = initialWindow
	}
	return c
}

// Serve serves the connection until it ends or parks. The caller has
// read the client preface (Preface) off the transport and checked it: the
// first bytes Serve reads are the client's first frame. It reports whether
// the connection parked (see Idler): then the connection is not over, and
// Resume serves it again once the client sent more. Otherwise Serve closed
// the transport before it returned.
func (c *Conn) Serve() (parked bool) {
	if c.opts.TLS != nil && c.opts.TLS.Version < tls.VersionTLS12 {
		// RFC 9113 §9.2: HTTP/2 over TLS needs TLS 1.2 or later.
		c.connError(xh2.ErrCodeInadequateSecurity)
		c.end()
		return false
	}
	c.rd.t = c.t
	c.fr = xh2.NewFramer(nil, &c.rd)
	c.hdec = c.newHeaderDecoder()
	c.fr.SetMaxReadFrameSize(readFrameSize)
	c.fr.SetReuseFrames()

	c.mu.Lock()
	c.writeSettings()
	c.started = true
	if c.opts.IdleTimeout > 0 {
		c.idleTimer = time.AfterFunc(c.opts.IdleTimeout, c.onIdle)
	}
	if c.shutdownAtStart {
		c.shutdownLocked() // after the SETTINGS, which come first (RFC 9113 §3.4)
	}
	c.flush()
	c.mu.Unlock()
	return c.serveFrames()
}

// Resume serves a parked connection again, as Serve does after its start;
// it reports whether the connection parked again.
func (c *Conn) Resume() (parked bool) { return c.serveFrames() }

// serveFrames reads and processes frames until the connection ends, or
// parks between two of them while it has no stream (see Idler).
func (c *Conn) serveFrames() (parked bool) {
	defer func() {
		if !parked {
			c.end()
		}
	}()
	// park says whether the connection may park before its next frame; it
	// is found under the lock that processing a frame takes anyway.
	park := c.idler != nil && c.parkable()
	for {
		if park && c.idler.Idle() {
			return true
		}
		c.rd.boundary = true
		fh, err := c.fr.ReadFrameHeader()
		if err == ErrWoken {
			park = c.idler != nil && c.parkable() // the last stream ended while the read waited
			continue
		}
		var f xh2.Frame
		if err == nil {
			f, err = c.fr.ReadFrameForHeader(fh)
		}
		if err != nil {
			var se xh2.StreamError
			var ce xh2.ConnectionError
			switch {
			case errors.As(err, &se) && fh.Type == xh2.FrameHeaders:
				// The Framer's stream error for a HEADERS frame (its
				// padding longer than its payload) leaves the header
				// block unread by the HPACK decoder, whose state would
				// no longer match the client's: a connection error.
				c.debug("http2 malformed HEADERS frame", err)
				c.connError(xh2.ErrCodeProtocol)
			case errors.As(err, &se):
				c.mu.Lock()
				c.streamError(se.StreamID, se.Code)
				c.flush()
				park = c.idler != nil && c.parkableLocked()
				c.mu.Unlock()
				continue
			case errors.As(err, &ce):
				c.debug("http2 connection error", err)
				c.connError(xh2.ErrCode(ce))
			case errors.Is(err, xh2.ErrFrameTooLarge):
				c.debug("http2 frame too large", err)
				c.connError(xh2.ErrCodeFrameSize)
			}
			return false
		}
		c.mu.Lock()
		code := c.process(f)
		c.flush()
		park = c.idler != nil && c.parkableLocked()
		c.mu.Unlock()
		if code != xh2.ErrCodeNo {
			c.connError(code)
			return false
		}
	}
}

// parkable reports whether the connection may park: no stream, no shutdown
// under way, not closed.
func (c *Conn) parkable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.parkableLocked()
}

// parkableLocked is parkable for a caller holding c.mu.
func (c *Conn) parkableLocked() bool { return len(c.streams) == 0 && !c.shutdown && !c.closed }

// Shutdown starts a graceful shutdown (RFC 9113 §6.8, as Envoy does): a
// GOAWAY naming the largest stream id together with a PING; when the PING
// is answered (one round trip later, or after a second) a GOAWAY naming the
// last stream the client opened. Open streams finish; the connection
// closes when the last one has. Called before Serve has sent the server's
// SETTINGS, it takes effect right after them.
func (c *Conn) Shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		c.shutdownAtStart = true
		return
	}
	c.shutdownLocked()
	c.flush()
}

func (c *Conn) shutdownLocked() {
	if c.shutdown || c.closed {
		return
	}
	c.shutdown = true
	c.appendGoAway(maxWindow, xh2.ErrCodeNo)
	c.appendFrameHeader(8, framePing, 0, 0)
	c.wbuf = append(c.wbuf, shutdownPing[:]...)
	c.shutdownTimer = time.AfterFunc(c.shutdownRTT, c.sendFinalGoaway)
}

// sendFinalGoaway sends the final GOAWAY of a graceful shutdown.
func (c *Conn) sendFinalGoaway() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finalGoawayLocked()
}

func (c *Conn) finalGoawayLocked() {
	if c.finalGoaway || c.closed {
		return
	}
	c.finalGoaway = true
	c.lastStream = c.maxStream
	c.appendGoAway(c.maxStream, xh2.ErrCodeNo)
	c.flush()
	if len(c.streams) == 0 {
		c.closeLocked()
	}
}

// onIdle ends a connection that had no stream for the idle timeout.
func (c *Conn) onIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.streams) == 0 && !c.closed {
		c.shutdown = true
		c.finalGoawayLocked()
	}
}

// connError ends the connection with a GOAWAY carrying code.
func (c *Conn) connError(code xh2.ErrCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.appendGoAway(c.maxStream, code)
	c.flush()
	c.closeLocked()
}

// closeLocked ends every stream and closes the transport (which unblocks
// Serve's read).
func (c *Conn) closeLocked() {
	if c.closed {
		return
	}
	c.closed = true
	for _, st := range c.streams {
		st.abortLocked(errConnClosed)
	}
	clear(c.streams)
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	if c.shutdownTimer != nil {
		c.shutdownTimer.Stop()
	}
	go c.t.Close()
}

// end runs when Serve returns.
func (c *Conn) end() {
	c.mu.Lock()
	c.closeLocked()
	c.mu.Unlock()
	_ = c.t.Close()
}

var (
	errConnClosed   = errors.New("http2: connection closed")
	errStreamReset  = errors.New("http2: stream reset by the client")
	errStreamClosed = errors.New("http2: stream closed")
	errBodyClosed   = errors.New("http2: request body closed")
	// errTooManyResets is logged when streams wait for the handlers of
	// reset streams beyond the bound of startLocked.
	errTooManyResets = errors.New("http2: too many streams waiting for the handlers of reset streams")
	// errEmptyFrames is logged when a client sends empty frames in a row
	// beyond the bound of countEmpty.
	errEmptyFrames = errors.New("http2: too many empty HEADERS, CONTINUATION or DATA frames in a row")
)

func (c *Conn) debug(msg string, err error) {
	if c.opts.Log != nil {
		c.opts.Log.Debug(msg, zap.Uint64("conn", c.opts.ConnID), zap.String("codec", "http2"), zap.Error(err))
	}
}

// process handles one frame; a code other than ErrCodeNo is a connection
// error.
func (c *Conn) process(f xh2.Frame) xh2.ErrCode {
	if c.closed {
		return xh2.ErrCodeNo
	}
	if !c.sawSettings {
		if _, ok := f.(*xh2.SettingsFrame); !ok {
			return xh2.ErrCodeProtocol
		}
		c.sawSettings = true
	}
	if code := c.countEmpty(f); code != xh2.ErrCodeNo {
		return code
	}
	switch f := f.(type) {
	case *xh2.SettingsFrame:
		return c.processSettings(f)
	case *xh2.HeadersFrame:
		c.startBlock(f)
		return c.headerFragment(f.HeaderBlockFragment(), f.HeadersEnded())
	case *xh2.ContinuationFrame:
		return c.headerFragment(f.HeaderBlockFragment(), f.HeadersEnded())
	case *xh2.DataFrame:
		return c.processData(f)
	case *xh2.WindowUpdateFrame:
		return c.processWindowUpdate(f)
	case *xh2.PingFrame:
		if f.StreamID != 0 {
			return xh2.ErrCodeProtocol
		}
		if f.IsAck() {
			if f.Data == shutdownPing && c.shutdown {
				c.finalGoawayLocked()
			}
			return xh2.ErrCodeNo
		}
		c.appendFrameHeader(8, framePing, flagAck, 0)
		c.wbuf = append(c.wbuf, f.Data[:]...)
	case *xh2.RSTStreamFrame:
		if c.idle(f.StreamID) {
			return xh2.ErrCodeProtocol
		}
		if st := c.streams[f.StreamID]; st != nil {
			st.abortLocked(errStreamReset)
			c.removeLocked(st)
		}
	case *xh2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			c.streamError(f.StreamID, xh2.ErrCodeProtocol)
		}
	case *xh2.GoAwayFrame:
		// The client leaves: no new streams; the open ones finish.
		c.shutdown = true
		c.finalGoawayLocked()
	case *xh2.PushPromiseFrame:
		return xh2.ErrCodeProtocol
	}
	// Other frame types (unknown ones included) are ignored.
	return xh2.ErrCodeNo
}

// resetRecently reports whether the server reset stream id among its last
// len(sentResets) RST_STREAM frames: frames the client sent before it got
// the RST_STREAM may still come.
func (c *Conn) resetRecently(id uint32) bool {
	for _, r := range c.sentResets {
		if r == id {
			return true
		}
	}
	return false
}

// idle reports whether the client stream id was never opened.
func (c *Conn) idle(id uint32) bool {
	return id%2 == 0 || id > c.maxStream
}

func (c *Conn) processSettings(f *xh2.SettingsFrame) xh2.ErrCode {
	if f.IsAck() {
		c.unackedSettings--
		if c.unackedSettings < 0 {
			return xh2.ErrCodeProtocol
		}
		return xh2.ErrCodeNo
	}
	if f.NumSettings() > 100 {
		return xh2.ErrCodeEnhanceYourCalm
	}
	code := xh2.ErrCodeNo
	_ = f.ForeachSetting(func(s xh2.Setting) error {
		if err := s.Valid(); err != nil {
			var ce xh2.ConnectionError
			if errors.As(err, &ce) {
				code = xh2.ErrCode(ce)
			} else {
				code = xh2.ErrCodeProtocol
			}
			return err
		}
		switch s.ID {
		// SETTINGS_HEADER_TABLE_SIZE needs nothing: the encoder never
		// uses the dynamic table (hpack.go).
		case xh2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.peerWindow
			c.peerWindow = int64(s.Val)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > maxWindow {
					code = xh2.ErrCodeFlowControl
					return errors.New("window overflow")
				}
				if delta > 0 {
					st.cond.Broadcast()
				}
			}
		case xh2.SettingMaxFrameSize:
			c.peerFrameSize = int(s.Val)
		}
		return nil
	})
	if code != xh2.ErrCodeNo {
		return code
	}
	c.appendFrameHeader(0, frameSettings, flagAck, 0)
	return xh2.ErrCodeNo
}

func (c *Conn) processWindowUpdate(f *xh2.WindowUpdateFrame) xh2.ErrCode {
	if f.StreamID == 0 {
		c.sendWindow += int64(f.Increment)
		if c.sendWindow > maxWindow {
			return xh2.ErrCodeFlowControl
		}
		for _, st := range c.streams {
			if st.waitingWindow {
				st.cond.Broadcast()
			}
		}
		return xh2.ErrCodeNo
	}
	if c.idle(f.StreamID) {
		return xh2.ErrCodeProtocol
	}
	st := c.streams[f.StreamID]
	if st == nil {
		return xh2.ErrCodeNo // closed: allowed (RFC 9113 §5.1)
	}
	st.sendWindow += int64(f.Increment)
	if st.sendWindow > maxWindow {
		c.streamError(f.StreamID, xh2.ErrCodeFlowControl)
		return xh2.ErrCodeNo
	}
	st.cond.Broadcast()
	return xh2.ErrCodeNo
}

func (c *Conn) processData(f *xh2.DataFrame) xh2.ErrCode {
	id := f.StreamID
	if id == 0 || c.idle(id) {
		return xh2.ErrCodeProtocol
	}
	n := int64(f.Length)
	if n > c.recvAvail {
		return xh2.ErrCodeFlowControl
	}
	c.recvAvail -= n
	st := c.streams[id]
	if st == nil || st.recvEnded {
		// Not for a stream that reads: the connection's window comes
		// back at once. A stream ignored after the final GOAWAY gets no
		// answer, nor one the server reset lately, whose client may
		// still have data in flight (RFC 9113 §5.1); another closed one
		// STREAM_CLOSED (§6.1).
		c.credit(nil, n)
		if (!c.finalGoaway || id <= c.lastStream) && (st != nil || !c.resetRecently(id)) {
			c.streamError(id, xh2.ErrCodeStreamClosed)
		}
		return xh2.ErrCodeNo
	}
	if n > st.recvAvail {
		c.credit(nil, n)
		c.streamError(id, xh2.ErrCodeFlowControl)
		return xh2.ErrCodeNo
	}
	st.recvAvail -= n
	data := f.Data()
	st.received += int64(len(data))
	if st.declared >= 0 && st.received > st.declared {
		// RFC 9113 §8.1.1: the body does not match content-length.
		c.credit(nil, n)
		c.streamError(id, xh2.ErrCodeProtocol)
		return xh2.ErrCodeNo
	}
	if pad := n - int64(len(data)); pad > 0 {
		c.credit(nil, pad)
		c.credit(st, pad)
	}
	if len(data) > 0 && st.bodyClosed {
		c.credit(nil, int64(len(data)))
	} else if len(data) > 0 {
		if st.in == nil {
			st.inBox = getBuf()
			st.in = (*st.inBox)[:0]
		}
		if st.inOff > 0 && len(st.in)+len(data) > cap(st.in) {
			// Move the unread bytes to the front before growing.
			st.in = st.in[:copy(st.in, st.in[st.inOff:])]
			st.inOff = 0
		}
		st.in = append(st.in, data...)
		st.cond.Broadcast()
	}
	if f.StreamEnded() {
		c.endRequest(st)
	}
	return xh2.ErrCodeNo
}

// endRequest ends the request body of st (END_STREAM).
func (c *Conn) endRequest(st *stream) {
	if st.declared >= 0 && st.received != st.declared {
		c.streamError(st.id, xh2.ErrCodeProtocol)
		return
	}
	st.recvEnded = true
	st.inErr = io.EOF
	st.cond.Broadcast()
}

// credit returns n consumed bytes of the connection's window (st nil) or
// of a stream's, with a WINDOW_UPDATE once at least 4 KiB or as much as
// the client has left are due.
func (c *Conn) credit(st *stream, n int64) {
	if st == nil {
		c.recvUnsent += n
		if c.recvUnsent >= 4096 || c.recvUnsent >= c.recvAvail {
			c.appendWindowUpdate(0, c.recvUnsent)
			c.recvAvail += c.recvUnsent
			c.recvUnsent = 0
		}
		return
	}
	if st.recvEnded || st.reset {
		return
	}
	st.recvUnsent += n
	if st.recvUnsent >= 4096 || st.recvUnsent >= st.recvAvail {
		c.appendWindowUpdate(st.id, st.recvUnsent)
		st.recvAvail += st.recvUnsent
		st.recvUnsent = 0
	}
}

// headerFragment reads a fragment of the header block under way and, at its
// end, processes the block.
func (c *Conn) headerFragment(frag []byte, end bool) xh2.ErrCode {
	if code := c.blockFragment(frag); code != xh2.ErrCodeNo || !end {
		return code
	}
	connErr, streamErr := c.endBlock()
	switch {
	case connErr != xh2.ErrCodeNo:
		return connErr
	case streamErr != xh2.ErrCodeNo:
		c.streamError(c.block.streamID, streamErr)
		return xh2.ErrCodeNo
	}
	return c.processHeaders(&c.block)
}

func (c *Conn) processHeaders(f *headerBlock) xh2.ErrCode {
	id := f.streamID
	if id%2 != 1 {
		return xh2.ErrCodeProtocol
	}
	if st := c.streams[id]; st != nil {
		// A second header block: trailers.
		if st.recvEnded || st.gotTrailers {
			c.streamError(id, xh2.ErrCodeStreamClosed)
			return xh2.ErrCodeNo
		}
		if !f.endStream || f.pseudo() || f.connectionSpecific() {
			c.streamError(id, xh2.ErrCodeProtocol)
			return xh2.ErrCodeNo
		}
		st.gotTrailers = true
		if fields := f.fields; len(fields) > 0 {
			tr := make(http.Header, len(fields))
			for _, hf := range fields {
				k := http.CanonicalHeaderKey(hf.Name)
				tr[k] = append(tr[k], hf.Value)
			}
			st.req.Trailer = tr
		}
		c.endRequest(st)
		return xh2.ErrCodeNo
	}
	if id <= c.maxStream {
		// A closed stream. One the server reset may still get what the
		// client had in flight (trailers after a response that ended
		// first with RST_STREAM(NO_ERROR)): ignored (RFC 9113 §5.1); its
		// block was decoded, which keeps the HPACK state. A header block
		// on a stream that ended otherwise is a connection error.
		if c.resetRecently(id) {
			return xh2.ErrCodeNo
		}
		return xh2.ErrCodeStreamClosed
	}
	c.maxStream = id
	if c.finalGoaway && id > c.lastStream {
		return xh2.ErrCodeNo // after the final GOAWAY: ignored
	}
	if f.hasPriority && f.priority.StreamDep == id {
		c.streamError(id, xh2.ErrCodeProtocol)
		return xh2.ErrCodeNo
	}
	if uint32(len(c.streams)) >= c.opts.MaxConcurrentStreams {
		c.streamError(id, xh2.ErrCodeRefusedStream)
		return xh2.ErrCodeNo
	}
	// Not derived from a connection context: the end of the connection
	// cancels every stream it still has (closeLocked), and a stream that
	// left the table was cancelled then or has returned.
	ctx, cancel := context.WithCancel(context.Background())
	req, fields, expect, errCode := c.newRequest(ctx, f)
	if errCode != xh2.ErrCodeNo {
		cancel()
		c.streamError(id, errCode)
		return xh2.ErrCodeNo
	}
	st := newStream(c, id, req, cancel)
	st.continued = !expect
	st.fields = append(st.fieldArr[:0], fields...)
	if f.truncated {
		st.tooLarge = true
	}
	if f.endStream {
		st.recvEnded = true
		st.inErr = io.EOF
		req.Body = http.NoBody
		req.ContentLength = 0
		if st.declared > 0 {
			c.streamError(id, xh2.ErrCodeProtocol)
			return xh2.ErrCodeNo
		}
	} else {
		req.Body = &st.body
	}
	c.streams[id] = st
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	return c.startLocked(st)
}

// maxConsecutiveEmptyFrames is how many HEADERS, CONTINUATION and DATA
// frames in a row may arrive with an empty payload and without
// END_STREAM: Envoy's max_consecutive_inbound_frames_with_empty_payload
// default.
const maxConsecutiveEmptyFrames = 1

// countEmpty counts f if it is a HEADERS, CONTINUATION or DATA frame with
// an empty payload (padding counts as payload) that does not end its
// stream, and restarts the count at one with a payload. Such frames do
// nothing but cost the server a frame's processing, a client can send
// millions a second to keep a worker busy (CVE-2019-9518, and endless
// empty CONTINUATION frames), so more than maxConsecutiveEmptyFrames in a
// row are a connection error ENHANCE_YOUR_CALM, as in Envoy.
func (c *Conn) countEmpty(f xh2.Frame) xh2.ErrCode {
	fh := f.Header()
	switch fh.Type {
	case xh2.FrameHeaders, xh2.FrameContinuation, xh2.FrameData:
	default:
		return xh2.ErrCodeNo
	}
	if fh.Length > 0 || fh.Type != xh2.FrameContinuation && fh.Flags.Has(xh2.FlagDataEndStream) {
		c.emptyFrames = 0
		return xh2.ErrCodeNo
	}
	c.emptyFrames++
	if c.emptyFrames > maxConsecutiveEmptyFrames {
		c.debug("http2 connection error", errEmptyFrames)
		return xh2.ErrCodeEnhanceYourCalm
	}
	return xh2.ErrCodeNo
}

// maxQueuedPerStream times MaxConcurrentStreams is how many new streams may
// wait for a handler before the connection is closed (x/net/http2's bound).
const maxQueuedPerStream = 4

// startLocked runs the handler of the new stream st, or queues st while
// MaxConcurrentStreams handlers are running. A stream the client resets
// leaves the stream table at once (it no longer counts against the
// client's limit, RFC 9113 §5.1.2), but its handler may run on for a while
// (an upstream connect or request being given up). Without this bound a
// client opening and resetting streams in a loop (CVE-2023-44487, "rapid
// reset") would have any number of handlers, and upstream requests, in
// flight on one connection. A client that queues more than
// maxQueuedPerStream×MaxConcurrentStreams streams this way gets a
// connection error ENHANCE_YOUR_CALM, as from x/net/http2's server.
func (c *Conn) startLocked(st *stream) xh2.ErrCode {
	max := int(c.opts.MaxConcurrentStreams)
	if c.handlers < max {
		c.handlers++
		go c.run(st)
		return xh2.ErrCodeNo
	}
	if len(c.queued) >= maxQueuedPerStream*max {
		c.debug("http2 connection error", errTooManyResets)
		return xh2.ErrCodeEnhanceYourCalm
	}
	c.queued = append(c.queued, st)
	return xh2.ErrCodeNo
}

// handlerDoneLocked counts a handler's return and starts queued streams'
// handlers in its place; a queued stream that was reset (or whose
// connection ended) meanwhile is dropped without one.
func (c *Conn) handlerDoneLocked() {
	c.handlers--
	for len(c.queued) > 0 && c.handlers < int(c.opts.MaxConcurrentStreams) {
		st := c.queued[0]
		c.queued[0] = nil
		c.queued = c.queued[1:]
		if c.streams[st.id] != st {
			st.releaseLocked()
			continue
		}
		c.handlers++
		go c.run(st)
	}
	if len(c.queued) == 0 {
		c.queued = nil
	}
}

// newRequest builds the request of a HEADERS frame, or returns the stream
// error of a malformed one (RFC 9113 §8.3).
//
// It returns the request, its regular fields (those after the
// pseudo-fields) and whether it expects a 100 (Continue).
func (c *Conn) newRequest(ctx context.Context, f *headerBlock) (_ *http.Request, fields []hpack.HeaderField, expectContinue bool, _ xh2.ErrCode) {
	// One pass over the pseudo-fields, which the Framer checked come
	// first, are known and are not repeated.
	var method, scheme, authority, path, protocol string
	fields = f.fields
	for len(fields) > 0 && strings.HasPrefix(fields[0].Name, ":") {
		switch v := fields[0].Value; fields[0].Name {
		case ":method":
			method = v
		case ":scheme":
			scheme = v
		case ":authority":
			authority = v
		case ":path":
			path = v
		case ":protocol":
			protocol = v
		}
		fields = fields[1:]
	}
	if method == "CONNECT" {
		if protocol == "" && (path != "" || scheme != "" || authority == "") {
			return nil, nil, false, xh2.ErrCodeProtocol
		}
		if protocol != "" && (path == "" || scheme == "" || authority == "") {
			return nil, nil, false, xh2.ErrCodeProtocol
		}
	} else if method == "" || path == "" || scheme == "" || protocol != "" {
		return nil, nil, false, xh2.ErrCodeProtocol
	}
	// What the router writes into an HTTP/1.1 request line upstream must
	// pass the rules of one (RFC 9113 §8.3.1: a malformed request).
	if !http1.ValidMethod(method) || (path != "" && !http1.ValidPath(path)) ||
		(path == "*" && method != http.MethodOptions) {
		return nil, nil, false, xh2.ErrCodeProtocol
	}
	declared := int64(-1)
	host := ""
	for _, hf := range fields {
		if ConnectionSpecific(hf.Name) {
			return nil, nil, false, xh2.ErrCodeProtocol
		}
		switch hf.Name {
		case "te":
			if hf.Value != "trailers" {
				return nil, nil, false, xh2.ErrCodeProtocol
			}
		case "content-length":
			n, err := strconv.ParseUint(hf.Value, 10, 63)
			if err != nil || declared >= 0 {
				return nil, nil, false, xh2.ErrCodeProtocol
			}
			declared = int64(n)
		case "host":
			if host == "" {
				host = hf.Value
			}
		case "expect":
			expectContinue = strings.EqualFold(hf.Value, "100-continue")
		}
	}
	if authority == "" {
		authority = host
	}
	if authority != "" && !http1.ValidAuthority(authority, method == "CONNECT" && protocol == "") {
		return nil, nil, false, xh2.ErrCodeProtocol
	}
	var header http.Header // nil with RawFields, but for ":protocol"
	if !c.opts.RawFields {
		header = make(http.Header, len(fields)+1)
		var cookies []string
		for _, hf := range fields {
			if hf.Name == "cookie" {
				cookies = append(cookies, hf.Value)
				continue
			}
			k := canonicalKey(hf.Name)
			header[k] = append(header[k], hf.Value)
		}
		if len(cookies) > 0 {
			header["Cookie"] = []string{strings.Join(cookies, "; ")}
		}
	}
	if protocol != "" {
		if header == nil {
			header = make(http.Header, 1)
		}
		header[":protocol"] = []string{protocol}
	}
	uri := path
	connectForm := method == "CONNECT" && protocol == ""
	if connectForm {
		uri = authority
	}
	// One allocation: the literal stays on the stack when WithContext is
	// inlined.
	req := (&http.Request{
		Method:        method,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        header,
		Host:          authority,
		RequestURI:    uri,
		ContentLength: declared,
		RemoteAddr:    c.opts.RemoteAddr,
	}).WithContext(ctx)
	if scheme == "https" {
		req.TLS = c.opts.TLS
	}
	if !c.opts.RawFields {
		// The http.Handler contract's URL; RawFields handlers use
		// RequestURI and skip the parse.
		if connectForm {
			req.URL = &url.URL{Host: authority}
		} else if u, err := url.ParseRequestURI(uri); err == nil {
			req.URL = u
		} else {
			return nil, nil, false, xh2.ErrCodeProtocol
		}
	}
	return req, fields, expectContinue, xh2.ErrCodeNo
}

// canonicalKey is http.CanonicalHeaderKey without an allocation for the
// common request fields.
func canonicalKey(name string) string {
	switch name {
	case "accept":
		return "Accept"
	case "accept-encoding":
		return "Accept-Encoding"
	case "accept-language":
		return "Accept-Language"
	case "user-agent":
		return "User-Agent"
	case "content-length":
		return "Content-Length"
	case "content-type":
		return "Content-Type"
	case "authorization":
		return "Authorization"
	case "host":
		return "Host"
	case "expect":
		return "Expect"
	}
	return http.CanonicalHeaderKey(name)
}

// streamError resets stream id with code (RFC 9113 §5.4.2).
func (c *Conn) streamError(id uint32, code xh2.ErrCode) {
	if st := c.streams[id]; st != nil {
		st.abortLocked(errStreamReset)
		c.removeLocked(st)
	}
	c.appendRST(id, code)
}

// removeLocked forgets a stream that ended both ways or was reset.
func (c *Conn) removeLocked(st *stream) {
	if c.streams[st.id] != st {
		return
	}
	delete(c.streams, st.id)
	if len(c.streams) == 0 {
		if c.finalGoaway {
			c.closeLocked()
			return
		}
		if c.idleTimer != nil {
			c.idleTimer.Reset(c.opts.IdleTimeout)
		}
		if c.idler != nil && !c.shutdown {
			c.idler.Wake()
		}
	}
}

// run serves one stream on its own goroutine.
func (c *Conn) run(st *stream) {
	abort := true
	defer func() {
		if abort {
			if p := recover(); p != nil && p != http.ErrAbortHandler && c.opts.Log != nil {
				c.opts.Log.Error("http2 stream handler panic", zap.Uint64("conn", c.opts.ConnID), zap.String("codec", "http2"),
					zap.Uint32("stream", st.id), zap.Any("panic", p))
			}
		}
		c.mu.Lock()
		if abort {
			st.resetLocked(xh2.ErrCodeInternal)
		} else {
			st.finishLocked()
		}
		st.cancel()
		st.releaseLocked()
		c.handlerDoneLocked()
		c.mu.Unlock()
		st.recycle()
	}()
	if st.tooLarge {
		st.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
	} else {
		c.handler.ServeHTTP(st, st.req)
	}
	abort = false
}

// writeSettings queues the server's SETTINGS and the connection window's
// first WINDOW_UPDATE.
func (c *Conn) writeSettings() {
	type setting struct {
		id  xh2.SettingID
		val uint32
	}
	settings := []setting{
		{xh2.SettingMaxConcurrentStreams, c.opts.MaxConcurrentStreams},
		{xh2.SettingInitialWindowSize, c.opts.InitialStreamWindowSize},
		{settingEnableConnectProtocol, 1},
	}
	if c.opts.MaxHeaderListSize > 0 {
		settings = append(settings, setting{xh2.SettingMaxHeaderListSize, c.opts.MaxHeaderListSize})
	}
	c.appendFrameHeader(6*len(settings), frameSettings, 0, 0)
	for _, s := range settings {
		c.wbuf = append(c.wbuf, byte(s.id>>8), byte(s.id), byte(s.val>>24), byte(s.val>>16), byte(s.val>>8), byte(s.val))
	}
	c.unackedSettings++
	if d := int64(c.opts.InitialConnectionWindowSize) - initialWindow; d > 0 {
		c.appendWindowUpdate(0, d)
		c.recvAvail += d
	}
}

func (c *Conn) appendFrameHeader(length int, typ, flags byte, id uint32) {
	if c.wbuf == nil {
		c.wbufBox = wbufPool.Get().(*[]byte)
		c.wbuf = (*c.wbufBox)[:0]
	}
	c.wbuf = append(c.wbuf, byte(length>>16), byte(length>>8), byte(length), typ, flags,
		byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id))
}

func (c *Conn) appendGoAway(last uint32, code xh2.ErrCode) {
	c.appendFrameHeader(8, frameGoAway, 0, 0)
	c.wbuf = append(c.wbuf, byte(last>>24)&0x7f, byte(last>>16), byte(last>>8), byte(last),
		byte(code>>24), byte(code>>16), byte(code>>8), byte(code))
}

func (c *Conn) appendRST(id uint32, code xh2.ErrCode) {
	c.sentResets[c.nextReset%uint32(len(c.sentResets))] = id
	c.nextReset++
	c.appendFrameHeader(4, frameRSTStream, 0, id)
	c.wbuf = append(c.wbuf, byte(code>>24), byte(code>>16), byte(code>>8), byte(code))
}

func (c *Conn) appendWindowUpdate(id uint32, n int64) {
	c.appendFrameHeader(4, frameWindowUpdate, 0, id)
	c.wbuf = append(c.wbuf, byte(n>>24)&0x7f, byte(n>>16), byte(n>>8), byte(n))
}

// appendHeaders queues a header block from a header map as HEADERS and
// CONTINUATION frames (see encodeHeaderMap).
func (c *Conn) appendHeaders(id uint32, status int, h http.Header, trailers, end bool) {
	c.hbuf = encodeHeaderMap(c.hbuf[:0], status, h, trailers)
	c.appendBlock(id, c.hbuf, end)
}

// encodeHeaderMap encodes a header block: the status, then the fields of
// h except trailer declarations written as http.TrailerPrefix keys; with
// trailers set, only those and no status.
func encodeHeaderMap(b []byte, status int, h http.Header, trailers bool) []byte {
	if !trailers {
		b = appendStatus(b, status)
	}
	for k, vv := range h {
		if trailers {
			if !strings.HasPrefix(k, http.TrailerPrefix) {
				continue
			}
			k = k[len(http.TrailerPrefix):]
		} else if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		name := lowerKey(k)
		if ConnectionSpecific(name) {
			continue
		}
		for _, v := range vv {
			b = appendField(b, name, v)
		}
	}
	return b
}

// ConnectionSpecific reports whether name (lowercase) is one of the
// connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2): a request
// with one is malformed, and a response head or trailers leave them out.
// "te" is not among them: a request may carry "te: trailers".
func ConnectionSpecific[S ~string | ~[]byte](name S) bool {
	switch string(name) {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

// appendBlock frames an encoded header block as HEADERS and CONTINUATION
// frames.
func (c *Conn) appendBlock(id uint32, block []byte, end bool) {
	flags := byte(0)
	if end {
		flags |= flagEndStream
	}
	typ := byte(frameHeaders)
	for {
		n := min(len(block), c.peerFrameSize)
		fl := flags
		if n == len(block) {
			fl |= flagEndHeaders
		}
		c.appendFrameHeader(n, typ, fl, id)
		c.wbuf = append(c.wbuf, block[:n]...)
		block = block[n:]
		if len(block) == 0 {
			return
		}
		typ, flags = frameContinuation, 0
	}
}

// trailerFields reports whether h holds trailers with a value.
func trailerFields(h http.Header) bool {
	for k, vv := range h {
		if len(vv) > 0 && strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// lowerKey is the HTTP/2 name of a header map key.
func lowerKey(k string) string {
	switch k {
	case "Content-Length":
		return "content-length"
	case "Content-Type":
		return "content-type"
	case "Date":
		return "date"
	case "Content-Encoding":
		return "content-encoding"
	}
	for i := 0; i < len(k); i++ {
		if 'A' <= k[i] && k[i] <= 'Z' {
			return strings.ToLower(k)
		}
	}
	return k
}

// flush hands the frames built so far to the transport (which copies
// them) and gives the frame buffer back to wbufPool: an idle connection
// holds none, whatever the size of the frames it built last.
func (c *Conn) flush() {
	if len(c.wbuf) == 0 {
		return
	}
	c.write(c.wbuf)
	if c.wbufBox != nil && cap(c.wbuf) <= maxPooledWbuf {
		*c.wbufBox = c.wbuf[:0]
		wbufPool.Put(c.wbufBox)
	}
	c.wbuf, c.wbufBox = nil, nil
}

// wbufPool holds the connections' frame buffers between flushes.
var wbufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 4<<10)
	return &b
}}

// maxPooledWbuf bounds the frame buffers kept in wbufPool; a larger one
// (a flush of many frames) is left to the collector.
const maxPooledWbuf = 128 << 10

// directPayload is the DATA payload size from which a frame's payload is
// handed to the transport by itself, after its header, instead of being
// copied into the frame buffer.
const directPayload = 4 << 10

// write hands p to the transport; the first failure ends the connection
// and makes later writes no-ops.
func (c *Conn) write(p []byte) {
	if c.writeErr != nil {
		return
	}
	if _, err := c.t.Write(p); err != nil {
		c.writeErr = fmt.Errorf("http2: write: %w", err)
		c.closeLocked()
	}
}
