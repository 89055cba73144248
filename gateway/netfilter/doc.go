// Package netfilter holds the contracts of listener filters and network
// filters: the interfaces, the callbacks and the status values. It holds no
// implementation.
//
// # Flow
//
// A worker accepts a connection on a listener (package listener), runs the
// listener filters in config order (each may peek at the first bytes without
// consuming them and set what filter-chain matching sees: addresses, server
// name, ALPN, transport protocol), picks a filter chain, wraps the socket in
// its transport (raw or TLS) and hands the connection to package conn. There
// the network filters run: OnNewConnection in config order, then every read
// passes through the read filters in config order and every write through the
// write filters in reverse order. The last filter is terminal: it serves the
// connection's byte stream (the HTTP connection manager, tcp_proxy).
//
// The terminal filter differs from Envoy's: it does not receive OnData
// callbacks but reads the (filtered) stream itself, with blocking calls on
// the connection's goroutine. The Go runtime's netpoller is the event loop,
// and a goroutine per connection lets codecs and proxies stream with plain
// reads and writes. Non-terminal filters keep Envoy's callback contract.
//
// # Concurrency
//
// A connection's filters are called on its goroutine, one at a time. The
// manager iterates; filters never call the next filter.
//
// # Implementations
//
//	interface       implemented by
//	ListenerFilter  gateway/filters/listener/...
//	ReadFilter      gateway/filters/network/... (non-terminal)
//	Terminal        hcm, tcp_proxy
//	Conn            gateway/conn
package netfilter
