// Package all links every built-in filter into the binary: importing it runs
// their init() registrations.
package all

import (
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/buffer"              // sluice.filters.http.buffer
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/cache"               // sluice.filters.http.cache
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/compressor"          // sluice.filters.http.compressor
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/cors"                // sluice.filters.http.cors
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/csrf"                // sluice.filters.http.csrf
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/decompressor"        // sluice.filters.http.decompressor
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/ext_authz"           // sluice.filters.http.ext_authz
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/fault"               // sluice.filters.http.fault
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/grpc_web"            // sluice.filters.http.grpc_web
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/health_check"        // sluice.filters.http.health_check
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/local_ratelimit"     // sluice.filters.http.local_ratelimit
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/rbac"                // sluice.filters.http.rbac
	_ "github.com/sluice-proxy/sluice/gateway/filters/listener/http_inspector"  // sluice.filters.listener.http_inspector
	_ "github.com/sluice-proxy/sluice/gateway/filters/listener/original_dst"    // sluice.filters.listener.original_dst
	_ "github.com/sluice-proxy/sluice/gateway/filters/listener/proxy_protocol"  // sluice.filters.listener.proxy_protocol
	_ "github.com/sluice-proxy/sluice/gateway/filters/listener/tls_inspector"   // sluice.filters.listener.tls_inspector
	_ "github.com/sluice-proxy/sluice/gateway/filters/network/connection_limit" // sluice.filters.network.connection_limit
	_ "github.com/sluice-proxy/sluice/gateway/filters/network/ext_authz"        // sluice.filters.network.ext_authz
	_ "github.com/sluice-proxy/sluice/gateway/filters/network/local_ratelimit"  // sluice.filters.network.local_ratelimit
	_ "github.com/sluice-proxy/sluice/gateway/filters/network/rbac"             // sluice.filters.network.rbac
	_ "github.com/sluice-proxy/sluice/gateway/filters/network/tcp_proxy"        // sluice.filters.network.tcp_proxy
	_ "github.com/sluice-proxy/sluice/gateway/hcm"                              // sluice.filters.network.http_connection_manager
	_ "github.com/sluice-proxy/sluice/gateway/router"                           // sluice.filters.http.router
)
