package http2

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	xh2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzConn from fuzzSeeds")

// fuzzOpts are small limits, so that the fuzzer reaches them.
var fuzzOpts = Options{
	MaxConcurrentStreams:    4,
	InitialStreamWindowSize: 4096,
	MaxHeaderListSize:       4096,
}

// fuzzHandler reads the request body and answers; /big answers more than
// the client's initial windows.
var fuzzHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	w.Header().Set("X-Read", strconv.FormatInt(n, 10))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.Header().Set(http.TrailerPrefix+"X-Done", "yes")
	size := 100
	if r.RequestURI == "/big" {
		size = 100000
	}
	w.Write(bytes.Repeat([]byte("x"), size))
})

// endPing is the PING the fuzz test appends to an input made of whole
// frames, and endAck the server's answer to it.
var (
	endPing = []byte{0, 0, 8, framePing, 0, 0, 0, 0, 0, 'f', 'u', 'z', 'z', '-', 'e', 'n', 'd'}
	endAck  = []byte{0, 0, 8, framePing, flagAck, 0, 0, 0, 0, 'f', 'u', 'z', 'z', '-', 'e', 'n', 'd'}
)

// frameHeaderLen is the length of a frame header (RFC 9113 §4.1).
const frameHeaderLen = 9

// wholeFrames reports whether p is a sequence of complete frames.
func wholeFrames(p []byte) bool {
	for len(p) >= frameHeaderLen {
		n := frameHeaderLen + (int(p[0])<<16 | int(p[1])<<8 | int(p[2]))
		if n > len(p) {
			return false
		}
		p = p[n:]
	}
	return len(p) == 0
}

// FuzzConn writes the input after the preface and an empty SETTINGS frame
// to a connection, then closes the client side: Serve must return and
// every handler must end, whatever the frames were. An input of whole
// frames is followed by a PING, which a connection still open must answer
// (it processed every frame) before the client closes.
func FuzzConn(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		defer client.Close()
		var started, ended atomic.Int64
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			started.Add(1)
			defer ended.Add(1)
			fuzzHandler(w, r)
		})
		c := NewConn(netTransport{server, nil}, fuzzOpts, h)
		served := make(chan struct{})
		go func() {
			defer close(served)
			if err := readPreface(server); err != nil {
				server.Close()
				return
			}
			c.Serve()
		}()
		acked := make(chan struct{})
		go func() {
			buf := make([]byte, 32<<10)
			var tail []byte
			seen := false
			for {
				n, err := client.Read(buf)
				if n > 0 && !seen {
					tail = append(tail, buf[:n]...)
					if bytes.Contains(tail, endAck) {
						close(acked)
						seen = true
					} else {
						tail = tail[max(0, len(tail)-len(endAck)):]
					}
				}
				if err != nil {
					return
				}
			}
		}()

		var in bytes.Buffer
		in.WriteString(Preface)
		xh2.NewFramer(&in, nil).WriteSettings()
		in.Write(data)
		whole := wholeFrames(data)
		if whole {
			in.Write(endPing)
		}
		// The write ends early if Serve ends the connection; a Serve that
		// stops reading without ending it hits the deadline.
		client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := client.Write(in.Bytes()); err != nil && os.IsTimeout(err) {
			t.Fatal("Serve stopped reading")
		}
		if whole {
			select {
			case <-acked:
			case <-served:
			case <-time.After(5 * time.Second):
				t.Fatal("the connection neither answered the PING nor ended")
			}
		}
		client.Close()
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return after the client closed")
		}
		// Every handler ends once the connection has (polled: a handler
		// goroutine may not have begun yet).
		for deadline := time.Now().Add(5 * time.Second); started.Load() != ended.Load(); {
			if time.Now().After(deadline) {
				stacks := make([]byte, 1<<20)
				stacks = stacks[:runtime.Stack(stacks, true)]
				t.Fatalf("%d of %d handlers still running:\n%s", started.Load()-ended.Load(), started.Load(), stacks)
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// seedWriter builds frame sequences for the seed corpus.
type seedWriter struct {
	buf  bytes.Buffer
	fr   *xh2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

func newSeedWriter() *seedWriter {
	w := &seedWriter{}
	w.fr = xh2.NewFramer(&w.buf, nil)
	w.fr.AllowIllegalWrites = true
	w.enc = hpack.NewEncoder(&w.hbuf)
	return w
}

// block encodes a header block of name, value pairs.
func (w *seedWriter) block(fields ...string) []byte {
	w.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		w.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(w.hbuf.Bytes())
}

func (w *seedWriter) request(id uint32, method, path string, end bool, fields ...string) {
	all := append([]string{":method", method, ":scheme", "http", ":authority", "fuzz.test", ":path", path}, fields...)
	w.fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: id, BlockFragment: w.block(all...), EndStream: end, EndHeaders: true})
}

// fuzzSeeds are the seed corpus: frame sequences that follow the preface
// and the client's SETTINGS.
func fuzzSeeds() map[string][]byte {
	seeds := map[string][]byte{}
	add := func(name string, build func(w *seedWriter)) {
		w := newSeedWriter()
		build(w)
		seeds[name] = w.buf.Bytes()
	}
	add("get", func(w *seedWriter) {
		w.fr.WriteSettingsAck()
		w.request(1, "GET", "/", true)
	})
	add("post_data", func(w *seedWriter) {
		w.request(1, "POST", "/", false, "content-length", "5")
		w.fr.WriteData(1, true, []byte("hello"))
	})
	add("continuation", func(w *seedWriter) {
		b := w.block(":method", "GET", ":scheme", "http", ":authority", "fuzz.test", ":path", "/", "x-a", "1", "x-b", "2")
		w.fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:5], EndStream: true})
		w.fr.WriteContinuation(1, false, b[5:10])
		w.fr.WriteContinuation(1, true, b[10:])
	})
	add("continuation_interleaved", func(w *seedWriter) {
		b := w.block(":method", "GET", ":scheme", "http", ":authority", "fuzz.test", ":path", "/")
		w.fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:3], EndStream: true})
		w.fr.WritePing(false, [8]byte{})
		w.fr.WriteContinuation(1, true, b[3:])
	})
	add("window_update_overflow", func(w *seedWriter) {
		w.fr.WriteWindowUpdate(0, 1<<31-1)
	})
	add("stream_window_overflow", func(w *seedWriter) {
		w.request(1, "GET", "/big", true)
		w.fr.WriteWindowUpdate(1, 1<<31-1)
	})
	add("big_download_window_updates", func(w *seedWriter) {
		w.request(1, "GET", "/big", true)
		w.fr.WriteWindowUpdate(0, 200000)
		w.fr.WriteWindowUpdate(1, 200000)
		w.fr.WriteSettings(xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: 1 << 20})
	})
	add("data_on_stream_0", func(w *seedWriter) {
		w.fr.WriteData(0, true, []byte("x"))
	})
	add("rst_idle_stream", func(w *seedWriter) {
		w.fr.WriteRSTStream(3, xh2.ErrCodeCancel)
	})
	add("data_beyond_window", func(w *seedWriter) {
		w.request(1, "POST", "/", false)
		w.fr.WriteData(1, false, make([]byte, 4096))
		w.fr.WriteData(1, true, make([]byte, 100))
	})
	add("trailers", func(w *seedWriter) {
		w.request(1, "POST", "/", false, "te", "trailers")
		w.fr.WriteData(1, false, []byte("body"))
		w.fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: 1, BlockFragment: w.block("x-sum", "1"), EndStream: true, EndHeaders: true})
	})
	add("expect_continue", func(w *seedWriter) {
		w.request(1, "PUT", "/", false, "expect", "100-continue", "content-length", "3")
		w.fr.WriteData(1, true, []byte("abc"))
	})
	add("too_many_streams", func(w *seedWriter) {
		for id := uint32(1); id <= 11; id += 2 {
			w.request(id, "POST", "/", false)
		}
		w.fr.WriteRSTStream(1, xh2.ErrCodeCancel)
		w.fr.WriteData(3, true, []byte("x"))
	})
	add("bad_hpack", func(w *seedWriter) {
		w.fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0xff, 0xff, 0xff, 0xff, 0x7f}, EndStream: true, EndHeaders: true})
	})
	add("priority_self_dependency", func(w *seedWriter) {
		w.fr.WritePriority(1, xh2.PriorityParam{StreamDep: 1, Weight: 15})
		w.request(3, "GET", "/", true)
	})
	add("settings_invalid", func(w *seedWriter) {
		w.fr.WriteSettings(xh2.Setting{ID: xh2.SettingMaxFrameSize, Val: 100})
	})
	add("padded_data_content_length_mismatch", func(w *seedWriter) {
		w.request(1, "POST", "/", false, "content-length", "2")
		w.fr.WriteDataPadded(1, false, []byte("abc"), make([]byte, 10))
		w.request(3, "POST", "/", false)
		w.fr.WriteDataPadded(3, true, []byte("abc"), make([]byte, 20))
	})
	add("goaway_ping_unknown", func(w *seedWriter) {
		w.request(1, "GET", "/big", true)
		w.fr.WriteRawFrame(0xfa, 0, 0, []byte("unknown"))
		w.fr.WritePing(false, [8]byte{1, 2, 3})
		w.fr.WriteGoAway(0, xh2.ErrCodeNo, nil)
	})
	add("header_list_too_large", func(w *seedWriter) {
		big := string(bytes.Repeat([]byte("a"), 1500))
		w.request(1, "GET", "/", true, "x-1", big, "x-2", big, "x-3", big)
	})
	add("malformed_requests", func(w *seedWriter) {
		w.fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: 1, BlockFragment: w.block(":method", "GET"), EndStream: true, EndHeaders: true})
		w.request(3, "GET", "/", true, "connection", "close")
		w.request(5, "CONNECT", "", true)
		w.request(7, "GET", "/", false, "content-length", "x")
		w.request(5, "GET", "/", true)
	})
	return seeds
}

// The committed seed corpus is what fuzzSeeds builds (go test -run
// TestFuzzConnSeeds -update-seeds rewrites it).
func TestFuzzConnSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzConn")
	seeds := fuzzSeeds()
	if *updateSeeds {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range seeds {
			if err := os.WriteFile(filepath.Join(dir, name), seedFile(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(seeds) < 10 {
		t.Fatalf("%d seeds", len(seeds))
	}
	for name, data := range seeds {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, seedFile(data)) {
			t.Errorf("seed %s is not current (%v): run go test -run TestFuzzConnSeeds -update-seeds", name, err)
		}
	}
}

func seedFile(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
}
