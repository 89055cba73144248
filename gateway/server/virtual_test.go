package server

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/config"
)

func TestUseOriginalDstLooksUpVirtualListenersExactThenWildcard(t *testing.T) {
	text := ""
	for _, l := range []struct{ name, addr, extra string }{
		{"out", "127.0.0.1:0", "use_original_dst = true"},
		{"plain", "127.0.0.1:0", ""},
		{"v4-exact", "10.0.0.1:80", "bind_to_port = false"},
		{"v4-any", "0.0.0.0:80", "bind_to_port = false"},
		{"v6-exact", "[2001:db8::1]:443", "bind_to_port = false"},
		{"v6-any", "[::]:443", "bind_to_port = false"},
	} {
		text += fmt.Sprintf(`
[[listener]]
name = %q
address = %q
%s
[[listener.filter_chain]]
[[listener.filter_chain.filter]]
name = "sluice.filters.network.tcp_proxy"
[listener.filter_chain.filter.config]
stat_prefix = %[1]q
cluster = "up"
`, l.name, l.addr, l.extra)
	}
	text += "\n[[cluster]]\nname = \"up\"\ntype = \"original_dst\"\n"
	cfg, err := config.Parse("v.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Build(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	if g.listeners["plain"].Lookup != nil {
		t.Fatal("a listener without use_original_dst hands connections over")
	}
	lookup := g.listeners["out"].Lookup
	for dst, want := range map[string]string{
		"10.0.0.1:80":          "v4-exact",
		"[::ffff:10.0.0.1]:80": "v4-exact",
		"10.0.0.2:80":          "v4-any",
		"[2001:db8::1]:443":    "v6-exact",
		"[2001:db8::2]:443":    "v6-any",
		"10.0.0.1:443":         "", // no IPv4 listener on 443
		"10.0.0.1:81":          "",
		"[2001:db8::1]:80":     "", // 0.0.0.0:80 is IPv4's wildcard
	} {
		got := ""
		if l := lookup(netip.MustParseAddrPort(dst)); l != nil {
			got = l.Name
		}
		if got != want {
			t.Errorf("lookup(%s) = %q, want %q", dst, got, want)
		}
	}
}
