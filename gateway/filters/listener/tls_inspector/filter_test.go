package tlsinspector

import (
	"bytes"
	"crypto/tls"
	"net"
	"slices"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

func TestRegisteredAsListenerFilter(t *testing.T) {
	info, ok := registry.Lookup(Name)
	if !ok || info.Kind != registry.Listener || info.Terminal {
		t.Fatalf("registry entry = %+v, %v", info, ok)
	}
	f, err := info.New().Build(&registry.BuildContext{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(netfilter.ListenerFilterFactory); !ok {
		t.Fatalf("Build returned %T, not a ListenerFilterFactory", f)
	}
}

func TestClientHelloFromCryptoTLSSetsSNIAndALPN(t *testing.T) {
	cases := []struct {
		name string
		cfg  *tls.Config
		sni  string
		alpn []string
	}{
		{"tls13 sni alpn", &tls.Config{ServerName: "a.example.com", NextProtos: []string{"h2", "http/1.1"}}, "a.example.com", []string{"h2", "http/1.1"}},
		{"tls12 sni", &tls.Config{ServerName: "b.example.org", MaxVersion: tls.VersionTLS12}, "b.example.org", nil},
		{"ip address sends no sni", &tls.Config{ServerName: "127.0.0.1", InsecureSkipVerify: true, NextProtos: []string{"acme-tls/1"}}, "", []string{"acme-tls/1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hello := clientHello(t, tc.cfg)
			st, cb := acceptWith(t, func(c net.Conn) { c.Write(hello) })
			if st != netfilter.Continue {
				t.Fatalf("status = %v", st)
			}
			if cb.info.TransportProtocol != "tls" || cb.info.ServerName != tc.sni || !slices.Equal(cb.info.ALPN, tc.alpn) {
				t.Fatalf("info = %q %q %q, want tls %q %q", cb.info.TransportProtocol, cb.info.ServerName, cb.info.ALPN, tc.sni, tc.alpn)
			}
			if !bytes.Equal(cb.buf, hello) {
				t.Fatalf("the ClientHello was consumed: %d bytes left of %d", len(cb.buf), len(hello))
			}
		})
	}
}

func TestClientHelloSplitOverRecordsAndWrites(t *testing.T) {
	hello := refragment(t, clientHello(t, &tls.Config{ServerName: "split.example", NextProtos: []string{"h2"}}), 37)
	if n := bytes.Count(hello, []byte{recordTypeHS, 3, 1}); n < 5 {
		t.Fatalf("only %d records", n)
	}
	st, cb := acceptWith(t, func(c net.Conn) {
		for b := hello; len(b) > 0; {
			n := min(11, len(b))
			if _, err := c.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	})
	if st != netfilter.Continue || cb.info.TransportProtocol != "tls" || cb.info.ServerName != "split.example" || !slices.Equal(cb.info.ALPN, []string{"h2"}) {
		t.Fatalf("status %v info %+v", st, cb.info)
	}
	// the same bytes served exactly as asked, one peek at a time
	h, isTLS, err := inspect(slicePeek(hello))
	if err != nil || !isTLS || h.serverName != "split.example" {
		t.Fatalf("inspect = %+v %v %v", h, isTLS, err)
	}
}

func TestPlaintextIsRawBufferAndNotConsumed(t *testing.T) {
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	st, cb := acceptWith(t, func(c net.Conn) { c.Write(req) })
	if st != netfilter.Continue || cb.info.TransportProtocol != "raw_buffer" || cb.info.ServerName != "" {
		t.Fatalf("status %v info %+v", st, cb.info)
	}
	if !bytes.HasPrefix(req, cb.buf) || len(cb.buf) == 0 {
		t.Fatalf("peeked bytes %q", cb.buf)
	}
}

func TestMalformedTLSContinuesAsRawBuffer(t *testing.T) {
	hello := clientHello(t, &tls.Config{ServerName: "m.example"})
	bad := [][]byte{
		{0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00},                                 // ServerHello type
		{0x16, 0x07, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00},                                 // record version 7.x
		{0x16, 0x03, 0x01, 0x00, 0x00},                                                         // empty record
		append([]byte{0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04}, 0x03, 0x03, 0, 0), // body too short
	}
	for i, b := range bad {
		st, cb := acceptWith(t, func(c net.Conn) { c.Write(b) })
		if st != netfilter.Continue || cb.info.TransportProtocol != "raw_buffer" {
			t.Errorf("case %d: status %v transport %q", i, st, cb.info.TransportProtocol)
		}
	}
	// a corrupted SNI length inside an otherwise complete hello
	i := bytes.Index(hello, []byte("m.example"))
	corrupt := slices.Clone(hello)
	corrupt[i-1] = 0xff
	if _, isTLS, err := inspect(slicePeek(corrupt)); !isTLS || err != errMalformed {
		t.Fatalf("corrupt SNI: tls %v err %v", isTLS, err)
	}
}

func TestOversizedClientHelloCloses(t *testing.T) {
	// a handshake header announcing 70000 bytes
	b := []byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x11, 0x70}
	st, _ := acceptWith(t, func(c net.Conn) { c.Write(b) })
	if st != netfilter.StopIteration {
		t.Fatalf("status %v, want StopIteration", st)
	}
	// records that add up past 64 KiB
	rec := append([]byte{0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0xff, 0xff}, make([]byte, 1<<14-4)...)
	for range 4 {
		rec = append(rec, append([]byte{0x16, 0x03, 0x01, 0x40, 0x00}, make([]byte, 1<<14)...)...)
	}
	if _, _, err := inspect(slicePeek(rec)); err != errTooLarge {
		t.Fatalf("err = %v, want errTooLarge", err)
	}
}

func TestTruncatedClientHelloCloses(t *testing.T) {
	hello := clientHello(t, &tls.Config{ServerName: "t.example"})
	st, _ := acceptWith(t, func(c net.Conn) {
		c.Write(hello[:len(hello)/2])
		c.(*net.TCPConn).CloseWrite()
	})
	if st != netfilter.StopIteration {
		t.Fatalf("status %v, want StopIteration", st)
	}
}
