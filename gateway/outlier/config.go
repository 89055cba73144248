// Package outlier is passive health checking: Envoy's outlier detection.
// Workers record each upstream result in the host's shared record
// (Recorder.Record, a few atomic operations) and eject a host at once when
// a consecutive-failure threshold is crossed; the supervisor runs one
// Detector per sluice instance that, every interval, applies the success
// rate and failure percentage algorithms over what every worker recorded,
// and brings ejected hosts back when their ejection time is over.
//
// All state lives in a hoststate.Region, so decisions are global across
// worker processes and survive reloads. Ejection is claimed with atomic
// operations on the region (the cluster's ejection budget first, then the
// host's flag), so two processes never eject more hosts than
// max_ejection_percent allows.
package outlier

import (
	"errors"
	"fmt"
	"time"
)

// Envoy's defaults (envoy.config.cluster.v3.OutlierDetection).
const (
	DefaultConsecutive5xx                  = 5
	DefaultConsecutiveGatewayFailure       = 5
	DefaultConsecutiveLocalOriginFailure   = 5
	DefaultInterval                        = 10 * time.Second
	DefaultBaseEjectionTime                = 30 * time.Second
	DefaultMaxEjectionTime                 = 300 * time.Second
	DefaultMaxEjectionPercent              = 10
	DefaultEnforcingConsecutive5xx         = 100
	DefaultEnforcingConsecutiveGateway     = 0
	DefaultEnforcingConsecutiveLocal       = 100
	DefaultEnforcingSuccessRate            = 100
	DefaultEnforcingLocalOriginSuccess     = 100
	DefaultEnforcingFailurePercentage      = 0
	DefaultEnforcingFailurePercentageLocal = 0
	DefaultSuccessRateMinimumHosts         = 5
	DefaultSuccessRateRequestVolume        = 100
	DefaultSuccessRateStdevFactor          = 1900
	DefaultFailurePercentageThreshold      = 85
	DefaultFailurePercentageMinimumHosts   = 5
	DefaultFailurePercentageRequestVolume  = 50
)

// Config is a cluster's outlier detection, with Envoy's field names in
// snake case as its TOML keys. A nil pointer or zero duration takes Envoy's
// default; an explicit 0 is kept (enforcing_* = 0 detects without
// ejecting).
type Config struct {
	Consecutive5xx                  *uint32
	ConsecutiveGatewayFailure       *uint32
	ConsecutiveLocalOriginFailure   *uint32
	Interval                        time.Duration
	BaseEjectionTime                time.Duration
	MaxEjectionTime                 time.Duration
	MaxEjectionPercent              *uint32
	EnforcingConsecutive5xx         *uint32
	EnforcingConsecutiveGateway     *uint32
	EnforcingConsecutiveLocal       *uint32
	EnforcingSuccessRate            *uint32
	EnforcingLocalOriginSuccess     *uint32
	EnforcingFailurePercentage      *uint32
	EnforcingFailurePercentageLocal *uint32
	SuccessRateMinimumHosts         *uint32
	SuccessRateRequestVolume        *uint32
	SuccessRateStdevFactor          *uint32
	FailurePercentageThreshold      *uint32
	FailurePercentageMinimumHosts   *uint32
	FailurePercentageRequestVolume  *uint32
	// SplitExternalLocalOriginErrors counts local-origin failures (connect
	// failure, timeout, reset) apart from upstream statuses. When false
	// (Envoy's default) they count as a 503 from the host.
	SplitExternalLocalOriginErrors bool
}

// Policy is a resolved, validated Config: every value set. It is immutable.
type Policy struct {
	Consecutive5xx, ConsecutiveGatewayFailure, ConsecutiveLocalOriginFailure uint32

	Interval, BaseEjectionTime, MaxEjectionTime time.Duration
	MaxEjectionPercent                          uint32

	EnforcingConsecutive5xx, EnforcingConsecutiveGateway, EnforcingConsecutiveLocal uint32
	EnforcingSuccessRate, EnforcingLocalOriginSuccess                               uint32
	EnforcingFailurePercentage, EnforcingFailurePercentageLocal                     uint32

	SuccessRateMinimumHosts, SuccessRateRequestVolume, SuccessRateStdevFactor                 uint32
	FailurePercentageThreshold, FailurePercentageMinimumHosts, FailurePercentageRequestVolume uint32

	SplitExternalLocalOriginErrors bool
}

// Resolve applies Envoy's defaults to c and validates the result.
func (c *Config) Resolve() (*Policy, error) {
	v := func(p *uint32, d uint32) uint32 {
		if p == nil {
			return d
		}
		return *p
	}
	dur := func(x, d time.Duration) time.Duration {
		if x == 0 {
			return d
		}
		return x
	}
	p := &Policy{
		Consecutive5xx:                  v(c.Consecutive5xx, DefaultConsecutive5xx),
		ConsecutiveGatewayFailure:       v(c.ConsecutiveGatewayFailure, DefaultConsecutiveGatewayFailure),
		ConsecutiveLocalOriginFailure:   v(c.ConsecutiveLocalOriginFailure, DefaultConsecutiveLocalOriginFailure),
		Interval:                        dur(c.Interval, DefaultInterval),
		BaseEjectionTime:                dur(c.BaseEjectionTime, DefaultBaseEjectionTime),
		MaxEjectionTime:                 dur(c.MaxEjectionTime, DefaultMaxEjectionTime),
		MaxEjectionPercent:              v(c.MaxEjectionPercent, DefaultMaxEjectionPercent),
		EnforcingConsecutive5xx:         v(c.EnforcingConsecutive5xx, DefaultEnforcingConsecutive5xx),
		EnforcingConsecutiveGateway:     v(c.EnforcingConsecutiveGateway, DefaultEnforcingConsecutiveGateway),
		EnforcingConsecutiveLocal:       v(c.EnforcingConsecutiveLocal, DefaultEnforcingConsecutiveLocal),
		EnforcingSuccessRate:            v(c.EnforcingSuccessRate, DefaultEnforcingSuccessRate),
		EnforcingLocalOriginSuccess:     v(c.EnforcingLocalOriginSuccess, DefaultEnforcingLocalOriginSuccess),
		EnforcingFailurePercentage:      v(c.EnforcingFailurePercentage, DefaultEnforcingFailurePercentage),
		EnforcingFailurePercentageLocal: v(c.EnforcingFailurePercentageLocal, DefaultEnforcingFailurePercentageLocal),
		SuccessRateMinimumHosts:         v(c.SuccessRateMinimumHosts, DefaultSuccessRateMinimumHosts),
		SuccessRateRequestVolume:        v(c.SuccessRateRequestVolume, DefaultSuccessRateRequestVolume),
		SuccessRateStdevFactor:          v(c.SuccessRateStdevFactor, DefaultSuccessRateStdevFactor),
		FailurePercentageThreshold:      v(c.FailurePercentageThreshold, DefaultFailurePercentageThreshold),
		FailurePercentageMinimumHosts:   v(c.FailurePercentageMinimumHosts, DefaultFailurePercentageMinimumHosts),
		FailurePercentageRequestVolume:  v(c.FailurePercentageRequestVolume, DefaultFailurePercentageRequestVolume),
		SplitExternalLocalOriginErrors:  c.SplitExternalLocalOriginErrors,
	}
	var errs []error
	for _, c := range []struct {
		name string
		pct  uint32
	}{
		{"max_ejection_percent", p.MaxEjectionPercent},
		{"enforcing_consecutive_5xx", p.EnforcingConsecutive5xx},
		{"enforcing_consecutive_gateway_failure", p.EnforcingConsecutiveGateway},
		{"enforcing_consecutive_local_origin_failure", p.EnforcingConsecutiveLocal},
		{"enforcing_success_rate", p.EnforcingSuccessRate},
		{"enforcing_local_origin_success_rate", p.EnforcingLocalOriginSuccess},
		{"enforcing_failure_percentage", p.EnforcingFailurePercentage},
		{"enforcing_failure_percentage_local_origin", p.EnforcingFailurePercentageLocal},
		{"failure_percentage_threshold", p.FailurePercentageThreshold},
	} {
		if c.pct > 100 {
			errs = append(errs, fmt.Errorf("%s: %d is over 100", c.name, c.pct))
		}
	}
	if p.Interval < 0 || p.BaseEjectionTime < 0 || p.MaxEjectionTime < 0 {
		errs = append(errs, errors.New("interval, base_ejection_time, max_ejection_time: must be > 0"))
	}
	if p.MaxEjectionTime < p.BaseEjectionTime {
		errs = append(errs, errors.New("max_ejection_time: must be >= base_ejection_time"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("outlier: %w", err)
	}
	return p, nil
}

// ejectionTime is base × multiplier, capped at max_ejection_time.
func (p *Policy) ejectionTime(multiplier uint32) time.Duration {
	d := p.BaseEjectionTime * time.Duration(max(multiplier, 1))
	if d > p.MaxEjectionTime || d < 0 {
		d = p.MaxEjectionTime
	}
	return d
}
