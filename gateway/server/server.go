// Package server builds a config generation inside a worker (clusters, route
// tables, filter-chain factories) and serves listeners with it.
//
// A Generation is built once and is then immutable; Serve runs on one
// goroutine per listening socket, Drain and Close may be called from any
// goroutine.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/accesslog"
	"github.com/sluice-proxy/sluice/gateway/cluster"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/conn"
	"github.com/sluice-proxy/sluice/gateway/hcm"
	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/listener"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/quicroute"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/router"
	"github.com/sluice-proxy/sluice/gateway/stats"
	"github.com/sluice-proxy/sluice/gateway/tlsconn"

	_ "github.com/sluice-proxy/sluice/gateway/filters/all" // every built-in filter
)

// Options tune Build.
type Options struct {
	Logger *zap.Logger
	// DryRun builds everything without side effects, to validate a config.
	DryRun bool
	// Generation and Slot identify the worker, for logs and connection ids.
	Generation int
	Slot       int
	// Handoff, when set, moves idle keep-alive connections to the next
	// generation during a drain instead of closing them.
	Handoff conn.HandoffFunc
	// TicketKeys are the TLS session ticket keys shared by every worker
	// and generation (made by the supervisor); empty: per-process keys.
	TicketKeys tlsconn.TicketKeys
	// Stats is the worker's slab of the supervisor's stats region; nil
	// (tests, validation) records into a private region.
	Stats *stats.Slab
	// AccessLogs holds the worker's open access log files, shared by its
	// generations so that SIGUSR1 reopens them all; nil opens a private set.
	AccessLogs *accesslog.Files
	// HostState is the supervisor's host-state region (host health,
	// outlier state, circuit breakers, token buckets) and HostStateWorker
	// the worker's index in it; nil (tests, validation) uses a region of
	// the process's own.
	HostState       *hoststate.Region
	HostStateWorker int
}

// Generation is a built config generation: immutable, shared by every
// listener of a worker.
type Generation struct {
	cfg       *config.Config
	opts      Options
	clusters  *cluster.Manager
	listeners map[string]*listener.Listener
	tracker   *conn.Tracker
	// dryStats is the stats region a dry-run Build made for itself
	// (Options.Stats nil); Close unmaps it, since nothing records into a
	// generation that never serves.
	dryStats *stats.Region

	mu      sync.Mutex
	lns     []net.Listener
	stopped bool               // no listener accepts any more (StopAccepting, Drain, Close)
	h3      []*hcm.HTTP3Server // serving udp listeners
	// quic holds what serves each udp listener (see packet.go).
	quic map[string]*quicListener
	// routes are the UDP sockets of the udp listeners, and successor the
	// generation that replaced this one (0 while it serves).
	routes    []*quicroute.Conn
	successor int
}

// Build builds a generation from cfg. Errors are *config.Error values naming
// the file, line and key path.
func Build(cfg *config.Config, opts Options) (_ *Generation, err error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	var dryStats *stats.Region
	var g *Generation
	defer func() {
		// A generation that fails to build never serves: let go of what
		// it holds already.
		switch {
		case err == nil:
		case g != nil:
			g.Close()
		case dryStats != nil:
			dryStats.Close()
		}
	}()
	if opts.Stats == nil {
		schema, err := stats.FromConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("server: stats: %w", err)
		}
		region, err := stats.NewRegion(schema, 1)
		if err != nil {
			return nil, fmt.Errorf("server: stats: %w", err)
		}
		opts.Stats = region.Slab(0)
		if opts.DryRun {
			dryStats = region
		}
	}
	if opts.AccessLogs == nil {
		opts.AccessLogs = accesslog.NewFiles(accesslog.Options{})
	}
	clusters, err := cluster.NewManagerWith(cfg, opts.Stats, cluster.Shared{Region: opts.HostState, Worker: opts.HostStateWorker})
	if err != nil {
		return nil, err
	}
	g = &Generation{
		dryStats:  dryStats,
		cfg:       cfg,
		opts:      opts,
		clusters:  clusters,
		listeners: map[string]*listener.Listener{},
		quic:      map[string]*quicListener{},
		tracker:   conn.NewTracker(opts.Handoff),
	}
	g.tracker.SetDrainPolicy(conn.DrainPolicy{
		Gradual: cfg.Server.DrainStrategy != "immediate",
		Timeout: cfg.Server.DrainTimeout.Duration,
		Jitter:  cfg.Server.DrainJitter.Duration,
	})
	tables := map[string]*router.Table{}
	routeTable := func(name string) (httpfilter.RouteTable, error) {
		if t := tables[name]; t != nil {
			return t, nil
		}
		rc := cfg.RouteConfig(name)
		if rc == nil {
			return nil, fmt.Errorf("route_config %q does not exist", name)
		}
		t, err := router.NewTableWith(rc, clusters, func(pf *config.PerFilterConfig) (any, error) {
			return buildPerFilter(cfg, pf, opts, clusters)
		})
		if err != nil {
			return nil, err
		}
		tables[name] = t
		return t, nil
	}
	advertiseHTTP3(cfg)
	for i := range cfg.Listeners {
		lc := &cfg.Listeners[i]
		l := &listener.Listener{
			Name:    lc.Name,
			Cfg:     lc,
			Tracker: g.tracker,
			Log:     opts.Logger,
			IDBase:  uint64(opts.Slot&0xffff) << 48,
			Stats:   opts.Stats.Listener(lc.Address),
		}
		for j := range lc.ListenerFilters {
			f, err := buildFilter[netfilter.ListenerFilterFactory](cfg, &lc.ListenerFilters[j], opts, routeTable, clusters)
			if err != nil {
				return nil, err
			}
			l.ListenerFilters = append(l.ListenerFilters, f)
		}
		for j := range lc.FilterChains {
			fc := &lc.FilterChains[j]
			var factories []netfilter.Factory
			for k := range fc.Filters {
				f, err := buildFilter[netfilter.Factory](cfg, &fc.Filters[k], opts, routeTable, clusters)
				if err != nil {
					return nil, err
				}
				factories = append(factories, f)
			}
			chain, err := listener.NewChain(fc.Name, &fc.Match, factories)
			if err != nil {
				return nil, cfg.TableError(fmt.Sprintf("listener[%d].filter_chain[%d].match", i, j), err)
			}
			if fc.TLS != nil {
				var alpn []string
				if n := len(fc.Filters); n > 0 {
					if a, ok := fc.Filters[n-1].Decoded.(interface{ ALPN() []string }); ok {
						alpn = a.ALPN()
					}
				}
				if chain.TLS, err = tlsconn.Server(fc.TLS, alpn, opts.TicketKeys); err != nil {
					return nil, cfg.TableError(fmt.Sprintf("listener[%d].filter_chain[%d].tls", i, j), err)
				}
				if !lc.UDP() {
					tlsconn.ServeWithoutCommonALPN(chain.TLS)
				}
				chain.HandshakeTimeout = fc.TLS.HandshakeTimeout.Duration
				if chain.HandshakeTimeout <= 0 {
					chain.HandshakeTimeout = 10 * time.Second
				}
			}
			if lc.UDP() {
				if err := g.addQUIC(lc, i, chain, factories); err != nil {
					return nil, err
				}
			}
			if fc.Default {
				l.Default = chain
			} else {
				l.Chains = append(l.Chains, chain)
			}
		}
		g.listeners[lc.Name] = l
	}
	g.linkVirtualListeners()
	return g, nil
}

// linkVirtualListeners gives each use_original_dst listener the lookup of
// the bind_to_port = false listeners by address.
func (g *Generation) linkVirtualListeners() {
	virtual := map[netip.AddrPort]*listener.Listener{}
	for i := range g.cfg.Listeners {
		lc := &g.cfg.Listeners[i]
		if lc.Bound() {
			continue
		}
		if a, err := netip.ParseAddrPort(lc.Address); err == nil { // validated
			virtual[unmap(a)] = g.listeners[lc.Name]
		}
	}
	if len(virtual) == 0 {
		return
	}
	lookup := func(dst netip.AddrPort) *listener.Listener {
		dst = unmap(dst)
		if l := virtual[dst]; l != nil {
			return l
		}
		// Envoy's fallback: the wildcard address of the same family and port.
		wild := netip.IPv4Unspecified()
		if dst.Addr().Is6() {
			wild = netip.IPv6Unspecified()
		}
		return virtual[netip.AddrPortFrom(wild, dst.Port())]
	}
	for _, l := range g.listeners {
		if l.Cfg.UseOriginalDst {
			l.Lookup = lookup
		}
	}
}

// unmap turns an IPv4-mapped IPv6 address into its IPv4 form.
func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// buildFilter builds one filter and checks it is of the expected kind.
func buildFilter[T any](cfg *config.Config, f *config.Filter, opts Options, rt func(string) (httpfilter.RouteTable, error), clusters *cluster.Manager) (T, error) {
	var zero T
	ctx := buildContext(cfg, f.Name, f.Path, opts, clusters)
	ctx.RouteTable = rt
	if f.Decoded == nil {
		return zero, cfg.FieldError(f.Path+".name", fmt.Errorf("filter %q was not decoded", f.Name))
	}
	built, err := f.Decoded.Build(ctx)
	if err != nil {
		return zero, cfg.FieldError(f.Path, err)
	}
	v, ok := built.(T)
	if !ok {
		return zero, cfg.FieldError(f.Path+".name", fmt.Errorf("filter %q cannot be used here", f.Name))
	}
	return v, nil
}

// buildContext is the generation's build context for the filter (or
// per-filter table) name at config key path.
func buildContext(cfg *config.Config, name, path string, opts Options, clusters *cluster.Manager) *registry.BuildContext {
	return &registry.BuildContext{
		Logger:     opts.Logger.With(zap.String("filter", name)),
		Path:       path,
		DryRun:     opts.DryRun,
		Clusters:   clusters,
		Workers:    cfg.Server.Workers,
		Stats:      opts.Stats,
		AccessLogs: opts.AccessLogs,
		HostState:  clusters.Region(),
	}
}

// buildPerFilter builds one typed_per_filter_config table of a route table
// with the generation's build context.
func buildPerFilter(cfg *config.Config, pf *config.PerFilterConfig, opts Options, clusters *cluster.Manager) (any, error) {
	v, err := pf.Config.BuildPerRoute(buildContext(cfg, pf.Name, pf.Path, opts, clusters))
	if err != nil {
		return nil, cfg.TableError(pf.Path, err)
	}
	return v, nil
}

// Serve accepts connections on ln for the named listener until ln is closed
// or Drain is called. It returns nil after a drain or close.
func (g *Generation) Serve(listenerName string, ln net.Listener) error {
	l := g.listeners[listenerName]
	if l == nil {
		return fmt.Errorf("server: no listener %q in this generation", listenerName)
	}
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		ln.Close()
		return nil
	}
	g.lns = append(g.lns, ln)
	g.mu.Unlock()
	err := l.Serve(ln)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Adopt serves a connection handed off by a previous generation as if it
// had just been accepted on the named listener, with readAhead as the first
// bytes read. It takes ownership of f.
func (g *Generation) Adopt(listenerName string, f *os.File, readAhead []byte) error {
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("server: adopt: %w", err)
	}
	l := g.listeners[listenerName]
	if l == nil {
		nc.Close()
		return fmt.Errorf("server: adopt: no listener %q in this generation", listenerName)
	}
	l.Tracker.Accepted()
	go l.Adopt(nc, readAhead)
	return nil
}

// Drain stops accepting on every listener, lets in-flight requests finish
// (their connections close after the response), closes idle keep-alive
// connections, and returns when every connection is gone or ctx ends (then
// it closes what is left).
func (g *Generation) Drain(ctx context.Context) {
	g.closeListeners()
	done := g.tracker.Drain()
	// What is left near the deadline closes spread over the jitter, ending
	// at the deadline, so that its clients do not reconnect all at once.
	var spread <-chan time.Time
	jitter := g.cfg.Server.DrainJitter.Duration
	if d, ok := ctx.Deadline(); ok && jitter > 0 {
		spread = time.After(time.Until(d.Add(-jitter)))
	}
	h3done := g.shutdownHTTP3(ctx)
	select {
	case <-done:
	case <-spread:
		g.opts.Logger.Info("drain timeout near, closing the connections left", zap.Int("connections", g.tracker.Len()),
			zap.Duration("over", jitter))
		g.tracker.CloseSpread(jitter)
	case <-ctx.Done():
		g.opts.Logger.Info("drain timeout, closing the connections left", zap.Int("connections", g.tracker.Len()))
		g.tracker.CloseAll()
	}
	<-h3done
	g.clusters.Close()
}

// StopAccepting closes every TCP listener of the generation: no connection
// is accepted after it returns. The connections it has are served as
// before, undrained: a supervisor retiring a generation first stops every
// worker of it from accepting, then drains them, so that a client a drain
// sends away cannot land on a worker of the same generation that has not
// heard of the drain yet. Drain and Close do it too; calling several is
// harmless. Its udp (HTTP/3) listeners go on until Drain: their packets
// follow the QUIC connection, not an accept.
func (g *Generation) StopAccepting() { g.closeListeners() }

// Close closes every listener and connection at once. A dry-run
// generation (Options.DryRun) must be closed too once checked: Close
// unregisters its clusters and unmaps the stats region it made.
func (g *Generation) Close() {
	g.closeListeners()
	g.tracker.Drain()
	g.tracker.CloseAll()
	g.closeHTTP3()
	g.clusters.Close()
	if g.dryStats != nil {
		g.dryStats.Close()
		g.dryStats = nil
	}
}

// Connections returns the number of live downstream connections.
func (g *Generation) Connections() int { return g.tracker.Len() }

func (g *Generation) closeListeners() {
	g.mu.Lock()
	lns := g.lns
	g.lns = nil
	g.stopped = true
	g.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
}

// SetTicketKeys replaces the TLS session ticket keys of every filter chain
// that terminates TLS with session tickets on (the first key encrypts, all
// decrypt). Safe to call while connections are served: crypto/tls guards
// the keys, and a handshake uses those current at its start.
func (g *Generation) SetTicketKeys(keys tlsconn.TicketKeys) {
	for _, l := range g.listeners {
		for _, ch := range append(l.Chains[:len(l.Chains):len(l.Chains)], l.Default) {
			if ch != nil && ch.TLS != nil && !ch.TLS.SessionTicketsDisabled {
				ch.TLS.SetSessionTicketKeys(keys)
			}
		}
	}
}
