// Package health is sluice's active health checking: HTTP, TCP and gRPC
// checkers with Envoy's semantics. One Checker runs per sluice instance, in
// the supervisor, so N workers never multiply health-check traffic by N; it
// writes each host's verdict into the shared hoststate.Region, where every
// worker's load balancer reads it (hoststate.Host.Healthy).
//
// As in Envoy, a host of a health-checked cluster starts unhealthy and
// pending (FlagFailedActiveHC|FlagPendingActiveHC); its first passing check
// makes it healthy, after which healthy_threshold consecutive passes are
// needed to come back from a failure and unhealthy_threshold consecutive
// network failures (connect, timeout) to be failed. An answer that fails
// the check (an HTTP status not expected, a gRPC status other than
// SERVING) fails a healthy host at once, as in Envoy, and so does an HTTP
// answer with the header x-envoy-immediate-health-check-fail.
package health

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Checker types.
const (
	TypeHTTP = "http"
	TypeTCP  = "tcp"
	TypeGRPC = "grpc"
)

// DefaultNoTrafficInterval is Envoy's no_traffic_interval.
const DefaultNoTrafficInterval = 60 * time.Second

// Config is one cluster's health check (Envoy's core.v3.HealthCheck), with
// Envoy's field names in snake case as TOML keys. Interval, Timeout and the
// thresholds are required, as in Envoy.
type Config struct {
	// Type is "http", "tcp" or "grpc".
	Type string
	// Interval between the end of a check and the start of the next.
	Interval time.Duration
	// Timeout bounds one check (connect, send, answer).
	Timeout time.Duration
	// IntervalJitter adds a random [0, IntervalJitter) to each interval.
	IntervalJitter time.Duration
	// IntervalJitterPercent adds a random [0, Interval×pct/100) to each
	// interval.
	IntervalJitterPercent uint32
	// InitialJitter delays each host's first check by a random
	// [0, InitialJitter).
	InitialJitter time.Duration
	// UnhealthyThreshold network failures in a row (no connection, no
	// answer in time) fail a healthy host. As in Envoy, an answer that
	// fails the check (an HTTP status outside ExpectedStatuses, a gRPC
	// status other than SERVING) fails it at once.
	UnhealthyThreshold uint32
	// HealthyThreshold passes in a row bring a failed host back (one pass
	// for a host never checked).
	HealthyThreshold uint32
	// NoTrafficInterval replaces Interval while the cluster has never had
	// a request. 0 means 60s.
	NoTrafficInterval time.Duration

	// HTTP is the http checker's config.
	HTTP HTTPConfig
	// TCP is the tcp checker's config.
	TCP TCPConfig
	// GRPC is the grpc checker's config.
	GRPC GRPCConfig
}

// HTTPConfig is Envoy's HttpHealthCheck.
type HTTPConfig struct {
	// Path requested with GET. Required.
	Path string
	// Host is the Host header; "" means the cluster's name.
	Host string
	// ExpectedStatuses are half-open ranges [start, end) of statuses that
	// pass. Empty means [[200, 201]]: only 200.
	ExpectedStatuses [][2]int
}

// TCPConfig is Envoy's TcpHealthCheck: connect, send Send, and expect every
// block of Receive in the answer. With neither, a connect passes.
type TCPConfig struct {
	// Send is hex-encoded bytes to send.
	Send string
	// Receive are hex-encoded blocks that must all appear in the answer.
	Receive []string
}

// GRPCConfig is Envoy's GrpcHealthCheck (grpc.health.v1.Health/Check over
// h2c).
type GRPCConfig struct {
	// ServiceName is the service asked about; "" asks about the server.
	ServiceName string
	// Authority is the :authority; "" means the cluster's name.
	Authority string
}

// validate checks c and decodes what needs decoding.
func (c *Config) validate() (send []byte, receive [][]byte, err error) {
	var errs []error
	switch c.Type {
	case TypeHTTP:
		if !strings.HasPrefix(c.HTTP.Path, "/") {
			errs = append(errs, errors.New("http.path: must start with /"))
		}
		for _, r := range c.HTTP.ExpectedStatuses {
			if r[0] < 100 || r[1] > 600 || r[0] >= r[1] {
				errs = append(errs, fmt.Errorf("http.expected_statuses: bad range [%d, %d)", r[0], r[1]))
			}
		}
	case TypeTCP:
		if send, err = hex.DecodeString(c.TCP.Send); err != nil {
			errs = append(errs, fmt.Errorf("tcp.send: %w", err))
		}
		for _, r := range c.TCP.Receive {
			b, err := hex.DecodeString(r)
			if err != nil || len(b) == 0 {
				errs = append(errs, fmt.Errorf("tcp.receive: %q is not non-empty hex", r))
			}
			receive = append(receive, b)
		}
	case TypeGRPC:
	default:
		errs = append(errs, fmt.Errorf("type: %q is not http, tcp or grpc", c.Type))
	}
	if c.Interval <= 0 {
		errs = append(errs, errors.New("interval: must be > 0"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout: must be > 0"))
	}
	if c.UnhealthyThreshold == 0 || c.HealthyThreshold == 0 {
		errs = append(errs, errors.New("unhealthy_threshold, healthy_threshold: must be >= 1"))
	}
	if c.IntervalJitter < 0 || c.InitialJitter < 0 || c.NoTrafficInterval < 0 || c.IntervalJitterPercent > 100 {
		errs = append(errs, errors.New("interval_jitter, initial_jitter, no_traffic_interval must be >= 0, interval_jitter_percent <= 100"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("health: %w", err)
	}
	return send, receive, nil
}

// Validate checks c, for config validation.
func (c *Config) Validate() error {
	_, _, err := c.validate()
	return err
}
