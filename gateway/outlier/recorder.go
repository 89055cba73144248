package outlier

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/gateway/hoststate"
)

// Reason says which algorithm ejected a host (Envoy's ejection types, used
// in stats names outlier_detection.ejections_enforced_<reason>).
type Reason uint8

// Reasons.
const (
	Consecutive5xx Reason = iota + 1
	ConsecutiveGatewayFailure
	ConsecutiveLocalOriginFailure
	SuccessRate
	LocalOriginSuccessRate
	FailurePercentage
	LocalOriginFailurePercentage
)

var reasonNames = [...]string{"", "consecutive_5xx", "consecutive_gateway_failure",
	"consecutive_local_origin_failure", "success_rate", "local_origin_success_rate",
	"failure_percentage", "local_origin_failure_percentage"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "Reason(?)"
}

// Recorder records upstream results for one cluster in a worker and ejects
// a host as soon as one of the consecutive-failure thresholds is crossed.
// It is safe for concurrent use; Status and LocalOrigin cost a few atomic
// operations and allocate nothing.
type Recorder struct {
	p       *Policy
	cluster *hoststate.Cluster
	hosts   atomic.Int64
}

// NewRecorder returns the recorder of a cluster with hosts hosts, whose
// shared record is c.
func NewRecorder(p *Policy, c *hoststate.Cluster, hosts int) *Recorder {
	r := &Recorder{p: p, cluster: c}
	r.hosts.Store(int64(hosts))
	return r
}

// SetHosts updates the cluster's host count (a DNS cluster's set changed).
func (r *Recorder) SetHosts(n int) { r.hosts.Store(int64(n)) }

// Status records a response status from host h at now and reports why h
// was ejected by it, or 0.
func (r *Recorder) Status(h *hoststate.Host, status int, now time.Time) Reason {
	res := hoststate.ResultSuccess
	switch {
	case status == 502 || status == 503 || status == 504:
		res = hoststate.ResultGatewayFailure
	case status >= 500:
		res = hoststate.Result5xx
	}
	return r.record(h, res, now)
}

// LocalOrigin records a local-origin event for h: failed is a connect
// failure, timeout or reset; !failed a successful connection. Unless the
// policy splits local-origin errors, a failure counts as a 503 from the
// host and a success counts nothing (the status that follows does).
func (r *Recorder) LocalOrigin(h *hoststate.Host, failed bool, now time.Time) Reason {
	switch {
	case r.p.SplitExternalLocalOriginErrors && failed:
		return r.record(h, hoststate.ResultLocalFailure, now)
	case r.p.SplitExternalLocalOriginErrors:
		return r.record(h, hoststate.ResultLocalSuccess, now)
	case failed:
		return r.record(h, hoststate.ResultGatewayFailure, now)
	}
	return 0
}

func (r *Recorder) record(h *hoststate.Host, res hoststate.Result, now time.Time) Reason {
	c5, gw, lo := h.RecordResult(res)
	p := r.p
	// "==": only the result that crosses a threshold tries to eject.
	switch {
	case c5 != 0 && c5 == p.Consecutive5xx && enforce(p.EnforcingConsecutive5xx):
		if Eject(p, r.cluster, int(r.hosts.Load()), h, now) {
			return Consecutive5xx
		}
	case gw != 0 && gw == p.ConsecutiveGatewayFailure && enforce(p.EnforcingConsecutiveGateway):
		if Eject(p, r.cluster, int(r.hosts.Load()), h, now) {
			return ConsecutiveGatewayFailure
		}
	case lo != 0 && lo == p.ConsecutiveLocalOriginFailure && enforce(p.EnforcingConsecutiveLocal):
		if Eject(p, r.cluster, int(r.hosts.Load()), h, now) {
			return ConsecutiveLocalOriginFailure
		}
	}
	return 0
}

// enforce reports whether an ejection enforced pct percent of the time
// goes ahead.
func enforce(pct uint32) bool {
	return pct >= 100 || (pct > 0 && rand.Uint32N(100) < pct)
}

// Eject ejects h, one of hosts hosts of cluster c, at now, if the
// cluster's max_ejection_percent allows and h is not ejected already, and
// reports whether it did. It is safe against concurrent Eject calls in any
// process: the cluster's ejection budget is claimed first, then the host's
// flag; a loser gives the budget back.
func Eject(p *Policy, c *hoststate.Cluster, hosts int, h *hoststate.Host, now time.Time) bool {
	if h.Flags()&hoststate.FlagOutlierEjected != 0 || !c.TryEject(hosts, p.MaxEjectionPercent) {
		return false
	}
	if h.SetFlags(hoststate.FlagOutlierEjected)&hoststate.FlagOutlierEjected != 0 {
		c.Uneject()
		return false
	}
	m := h.AddEjections(1)
	h.ResetConsecutive()
	h.SetEjected(now, now.Add(p.ejectionTime(m)))
	return true
}
