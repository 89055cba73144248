package server

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/hcm"
	"github.com/sluice-proxy/sluice/gateway/listener"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/quicroute"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// quicListener is what serves a udp listener: its one chain's HTTP
// connection manager and TLS config.
type quicListener struct {
	factory *hcm.Factory
	chain   *listener.Chain
	info    netfilter.Info
	stats   *stats.ListenerStats // listener.<address>.*
}

// addQUIC records the chain of the udp listener lc (config validation made
// it the only one, with TLS, holding only the HTTP connection manager).
func (g *Generation) addQUIC(lc *config.Listener, i int, chain *listener.Chain, factories []netfilter.Factory) error {
	key := fmt.Sprintf("listener[%d].filter_chain[0]", i)
	if len(factories) != 1 || chain.TLS == nil {
		return g.cfg.TableError(key, fmt.Errorf("a udp listener needs one filter chain with tls and only the HTTP connection manager"))
	}
	f, ok := factories[0].(*hcm.Factory)
	if !ok {
		return g.cfg.TableError(key+".filter[0]", fmt.Errorf("a udp listener serves HTTP/3 with the HTTP connection manager only"))
	}
	if err := f.CheckHTTP3(); err != nil {
		return g.cfg.TableError(key+".filter[0]", err)
	}
	limit := lc.PerConnectionBufferLimitBytes
	if limit == 0 {
		limit = 1 << 20
	}
	g.quic[lc.Name] = &quicListener{factory: f, chain: chain, info: netfilter.Info{
		Listener: lc.Name, FilterChain: chain.Name, BufferLimit: limit,
	}, stats: g.opts.Stats.Listener(lc.Address)}
	return nil
}

// RoutePacket prepares a UDP socket of the named listener for ServePacket:
// it joins the routing of QUIC packets between the workers sharing the
// socket (gateway/quicroute), so that from its return other workers can
// pass this one the packets of its connections and, while they drain, of
// new ones. A worker calls it before it reports ready; ServePacket does it
// for a socket that has not been through it. It takes ownership of pc and
// returns what to serve.
func (g *Generation) RoutePacket(listenerName string, pc net.PacketConn) (net.PacketConn, error) {
	udp, ok := pc.(*net.UDPConn)
	if !ok {
		return pc, nil // routed already, or not a UDP socket of its own
	}
	rc, err := quicroute.New(udp, quicroute.NewOwner(g.opts.Generation, g.opts.Slot),
		g.opts.Logger.With(zap.String("listener", listenerName)))
	if err != nil {
		return nil, fmt.Errorf("server: listener %q: %w", listenerName, err)
	}
	g.mu.Lock()
	g.routes = append(g.routes, rc)
	if g.successor > 0 {
		rc.SetSuccessor(g.successor)
	}
	g.mu.Unlock()
	return rc, nil
}

// ServePacket serves HTTP/3 on pc for the named udp listener until pc is
// closed or Drain or Close is called; it returns nil after a drain or
// close. It takes ownership of pc.
func (g *Generation) ServePacket(listenerName string, pc net.PacketConn) error {
	q := g.quic[listenerName]
	if q == nil {
		pc.Close()
		return fmt.Errorf("server: no udp listener %q in this generation", listenerName)
	}
	pc, err := g.RoutePacket(listenerName, pc)
	if err != nil {
		return err
	}
	srv, err := q.factory.NewHTTP3Server(pc, q.chain.TLS, q.info, g.tracker.Draining)
	if err != nil {
		return fmt.Errorf("server: listener %q: %w", listenerName, err)
	}
	srv.Listener = q.stats
	g.mu.Lock()
	if g.tracker.Draining() {
		g.mu.Unlock()
		srv.Close()
		return nil
	}
	g.h3 = append(g.h3, srv)
	g.mu.Unlock()
	return srv.Serve()
}

// SetSuccessor tells the HTTP/3 listeners of a generation which generation
// replaces it: from then on, packets that open QUIC connections go to that
// generation's worker of the same slot once it exists (gateway/quicroute).
// gen <= 0 withdraws it (the replacement failed).
func (g *Generation) SetSuccessor(gen int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.successor = gen
	for _, rc := range g.routes {
		rc.SetSuccessor(gen)
	}
}

// shutdownHTTP3 starts the graceful shutdown (HTTP/3 GOAWAY) of every
// HTTP/3 server; the channel closes when all are done, at the latest when
// ctx ends.
func (g *Generation) shutdownHTTP3(ctx context.Context) <-chan struct{} {
	g.mu.Lock()
	srvs := g.h3
	g.h3 = nil
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range srvs {
		wg.Go(func() { _ = s.Shutdown(ctx) })
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// closeHTTP3 closes every HTTP/3 server and its connections at once.
func (g *Generation) closeHTTP3() {
	g.mu.Lock()
	srvs := g.h3
	g.h3 = nil
	g.mu.Unlock()
	for _, s := range srvs {
		_ = s.Close()
	}
}

// advertiseHTTP3 gives the HTTP connection managers of every TCP listener
// that shares its port with a udp listener the Alt-Svc value advertising
// HTTP/3 on that port (unless they set alt_svc). Port 0 matches nothing.
func advertiseHTTP3(cfg *config.Config) {
	ports := map[int]bool{}
	for i := range cfg.Listeners {
		if l := &cfg.Listeners[i]; l.UDP() {
			if p := port(l.Address); p > 0 {
				ports[p] = true
			}
		}
	}
	if len(ports) == 0 {
		return
	}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		p := port(l.Address)
		if l.UDP() || !ports[p] {
			continue
		}
		for j := range l.FilterChains {
			for _, f := range l.FilterChains[j].Filters {
				if a, ok := f.Decoded.(interface{ SetDefaultAltSvc(string) }); ok {
					a.SetDefaultAltSvc(hcm.AltSvcFor(p))
				}
			}
		}
	}
}

// port returns the port of host:port, or 0.
func port(address string) int {
	_, ps, err := net.SplitHostPort(address)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(ps)
	return p
}
