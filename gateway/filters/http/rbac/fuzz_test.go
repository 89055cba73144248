package rbac

import (
	"net/netip"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzLastForwardedFor feeds arbitrary x-forwarded-for values to the
// parser: it must not panic, and what it returns must be the address
// netip parses from the value's last element.
func FuzzLastForwardedFor(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "a, b, 10.0.0.1", " ::1 ", "fe80::1%eth0", "1.2.3.4:80", "[::1]", ",", "", "::ffff:1.2.3.4"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		a, ok := LastForwardedFor(v)
		if !ok {
			return
		}
		want, err := netip.ParseAddr(a.String())
		if err != nil || want != a || a.Zone() != "" {
			t.Fatalf("%q gave %v", v, a)
		}
	})
}

// FuzzConfig decodes arbitrary TOML as the filter's table, builds it,
// and evaluates requests against what built: nothing may panic.
func FuzzConfig(f *testing.F) {
	f.Add(benchPolicies)
	f.Add("action = \"DENY\"\n" + policy1(`{ header = { name = "x", present = true, invert_match = true } }`, `{ authenticated = {} }`))
	f.Add(policy1(`{ not_rule = { or_rules = [{ destination_port = 80 }, { requested_server_name = { suffix = ".a" } }] } }`, `{ direct_remote_ip = ["::1"] }`))
	f.Fuzz(func(t *testing.T, text string) {
		var c Config
		md, err := toml.Decode(text, &c)
		if err != nil || len(md.Undecoded()) > 0 {
			return
		}
		fac, err := c.build(nil, "")
		if err != nil {
			return
		}
		h, cb := benchRequest()
		fac.Decide(h, &cb.info)
		h, info := req("", "", "x-forwarded-for", "", "x", "1", "x", "2")
		fac.Decide(h, info)
	})
}
