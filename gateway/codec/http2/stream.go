package http2

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	xh2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// stream is one request stream: its state on the connection, the request
// body its handler reads and the http.ResponseWriter it answers with. The
// fields are guarded by the connection's mu, except hdr (the handler's
// alone until it writes the head) and req (built before the handler runs).
type stream struct {
	c      *Conn
	id     uint32
	req    *http.Request
	cancel context.CancelFunc
	cond   sync.Cond // body bytes, window, reset or end; L is &c.mu
	body   requestBody

	// request side
	in          []byte // body bytes; the handler has read those before inOff
	inBox       *[]byte
	inOff       int
	inErr       error // io.EOF after END_STREAM, or why the stream ended
	recvAvail   int64 // bytes the client may still send on the stream
	recvUnsent  int64 // consumed bytes not credited back yet
	received    int64
	declared    int64 // content-length, or -1
	recvEnded   bool  // END_STREAM received
	gotTrailers bool
	continued   bool // 100 Continue was sent or is not due
	bodyClosed  bool // the handler closed the request body
	tooLarge    bool // the header list exceeded the limit: answer 431
	deadline    time.Time
	deadlineHit bool
	timer       *time.Timer

	fields   []hpack.HeaderField // the request's regular fields
	fieldArr [12]hpack.HeaderField

	// response side
	hdr           http.Header
	headBlock     []byte // the head encoded by WriteHeaderFields; nil: from hdr
	trailerBlock  []byte // the trailers encoded by WriteTrailerFields
	headArr       [192]byte
	status        int
	out           []byte // body bytes not written yet
	outBox        *[]byte
	headSent      bool
	respEnded     bool // END_STREAM sent
	reset         bool // RST_STREAM sent or received, or the connection ended
	sendWindow    int64
	waitingWindow bool
	onReset       func()      // see AfterReset
	stop          func() bool // stopReset, bound once (see streamPool)
	head          bool        // a HEAD request: the body is not sent
}

// streamPool recycles the streams that can be (see recycle).
var streamPool = sync.Pool{New: func() any {
	st := new(stream)
	st.stop = st.stopReset // once per stream object, not per AfterReset
	return st
}}

func newStream(c *Conn, id uint32, req *http.Request, cancel context.CancelFunc) *stream {
	st := streamPool.Get().(*stream)
	*st = stream{
		stop:       st.stop,
		c:          c,
		id:         id,
		req:        req,
		cancel:     cancel,
		recvAvail:  int64(c.opts.InitialStreamWindowSize),
		declared:   req.ContentLength,
		sendWindow: c.peerWindow,
		head:       req.Method == http.MethodHead,
	}
	st.cond.L = &c.mu
	st.body.st = st
	return st
}

// abortLocked ends the stream's waits: reads fail with err, writes fail.
func (st *stream) abortLocked(err error) {
	if st.reset {
		return
	}
	st.reset = true
	if st.inErr == nil {
		st.inErr = err
	}
	st.cancel()
	if f := st.onReset; f != nil {
		st.onReset = nil
		go f()
	}
	st.cond.Broadcast()
}

// resetLocked resets the stream from the server's side.
func (st *stream) resetLocked(code xh2.ErrCode) {
	c := st.c
	if st.reset || st.respEnded || c.closed {
		st.reset = true
		c.removeLocked(st)
		return
	}
	st.abortLocked(errStreamClosed)
	c.appendRST(st.id, code)
	c.flush()
	c.removeLocked(st)
}

// finishLocked ends the response when the handler returns: the head if it
// was not sent, the body bytes left, the trailers, END_STREAM.
func (st *stream) finishLocked() {
	c := st.c
	if st.reset || c.closed {
		c.removeLocked(st)
		return
	}
	if st.status == 0 {
		st.status = http.StatusOK
	}
	trailers := st.trailerBlock != nil || trailerFields(st.hdr)
	if !st.headSent {
		st.headSent = true
		st.appendHead(len(st.out) == 0 && !trailers)
		if len(st.out) == 0 && !trailers {
			st.respEnded = true
		}
	}
	if !st.respEnded {
		err := st.writeDataLocked(st.out, !trailers)
		st.out = st.out[:0]
		if err != nil {
			c.removeLocked(st)
			return
		}
		if trailers {
			if st.trailerBlock != nil {
				c.appendBlock(st.id, st.trailerBlock, true)
			} else {
				c.appendHeaders(st.id, 0, st.hdr, true, true)
			}
			st.respEnded = true
		}
	}
	if !st.recvEnded {
		// The response is complete before the request (RFC 9113 §8.1):
		// the client may stop sending.
		c.appendRST(st.id, xh2.ErrCodeNo)
		st.reset = true
	}
	c.flush()
	c.removeLocked(st)
}

// recycle puts the stream back for a later one once its handler returned
// and it left the connection's table, when nothing else can still reach
// it: not a stream with a request body (Request.Body and a body-idle
// timer of the handler's hold it) nor one whose read deadline timer ever
// ran (its function may still be about to run). The router's reset watch
// is stopped before the handler returns.
func (st *stream) recycle() {
	if st.req.Body != http.NoBody || st.timer != nil {
		return
	}
	*st = stream{stop: st.stop}
	streamPool.Put(st)
}

// releaseLocked returns the stream's buffers once its handler is done.
// Body bytes the handler left unread give their connection window back,
// as Close would have: the client may send them on other streams.
func (st *stream) releaseLocked() {
	if st.timer != nil {
		st.timer.Stop()
	}
	if n := len(st.in) - st.inOff; n > 0 {
		st.c.credit(nil, int64(n))
		st.c.flush()
	}
	putBuf(st.inBox, st.in)
	st.in, st.inOff, st.inBox = nil, 0, nil
	putBuf(st.outBox, st.out)
	st.out, st.outBox = nil, nil
}

// writeDataLocked writes p (the buffered body, or a large Write's bytes)
// as DATA frames within the flow control windows, waiting for
// WINDOW_UPDATEs while they are closed; end sets END_STREAM on the last
// frame. The lock is released while waiting.
func (st *stream) writeDataLocked(p []byte, end bool) error {
	c := st.c
	for {
		if st.reset || c.closed {
			return errStreamClosed
		}
		if len(p) == 0 {
			if end {
				c.appendFrameHeader(0, frameData, flagEndStream, st.id)
				st.respEnded = true
			}
			break
		}
		n := int64(min(len(p), c.peerFrameSize))
		n = min(n, c.sendWindow, st.sendWindow)
		if n <= 0 {
			c.flush()
			if c.closed {
				// The write failed and ended the connection: no
				// WINDOW_UPDATE or broadcast will come.
				return errStreamClosed
			}
			st.waitingWindow = true
			st.cond.Wait()
			st.waitingWindow = false
			continue
		}
		flags := byte(0)
		if end && int(n) == len(p) {
			flags = flagEndStream
			st.respEnded = true
		}
		c.appendFrameHeader(int(n), frameData, flags, st.id)
		if n >= directPayload {
			// The transport copies what it is given into its queue:
			// a large payload goes there as it is, without a copy
			// into the frame buffer first.
			c.flush()
			c.write(p[:n])
		} else {
			c.wbuf = append(c.wbuf, p[:n]...)
		}
		c.sendWindow -= n
		st.sendWindow -= n
		p = p[n:]
		if st.respEnded {
			break
		}
		if len(c.wbuf) >= 64<<10 {
			c.flush()
		}
	}
	return nil
}

// AfterReset arranges for f to run on a goroutine of its own when the
// stream is reset (by either side) or its connection ends; at once if that
// happened already. stop unregisters f and reports whether it had not run.
// One f at a time: a second call replaces the first.
func (st *stream) AfterReset(f func()) (stop func() bool) {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.reset || c.closed {
		go f()
		return func() bool { return false }
	}
	st.onReset = f
	return st.stop
}

func (st *stream) stopReset() bool {
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	registered := st.onReset != nil
	st.onReset = nil
	return registered
}

// appendHead queues the response head.
func (st *stream) appendHead(end bool) {
	if st.headBlock != nil {
		st.c.appendBlock(st.id, st.headBlock, end)
		return
	}
	st.c.appendHeaders(st.id, st.status, st.hdr, false, end)
}

// RequestFields returns the request's fields other than pseudo-fields, as
// decoded (lowercase names, in order, cookies not joined). The handler's
// until it returns.
func (st *stream) RequestFields() []hpack.HeaderField { return st.fields }

// WriteHeaderFields is WriteHeader with the fields given as a list of
// lowercase names and values instead of through Header: the head is
// encoded at once (connection-specific fields left out); a 1xx status
// (other than 101) is sent at once.
func (st *stream) WriteHeaderFields(code int, fields []httpfilter.Field) {
	if st.status != 0 {
		return
	}
	b := appendFields(appendStatus(st.headArr[:0], code), fields)
	if code >= 100 && code < 200 {
		st.sendInformational(code, b)
		return
	}
	st.status = code
	st.headBlock = b
}

// appendFields encodes fields, leaving out the connection-specific ones.
func appendFields(b []byte, fields []httpfilter.Field) []byte {
	for i := range fields {
		if f := &fields[i]; !ConnectionSpecific(f.Name) {
			b = appendField(b, f.Name, f.Value)
		}
	}
	return b
}

// sendInformational sends the 1xx head block of code at once (none for
// 101, which HTTP/2 has no use for).
func (st *stream) sendInformational(code int, block []byte) {
	if code == http.StatusSwitchingProtocols {
		return
	}
	c := st.c
	c.mu.Lock()
	if !st.reset && !c.closed {
		c.appendBlock(st.id, block, false)
		c.flush()
	}
	c.mu.Unlock()
}

// WriteTrailerFields sets the trailers sent when the handler returns, as a
// list of lowercase names and values.
func (st *stream) WriteTrailerFields(fields []httpfilter.Field) {
	if b := appendFields(nil, fields); len(b) > 0 {
		st.trailerBlock = b
	}
}

// Header implements http.ResponseWriter.
func (st *stream) Header() http.Header {
	if st.hdr == nil {
		st.hdr = make(http.Header, 8)
	}
	return st.hdr
}

// WriteHeader implements http.ResponseWriter: a 1xx status (other than
// 101) is sent at once as an informational head; the final head waits
// for the body, a flush or the handler's return.
func (st *stream) WriteHeader(code int) {
	if st.status != 0 {
		return
	}
	if code >= 100 && code < 200 {
		st.sendInformational(code, encodeHeaderMap(nil, code, st.hdr, false))
		return
	}
	st.status = code
}

// Write implements http.ResponseWriter.
func (st *stream) Write(p []byte) (int, error) {
	if st.status == 0 {
		st.WriteHeader(http.StatusOK)
	}
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.reset || c.closed {
		return 0, errStreamClosed
	}
	if st.head {
		return len(p), nil
	}
	if len(st.out) == 0 && len(p) >= bufferedData {
		// Large enough to go out now: framed from p itself, without
		// a copy into the stream's buffer first.
		if err := st.sendLocked(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if st.out == nil {
		st.outBox = getBuf()
		st.out = (*st.outBox)[:0]
	}
	st.out = append(st.out, p...)
	if len(st.out) < bufferedData {
		return len(p), nil
	}
	if err := st.flushLocked(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flushLocked writes the head if it waits and the buffered body.
func (st *stream) flushLocked() error {
	err := st.sendLocked(st.out)
	st.out = st.out[:0]
	return err
}

// sendLocked writes the head if it waits and p as body bytes, and flushes.
func (st *stream) sendLocked(p []byte) error {
	c := st.c
	if st.reset || c.closed {
		return errStreamClosed
	}
	if !st.headSent {
		st.headSent = true
		st.appendHead(false)
	}
	if err := st.writeDataLocked(p, false); err != nil {
		return err
	}
	c.flush()
	return nil
}

// Flush implements http.Flusher.
func (st *stream) Flush() { _ = st.FlushError() }

// FlushError is Flush with the error (http.ResponseController).
func (st *stream) FlushError() error {
	if st.status == 0 {
		st.WriteHeader(http.StatusOK)
	}
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	return st.flushLocked()
}

// SetReadDeadline bounds the request body reads (http.ResponseController);
// a past time unblocks a read under way.
func (st *stream) SetReadDeadline(t time.Time) error {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	st.deadline = t
	st.deadlineHit = false
	if st.timer != nil {
		st.timer.Stop()
	}
	if t.IsZero() {
		return nil
	}
	d := time.Until(t)
	if d <= 0 {
		st.deadlineHit = true
		st.cond.Broadcast()
		return nil
	}
	st.timer = time.AfterFunc(d, func() {
		c.mu.Lock()
		if st.deadline.Equal(t) {
			st.deadlineHit = true
			st.cond.Broadcast()
		}
		c.mu.Unlock()
	})
	return nil
}

// SetWriteDeadline is accepted and ignored: response writes wait only
// for the client's flow-control window, which a reset or the end of the
// connection ends.
func (st *stream) SetWriteDeadline(time.Time) error { return nil }

// requestBody is Request.Body of a stream with a body.
type requestBody struct{ st *stream }

// Read implements io.Reader; each read credits the client's windows.
func (b *requestBody) Read(p []byte) (int, error) {
	st := b.st
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !st.continued {
		st.continued = true
		if !st.reset && !c.closed && !st.headSent {
			c.appendHeaders(st.id, http.StatusContinue, nil, false, false)
			c.flush()
		}
	}
	for st.inOff == len(st.in) && st.inErr == nil {
		if st.bodyClosed {
			return 0, errBodyClosed
		}
		if st.deadlineHit {
			return 0, fmt.Errorf("http2: request body: %w", os.ErrDeadlineExceeded)
		}
		st.cond.Wait()
	}
	if st.bodyClosed {
		return 0, errBodyClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if st.inOff == len(st.in) {
		return 0, st.inErr
	}
	n := copy(p, st.in[st.inOff:])
	st.inOff += n
	if st.inOff == len(st.in) {
		st.in, st.inOff = st.in[:0], 0
	}
	c.credit(nil, int64(n))
	c.credit(st, int64(n))
	c.flush()
	return n, nil
}

// Close implements io.Closer: a read under way and later ones fail, and
// body bytes that arrive later are dropped (their connection window comes
// back at once).
func (b *requestBody) Close() error {
	st := b.st
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	if !st.bodyClosed {
		st.bodyClosed = true
		if n := len(st.in) - st.inOff; n > 0 {
			st.c.credit(nil, int64(n))
			st.c.flush()
		}
		st.in, st.inOff = st.in[:0], 0
		st.cond.Broadcast()
	}
	return nil
}

// Buffers of request and response body bytes.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 2*bufferedData)
	return &b
}}

// getBuf returns a pooled buffer in its box; putBuf gives back the box
// with the buffer as it grew, so that neither allocates.
func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(box *[]byte, b []byte) {
	if box == nil || cap(b) > 64<<10 {
		return
	}
	*box = b[:0]
	bufPool.Put(box)
}
