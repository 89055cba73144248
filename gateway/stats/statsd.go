package stats

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/sockpeek"
)

// MaxDatagram is the largest statsd datagram sent: it fits an Ethernet MTU
// with IPv6 and UDP headers to spare, as Envoy's statsd sink does.
const MaxDatagram = 1432

// DefaultStatsdInterval is the flush interval when none is given.
const DefaultStatsdInterval = 5 * time.Second

// Statsd pushes a snapshot to a statsd server over UDP every interval:
// counters as the delta since the previous flush ("name:N|c", only when
// non-zero), gauges as their value ("name:N|g", used gauges only), and each
// histogram as the quantiles of the values recorded since the previous flush
// in milliseconds ("name.p50:F|g" … "name.p99_9:F|g") plus
// "name.count:N|c". Lines are joined by '\n' into datagrams of at most
// MaxDatagram bytes. The supervisor runs it on its aggregated snapshot.
//
// Flush and Run must not be called concurrently; Close may be called from
// any goroutine.
type Statsd struct {
	conn     net.Conn // nil while a TCP sink is disconnected
	dial     func() (net.Conn, error)
	stream   bool // TCP: every line ends with '\n'
	prefix   string
	interval time.Duration
	snapshot func() Snapshot

	mu       sync.Mutex // guards the fields below (Flush versus Close)
	counters map[string]uint64
	hists    map[string]*HistogramValue
	buf      []byte
}

// NewStatsd returns a sink sending to the UDP address addr. prefix, if not
// empty, is prepended with a '.' to every name (Envoy uses "envoy"); an
// interval of 0 means DefaultStatsdInterval.
//
// A host name that does not resolve yet (DNS not up at boot) does not
// fail it: like a TCP sink, it dials again at every flush until it has a
// socket, and a flush without one loses no counter delta (see Connect).
// Only a malformed address is an error.
func NewStatsd(addr, prefix string, interval time.Duration, snapshot func() Snapshot) (*Statsd, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("stats: statsd: %w", err)
	}
	s := newStatsd(prefix, interval, snapshot)
	s.dial = func() (net.Conn, error) { return net.Dial("udp", addr) }
	s.conn, _ = s.dial()
	return s, nil
}

// Connect dials the server now if the sink has no socket yet, and reports
// why it cannot (a name that does not resolve); flushes keep trying.
func (s *Statsd) Connect() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		return nil
	}
	c, err := s.dial()
	if err != nil {
		return fmt.Errorf("stats: statsd: %w", err)
	}
	s.conn = c
	return nil
}

// NewStatsdTCP returns a sink sending newline-terminated lines over TCP to
// the first of addrs that accepts a connection. Before each flush it checks
// that the server has not closed the connection (else it dials again), and
// after a failed write it drops the connection. A flush that cannot connect
// sends nothing and loses nothing: its counter deltas go with the next one.
// A flush written into a connection the server lost without closing it
// (a crashed host) is lost, as a UDP datagram would be.
func NewStatsdTCP(addrs []string, prefix string, interval time.Duration, snapshot func() Snapshot) *Statsd {
	s := newStatsd(prefix, interval, snapshot)
	s.stream = true
	s.dial = func() (net.Conn, error) {
		var err error
		for _, a := range addrs {
			var c net.Conn
			if c, err = net.DialTimeout("tcp", a, time.Second); err == nil {
				return c, nil
			}
		}
		return nil, err
	}
	return s
}

func newStatsd(prefix string, interval time.Duration, snapshot func() Snapshot) *Statsd {
	if interval <= 0 {
		interval = DefaultStatsdInterval
	}
	if prefix != "" {
		prefix += "."
	}
	return &Statsd{
		prefix: prefix, interval: interval, snapshot: snapshot,
		counters: map[string]uint64{}, hists: map[string]*HistogramValue{},
	}
}

// Prime makes the sink carry on from base, as if its last flush had sent
// base: counter deltas and histogram intervals of the next flush start
// from base's values. A sink that takes over from another one (a reload
// that changes [statsd], an upgrade) is primed with what the other one
// sent, so that no counter delta and no histogram value is sent twice.
// Call it before the first flush.
func (s *Statsd) Prime(base Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range base {
		switch st.Def.Kind {
		case KindCounter:
			s.counters[st.Def.Name] = st.Counter
		case KindHistogram:
			if st.Histogram != nil {
				h := *st.Histogram
				s.hists[st.Def.Name] = &h
			}
		}
	}
}

// Sent returns the counters and histograms as of the sink's last flush
// (or its Prime), to prime the sink that replaces it.
func (s *Statsd) Sent() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(Snapshot, 0, len(s.counters)+len(s.hists))
	for name, v := range s.counters {
		out = append(out, Stat{Def: Def{Name: name, Kind: KindCounter}, Counter: v})
	}
	for name, h := range s.hists {
		c := *h
		out = append(out, Stat{Def: Def{Name: name, Kind: KindHistogram}, Histogram: &c})
	}
	return out
}

// Run flushes every interval until ctx is done, then flushes once more.
// Send errors (no server listening) are ignored: statsd is best effort.
func (s *Statsd) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Flush()
			return
		case <-t.C:
			s.Flush()
		}
	}
}

// Close closes the socket.
func (s *Statsd) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	return s.conn.Close()
}

// send writes one chunk of lines; a TCP sink adds the last newline and,
// on error, drops its connection.
func (s *Statsd) send(b []byte) error {
	if s.conn == nil { // a TCP sink whose connection failed earlier in this flush
		return fmt.Errorf("stats: statsd: not connected")
	}
	if s.stream {
		b = append(b, '\n')
	}
	_, err := s.conn.Write(b)
	if err != nil && s.stream {
		s.conn.Close()
		s.conn = nil
	}
	if err != nil {
		return fmt.Errorf("stats: statsd: %w", err)
	}
	return nil
}

// Flush takes a snapshot and sends it, returning the first send error.
func (s *Statsd) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stream && s.conn != nil && peerClosed(s.conn) {
		s.conn.Close()
		s.conn = nil
	}
	if s.conn == nil {
		c, err := s.dial()
		if err != nil {
			return fmt.Errorf("stats: statsd: %w", err)
		}
		s.conn = c
	}
	var firstErr error
	s.buf = s.buf[:0]
	emit := func(line []byte) {
		if len(s.buf) > 0 && len(s.buf)+1+len(line) > MaxDatagram {
			if err := s.send(s.buf); err != nil && firstErr == nil {
				firstErr = err
			}
			s.buf = s.buf[:0]
		}
		if len(s.buf) > 0 {
			s.buf = append(s.buf, '\n')
		}
		s.buf = append(s.buf, line...)
	}
	var line []byte
	for _, st := range s.snapshot() {
		name := st.Def.Name
		switch st.Def.Kind {
		case KindCounter:
			prev := s.counters[name]
			s.counters[name] = st.Counter
			delta := st.Counter - prev
			if st.Counter < prev { // reset_counters
				delta = st.Counter
			}
			if delta == 0 {
				continue
			}
			line = s.line(line[:0], name, "")
			line = strconv.AppendUint(line, delta, 10)
			emit(append(line, "|c"...))
		case KindGauge:
			if !st.Used {
				continue
			}
			if st.Gauge < 0 { // statsd reads "-N" as a decrement: set 0 first
				emit(append(s.line(line[:0], name, ""), "0|g"...))
			}
			line = s.line(line[:0], name, "")
			line = strconv.AppendInt(line, st.Gauge, 10)
			emit(append(line, "|g"...))
		case KindHistogram:
			cur := st.Histogram
			prev := s.hists[name]
			if prev == nil {
				prev = &HistogramValue{}
			}
			var iv HistogramValue
			for i := range cur.Buckets {
				if cur.Buckets[i] >= prev.Buckets[i] {
					iv.Buckets[i] = cur.Buckets[i] - prev.Buckets[i]
				} else {
					iv.Buckets[i] = cur.Buckets[i]
				}
				iv.Count += iv.Buckets[i]
			}
			cp := *cur
			s.hists[name] = &cp
			if iv.Count == 0 {
				continue
			}
			for i, q := range Quantiles {
				line = s.line(line[:0], name, quantileSuffix[i])
				line = millis(line, iv.Quantile(q))
				emit(append(line, "|g"...))
			}
			line = s.line(line[:0], name, ".count")
			line = strconv.AppendUint(line, iv.Count, 10)
			emit(append(line, "|c"...))
		}
	}
	if len(s.buf) > 0 {
		if err := s.send(s.buf); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

var quantileSuffix = []string{".p50", ".p90", ".p99", ".p99_9"}

// line appends "prefix.name<suffix>:" with statsd's reserved characters
// (':', '|', '@', '\n') replaced by '_'.
func (s *Statsd) line(b []byte, name, suffix string) []byte {
	b = append(b, s.prefix...)
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case ':', '|', '@', '\n':
			b = append(b, '_')
		default:
			b = append(b, c)
		}
	}
	b = append(b, suffix...)
	return append(b, ':')
}

// peerClosed reports whether the statsd server closed (or reset) c, with a
// non-blocking peek before each flush, so that lines are not written into a
// connection the server has already let go of.
func peerClosed(c net.Conn) bool { return sockpeek.Peek(c) == sockpeek.Closed }
