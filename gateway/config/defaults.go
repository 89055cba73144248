package config

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Defaults applied by Load to fields left unset (zero).
const (
	DefaultGoMaxProcs             = 1
	DefaultDrainTimeout           = 600 * time.Second
	DefaultDrainStrategy          = "gradual"
	DefaultDrainJitter            = 5 * time.Second
	DefaultTicketKeyRotation      = time.Hour
	DefaultControlSocket          = "/run/sluice/control.sock"
	DefaultLogLevel               = "info"
	DefaultLogFormat              = "json"
	DefaultBufferLimitBytes       = 1 << 20
	DefaultListenerFiltersTimeout = 15 * time.Second
	DefaultClusterType            = "static"
	DefaultConnectTimeout         = 5 * time.Second
	DefaultLBPolicy               = "round_robin"
	DefaultMaxIdleConnections     = 64
	DefaultClusterProtocol        = "http1"
	DefaultIdleTimeout            = 60 * time.Second
	DefaultRouteTimeout           = 15 * time.Second
	DefaultRedirectStatus         = 301
	// DefaultCleanupInterval is an original_dst cluster's cleanup_interval.
	DefaultCleanupInterval = 5 * time.Second
)

// applyDefaults fills unset fields; it never overrides a set value.
func (c *Config) applyDefaults() {
	c.applyStatsdDefaults()
	s := &c.Server
	if s.Workers == 0 {
		s.Workers = runtime.NumCPU()
	}
	if s.GoMaxProcs == 0 {
		s.GoMaxProcs = DefaultGoMaxProcs
	}
	setDuration(&s.DrainTimeout, DefaultDrainTimeout)
	if s.DrainJitter.Duration == 0 {
		s.DrainJitter.Duration = min(DefaultDrainJitter, s.DrainTimeout.Duration)
	}
	setString(&s.DrainStrategy, DefaultDrainStrategy)
	setDuration(&s.TicketKeyRotation, DefaultTicketKeyRotation)
	setString(&s.ControlSocket, defaultControlSocket())
	setString(&c.Log.Level, DefaultLogLevel)
	setString(&c.Log.Format, DefaultLogFormat)
	for i := range c.Listeners {
		l := &c.Listeners[i]
		setInt(&l.PerConnectionBufferLimitBytes, DefaultBufferLimitBytes)
		// "0s" disables the timeout, as in Envoy: only a missing key
		// gets the default
		if _, set := c.lines[fmt.Sprintf("listener[%d].listener_filters_timeout", i)]; !set {
			setDuration(&l.ListenerFiltersTimeout, DefaultListenerFiltersTimeout)
		}
	}
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		setString(&cl.Type, DefaultClusterType)
		setDuration(&cl.ConnectTimeout, DefaultConnectTimeout)
		if cl.Type == "original_dst" {
			setString(&cl.LBPolicy, "cluster_provided")
			setDuration(&cl.CleanupInterval, DefaultCleanupInterval)
		}
		setString(&cl.LBPolicy, DefaultLBPolicy)
		setInt(&cl.MaxIdleConnections, DefaultMaxIdleConnections)
		setDuration(&cl.IdleTimeout, DefaultIdleTimeout)
		setInt(&cl.PerConnectionBufferLimitBytes, DefaultBufferLimitBytes)
		setString(&cl.Protocol, DefaultClusterProtocol)
	}
	for i := range c.RouteConfigs {
		for j := range c.RouteConfigs[i].VirtualHosts {
			vh := &c.RouteConfigs[i].VirtualHosts[j]
			for k := range vh.Routes {
				r := &vh.Routes[k]
				if r.Timeout == nil {
					r.Timeout = &Duration{DefaultRouteTimeout}
				}
				if r.Redirect != nil && r.Redirect.Status == 0 {
					r.Redirect.Status = DefaultRedirectStatus
				}
			}
		}
	}
}

// defaultControlSocket is control.sock in the first entry of
// $RUNTIME_DIRECTORY (set by systemd's RuntimeDirectory=), else
// DefaultControlSocket.
func defaultControlSocket() string {
	dir, _, _ := strings.Cut(os.Getenv("RUNTIME_DIRECTORY"), ":")
	if dir == "" {
		return DefaultControlSocket
	}
	return filepath.Join(dir, "control.sock")
}

func setString(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDuration(p *Duration, v time.Duration) {
	if p.Duration == 0 {
		p.Duration = v
	}
}
