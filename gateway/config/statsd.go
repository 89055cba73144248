package config

import "time"

// DefaultStatsdFlushInterval is how often the statsd sink flushes when
// [statsd] sets no flush_interval.
const DefaultStatsdFlushInterval = 5 * time.Second

// Statsd configures the statsd sink: the supervisor pushes the stats
// aggregated over every worker to a statsd server over UDP.
//
//	[statsd]
//	address = "127.0.0.1:8125"
//	prefix = "sluice"
//	flush_interval = "5s"
type Statsd struct {
	// Address is the statsd server's UDP host:port. At most one of Address
	// and TCPClusterName is set; neither disables the sink.
	Address string `toml:"address"`
	// TCPClusterName sends the lines over TCP to a host of this static
	// cluster instead (Envoy's tcp_cluster_name): newline-terminated, the
	// connection kept open and redialled (the next host, in order) after
	// an error.
	TCPClusterName string `toml:"tcp_cluster_name"`
	// Prefix is prepended to every metric name, followed by '.'; empty
	// means none.
	Prefix string `toml:"prefix"`
	// FlushInterval is the time between two pushes. Default 5s.
	FlushInterval Duration `toml:"flush_interval"`
}

func (c *Config) applyStatsdDefaults() {
	setDuration(&c.Statsd.FlushInterval, DefaultStatsdFlushInterval)
}

func (v *validator) statsd() {
	s := &v.c.Statsd
	if s.TCPClusterName != "" {
		if s.Address != "" {
			v.errorf("statsd.tcp_cluster_name", "set either address or tcp_cluster_name, not both")
		}
		if cl := v.c.Cluster(s.TCPClusterName); cl == nil {
			v.errorf("statsd.tcp_cluster_name", "unknown cluster %q", s.TCPClusterName)
		} else if len(cl.Endpoints) == 0 {
			v.errorf("statsd.tcp_cluster_name", "cluster %q has no static endpoints", s.TCPClusterName)
		}
	} else if s.Address == "" {
		return
	} else if _, _, err := splitAddress(s.Address); err != nil {
		v.errorf("statsd.address", "%v", err)
	}
	v.duration("statsd.flush_interval", s.FlushInterval.Duration)
}
