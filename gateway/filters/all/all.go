// Package all links every built-in filter into the binary: importing it runs
// their init() registrations.
package all

import (
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/ext_authz"    // sluice.filters.http.ext_authz
	_ "github.com/sluice-proxy/sluice/gateway/filters/network/ext_authz" // sluice.filters.network.ext_authz
	_ "github.com/sluice-proxy/sluice/gateway/hcm"                       // sluice.filters.network.http_connection_manager
	_ "github.com/sluice-proxy/sluice/gateway/router"                    // sluice.filters.http.router
)
