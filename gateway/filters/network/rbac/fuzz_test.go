package rbac

import (
	"net/netip"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// FuzzConfig decodes arbitrary TOML as the filter's table, strictly as the
// config loader does, builds it, and evaluates a connection against what
// built: nothing may panic, and a built filter decides every connection.
func FuzzConfig(f *testing.F) {
	for _, seed := range []string{
		"action = \"DENY\"\n[[policy]]\nname = \"a\"\nsource_ips = [\"10.0.0.0/8\", \"::1\"]\n",
		"shadow = true\n[[policy]]\nname = \"b\"\nserver_names = [\"*.example.com\", \"x.test\"]\ndestination_ports = [443]\n",
		"[[policy]]\nname = \"c\"\nany = true\n",
		"[[policy]]\nname = \"d\"\ndestination_ips = [\"192.0.2.0/24\"]\n",
		"[[policy]]\nname = \"e\"\nsource_ips = [\"fe80::1%eth0\"]\n",
		"action = \"LOG\"\n",
	} {
		f.Add(seed)
	}
	in := &netfilter.Info{
		RemoteAddr: netip.MustParseAddrPort("10.1.2.3:5000"),
		LocalAddr:  netip.MustParseAddrPort("192.0.2.1:443"),
		ServerName: "a.example.com",
	}
	f.Fuzz(func(t *testing.T, text string) {
		var c Config
		md, err := toml.Decode(text, &c)
		if err != nil || len(md.Undecoded()) > 0 {
			return
		}
		fac, err := c.build(nil)
		if err != nil {
			return
		}
		fac.Decide(in)
	})
}
