package pool

import (
	"net"

	"github.com/sluice-proxy/sluice/gateway/internal/writeread"
)

// sendReader is the source of a pool connection's response reader: a write
// WriteOnRead deferred is done by its next Read, as one step with the read
// of the answer (see package writeread) on a plain TCP connection.
type sendReader struct {
	nc      net.Conn
	wr      *writeread.Conn // nil: not a plain TCP connection
	pending []byte          // written by the next Read before it reads
	werr    error           // the deferred write's error, until WriteErr takes it
}

func newSendReader(nc net.Conn) *sendReader {
	return &sendReader{nc: nc, wr: writeread.New(nc)}
}

// Read implements io.Reader: a pending write goes first.
func (s *sendReader) Read(p []byte) (int, error) {
	if s.pending == nil {
		return s.nc.Read(p)
	}
	if s.wr == nil || len(p) == 0 {
		s.flush()
		return s.nc.Read(p)
	}
	b := s.pending
	s.pending = nil
	n, err, werr := s.wr.WriteRead(b, p)
	if werr != nil {
		// The rest of the request is lost; an early response may still
		// be there to read.
		s.werr = werr
		return s.nc.Read(p)
	}
	return n, err
}

// flush writes a pending write now.
func (s *sendReader) flush() {
	if s.pending != nil {
		b := s.pending
		s.pending = nil
		_, s.werr = s.nc.Write(b)
	}
}

// WriteOnRead makes the next read of c.R write b first, so that on a plain
// TCP connection no read is tried before the answer can be there (package
// writeread). b must stay unchanged until WriteErr. If R already holds
// bytes, b is written at once.
func (c *Conn) WriteOnRead(b []byte) {
	s := c.src
	s.werr = nil
	if len(b) == 0 {
		return
	}
	s.pending = b
	if len(c.R.Buffered()) > 0 {
		s.flush()
	}
}

// WriteErr returns the error of the write WriteOnRead deferred, writing it
// first if no read took it.
func (c *Conn) WriteErr() error {
	s := c.src
	s.flush()
	err := s.werr
	s.werr = nil
	return err
}
