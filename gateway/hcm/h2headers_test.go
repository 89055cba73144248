package hcm

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// h2Frame returns one frame: a header of typ, flags and stream id, and a
// payload of n zero bytes.
func h2Frame(typ, flags byte, id uint32, n int) []byte {
	b := []byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[5:], id)
	return append(b, make([]byte, n)...)
}

func h2Stream(frames ...[]byte) []byte {
	out := []byte(h2Preface)
	for _, f := range frames {
		out = append(out, f...)
	}
	return out
}

// boundsLog records start and stop with the number of bytes seen when
// each happened (exact when the bytes are fed one at a time).
type boundsLog struct {
	seen   *int
	events []string
}

func (b *boundsLog) start() { b.events = append(b.events, fmt.Sprintf("start@%d", *b.seen)) }
func (b *boundsLog) stop()  { b.events = append(b.events, fmt.Sprintf("stop@%d", *b.seen)) }

// feed gives data to a new watcher in chunks of the given sizes (cycled;
// a zero size counts as one) and returns the events with offsets at the
// end of the chunk they happened in.
func feed(data []byte, sizes []byte) []string {
	seen := 0
	log := &boundsLog{seen: &seen}
	w := newH2Inbound(log)
	for i := 0; len(data) > 0; i++ {
		n := 1
		if len(sizes) > 0 {
			n = max(1, int(sizes[i%len(sizes)]))
		}
		n = min(n, len(data))
		seen += n
		w.see(data[:n])
		data = data[n:]
	}
	return log.events
}

// modelEvents is what feeding data one byte at a time must report,
// computed from the whole input by a plain frame walk.
func modelEvents(data []byte) []string {
	var out []string
	off := len(h2Preface)
	var maxStream uint32
	inBlock := false
	for off+9 <= len(data) {
		h := data[off : off+9]
		n := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		id := binary.BigEndian.Uint32(h[5:]) &^ (1 << 31)
		hdrEnd, end := off+9, off+9+n
		ending := false
		switch h[3] {
		case 0x1:
			if !inBlock && id > maxStream {
				maxStream, inBlock = id, true
				out = append(out, fmt.Sprintf("start@%d", hdrEnd))
				ending = h[4]&0x4 != 0
			}
		case 0x9:
			ending = inBlock && h[4]&0x4 != 0
		}
		if end > len(data) {
			break
		}
		if ending {
			inBlock = false
			out = append(out, fmt.Sprintf("stop@%d", end))
		}
		off = end
	}
	return out
}

// stripOffsets keeps only the event names.
func stripOffsets(ev []string) []string {
	out := make([]string, len(ev))
	for i, e := range ev {
		out[i] = e[:4]
	}
	return out
}

func checkInbound(t *testing.T, data, sizes []byte) {
	want := modelEvents(data)
	if got := feed(data, nil); !reflect.DeepEqual(got, want) {
		t.Fatalf("byte by byte: events %v, want %v", got, want)
	}
	got := feed(data, sizes)
	if !reflect.DeepEqual(stripOffsets(got), stripOffsets(want)) {
		t.Fatalf("in chunks %v: events %v, want %v", sizes, got, want)
	}
}

// TestH2InboundFollowsRequestHeaderBlocks checks the header blocks the
// watcher sees open and end: a block opens with a HEADERS frame of a new
// stream and ends with the last byte of the frame that has END_HEADERS;
// trailers and frames of other types do not open one.
func TestH2InboundFollowsRequestHeaderBlocks(t *testing.T) {
	p := len(h2Preface)
	for _, tc := range []struct {
		name string
		data []byte
		want []string
	}{
		{"whole HEADERS", h2Stream(h2Frame(0x4, 0, 0, 6), h2Frame(0x1, 0x4|0x1, 1, 10)),
			[]string{fmt.Sprint("start@", p+15+9), fmt.Sprint("stop@", p+15+19)}},
		{"HEADERS then CONTINUATION", h2Stream(h2Frame(0x1, 0, 1, 10), h2Frame(0x9, 0, 1, 3), h2Frame(0x9, 0x4, 1, 2)),
			[]string{fmt.Sprint("start@", p+9), fmt.Sprint("stop@", p+19+12+11)}},
		{"HEADERS without its CONTINUATION", h2Stream(h2Frame(0x1, 0, 1, 10), h2Frame(0x9, 0, 1, 3)),
			[]string{fmt.Sprint("start@", p+9)}},
		{"trailers are not a request head", h2Stream(h2Frame(0x1, 0x4, 1, 1), h2Frame(0x0, 0, 1, 4), h2Frame(0x1, 0x1, 1, 1)),
			[]string{fmt.Sprint("start@", p+9), fmt.Sprint("stop@", p+10)}},
		{"DATA and PING open nothing", h2Stream(h2Frame(0x0, 0, 1, 4), h2Frame(0x6, 0x1, 0, 8)), nil},
		{"padded preface only", []byte(h2Preface[:10]), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := feed(tc.data, nil); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("events %v, want %v", got, tc.want)
			}
			checkInbound(t, tc.data, []byte{7, 3, 200})
		})
	}
}

// FuzzH2Inbound feeds arbitrary client bytes in arbitrary chunks: the
// watcher must not panic, must report exactly the events of a plain frame
// walk over the whole input when fed byte by byte, and the same events
// however the input is split.
func FuzzH2Inbound(f *testing.F) {
	f.Add(h2Stream(h2Frame(0x1, 0, 1, 10), h2Frame(0x9, 0x4, 1, 2)), []byte{5})
	f.Add(h2Stream(h2Frame(0x1, 0x5, 1, 3), h2Frame(0x1, 0x5, 3, 3), h2Frame(0x1, 0x1, 3, 3)), []byte{1, 9, 200})
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		if len(data) > 1<<16 {
			return
		}
		checkInbound(t, data, sizes)
	})
}

// TestH2InboundDoesNotAllocate follows a request per iteration with the
// headers timer on.
func TestH2InboundDoesNotAllocate(t *testing.T) {
	ht := newHeaderTimer(time.Hour, func() {})
	defer ht.close()
	w := newH2Inbound(ht)
	w.see([]byte(h2Preface))
	var id uint32 = 1
	hdr := []byte{0, 0, 40, 0, 0, 0, 0, 0, 0}
	payload := make([]byte, 40)
	allocs := testing.AllocsPerRun(1000, func() {
		hdr[3], hdr[4] = 0x1, 0
		binary.BigEndian.PutUint32(hdr[5:], id)
		w.see(hdr)
		w.see(payload)
		hdr[3], hdr[4] = 0x9, 0x4
		w.see(hdr)
		w.see(payload)
		id += 2
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request, want 0", allocs)
	}
}

// TestHeaderTimerExpiresOnlyForABlockOpenTooLong opens and ends blocks
// quickly for longer than the timeout (no expiry), then leaves one open
// (expiry after about the timeout), and checks close stops a pending one.
func TestHeaderTimerExpiresOnlyForABlockOpenTooLong(t *testing.T) {
	const timeout = 50 * time.Millisecond
	expired := make(chan time.Time, 2)
	ht := newHeaderTimer(timeout, func() { expired <- time.Now() })
	defer ht.close()
	for end := time.Now().Add(4 * timeout); time.Now().Before(end); {
		ht.start()
		time.Sleep(timeout / 10) // a block open for a while, within the timeout
		ht.stop()
	}
	select {
	case <-expired:
		t.Fatal("expired although no block stayed open for the timeout")
	default:
	}
	start := time.Now()
	ht.start()
	select {
	case at := <-expired:
		if d := at.Sub(start); d < timeout {
			t.Fatalf("expired %v after the block opened, before the timeout %v", d, timeout)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an open block did not expire")
	}

	ht2 := newHeaderTimer(timeout, func() { expired <- time.Now() })
	ht2.start()
	ht2.close()
	select {
	case <-expired:
		t.Fatal("expired after close")
	case <-time.After(3 * timeout):
	}
}

// BenchmarkH2InboundRequest follows a request's frames (HEADERS, DATA),
// without and with request_headers_timeout.
func BenchmarkH2InboundRequest(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprint("timeout=", on), func(b *testing.B) {
			var bounds headBounds
			if on {
				ht := newHeaderTimer(time.Hour, func() {})
				defer ht.close()
				bounds = ht
			}
			w := newH2Inbound(bounds)
			w.see([]byte(h2Preface))
			hdr := make([]byte, 9)
			payload := make([]byte, 100)
			var id uint32 = 1
			b.ReportAllocs()
			for b.Loop() {
				copy(hdr, []byte{0, 0, 100, 0x1, 0x4, 0, 0, 0, 0})
				binary.BigEndian.PutUint32(hdr[5:], id)
				w.see(hdr)
				w.see(payload)
				copy(hdr, []byte{0, 0, 100, 0x0, 0x1, 0, 0, 0, 0})
				binary.BigEndian.PutUint32(hdr[5:], id)
				w.see(hdr)
				w.see(payload)
				id += 2
			}
		})
	}
}
