package outlier

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/gateway/hoststate"
)

// Cluster is what the detector needs of one cluster: its policy, its
// shared record (seen with no worker shadow), and its hosts with their
// addresses, in the same order.
type Cluster struct {
	Name      string
	Policy    *Policy
	Record    *hoststate.Cluster
	Addresses []string
	Hosts     []*hoststate.Host
}

// Event reports an ejection or a return to service decided by the
// detector, for logs and stats.
type Event struct {
	Cluster, Address string
	// Ejected is true for an ejection (then Reason says why), false when
	// the host comes back.
	Ejected bool
	Reason  Reason
}

// Detector runs the interval algorithms of every cluster: success rate,
// failure percentage and the end of ejections. One runs per sluice
// instance, in the supervisor. Its methods are safe for concurrent use.
type Detector struct {
	mu       sync.Mutex
	clusters map[string]*tracked
	onEvent  func(Event)
}

type tracked struct {
	Cluster
	next time.Time // when its interval next ends
}

// NewDetector returns a detector that reports events to onEvent (may be
// nil). onEvent runs on the detector's goroutine and must not block.
func NewDetector(onEvent func(Event)) *Detector {
	if onEvent == nil {
		onEvent = func(Event) {}
	}
	return &Detector{clusters: map[string]*tracked{}, onEvent: onEvent}
}

// Set replaces the clusters the detector watches (after a reload or a DNS
// change), as of now. A cluster already watched keeps its interval timing;
// a host that left it while ejected is brought back (its record is
// retired) and gives its unit of the ejection budget back, or the
// cluster's max_ejection_percent would stay taken by hosts it no longer
// has.
func (d *Detector) Set(clusters []Cluster, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := make(map[string]*tracked, len(clusters))
	for _, c := range clusters {
		t := &tracked{Cluster: c, next: now.Add(c.Policy.Interval)}
		if old, ok := d.clusters[c.Name]; ok {
			if old.Policy.Interval == c.Policy.Interval {
				t.next = old.next
			}
			for _, h := range old.Hosts {
				if !slices.Contains(c.Hosts, h) && h.ClearFlags(hoststate.FlagOutlierEjected)&hoststate.FlagOutlierEjected != 0 {
					h.ClearEjected()
					c.Record.Uneject()
				}
			}
		}
		next[c.Name] = t
	}
	d.clusters = next
}

// Tick runs the interval of every cluster whose interval has ended at now,
// and returns when the next one ends (the zero time if none is watched).
func (d *Detector) Tick(now time.Time) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	var soonest time.Time
	for _, t := range d.clusters {
		if !now.Before(t.next) {
			d.interval(&t.Cluster, now)
			t.next = now.Add(t.Policy.Interval)
		}
		if soonest.IsZero() || t.next.Before(soonest) {
			soonest = t.next
		}
	}
	return soonest
}

// Run calls Tick at each interval's end until ctx is done.
func (d *Detector) Run(ctx context.Context) {
	for {
		next := d.Tick(time.Now())
		wait := time.Second // nothing watched: look again later
		if !next.IsZero() {
			wait = time.Until(next)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

type sample struct {
	i              int
	success, total uint32
}

// interval ends one interval of c at now.
func (d *Detector) interval(c *Cluster, now time.Time) {
	p := c.Policy
	var ext, loc []sample
	for i, h := range c.Hosts {
		es, et, ls, lt := h.TakeInterval()
		if h.Flags()&hoststate.FlagOutlierEjected != 0 {
			// Whoever clears the flag gives the unit back: a passing
			// health check may bring the host back at the same time.
			if !h.EjectionPending() && !now.Before(h.EjectedUntil()) &&
				h.ClearFlags(hoststate.FlagOutlierEjected)&hoststate.FlagOutlierEjected != 0 {
				h.ClearEjected()
				c.Record.Uneject()
				d.onEvent(Event{Cluster: c.Name, Address: c.Addresses[i]})
			}
			continue
		}
		// A host that stayed in service for an interval earns back one
		// unit of its ejection multiplier (Envoy's max_ejection_time
		// behaviour).
		if h.Ejections() > 0 {
			h.AddEjections(-1)
		}
		ext = append(ext, sample{i, es, et})
		if p.SplitExternalLocalOriginErrors {
			loc = append(loc, sample{i, ls, lt})
		}
	}
	d.successRate(c, ext, now, SuccessRate, p.EnforcingSuccessRate)
	d.failurePercentage(c, ext, now, FailurePercentage, p.EnforcingFailurePercentage)
	if p.SplitExternalLocalOriginErrors {
		d.successRate(c, loc, now, LocalOriginSuccessRate, p.EnforcingLocalOriginSuccess)
		d.failurePercentage(c, loc, now, LocalOriginFailurePercentage, p.EnforcingFailurePercentageLocal)
	}
}

// successRate ejects hosts whose success rate is below
// mean - stdev_factor/1000 × stdev, over hosts with enough requests, if
// there are enough such hosts.
func (d *Detector) successRate(c *Cluster, s []sample, now time.Time, why Reason, enforcing uint32) {
	p := c.Policy
	var rates []float64
	var idx []int
	for _, x := range s {
		if x.total >= p.SuccessRateRequestVolume && x.total > 0 {
			rates = append(rates, 100*float64(x.success)/float64(x.total))
			idx = append(idx, x.i)
		}
	}
	if len(rates) == 0 || len(rates) < int(p.SuccessRateMinimumHosts) {
		return
	}
	var sum float64
	for _, r := range rates {
		sum += r
	}
	mean := sum / float64(len(rates))
	var vs float64
	for _, r := range rates {
		vs += (r - mean) * (r - mean)
	}
	stdev := math.Sqrt(vs / float64(len(rates)))
	threshold := mean - float64(p.SuccessRateStdevFactor)/1000*stdev
	for k, r := range rates {
		if r < threshold && enforce(enforcing) {
			d.eject(c, idx[k], now, why)
		}
	}
}

// failurePercentage ejects hosts whose failure percentage is at least the
// threshold, over hosts with enough requests, if there are enough such
// hosts.
func (d *Detector) failurePercentage(c *Cluster, s []sample, now time.Time, why Reason, enforcing uint32) {
	p := c.Policy
	var cand []sample
	for _, x := range s {
		if x.total >= p.FailurePercentageRequestVolume && x.total > 0 {
			cand = append(cand, x)
		}
	}
	if len(cand) == 0 || len(cand) < int(p.FailurePercentageMinimumHosts) {
		return
	}
	for _, x := range cand {
		failed := 100 * uint64(x.total-x.success)
		if failed >= uint64(p.FailurePercentageThreshold)*uint64(x.total) && enforce(enforcing) {
			d.eject(c, x.i, now, why)
		}
	}
}

func (d *Detector) eject(c *Cluster, i int, now time.Time, why Reason) {
	if Eject(c.Policy, c.Record, len(c.Hosts), c.Hosts[i], now) {
		d.onEvent(Event{Cluster: c.Name, Address: c.Addresses[i], Ejected: true, Reason: why})
	}
}
