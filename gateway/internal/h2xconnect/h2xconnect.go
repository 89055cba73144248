// Package h2xconnect turns on golang.org/x/net/http2's server support for
// the extended CONNECT protocol (RFC 8441: SETTINGS_ENABLE_CONNECT_PROTOCOL
// and the :protocol pseudo-header), which the package only reads from
// GODEBUG=http2xconnect=1 in its own init.
//
// Importing this package (for its side effect) adds that setting to
// GODEBUG unless GODEBUG already sets http2xconnect. It must initialise
// before x/net/http2 does, which Go's initialisation order guarantees: a
// package is initialised as soon as its imports are, ties broken by import
// path, and this package imports only packages x/net/http2 imports too and
// its path sorts before golang.org/x/net/http2.
package h2xconnect

import (
	"os"
	"strings"
)

func init() {
	g := os.Getenv("GODEBUG")
	if strings.Contains(g, "http2xconnect=") {
		return
	}
	if g != "" {
		g += ","
	}
	_ = os.Setenv("GODEBUG", g+"http2xconnect=1")
}
