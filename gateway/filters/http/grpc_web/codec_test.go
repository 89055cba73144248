package grpcweb

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/fuzzcorpus"
)

// frame returns a gRPC frame with flags and payload.
func frame(flags byte, payload string) []byte {
	b := []byte{flags}
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// decodeQuads decodes base64 group by group, as a gRPC-Web client reads a
// text body made of separately padded parts.
func decodeQuads(t testing.TB, s []byte) []byte {
	t.Helper()
	if len(s)%4 != 0 {
		t.Fatalf("base64 of length %d", len(s))
	}
	var out []byte
	for i := 0; i < len(s); i += 4 {
		b, err := base64.StdEncoding.DecodeString(string(s[i : i+4]))
		if err != nil {
			t.Fatalf("group %q: %v", s[i:i+4], err)
		}
		out = append(out, b...)
	}
	return out
}

// splits feeds src to fn in pieces of every size from 1 to 7 and whole.
func splits(src []byte, fn func(pieces [][]byte)) {
	fn([][]byte{src})
	for size := 1; size <= 7; size++ {
		var pieces [][]byte
		for rest := src; len(rest) > 0; {
			n := min(size, len(rest))
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		fn(pieces)
	}
}

func TestTextDecoderAcrossChunkBoundaries(t *testing.T) {
	msg := append(frame(0, "hello, world"), frame(0, "x")...)
	whole := base64.StdEncoding.EncodeToString(msg)
	// each frame encoded on its own: padding inside the body
	parts := base64.StdEncoding.EncodeToString(frame(0, "ab")) + base64.StdEncoding.EncodeToString(frame(0, "c"))
	for _, c := range []struct {
		in   string
		want []byte
	}{
		{whole, msg},
		{parts, append(frame(0, "ab"), frame(0, "c")...)},
		{"", nil},
	} {
		splits([]byte(c.in), func(pieces [][]byte) {
			var d textDecoder
			var got []byte
			for _, p := range pieces {
				var err error
				if got, err = d.decode(got, p); err != nil {
					t.Fatalf("%q in %d pieces: %v", c.in, len(pieces), err)
				}
			}
			if d.pending() || !bytes.Equal(got, c.want) {
				t.Fatalf("%q in %d pieces: got %q (pending %v), want %q", c.in, len(pieces), got, d.pending(), c.want)
			}
		})
	}
}

func TestTextDecoderRejectsWhatIsNotBase64(t *testing.T) {
	for _, in := range []string{"AAA*", "AAAA\nAAA", "A===", "AA=A", "AAAA====", "AAA=\r\n"} {
		var d textDecoder
		_, err := d.decode(nil, []byte(in))
		if err == nil && !d.pending() {
			t.Errorf("%q decoded without error", in)
		}
	}
	var d textDecoder
	if _, err := d.decode(nil, []byte("AAAAA")); err != nil || !d.pending() {
		t.Fatalf("five characters: err %v, pending %v; want one held", err, d.pending())
	}
}

func TestTextEncoderPadsEachFrame(t *testing.T) {
	f1, f2 := frame(0, "hello, world!"), frame(0, "")
	body := append(append([]byte{}, f1...), f2...)
	want := base64.StdEncoding.EncodeToString(f1) + base64.StdEncoding.EncodeToString(f2)
	splits(body, func(pieces [][]byte) {
		var e textEncoder
		var got []byte
		for i, p := range pieces {
			got = e.encode(got, p)
			if i < len(pieces)-1 && len(got)%4 != 0 {
				t.Fatalf("partial output %q is not whole groups", got)
			}
		}
		if string(got) != want {
			t.Fatalf("%d pieces: got %q, want %q", len(pieces), got, want)
		}
	})
	// an unfinished frame is flushed at the end
	var e textEncoder
	got := e.flush(e.encode(nil, frame(0, "abcdefgh")[:9]))
	if want := base64.StdEncoding.EncodeToString(frame(0, "abcdefgh")[:9]); string(got) != want {
		t.Fatalf("cut frame: got %q, want %q", got, want)
	}
}

func TestTrailerFrame(t *testing.T) {
	tr := &httpfilter.Headers{}
	tr.Add("grpc-status", "0")
	tr.Add("grpc-message", "ok")
	got := appendTrailerFrame(nil, tr)
	if want := frame(0x80, "grpc-status:0\r\ngrpc-message:ok\r\n"); !bytes.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// FuzzTextDecoder decodes arbitrary request bodies split at an arbitrary
// point: it never panics, the split does not change the result, and what
// it accepts is what group-by-group base64 decoding gives.
func FuzzTextDecoder(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var whole textDecoder
		all, errAll := whole.decode(nil, data)
		for _, at := range []int{1, len(data) / 2, len(data) - 1} {
			if at < 0 || at > len(data) {
				continue
			}
			var d textDecoder
			got, err := d.decode(nil, data[:at])
			if err == nil {
				got, err = d.decode(got, data[at:])
			}
			if (err != nil) != (errAll != nil) || err == nil && (!bytes.Equal(got, all) || d.pending() != whole.pending()) {
				t.Fatalf("split at %d: %q, %v; whole: %q, %v", at, got, err, all, errAll)
			}
		}
		if errAll == nil && !whole.pending() {
			if ref := decodeQuads(t, data); !bytes.Equal(ref, all) {
				t.Fatalf("decoded %q, reference %q", all, ref)
			}
		}
	})
}

// FuzzTextEncoder encodes an arbitrary response body split at an
// arbitrary point: it never panics, only whole base64 groups come out, the
// split does not change the output, and the output decodes to the input.
func FuzzTextEncoder(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var whole textEncoder
		all := whole.flush(whole.encode(nil, data))
		for _, at := range []int{1, len(data) / 2, len(data) - 1} {
			if at < 0 || at > len(data) {
				continue
			}
			var e textEncoder
			got := e.encode(nil, data[:at])
			if len(got)%4 != 0 {
				t.Fatalf("partial output of length %d", len(got))
			}
			got = e.flush(e.encode(got, data[at:]))
			if !bytes.Equal(got, all) {
				t.Fatalf("split at %d: %q, whole %q", at, got, all)
			}
		}
		if dec := decodeQuads(t, all); !bytes.Equal(dec, data) {
			t.Fatalf("decodes to %q, want %q", dec, data)
		}
	})
}

// corpusSeeds are the committed seeds of both fuzz targets.
func corpusSeeds() map[string][]byte {
	two := append(frame(0, "ab"), frame(0x80, "grpc-status:0\r\n")...)
	return map[string][]byte{
		"empty":          {},
		"one_frame":      frame(0, "hello"),
		"two_frames":     two,
		"b64_whole":      []byte(base64.StdEncoding.EncodeToString(two)),
		"b64_per_frame":  []byte(base64.StdEncoding.EncodeToString(frame(0, "ab")) + base64.StdEncoding.EncodeToString(frame(0, "c"))),
		"b64_bad":        []byte("AAA*AAAA"),
		"b64_newline":    []byte("AAAA\nAAAA"),
		"b64_short":      []byte("AAAAA"),
		"huge_length":    {0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3},
		"cut_header":     {0, 0, 0},
		"trailer_only":   frame(0x80, "grpc-status:14\r\ngrpc-message:no%20route\r\n"),
		"padding_middle": []byte("QQ==QUJD"),
	}
}

// TestWriteCorpus writes testdata/fuzz/FuzzTextDecoder and
// FuzzTextEncoder when SLUICE_WRITE_CORPUS=1; otherwise it checks the
// committed seeds exist.
func TestWriteCorpus(t *testing.T) {
	fuzzcorpus.Sync(t, "FuzzTextDecoder", corpusSeeds())
	fuzzcorpus.Sync(t, "FuzzTextEncoder", corpusSeeds())
}
