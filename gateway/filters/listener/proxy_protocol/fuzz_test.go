package proxyprotocol

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/fuzzcorpus"
)

// FuzzParse feeds arbitrary bytes to the PROXY header reader. It must
// never panic or read past its input; a v1 header it accepts must read the
// same once re-encoded; a v2 header's length must match its length field.
func FuzzParse(f *testing.F) {
	for _, s := range corpusSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, n, err := read(slicePeek(data))
		if err != nil {
			return
		}
		if n <= 0 || n > len(data) || n > MaxHeaderLen {
			t.Fatalf("header length %d of %d bytes", n, len(data))
		}
		switch h.Version {
		case 1:
			if h.Local {
				return
			}
			fam := "TCP4"
			if !h.Source.Addr().Is4() {
				fam = "TCP6"
			}
			line := fmt.Sprintf("PROXY %s %s %s %d %d\r\n", fam, h.Source.Addr(), h.Destination.Addr(), h.Source.Port(), h.Destination.Port())
			h2, n2, err := read(slicePeek([]byte(line)))
			if err != nil || n2 != len(line) || h2.Source != h.Source || h2.Destination != h.Destination {
				t.Fatalf("re-encoded %q: %+v %v, was %+v", line, h2, err, h)
			}
		case 2:
			if n != v2HeaderLen+int(data[14])<<8+int(data[15]) {
				t.Fatalf("v2 length %d", n)
			}
		default:
			t.Fatalf("version %d", h.Version)
		}
	})
}

// corpusSeeds are the committed seeds of FuzzParse.
func corpusSeeds() map[string][]byte {
	unix := v2(cmdProxy, famUnix<<4|transStream, netip.AddrPort{}, netip.AddrPort{})
	unix = append(unix[:14], 0, addrLenUnix)
	unix = append(unix, make([]byte, addrLenUnix)...)
	return map[string][]byte{
		"v1_tcp4":         []byte("PROXY TCP4 192.0.2.10 198.51.100.7 51234 443\r\nGET / HTTP/1.1\r\n\r\n"),
		"v1_tcp6":         []byte("PROXY TCP6 2001:db8::1 2001:db8::2 40000 8443\r\n"),
		"v1_unknown":      []byte("PROXY UNKNOWN\r\n"),
		"v1_unknown_args": []byte("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"),
		"v1_bad_port":     []byte("PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n"),
		"v1_no_crlf":      []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2"),
		"v2_inet":         v2(cmdProxy, famInet<<4|transStream, src4, dst4),
		"v2_inet6_tlvs":   v2(cmdProxy, famInet6<<4|transStream, src6, dst6, TLV{Type: 1, Value: []byte("h2")}, TLV{Type: 2, Value: []byte("example.com")}),
		"v2_local":        v2(cmdLocal, 0, netip.AddrPort{}, netip.AddrPort{}),
		"v2_unix":         unix,
		"v2_dgram":        v2(cmdProxy, famInet<<4|2, src4, dst4),
		"v2_truncated":    v2(cmdProxy, famInet<<4|transStream, src4, dst4)[:20],
		"http":            []byte("GET / HTTP/1.1\r\n\r\n"),
		"h2c_preface":     []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
	}
}

// TestWriteCorpus writes testdata/fuzz/FuzzParse when
// SLUICE_WRITE_CORPUS=1; otherwise it checks the committed seeds exist.
func TestWriteCorpus(t *testing.T) {
	fuzzcorpus.Sync(t, "FuzzParse", corpusSeeds())
}
