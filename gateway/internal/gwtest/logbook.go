package gwtest

import (
	"bufio"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Entry is one JSON log line of sluice, decoded. Numbers are float64; use
// Int to read them.
type Entry map[string]any

// Msg returns the entry's "msg" field.
func (e Entry) Msg() string {
	s, _ := e["msg"].(string)
	return s
}

// Int returns the integer value of key, accepting JSON numbers and decimal
// strings.
func (e Entry) Int(key string) (int, bool) {
	switch v := e[key].(type) {
	case float64:
		return int(v), v == float64(int(v))
	case string:
		n, err := strconv.Atoi(v)
		return n, err == nil
	}
	return 0, false
}

// Str returns the string value of key.
func (e Entry) Str(key string) string {
	s, _ := e[key].(string)
	return s
}

// logBook keeps every output line of a sluice process tree and the JSON
// entries among them. Its methods are safe for concurrent use: one
// goroutine feeds it, tests read it.
type logBook struct {
	mu      sync.Mutex
	lines   []string
	entries []Entry
	closed  bool          // the output reached EOF
	changed chan struct{} // closed and replaced on every change
}

func newLogBook() *logBook { return &logBook{changed: make(chan struct{})} }

// feed reads r line by line until EOF, then marks the book closed.
func (b *logBook) feed(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			b.add(strings.TrimRight(line, "\r\n"))
		}
		if err != nil {
			break
		}
	}
	b.mu.Lock()
	b.closed = true
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

func (b *logBook) add(line string) {
	var e Entry
	if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &e) != nil {
		e = nil
	}
	b.mu.Lock()
	b.lines = append(b.lines, line)
	if e != nil {
		b.entries = append(b.entries, e)
	}
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// mark returns the number of entries so far.
func (b *logBook) mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.entries)
}

// snapshot returns a copy of the entries.
func (b *logBook) snapshot() []Entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Entry(nil), b.entries...)
}

// tail returns the last n lines.
func (b *logBook) tail(n int) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.lines) > n {
		return append([]string(nil), b.lines[len(b.lines)-n:]...)
	}
	return append([]string(nil), b.lines...)
}

// warnings returns up to n of the lines logged at level warn or above,
// the last ones if there are more.
func (b *logBook) warnings(n int) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, line := range b.lines {
		if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) ||
			strings.Contains(line, `"level":"dpanic"`) || strings.Contains(line, `"level":"fatal"`) {
			out = append(out, line)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// wait returns the first entry at index >= from whose msg is msg and that
// match accepts (nil accepts all); an empty msg matches any msg. It gives up at deadline or when the
// output ends without such an entry, returning nil.
func (b *logBook) wait(from int, msg string, match func(Entry) bool, deadline time.Time) Entry {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for i := from; ; {
		b.mu.Lock()
		for ; i < len(b.entries); i++ {
			if e := b.entries[i]; (msg == "" || e.Msg() == msg) && (match == nil || match(e)) {
				b.mu.Unlock()
				return e
			}
		}
		closed, changed := b.closed, b.changed
		b.mu.Unlock()
		if closed {
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil
		}
	}
}
