package proxyprotocol

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

const request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

var (
	src4 = netip.MustParseAddrPort("192.0.2.10:51234")
	dst4 = netip.MustParseAddrPort("198.51.100.7:443")
	src6 = netip.MustParseAddrPort("[2001:db8::1]:40000")
	dst6 = netip.MustParseAddrPort("[2001:db8::2]:8443")
)

func build(t *testing.T, allow bool) netfilter.ListenerFilter {
	t.Helper()
	info, ok := registry.Lookup(Name)
	if !ok || info.Kind != registry.Listener {
		t.Fatalf("not registered as a listener filter: %+v", info)
	}
	cfg := info.New().(*Config)
	cfg.AllowRequestsWithoutProxyProtocol = allow
	f, err := cfg.Build(&registry.BuildContext{})
	if err != nil {
		t.Fatal(err)
	}
	return f.(netfilter.ListenerFilterFactory).NewFilter()
}

func TestHeaderReplacesAddressesAndIsConsumed(t *testing.T) {
	cases := []struct {
		name     string
		header   []byte
		src, dst netip.AddrPort
	}{
		{"v1 tcp4", []byte("PROXY TCP4 192.0.2.10 198.51.100.7 51234 443\r\n"), src4, dst4},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 40000 8443\r\n"), src6, dst6},
		{"v2 inet", v2(cmdProxy, famInet<<4|transStream, src4, dst4), src4, dst4},
		{"v2 inet6 with tlvs", v2(cmdProxy, famInet6<<4|transStream, src6, dst6,
			TLV{Type: 0x01, Value: []byte("h2")}, TLV{Type: 0x04, Value: nil}), src6, dst6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{len(tc.header) + len(request), 1} {
				st, cb := acceptWith(t, build(t, false), chunksOf(append(slices.Clone(tc.header), request...), size)...)
				if st != netfilter.Continue {
					t.Fatalf("chunk %d: status %v", size, st)
				}
				if cb.info.RemoteAddr != tc.src || cb.info.LocalAddr != tc.dst {
					t.Fatalf("chunk %d: addresses %v -> %v, want %v -> %v", size, cb.info.RemoteAddr, cb.info.LocalAddr, tc.src, tc.dst)
				}
				if got := cb.rest(t); got != request {
					t.Fatalf("chunk %d: stream after the filter = %q", size, got)
				}
			}
		})
	}
}

func TestLocalLikeHeadersKeepAddresses(t *testing.T) {
	unix := v2(cmdProxy, famUnix<<4|transStream, netip.AddrPort{}, netip.AddrPort{})
	unix = append(unix[:14], 0, addrLenUnix)
	unix = append(unix, make([]byte, addrLenUnix)...)
	for name, header := range map[string][]byte{
		"v1 unknown":     []byte("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"),
		"v2 local":       v2(cmdLocal, 0, netip.AddrPort{}, netip.AddrPort{}),
		"v2 local inet":  v2(cmdLocal, famInet<<4|transStream, src4, dst4),
		"v2 unix":        unix,
		"v2 inet dgram":  v2(cmdProxy, famInet<<4|2, src4, dst4),
		"v2 unspec tlvs": v2(cmdProxy, 0, netip.AddrPort{}, netip.AddrPort{}, TLV{Type: 0xe0, Value: []byte("x")}),
	} {
		t.Run(name, func(t *testing.T) {
			st, cb := acceptWith(t, build(t, false), header, []byte(request))
			if st != netfilter.Continue {
				t.Fatalf("status %v", st)
			}
			if cb.info.RemoteAddr != cb.nc.RemoteAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort() {
				t.Fatalf("remote address changed to %v", cb.info.RemoteAddr)
			}
			if got := cb.rest(t); got != request {
				t.Fatalf("stream after the filter = %q", got)
			}
		})
	}
}

func TestMissingHeaderClosesUnlessAllowed(t *testing.T) {
	st, _ := acceptWith(t, build(t, false), []byte(request))
	if st != netfilter.StopIteration {
		t.Fatalf("without allow: status %v", st)
	}
	for _, first := range []string{request, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "\r\nGET"} {
		st, cb := acceptWith(t, build(t, true), []byte(first))
		if st != netfilter.Continue {
			t.Fatalf("allow, %q: status %v", first, st)
		}
		if got := cb.rest(t); got != first {
			t.Fatalf("allow, %q: bytes consumed, left %q", first, got)
		}
	}
	// a short non-PROXY client that half-closes is decided on what it sent
	if st, _ := acceptWith(t, build(t, true), []byte("P")); st != netfilter.StopIteration {
		t.Fatalf("allow, a lone P then EOF: status %v", st)
	}
	if st, cb := acceptWith(t, build(t, true), []byte("G")); st != netfilter.Continue || cb.rest(t) != "G" {
		t.Fatalf("allow, G then EOF: status %v", st)
	}
}

func TestMalformedHeaderClosesEvenWhenAllowed(t *testing.T) {
	bad := map[string][]byte{
		"v1 bad address":     []byte("PROXY TCP4 192.0.2.300 198.51.100.7 1 2\r\n"),
		"v1 family mismatch": []byte("PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n"),
		"v1 port range":      []byte("PROXY TCP4 192.0.2.1 198.51.100.7 65536 2\r\n"),
		"v1 leading zero":    []byte("PROXY TCP4 192.0.2.1 198.51.100.7 01 2\r\n"),
		"v1 double space":    []byte("PROXY TCP4  192.0.2.1 198.51.100.7 1 2\r\n"),
		"v1 bare LF":         []byte("PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n"),
		"v1 too long":        append([]byte("PROXY UNKNOWN "), make([]byte, 120)...),
		"v1 unknown proto":   []byte("PROXY UDP4 192.0.2.1 198.51.100.7 1 2\r\n"),
		"v2 version 3":       append(append([]byte(nil), sigV2...), 0x31, 0x11, 0, 0),
		"v2 command 2":       append(append([]byte(nil), sigV2...), 0x22, 0x11, 0, 0),
		"v2 short inet":      append(append([]byte(nil), sigV2...), 0x21, 0x11, 0, 4, 1, 2, 3, 4),
	}
	// the overrun TLV: fix the length field to include a 3-byte TLV header
	// that announces more than is there
	o := v2(cmdProxy, famInet<<4|transStream, src4, dst4, TLV{Type: 1, Value: []byte("abc")})
	o[len(o)-4] = 9
	bad["v2 tlv overrun"] = o
	for name, header := range bad {
		t.Run(name, func(t *testing.T) {
			st, _ := acceptWith(t, build(t, true), header, []byte(request))
			if st != netfilter.StopIteration {
				t.Fatalf("status %v", st)
			}
		})
	}
}

func TestTruncatedHeaderCloses(t *testing.T) {
	for _, h := range [][]byte{[]byte("PROXY TCP4 192.0.2.1 1"), v2(cmdProxy, famInet<<4|transStream, src4, dst4)[:20]} {
		if st, _ := acceptWith(t, build(t, true), h); st != netfilter.StopIteration {
			t.Fatalf("%q: status %v", h, st)
		}
	}
}

func TestParseV2TLVs(t *testing.T) {
	b := v2(cmdProxy, famInet<<4|transStream, src4, dst4, TLV{Type: 0x02, Value: []byte("example.com")}, TLV{Type: 0x20, Value: []byte{1, 0, 0, 0, 0}})
	h, n, need, err := parse(append(b, "tail"...))
	if err != nil || need != 0 || n != len(b) || h.Version != 2 || len(h.TLVs) != 2 ||
		h.TLVs[0].Type != 0x02 || string(h.TLVs[0].Value) != "example.com" || h.TLVs[1].Type != 0x20 {
		t.Fatalf("parse = %+v n=%d need=%d err=%v", h, n, need, err)
	}
}
