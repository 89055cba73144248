//go:build linux

package originaldst

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/fuzzcorpus"

	"golang.org/x/sys/unix"
)

// FuzzDecodeSockaddr checks the decoder of what getsockopt returns: it
// never panics, and an address it accepts encodes back to the same bytes (but for the
// IPv6 flow label, which it drops).
func FuzzDecodeSockaddr(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		ap, err := decodeSockaddr(b)
		if err != nil {
			return
		}
		if !ap.IsValid() {
			t.Fatal("invalid address without error")
		}
		want := append([]byte(nil), b...)
		if !ap.Addr().Is4() {
			copy(want[4:8], []byte{0, 0, 0, 0}) // flowinfo is not kept
		}
		if got := encodeSockaddr(ap); string(got) != string(want[:len(got)]) {
			t.Fatalf("decoded %v from %x, encodes to %x", ap, b, got)
		}
	})
}

// encodeSockaddr is the kernel's layout of ap (without sin6 scope id).
func encodeSockaddr(ap netip.AddrPort) []byte {
	b := make([]byte, 4, 24)
	if ap.Addr().Is4() {
		binary.NativeEndian.PutUint16(b, unix.AF_INET)
		binary.BigEndian.PutUint16(b[2:], ap.Port())
		return append(b, ap.Addr().AsSlice()...)
	}
	binary.NativeEndian.PutUint16(b, unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], ap.Port())
	b = append(b, 0, 0, 0, 0)
	return append(b, ap.Addr().AsSlice()...)
}

func corpusSeeds() map[string][]byte {
	pad := func(b []byte, n int) []byte { return append(b, make([]byte, n-len(b))...) }
	return map[string][]byte{
		"inet_loopback":  pad(encodeSockaddr(netip.MustParseAddrPort("127.0.0.1:80")), 16),
		"inet_public":    pad(encodeSockaddr(netip.MustParseAddrPort("203.0.113.9:443")), 16),
		"inet_port0":     pad(encodeSockaddr(netip.MustParseAddrPort("10.0.0.1:0")), 16),
		"inet_exact":     encodeSockaddr(netip.MustParseAddrPort("192.0.2.1:65535")),
		"inet6_loopback": pad(encodeSockaddr(netip.MustParseAddrPort("[::1]:8080")), 28),
		"inet6_global":   pad(encodeSockaddr(netip.MustParseAddrPort("[2001:db8::5]:15001")), 28),
		"inet6_mapped":   pad(encodeSockaddr(netip.MustParseAddrPort("[::ffff:1.2.3.4]:1")), 28),
		"inet6_short":    encodeSockaddr(netip.MustParseAddrPort("[2001:db8::5]:1"))[:20],
		"unix_family":    {1, 0, 0, 0, 0, 0, 0, 0},
		"empty":          {},
		"short":          {2, 0, 0},
	}
}

// TestWriteCorpus writes testdata/fuzz/FuzzDecodeSockaddr when
// SLUICE_WRITE_CORPUS=1; otherwise it checks the committed seeds exist.
func TestWriteCorpus(t *testing.T) {
	fuzzcorpus.Sync(t, "FuzzDecodeSockaddr", corpusSeeds())
}
