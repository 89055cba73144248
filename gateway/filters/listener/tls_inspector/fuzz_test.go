package tlsinspector

import (
	"crypto/tls"
	"fmt"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/fuzzcorpus"
)

// FuzzInspect feeds arbitrary bytes to the ClientHello peek. It must never
// panic, never ask for more than MaxClientHelloSize bytes, and anything it
// reports must come from the input.
func FuzzInspect(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		maxAsked := 0
		peek := func(n int) ([]byte, error) {
			maxAsked = max(maxAsked, n)
			return slicePeek(data)(n)
		}
		h, isTLS, err := inspect(peek)
		if maxAsked > MaxClientHelloSize {
			t.Fatalf("peeked %d bytes", maxAsked)
		}
		if len(data) > 0 && isTLS != (data[0] == recordTypeHS) {
			t.Fatalf("tls = %v for first byte %#x", isTLS, data[0])
		}
		if err != nil {
			if h.serverName != "" || h.alpn != nil {
				t.Fatalf("error %v with results %+v", err, h)
			}
			return
		}
		if h.serverName != "" && !validHostName([]byte(h.serverName)) {
			t.Fatalf("invalid server name %q", h.serverName)
		}
		for _, p := range h.alpn {
			if p == "" {
				t.Fatal("empty ALPN protocol")
			}
		}
		// the same hello in one record must read the same
		if isTLS {
			one := refragment(t, data[:consumed(data)], 1<<14)
			h2, _, err2 := inspect(slicePeek(one))
			if err2 != nil || h2.serverName != h.serverName || len(h2.alpn) != len(h.alpn) {
				t.Fatalf("one record: %+v %v, split: %+v", h2, err2, h)
			}
		}
	})
}

// consumed returns the length of the records inspect read from a stream
// it parsed without error.
func consumed(data []byte) int {
	off, got, need := 0, 0, handshakeHdrLen
	for got < need {
		n := int(data[off+3])<<8 | int(data[off+4])
		if got < handshakeHdrLen && got+n >= handshakeHdrLen {
			var hdr []byte
			for b := data[:off+recordHeaderLen+n]; len(b) > 0; {
				m := int(b[3])<<8 | int(b[4])
				hdr = append(hdr, b[recordHeaderLen:recordHeaderLen+m]...)
				b = b[recordHeaderLen+m:]
			}
			need = handshakeHdrLen + (int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3]))
		}
		got += n
		off += recordHeaderLen + n
	}
	return off
}

// TestWriteCorpus regenerates testdata/fuzz/FuzzInspect from real crypto/tls
// ClientHellos when SLUICE_WRITE_CORPUS=1; otherwise it checks that the
// committed corpus has the seeds the generator writes.
func TestWriteCorpus(t *testing.T) {
	seeds := map[string][]byte{}
	for i, cfg := range []*tls.Config{
		{ServerName: "example.com"},
		{ServerName: "a.example.com", NextProtos: []string{"h2", "http/1.1"}},
		{ServerName: "b.example.org", NextProtos: []string{"http/1.1"}, MaxVersion: tls.VersionTLS12},
		{ServerName: "c.example.net", NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS13},
		{ServerName: "127.0.0.1", InsecureSkipVerify: true},
		{ServerName: "very-long-label-0123456789.sub.domain.example.com", NextProtos: []string{"acme-tls/1"}},
		{ServerName: "tls10.example", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS12},
	} {
		seeds[fmt.Sprintf("crypto_tls_%d", i)] = clientHello(t, cfg)
	}
	split := clientHello(t, &tls.Config{ServerName: "split.example", NextProtos: []string{"h2"}})
	seeds["split_64"] = refragment(t, split, 64)
	seeds["split_7"] = refragment(t, split, 7)
	seeds["truncated"] = split[:len(split)/2]
	seeds["plaintext_http"] = []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	seeds["h2c_preface"] = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	seeds["server_hello_type"] = []byte{0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00}
	seeds["too_large"] = []byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x11, 0x70}
	fuzzcorpus.Sync(t, "FuzzInspect", seeds)
}
