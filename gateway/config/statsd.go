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
	// Address is the statsd server's UDP host:port; empty disables the
	// sink.
	Address string `toml:"address"`
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
	if s.Address == "" {
		return
	}
	if _, _, err := splitAddress(s.Address); err != nil {
		v.errorf("statsd.address", "%v", err)
	}
	v.duration("statsd.flush_interval", s.FlushInterval.Duration)
}
