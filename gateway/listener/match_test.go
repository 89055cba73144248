package listener

import (
	"net/netip"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

func chain(t *testing.T, name string, m config.FilterChainMatch) *Chain {
	t.Helper()
	c, err := NewChain(name, &m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFilterChainMatchFollowsEnvoyPrecedence(t *testing.T) {
	l := &Listener{
		Chains: []*Chain{
			chain(t, "exact-sni", config.FilterChainMatch{ServerNames: []string{"www.example.com"}}),
			chain(t, "wild-sni", config.FilterChainMatch{ServerNames: []string{"*.example.com"}}),
			chain(t, "wilder-sni", config.FilterChainMatch{ServerNames: []string{"*.com"}}),
			chain(t, "port-9000", config.FilterChainMatch{DestinationPort: 9000}),
			chain(t, "tls", config.FilterChainMatch{TransportProtocol: "tls"}),
			chain(t, "h2", config.FilterChainMatch{TransportProtocol: "tls", ApplicationProtocols: []string{"h2"}}),
			chain(t, "http11", config.FilterChainMatch{TransportProtocol: "tls", ApplicationProtocols: []string{"http/1.1"}}),
			chain(t, "src-10", config.FilterChainMatch{SourcePrefixRanges: []string{"10.0.0.0/8"}}),
			chain(t, "src-10-1", config.FilterChainMatch{SourcePrefixRanges: []string{"10.1.0.0/16"}}),
		},
		Default: chain(t, "default", config.FilterChainMatch{}),
	}
	info := func(port uint16, sni, transport string, alpn []string, src string) *netfilter.Info {
		return &netfilter.Info{
			LocalAddr:         netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port),
			RemoteAddr:        netip.AddrPortFrom(netip.MustParseAddr(src), 40000),
			ServerName:        sni,
			TransportProtocol: transport,
			ALPN:              alpn,
		}
	}
	for _, tc := range []struct {
		name string
		in   *netfilter.Info
		want string
	}{
		{"destination port beats everything after it", info(9000, "www.example.com", "tls", nil, "10.1.2.3"), "port-9000"},
		{"exact server name beats wildcards", info(443, "www.example.com", "tls", nil, "192.0.2.9"), "exact-sni"},
		{"longest wildcard wins", info(443, "api.example.com", "tls", nil, "192.0.2.9"), "wild-sni"},
		{"shorter wildcard", info(443, "other.com", "tls", nil, "192.0.2.9"), "wilder-sni"},
		{"transport protocol then ALPN", info(443, "", "tls", []string{"h2", "http/1.1"}, "192.0.2.9"), "h2"},
		{"the client's first ALPN protocol wins", info(443, "", "tls", []string{"http/1.1", "h2"}, "192.0.2.9"), "http11"},
		{"transport protocol without ALPN match", info(443, "", "tls", []string{"spdy/3"}, "192.0.2.9"), "tls"},
		{"longest source prefix", info(443, "", "raw_buffer", nil, "10.1.2.3"), "src-10-1"},
		{"shorter source prefix", info(443, "", "raw_buffer", nil, "10.2.0.1"), "src-10"},
		{"nothing matches: default chain", info(443, "", "raw_buffer", nil, "192.0.2.9"), "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := l.match(tc.in)
			if got == nil || got.Name != tc.want {
				name := "<nil>"
				if got != nil {
					name = got.Name
				}
				t.Fatalf("chain %s, want %s", name, tc.want)
			}
		})
	}
	l.Default = nil
	if got := l.match(info(443, "", "raw_buffer", nil, "192.0.2.9")); got != nil {
		t.Fatalf("without a default chain an unmatched connection got %s, want none (closed)", got.Name)
	}
}
