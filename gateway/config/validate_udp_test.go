package config

import (
	"strings"
	"testing"
)

// udpTOML is baseTOML with its listener made a udp listener with TLS.
var udpTOML = strings.Replace(strings.Replace(baseTOML, "address = \"127.0.0.1:0\"\n", "address = \"127.0.0.1:8443\"\nprotocol = \"udp\"\n", 1),
	"[[listener.filter_chain]]\n", "[[listener.filter_chain]]\n[[listener.filter_chain.tls.certificate]]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n", 1)

func TestValidateUDPListener(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string // want "" means the config is valid
	}{
		{"udp with tls and the manager", udpTOML, ""},
		{"udp beside tcp on the same port", udpTOML + strings.Replace(strings.Replace(listenerTOML, "127.0.0.1:0", "127.0.0.1:8443", 1), "public", "tcp", 1), ""},
		{"two udp on the same port", udpTOML + strings.Replace(strings.Replace(listenerTOML, "address = \"127.0.0.1:0\"\n", "address = \"127.0.0.1:8443\"\nprotocol = \"udp\"\n", 1), "public", "other", 1),
			`listener[1].address: address "127.0.0.1:8443" already used by listener[0]`},
		{"unknown protocol", strings.Replace(udpTOML, `"udp"`, `"sctp"`, 1), `listener[0].protocol: must be tcp or udp, got "sctp"`},
		{"udp without tls", strings.Replace(baseTOML, "address = \"127.0.0.1:0\"\n", "address = \"127.0.0.1:0\"\nprotocol = \"udp\"\n", 1),
			"listener[0].filter_chain[0].tls: a udp listener's filter_chain needs a tls table"},
		{"udp without reuse_port", strings.Replace(udpTOML, "protocol = \"udp\"\n", "protocol = \"udp\"\nreuse_port = false\n", 1),
			"listener[0].reuse_port: a udp listener needs reuse_port"},
		{"udp with a network filter", strings.Replace(udpTOML, "[[listener.filter_chain.filter]]\n", "[[listener.filter_chain.filter]]\nname = \"sluice.filters.network.test_cfg\"\n[[listener.filter_chain.filter]]\n", 1),
			"a udp listener's filter_chain has exactly one filter"},
		{"udp with a listener filter", strings.Replace(udpTOML, "[[listener.filter_chain]]\n", "[[listener.listener_filter]]\nname = \"sluice.filters.listener.test_cfg\"\n[[listener.filter_chain]]\n", 1),
			"listener[0].listener_filter: a udp listener has no listener filters"},
		{"udp with two chains", strings.Replace(udpTOML, "[[cluster]]", "[[listener.filter_chain]]\nname = \"b\"\nmatch = { server_names = [\"b.test\"] }\n[[listener.filter_chain.filter]]\nname = \"sluice.filters.network.test_hcm\"\n[listener.filter_chain.filter.config]\nstat_prefix = \"b\"\nroute_config = \"main\"\n[[listener.filter_chain.filter.config.http_filter]]\nname = \"sluice.filters.http.test_router\"\n[[cluster]]", 1),
			"listener[0].filter_chain: a udp listener has exactly one filter_chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "" {
				c := parse(t, tc.text)
				if !c.Listeners[0].UDP() {
					t.Fatal("listener[0] is not udp")
				}
				return
			}
			parseErr(t, tc.text, tc.want)
		})
	}
}
