package stats

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
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
	conn     net.Conn
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
func NewStatsd(addr, prefix string, interval time.Duration, snapshot func() Snapshot) (*Statsd, error) {
	if interval <= 0 {
		interval = DefaultStatsdInterval
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("stats: statsd: %w", err)
	}
	if prefix != "" {
		prefix += "."
	}
	return &Statsd{
		conn: conn, prefix: prefix, interval: interval, snapshot: snapshot,
		counters: map[string]uint64{}, hists: map[string]*HistogramValue{},
	}, nil
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
func (s *Statsd) Close() error { return s.conn.Close() }

// Flush takes a snapshot and sends it, returning the first send error.
func (s *Statsd) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var firstErr error
	s.buf = s.buf[:0]
	emit := func(line []byte) {
		if len(s.buf) > 0 && len(s.buf)+1+len(line) > MaxDatagram {
			if _, err := s.conn.Write(s.buf); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("stats: statsd: %w", err)
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
		if _, err := s.conn.Write(s.buf); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("stats: statsd: %w", err)
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
