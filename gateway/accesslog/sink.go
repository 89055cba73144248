package accesslog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// Counter is what a sink counts drops and failures with; *stats.Counter
// implements it.
type Counter interface{ Inc() }

// Options tune a Sink. The zero value is usable.
type Options struct {
	// Queue is the number of lines that may wait for the writer goroutine;
	// beyond it Log drops lines. Default 4096.
	Queue int
	// BatchBytes bounds the bytes written with one write(2). Lines are never
	// split across writes, so several processes can append to one file.
	// Default 64 KiB.
	BatchBytes int
	// Dropped, WriteFailed and ReopenFailed, if set, count lines dropped
	// because the queue was full, failed writes, and failed reopens.
	Dropped, WriteFailed, ReopenFailed Counter
}

// Sink writes lines to a file or a standard stream from its own goroutine.
// Write never blocks. A Sink is safe for concurrent use.
type Sink struct {
	path   string
	stream bool // stdout or stderr: never reopened or closed
	opts   Options

	queue  chan *[]byte
	reopen chan chan error
	done   chan struct{}
	exited chan struct{}
	closed atomic.Bool

	dropped atomic.Uint64

	// Owned by the writer goroutine:
	w   io.Writer
	f   *os.File
	buf []byte
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Buffer returns an empty line buffer from the sink's pool; hand it back
// with Write (which takes ownership) or Release.
func Buffer() *[]byte {
	b := linePool.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

// Release returns a buffer obtained from Buffer that was not written.
func Release(b *[]byte) {
	if cap(*b) <= 64<<10 {
		linePool.Put(b)
	}
}

// Open returns a sink writing to path: "/dev/stdout" or "stdout" and
// "/dev/stderr" or "stderr" name the standard streams; anything else is a
// file opened with O_APPEND|O_CREATE (mode 0644) and reopened by Reopen.
func Open(path string, opts Options) (*Sink, error) {
	if opts.Queue <= 0 {
		opts.Queue = 4096
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 64 << 10
	}
	s := &Sink{
		path: path, opts: opts,
		queue:  make(chan *[]byte, opts.Queue),
		reopen: make(chan chan error),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
		buf:    make([]byte, 0, opts.BatchBytes),
	}
	switch path {
	case "/dev/stdout", "stdout":
		s.w, s.stream = os.Stdout, true
	case "/dev/stderr", "stderr":
		s.w, s.stream = os.Stderr, true
	case "":
		return nil, errors.New("accesslog: empty path")
	default:
		f, err := openFile(path)
		if err != nil {
			return nil, err
		}
		s.f, s.w = f, f
	}
	go s.run()
	return s, nil
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("accesslog: %w", err)
	}
	return f, nil
}

// Path returns the path the sink was opened with.
func (s *Sink) Path() string { return s.path }

// Write queues a line (which must end in '\n') and takes ownership of b,
// returning it to the pool once written. When the queue is full, or the
// sink is closed, the line is dropped and counted. Write never blocks.
func (s *Sink) Write(b *[]byte) {
	if s.closed.Load() {
		s.drop(b)
		return
	}
	select {
	case s.queue <- b:
	default:
		s.drop(b)
	}
}

func (s *Sink) drop(b *[]byte) {
	s.dropped.Add(1)
	if s.opts.Dropped != nil {
		s.opts.Dropped.Inc()
	}
	Release(b)
}

// Dropped returns the number of lines dropped so far.
func (s *Sink) Dropped() uint64 { return s.dropped.Load() }

// Reopen makes the writer flush, close the file and open path again: after
// logrotate has moved the file away, lines go to a new file at path. It
// returns once the new file is open. It is a no-op for standard streams.
func (s *Sink) Reopen() error {
	if s.stream {
		return nil
	}
	reply := make(chan error, 1)
	select {
	case s.reopen <- reply:
		return <-reply
	case <-s.exited:
		return errors.New("accesslog: sink closed")
	}
}

// Close writes what is queued, closes the file and stops the writer.
// Lines written after Close are dropped.
func (s *Sink) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.done)
	<-s.exited
	return nil
}

func (s *Sink) run() {
	defer close(s.exited)
	for {
		select {
		case b := <-s.queue:
			s.add(b)
			s.drain()
		case reply := <-s.reopen:
			s.drain() // lines queued before Reopen go to the old file
			reply <- s.reopenFile()
		case <-s.done:
			s.drain()
			s.flush()
			if s.f != nil {
				s.f.Close()
			}
			return
		}
	}
}

// drain takes every queued line without blocking, then writes the batch.
func (s *Sink) drain() {
	for {
		select {
		case b := <-s.queue:
			s.add(b)
		default:
			s.flush()
			return
		}
	}
}

// add appends a line to the batch, writing the batch first if the line
// would not fit, so that every write(2) holds whole lines.
func (s *Sink) add(b *[]byte) {
	if len(s.buf)+len(*b) > cap(s.buf) {
		s.flush()
	}
	if len(*b) > cap(s.buf) {
		s.write(*b)
	} else {
		s.buf = append(s.buf, *b...)
	}
	Release(b)
}

func (s *Sink) flush() {
	if len(s.buf) > 0 {
		s.write(s.buf)
		s.buf = s.buf[:0]
	}
}

func (s *Sink) write(p []byte) {
	if s.w == nil {
		return
	}
	if _, err := s.w.Write(p); err != nil && s.opts.WriteFailed != nil {
		s.opts.WriteFailed.Inc()
	}
}

func (s *Sink) reopenFile() error {
	f, err := openFile(s.path)
	if err != nil {
		// Keep writing to the old file rather than losing lines.
		if s.opts.ReopenFailed != nil {
			s.opts.ReopenFailed.Inc()
		}
		return err
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.w = f, f
	return nil
}
