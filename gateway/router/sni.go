package router

import (
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/pool"
)

// pool returns the pool of f.host the request's connection comes from:
// the one of the route's priority (each has its own, bounded by its own
// max_connections), and for a cluster with auto_sni its child for the TLS
// server name taken from the request's :authority (after host_rewrite),
// so that a connection made for one name never carries a request for
// another.
func (f *filter) pool() *pool.Pool {
	p := f.host.PoolOf(f.route.Priority)
	if tc := f.cluster.Cfg.TLS; tc == nil || !tc.AutoSNI || f.req == nil {
		return p
	}
	return p.ForServerName(http1.AuthorityHost(f.req.Authority))
}
