package supervisor

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sluice-proxy/sluice/gateway/admin"
	"github.com/sluice-proxy/sluice/gateway/cluster"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/stats"
	"github.com/sluice-proxy/sluice/gateway/tlsconn"
	"github.com/sluice-proxy/sluice/hotrestart"
)

// The admin API runs in the supervisor, on its own goroutines: reads come
// from an immutable view that the event loop replaces whenever the serving
// generation or the state changes, and from the stats regions, so the API
// answers while the loop is busy, the data plane is saturated, or a worker
// crash-loops. Mutations are posted to the loop (or, for the health check
// state and counter reset, done on the shared memory directly).

// view is what the admin API reads about the supervisor; the loop replaces
// it whole.
type view struct {
	cfg        *config.Config
	generation int
	state      string // LIVE, PRE_INITIALIZING, INITIALIZING, DRAINING
	listeners  []admin.Listener
	hosts      *hoststate.Region   // shared host state (health, ejection); nil if none
	resolved   map[string][]string // DNS clusters' current addresses, by cluster
	certs      []tlsconn.CertSet   // cfg's certificates, read when cfg was first published
}

// adminServer implements admin.Server for s.
type adminServer struct {
	s    *Supervisor
	view atomic.Pointer[view]
}

// publish replaces the admin view from the loop's state. Called by the
// loop.
func (s *Supervisor) publish() {
	v := &view{state: "LIVE"}
	switch {
	case s.mode != running || s.handedOver():
		v.state = "DRAINING"
	case s.parent != nil && !s.parent.committed:
		v.state = "INITIALIZING"
	case !s.everReady:
		v.state = "PRE_INITIALIZING"
	}
	if g := s.cur; g != nil {
		v.cfg, v.generation = g.cfg, g.num
		for _, sg := range g.groups {
			v.listeners = append(v.listeners, admin.Listener{Name: sg.name, Address: sg.addr})
		}
	}
	if s.hosts != nil {
		v.hosts = s.hosts.r
		v.resolved = maps.Clone(s.hosts.resolved)
	}
	if old := s.members.Load(); old != nil && old.cfg == v.cfg {
		v.certs = old.certs
	} else if v.cfg != nil {
		v.certs = tlsconn.Inventory(v.cfg)
	}
	s.members.Store(v)
	if s.admin != nil {
		s.admin.view.Store(v)
	}
}

// snapshot is the aggregated stats snapshot with each cluster's
// membership_healthy counted from the shared host state, and
// server.days_until_first_cert_expiring from the config's certificates.
// Safe for concurrent use.
func (s *Supervisor) snapshot() stats.Snapshot {
	snap := s.stats.snapshot()
	if v := s.members.Load(); v != nil {
		v.countHealthy(snap)
		v.setCertExpiry(snap, time.Now())
	}
	return snap
}

// noCertExpiry is server.days_until_first_cert_expiring without any
// certificate: Envoy's value (the largest uint32).
const noCertExpiry = 1<<32 - 1

// setCertExpiry sets server.days_until_first_cert_expiring in snap: whole
// days from now until the first certificate of the config expires, 0 once
// one has.
func (v *view) setCertExpiry(snap stats.Snapshot, now time.Time) {
	k := sort.Search(len(snap), func(k int) bool { return snap[k].Def.Name >= stats.CertExpiryGauge })
	if k == len(snap) || snap[k].Def.Name != stats.CertExpiryGauge {
		return
	}
	snap[k].Gauge = noCertExpiry
	if first, ok := tlsconn.FirstExpiry(v.certs); ok {
		snap[k].Gauge = daysUntil(first, now)
	}
}

// daysUntil is the whole days from now to t, 0 once t has passed.
func daysUntil(t, now time.Time) int64 { return max(int64(t.Sub(now)/(24*time.Hour)), 0) }

// countHealthy sets each cluster's membership_healthy in snap to the
// number of its hosts that may take traffic (neither failed by health
// checking nor ejected), as Envoy's gauge does. Workers cannot: each holds
// the whole cluster and the gauge is the largest value over their slabs,
// while health changes in the shared region with no worker told.
func (v *view) countHealthy(snap stats.Snapshot) {
	if v.cfg == nil || v.hosts == nil {
		return
	}
	for i := range v.cfg.Clusters {
		c := &v.cfg.Clusters[i]
		if cluster.IsOriginalDst(c) {
			continue // hosts made per worker, never failed
		}
		name := stats.ClusterName(c.Name) + "membership_healthy"
		k := sort.Search(len(snap), func(k int) bool { return snap[k].Def.Name >= name })
		if k == len(snap) || snap[k].Def.Name != name {
			continue
		}
		eps := c.Endpoints
		if r, ok := v.resolved[c.Name]; ok || cluster.IsDNS(c) {
			eps = r
		}
		n := 0
		for _, ep := range eps {
			if st := v.hosts.Host(c.Name, ep); st == nil || st.Healthy() {
				n++
			}
		}
		snap[k].Gauge = int64(min(n, max(int(snap[k].Gauge), 0)))
	}
}

// openAdmin serves the admin API on ln, or on a new listener at the
// configured address when ln is nil. Failing to listen is logged, not
// fatal.
func (s *Supervisor) openAdmin(cfg *config.Config, ln net.Listener) {
	if ln == nil {
		if cfg.Admin.Address == "" {
			return
		}
		var err error
		if ln, err = admin.Listen(cfg.Admin.Address, cfg.Admin.AllowNonLoopback); err != nil {
			s.log.Error("admin API unavailable", zap.String("address", cfg.Admin.Address), zap.Error(err))
			return
		}
	}
	s.adminLn = ln
	s.adminSrv = admin.Serve(ln, admin.NewHandler(s.admin), nil)
	s.log.Info("admin API", zap.String("address", ln.Addr().String()))
}

// closeAdmin stops serving the admin API. Requests in progress finish.
func (s *Supervisor) closeAdmin() {
	if s.adminSrv != nil {
		s.adminSrv.Close()
		s.adminSrv, s.adminLn = nil, nil
	}
}

// adminFD returns the admin listener's descriptor for an upgrade, -1 if
// there is none.
func (s *Supervisor) adminFD() int {
	fd := -1
	if tl, ok := s.adminLn.(*net.TCPListener); ok {
		if raw, err := tl.SyscallConn(); err == nil {
			raw.Control(func(f uintptr) { fd = int(f) })
		}
	}
	return fd
}

// inheritedAdmin turns the admin listener passed in an upgrade into a
// listener, if the config names the same admin address as the old one's
// (so "127.0.0.1:0" keeps the port it was given).
func inheritedAdmin(fd int, addr string, cfg *config.Config, log *zap.Logger) net.Listener {
	if fd < 0 {
		return nil
	}
	f := os.NewFile(uintptr(fd), "admin")
	defer f.Close()
	if cfg.Admin.Address == "" || cfg.Admin.Address != addr {
		return nil
	}
	ln, err := net.FileListener(f)
	if err != nil {
		log.Warn("inherited admin listener unusable", zap.Error(err))
		return nil
	}
	return ln
}

// ask runs f on the loop and waits for it, up to a second: a mutation from
// the admin API.
func (a *adminServer) ask(f func()) error {
	done := make(chan struct{})
	select {
	case a.s.calls <- func() { f(); close(done) }:
	case <-a.s.done:
		return errors.New("supervisor: exiting")
	case <-time.After(time.Second):
		return errors.New("supervisor: busy, try again")
	}
	<-done
	return nil
}

// Snapshot implements admin.Server.
func (a *adminServer) Snapshot() stats.Snapshot { return a.s.snapshot() }

// ServerInfo implements admin.Server.
func (a *adminServer) ServerInfo() admin.ServerInfo {
	v, st := a.view.Load(), a.s.stats
	info := admin.ServerInfo{
		Version:              a.s.version,
		State:                a.state(v),
		UptimeSeconds:        time.Since(st.started).Seconds(),
		UptimeAllEpochs:      time.Since(st.firstStart).Seconds(),
		HotRestartGeneration: st.epoch,
		ConfigPath:           a.s.path,
		PID:                  os.Getpid(),
	}
	if v.cfg != nil {
		info.Workers = max(v.cfg.Server.Workers, 1)
	}
	return info
}

// Listeners implements admin.Server.
func (a *adminServer) Listeners() []admin.Listener { return a.view.Load().listeners }

// Clusters implements admin.Server: the configured hosts of every cluster,
// with the cluster's stats.
func (a *adminServer) Clusters() []admin.Cluster {
	v := a.view.Load()
	if v.cfg == nil {
		return nil
	}
	snap := a.Snapshot()
	var out []admin.Cluster
	for i := range v.cfg.Clusters {
		c := &v.cfg.Clusters[i]
		ac := admin.Cluster{Name: c.Name, Stats: map[string]int64{}}
		prefix := stats.ClusterName(c.Name)
		for _, st := range snap {
			name, ok := strings.CutPrefix(st.Def.Name, prefix)
			if !ok {
				continue
			}
			switch st.Def.Kind {
			case stats.KindCounter:
				ac.Stats[name] = int64(st.Counter)
			case stats.KindGauge:
				ac.Stats[name] = st.Gauge
			}
		}
		eps := c.Endpoints
		if r, ok := v.resolved[c.Name]; ok {
			eps = r
		}
		for _, ep := range eps {
			h := admin.Host{Address: ep, Healthy: true}
			if v.hosts != nil {
				if st := v.hosts.Host(c.Name, ep); st != nil {
					if !st.Healthy() {
						h.Healthy, h.HealthFlags = false, healthFlags(st.Flags())
					}
					h.RqTotal, h.RqSuccess, h.RqError = st.Requests()
					h.RqActive = st.Active()
				}
			}
			ac.Hosts = append(ac.Hosts, h)
		}
		out = append(out, ac)
	}
	return out
}

// Certs implements admin.Server: the serving config's certificates as
// read when it began to serve, with the days left counted from now.
func (a *adminServer) Certs() []admin.CertContext {
	v := a.view.Load()
	if v == nil {
		return nil
	}
	now := time.Now()
	out := make([]admin.CertContext, 0, len(v.certs))
	for _, set := range v.certs {
		cc := admin.CertContext{Name: set.Name, CACert: certDetails(set.CA, now), CertChain: certDetails(set.Chain, now)}
		out = append(out, cc)
	}
	return out
}

func certDetails(certs []tlsconn.Cert, now time.Time) []admin.CertDetails {
	out := make([]admin.CertDetails, 0, len(certs))
	for _, c := range certs {
		d := admin.CertDetails{Path: c.Path}
		if c.Err != nil {
			d.Error = c.Err.Error()
			out = append(out, d)
			continue
		}
		d.SerialNumber = c.Serial
		d.DaysUntilExpiration = strconv.FormatInt(daysUntil(c.NotAfter, now), 10)
		d.ValidFrom = c.NotBefore.UTC().Format(time.RFC3339)
		d.ExpirationTime = c.NotAfter.UTC().Format(time.RFC3339)
		for _, n := range c.DNS {
			d.SubjectAltNames = append(d.SubjectAltNames, admin.SubjectAltName{DNS: n})
		}
		for _, n := range c.URIs {
			d.SubjectAltNames = append(d.SubjectAltNames, admin.SubjectAltName{URI: n})
		}
		for _, n := range c.IPs {
			d.SubjectAltNames = append(d.SubjectAltNames, admin.SubjectAltName{IPAddress: n})
		}
		out = append(out, d)
	}
	return out
}

// ConfigDump implements admin.Server: the serving config as JSON, keyed as
// in the config file (the handler redacts secrets).
func (a *adminServer) ConfigDump() ([]byte, error) {
	v := a.view.Load()
	if v.cfg == nil {
		return []byte("{}"), nil
	}
	return v.cfg.Dump()
}

// Ready implements admin.Server: serving, and health checks not failed
// by /healthcheck/fail.
func (a *adminServer) Ready() (bool, string) {
	st := a.state(a.view.Load())
	return st == "LIVE", st
}

// state is the server state of /ready and /server_info: the view's, or
// DRAINING while /healthcheck/fail holds, as Envoy's server state is.
func (a *adminServer) state(v *view) string {
	if v.state == "LIVE" && !a.s.stats.healthy() {
		return "DRAINING"
	}
	return v.state
}

// SetHealthy implements admin.Server: the state word in every worker slab
// changes at once.
func (a *adminServer) SetHealthy(healthy bool) {
	a.s.stats.setHealthy(healthy)
	a.s.log.Info("health checks", zap.Bool("healthy", healthy))
}

// DrainListeners implements admin.Server: the listening sockets close and
// the workers drain (graceful: up to server.drain_timeout; else they are
// killed at once); the supervisor and the admin API stay up until SIGTERM
// or SIGINT.
func (a *adminServer) DrainListeners(graceful bool) error {
	return a.ask(func() {
		if a.s.mode != running || a.s.handedOver() {
			return
		}
		a.s.log.Info("draining listeners", zap.String("cause", "admin"), zap.Bool("graceful", graceful))
		a.s.drainListeners(graceful)
	})
}

// Loggers implements admin.Server: the supervisor's and the workers'.
func (a *adminServer) Loggers() map[string]string {
	return map[string]string{"supervisor": a.s.level.Level().String(), "worker": a.s.workerLevel().String()}
}

// SetLogLevel implements admin.Server. Name "" sets both loggers.
func (a *adminServer) SetLogLevel(name, level string) error {
	var l zapcore.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("supervisor: log level %q: %w", level, err)
	}
	switch name {
	case "", "supervisor", "worker":
	default:
		return fmt.Errorf("supervisor: unknown logger %q (supervisor, worker)", name)
	}
	if name != "worker" {
		a.s.level.SetLevel(l)
	}
	if name == "supervisor" {
		return nil
	}
	return a.ask(func() {
		a.s.workerLvl.Store(l.String())
		a.s.broadcast(hotrestart.Message{Type: hotrestart.TypeLogLevel, Body: []byte(l.String())})
	})
}

// ResetCounters implements admin.Server.
func (a *adminServer) ResetCounters() { a.s.stats.resetCounters() }

// ReopenLogs implements admin.Server.
func (a *adminServer) ReopenLogs() error {
	return a.ask(func() { a.s.reopenLogs("admin") })
}

// Quit implements admin.Server: the workers are stopped and the supervisor
// exits.
func (a *adminServer) Quit() {
	a.ask(func() {
		if a.s.mode != stopping {
			a.s.log.Info("stopping", zap.String("cause", "admin /quitquitquit"))
			a.s.stop()
			a.s.deadline = time.After(reapWait)
		}
	})
}

// workerLevel is the workers' log level: set through the admin API, else
// the serving config's.
func (s *Supervisor) workerLevel() zapcore.Level {
	var l zapcore.Level
	lvl, _ := s.workerLvl.Load().(string)
	if lvl == "" {
		if v := s.admin.view.Load(); v != nil && v.cfg != nil {
			lvl = v.cfg.Log.Level
		}
	}
	if l.UnmarshalText([]byte(lvl)) != nil {
		return zapcore.InfoLevel
	}
	return l
}

// broadcast sends m to every started worker. Called by the loop.
func (s *Supervisor) broadcast(m hotrestart.Message) {
	for p := range s.procs {
		if p.conn == nil {
			continue
		}
		if err := p.conn.Send(m); err != nil {
			s.log.Warn("cannot reach worker", append(s.procFields(p), zap.Stringer("message", m.Type), zap.Error(err))...)
		}
	}
}

// reopenLogs tells every worker to reopen its access log files. Called by
// the loop.
func (s *Supervisor) reopenLogs(cause string) {
	s.log.Info("reopening access logs", zap.String("cause", cause))
	s.broadcast(hotrestart.Message{Type: hotrestart.TypeReopenLogs})
}

var _ admin.Server = (*adminServer)(nil)

// healthFlags names a host's unhealthy flags as Envoy's /clusters does.
func healthFlags(f uint64) string {
	var b strings.Builder
	if f&(hoststate.FlagFailedActiveHC|hoststate.FlagImmediateHCFail) != 0 {
		b.WriteString("/failed_active_hc")
	}
	if f&hoststate.FlagOutlierEjected != 0 {
		b.WriteString("/failed_outlier_check")
	}
	return b.String()
}
