package config

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	t.Setenv("RUNTIME_DIRECTORY", "")
	text := baseTOML + "[[route_config.virtual_host.route]]\nmatch = { prefix = \"/r\" }\nredirect = { host = \"example.com\" }\n"
	c := parse(t, text)
	s := c.Server
	if s.Workers != runtime.NumCPU() || s.GoMaxProcs != 1 || s.DrainTimeout.Duration != 600*time.Second ||
		s.DrainStrategy != "gradual" || s.ControlSocket != "/run/sluice/control.sock" {
		t.Errorf("server defaults: %+v", s)
	}
	if c.Log.Level != "info" || c.Log.Format != "json" {
		t.Errorf("log defaults: %+v", c.Log)
	}
	l := c.Listeners[0]
	if l.PerConnectionBufferLimitBytes != 1<<20 || l.ListenerFiltersTimeout.Duration != 15*time.Second || !l.ReusePortEnabled() || l.Backlog != 0 {
		t.Errorf("listener defaults: %+v", l)
	}
	cl := c.Clusters[0]
	if cl.Type != "static" || cl.ConnectTimeout.Duration != 5*time.Second || cl.LBPolicy != "round_robin" ||
		cl.MaxIdleConnections != 64 || cl.IdleTimeout.Duration != 60*time.Second || cl.PerConnectionBufferLimitBytes != 1<<20 {
		t.Errorf("cluster defaults: %+v", cl)
	}
	routes := c.RouteConfigs[0].VirtualHosts[0].Routes
	if routes[0].Timeout == nil || routes[0].Timeout.Duration != 15*time.Second {
		t.Errorf("route timeout default: %v", routes[0].Timeout)
	}
	if routes[1].Redirect.Status != 301 {
		t.Errorf("redirect status default: %d", routes[1].Redirect.Status)
	}
	if c.Admin.Address != "" {
		t.Errorf("admin address default %q, want disabled", c.Admin.Address)
	}
}

func TestDefaultsKeepSetValues(t *testing.T) {
	text := `[server]
workers = 3
gomaxprocs = 2
drain_timeout = "30s"
drain_strategy = "immediate"
control_socket = "/tmp/s.sock"
[log]
level = "warn"
format = "console"
` + strings.Replace(listenerTOML, "address = \"127.0.0.1:0\"\n",
		"address = \"127.0.0.1:0\"\nreuse_port = false\nbacklog = 128\nper_connection_buffer_limit_bytes = 4096\nlistener_filters_timeout = \"1s\"\n", 1) +
		clusterTOML + `type = "static"
connect_timeout = "1s"
lb_policy = "round_robin"
max_idle_connections = 8
idle_timeout = "2s"
per_connection_buffer_limit_bytes = 2048
` + strings.Replace(routeTOML, "cluster = \"backend\"\n", "cluster = \"backend\"\ntimeout = \"0s\"\n", 1) +
		"[[route_config.virtual_host.route]]\nmatch = { prefix = \"/r\" }\nredirect = { status = 308 }\n"
	c := parse(t, text)
	s := c.Server
	if s.Workers != 3 || s.GoMaxProcs != 2 || s.DrainTimeout.Duration != 30*time.Second ||
		s.DrainStrategy != "immediate" || s.ControlSocket != "/tmp/s.sock" {
		t.Errorf("server: %+v", s)
	}
	if c.Log.Level != "warn" || c.Log.Format != "console" {
		t.Errorf("log: %+v", c.Log)
	}
	l := c.Listeners[0]
	if l.ReusePortEnabled() || l.Backlog != 128 || l.PerConnectionBufferLimitBytes != 4096 || l.ListenerFiltersTimeout.Duration != time.Second {
		t.Errorf("listener: %+v", l)
	}
	cl := c.Clusters[0]
	if cl.ConnectTimeout.Duration != time.Second || cl.MaxIdleConnections != 8 || cl.IdleTimeout.Duration != 2*time.Second || cl.PerConnectionBufferLimitBytes != 2048 {
		t.Errorf("cluster: %+v", cl)
	}
	routes := c.RouteConfigs[0].VirtualHosts[0].Routes
	if routes[0].Timeout == nil || routes[0].Timeout.Duration != 0 {
		t.Errorf("explicit route timeout 0s became %v", routes[0].Timeout)
	}
	if routes[1].Redirect.Status != 308 {
		t.Errorf("redirect status %d, want 308", routes[1].Redirect.Status)
	}
}

func TestDefaultControlSocket(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"", "/run/sluice/control.sock"},
		{"/run/sluice", "/run/sluice/control.sock"},
		{"/run/a:/run/b", "/run/a/control.sock"},
	} {
		t.Run("RUNTIME_DIRECTORY="+tc.env, func(t *testing.T) {
			t.Setenv("RUNTIME_DIRECTORY", tc.env)
			if got := parse(t, baseTOML).Server.ControlSocket; got != tc.want {
				t.Fatalf("control socket %q, want %q", got, tc.want)
			}
		})
	}
}

// TestListenerFiltersTimeoutZeroDisablesIt checks Envoy's meaning of a
// listener_filters_timeout of "0s": no timeout, rather than the default
// a missing key gets.
func TestListenerFiltersTimeoutZeroDisablesIt(t *testing.T) {
	c := parse(t, strings.Replace(baseTOML, "address = \"127.0.0.1:0\"\n", "address = \"127.0.0.1:0\"\nlistener_filters_timeout = \"0s\"\n", 1))
	if d := c.Listeners[0].ListenerFiltersTimeout.Duration; d != 0 {
		t.Fatalf("listener_filters_timeout = \"0s\" became %v, want 0 (disabled)", d)
	}
	if d := parse(t, baseTOML).Listeners[0].ListenerFiltersTimeout.Duration; d != DefaultListenerFiltersTimeout {
		t.Fatalf("without the key: %v, want %v", d, DefaultListenerFiltersTimeout)
	}
}
