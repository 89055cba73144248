// Package hcm is the HTTP connection manager: the terminal network filter
// that owns a connection's HTTP codec, turns each request into a stream,
// runs the stream through the HTTP filter chain (ending at the router) and
// writes the response back.
//
// One goroutine, the connection's, runs everything of a connection: it reads
// a request head, runs the decoder filters (the router does the upstream
// exchange on the same goroutine and calls back the encoder path), then reads
// the next request. HTTP/1.1 pipelining is sequential: a pipelined request
// waits in the read buffer until the response before it is written.
package hcm

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/accesslog"
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/pathnorm"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
	"github.com/sluice-proxy/sluice/gateway/tracing"
)

// Factory is a built HTTP connection manager: immutable, shared by every
// connection of the filter chains that use it.
type Factory struct {
	cfg     *Config
	routes  httpfilter.RouteTable
	filters []httpFilter
	limits  http1.Limits
	log     *zap.Logger
	stats   *stats.HTTPStats
	loggers []*accesslog.Logger
	// internal are the client ranges whose requests are internal.
	internal []netip.Prefix
	// path is the request path normalization (pathnorm.go).
	path pathnorm.Options
	// tracer traces requests; nil without a tracing table.
	tracer *tracing.Tracer
	// localReply is local_reply_config compiled, nil when not set.
	localReply *localReply
	// xfcc is forward_client_cert_details (xfcc.go).
	xfcc uint8
	// server, serverName and via are the server header handling and the
	// via value, nil when unset (serverhdr.go).
	// stripPort is strip_matching_host_port / strip_any_host_port
	// (hostport.go).
	stripPort uint8
	// underscores is headers_with_underscores_action, uStats its
	// counters (nil with ALLOW; underscores.go).
	underscores uint8
	uStats      *underscoreStats
	server      uint8
	serverName  []byte
	via         []byte
}

// isInternal reports whether a client at addr is internal.
func (f *Factory) isInternal(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range f.internal {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

type httpFilter struct {
	name    string
	factory httpfilter.Factory
}

// streamIDs numbers streams across the worker.
var streamIDs atomic.Uint64

// Build implements registry.Config.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	c.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	routes, err := ctx.RouteTable(c.RouteConfig)
	if err != nil {
		return nil, registry.Errorf("route_config", "%v", err)
	}
	f := &Factory{
		cfg:    c,
		routes: routes,
		limits: http1.Limits{MaxHeaderBytes: c.MaxRequestHeadersKB << 10, MaxHeaders: c.MaxHeadersCount},
		log:    ctx.Logger,
	}
	if f.internal, err = c.internalRanges(); err != nil {
		return nil, err
	}
	if f.path, err = c.pathOptions(); err != nil {
		return nil, err
	}
	if f.localReply, err = compileLocalReply(c.LocalReplyConfig); err != nil {
		return nil, err
	}
	if f.xfcc, err = c.xfccMode(); err != nil {
		return nil, err
	}
	if f.server, f.serverName, err = c.serverMode(); err != nil {
		return nil, err
	}
	if c.Via != "" {
		f.via = []byte(c.Via)
	}
	switch {
	case c.StripAnyHostPort:
		f.stripPort = stripAny
	case c.StripMatchingHostPort:
		f.stripPort = stripMatching
	}
	slab, _ := ctx.Stats.(*stats.Slab)
	f.stats = slab.HTTP(c.StatPrefix)
	if c.Tracing != nil && !ctx.DryRun {
		f.tracer = tracing.New(c.Tracing, stats.HTTPName(c.StatPrefix), slab, ctx.Logger)
	}
	if f.underscores, err = c.underscoresAction(); err != nil {
		return nil, err
	}
	if f.underscores != underscoresAllow {
		f.uStats = newUnderscoreStats(slab)
	}
	if f.loggers, err = accesslog.Build(c.AccessLog, ctx.AccessLogs, ctx.DryRun); err != nil {
		return nil, err
	}
	for i := range c.HTTPFilters {
		hf := &c.HTTPFilters[i]
		sub := *ctx
		sub.Path = hf.Path
		sub.StatScope = "http." + c.StatPrefix + "."
		built, err := hf.Decoded.Build(&sub)
		if err != nil {
			key := fmt.Sprintf("http_filter[%d].config", i)
			var fe *registry.FieldError
			if errors.As(err, &fe) {
				return nil, &registry.FieldError{Key: key + "." + fe.Key, Err: fe.Err}
			}
			return nil, &registry.FieldError{Key: key, Err: err}
		}
		hff, ok := built.(httpfilter.Factory)
		if !ok {
			return nil, fmt.Errorf("http_filter[%d] (%s): not an HTTP filter", i, hf.Name)
		}
		f.filters = append(f.filters, httpFilter{name: hf.Name, factory: hff})
	}
	if err := f.chainBuilt(); err != nil {
		return nil, err
	}
	return f, nil
}

// chainBuilt tells the chain's httpfilter.ChainAware factories the chain.
func (f *Factory) chainBuilt() error {
	var chain []httpfilter.Factory
	for i, hf := range f.filters {
		ca, ok := hf.factory.(httpfilter.ChainAware)
		if !ok {
			continue
		}
		if chain == nil {
			chain = make([]httpfilter.Factory, len(f.filters))
			for j := range f.filters {
				chain[j] = f.filters[j].factory
			}
		}
		if err := ca.ChainBuilt(chain); err != nil {
			key := fmt.Sprintf("http_filter[%d].config", i)
			var fe *registry.FieldError
			if errors.As(err, &fe) {
				return &registry.FieldError{Key: key + "." + fe.Key, Err: fe.Err}
			}
			return &registry.FieldError{Key: key, Err: err}
		}
	}
	return nil
}

// NewFilter implements netfilter.Factory.
func (f *Factory) NewFilter(cb netfilter.Callbacks) netfilter.Filter {
	return &connection{f: f}
}
