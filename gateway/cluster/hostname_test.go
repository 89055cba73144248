package cluster

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/config"
)

func TestHostnameIsTheEndpointAnAddressCameFrom(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cc         config.Cluster
		addr, want string
	}{
		{"static: the address", config.Cluster{Endpoints: []string{"10.0.0.1:80"}}, "10.0.0.1:80", "10.0.0.1:80"},
		{"logical_dns: the endpoint", config.Cluster{Type: "logical_dns", Endpoints: []string{"api.example:8080"}}, "10.0.0.1:8080", "api.example:8080"},
		{"strict_dns, one endpoint", config.Cluster{Type: "strict_dns", Endpoints: []string{"a.example:80"}}, "10.0.0.1:80", "a.example:80"},
		{"strict_dns, the endpoint of the port", config.Cluster{Type: "strict_dns", Endpoints: []string{"a.example:80", "b.example:81"}}, "10.0.0.2:81", "b.example:81"},
		{"strict_dns, two endpoints of the port", config.Cluster{Type: "strict_dns", Endpoints: []string{"a.example:80", "b.example:80"}}, "10.0.0.2:80", ""},
	} {
		if got := hostname(&tc.cc, tc.addr); got != tc.want {
			t.Errorf("%s: hostname(%q) = %q, want %q", tc.name, tc.addr, got, tc.want)
		}
	}
}
