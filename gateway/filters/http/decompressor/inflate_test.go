package decompressor

import (
	"bytes"
	"compress/gzip"
	"errors"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/sluice-proxy/sluice/gateway/internal/coding"
)

// text returns n bytes of text that compresses about 3:1, well within
// the default max_inflate_ratio.
func text(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("sluice decompresses what streams through it gzip brotli zstd body chunk window")
	var b []byte
	for len(b) < n {
		b = append(append(b, words[r.IntN(len(words))]...), " .,\n"[r.IntN(4)])
		b = strconv.AppendInt(b, int64(r.IntN(1000)), 10)
	}
	return b[:n]
}

func compress(t testing.TB, lib library, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	switch lib {
	case coding.Gzip:
		w := gzip.NewWriter(&b)
		w.Write(p)
		w.Close()
	case coding.Brotli:
		w := brotli.NewWriter(&b)
		w.Write(p)
		w.Close()
	case coding.Zstd:
		w, _ := zstd.NewWriter(&b)
		w.Write(p)
		w.Close()
	}
	return b.Bytes()
}

// feedAll feeds in to a new inflater in pieces of n bytes, the last one
// ending the stream, and returns what came out and the error.
func feedAll(lib library, ratio int64, in []byte, n int, maxOut *int) ([]byte, error) {
	z := newInflater(lib, ratio)
	defer z.close()
	var all []byte
	for i := 0; ; i += n {
		j := min(i+n, len(in))
		out, done, err := z.feed(in[i:j], j == len(in))
		if maxOut != nil {
			*maxOut = max(*maxOut, len(out))
		}
		all = append(all, out...)
		if err != nil || done || j == len(in) {
			return all, err
		}
	}
}

func TestInflaterRoundTripsEveryLibrary(t *testing.T) {
	body := text(90000)
	for lib := range coding.NumLibraries {
		for _, n := range []int{1, 7, 4096, 1 << 20} {
			got, err := feedAll(lib, 100, compress(t, lib, body), n, nil)
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("%s in pieces of %d: %d bytes, %v; want the %d bytes back", lib, n, len(got), err, len(body))
			}
		}
	}
}

// TestInflaterStopsBombsWithBoundedOutput feeds a gzip bomb (64 MiB of
// zeros, about 64 KiB compressed) in 16 KiB pieces: it must end with
// ErrRatio, having released no more than the ratio allows of what it read.
func TestInflaterStopsBombsWithBoundedOutput(t *testing.T) {
	bomb := compress(t, coding.Gzip, make([]byte, 64<<20))
	maxOut := 0
	got, err := feedAll(coding.Gzip, 100, bomb, 16<<10, &maxOut)
	if !errors.Is(err, ErrRatio) {
		t.Fatalf("err %v, want ErrRatio", err)
	}
	if len(got) > 100*len(bomb) || maxOut > 100*(16<<10)+readChunk {
		t.Errorf("released %d bytes (at most %d at once) of a %d-byte bomb", len(got), maxOut, len(bomb))
	}
}

func TestInflaterRejectsCorruptAndTrailingData(t *testing.T) {
	good := compress(t, coding.Gzip, []byte("hello, world"))
	bad := append([]byte(nil), good...)
	bad[12] ^= 0xff
	for name, in := range map[string][]byte{
		"corrupt":   bad,
		"truncated": good[:len(good)-3],
		"not gzip":  []byte("plain text, not gzip at all"),
		"trailing":  append(append([]byte(nil), good...), "junk"...),
	} {
		if _, err := feedAll(coding.Gzip, 100, in, 5, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	for lib := range coding.NumLibraries {
		if _, err := feedAll(lib, 100, []byte("definitely not compressed data!!"), 8, nil); err == nil {
			t.Errorf("%s: garbage decoded without error", lib)
		}
	}
}

// TestInflaterCloseEndsGoroutine checks that a stream abandoned mid-body
// leaves no goroutine behind.
func TestInflaterCloseEndsGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	in := compress(t, coding.Gzip, []byte(strings.Repeat("x", 100000)))
	for range 50 {
		z := newInflater(coding.Gzip, 100)
		z.feed(in[:len(in)/2], false)
		z.close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before", runtime.NumGoroutine(), before)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}
