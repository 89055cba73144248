package stats

// ListenerStats are the handles of one listener's stats
// (listener.<address>.*), for the accept loop.
type ListenerStats struct {
	DownstreamCxTotal    *Counter
	DownstreamCxDestroy  *Counter
	DownstreamCxActive   *Gauge
	DownstreamCxLengthMs *Histogram
	NoFilterChainMatch   *Counter
	// DownstreamPreCxTimeout counts connections whose listener filters
	// ran out of listener_filters_timeout (Envoy's).
	DownstreamPreCxTimeout *Counter
}

// Listener resolves the handles of the listener bound to address.
func (s *Slab) Listener(address string) *ListenerStats {
	p := ListenerName(address)
	return &ListenerStats{
		DownstreamCxTotal:      s.Counter(p + "downstream_cx_total"),
		DownstreamCxDestroy:    s.Counter(p + "downstream_cx_destroy"),
		DownstreamCxActive:     s.Gauge(p + "downstream_cx_active"),
		DownstreamCxLengthMs:   s.Histogram(p + "downstream_cx_length_ms"),
		NoFilterChainMatch:     s.Counter(p + "no_filter_chain_match"),
		DownstreamPreCxTimeout: s.Counter(p + "downstream_pre_cx_timeout"),
	}
}

// HTTPStats are the handles of one HTTP connection manager's stats
// (http.<stat_prefix>.*).
type HTTPStats struct {
	DownstreamCxTotal         *Counter
	DownstreamCxDestroy       *Counter
	DownstreamCxActive        *Gauge
	DownstreamCxProtocolError *Counter
	// DownstreamCxUpgradesTotal and DownstreamCxUpgradesActive count
	// connections turned into WebSocket or CONNECT tunnels.
	DownstreamCxUpgradesTotal  *Counter
	DownstreamCxUpgradesActive *Gauge
	// DownstreamCxMaxDurationReached counts connections that reached
	// max_connection_duration.
	DownstreamCxMaxDurationReached *Counter
	// DownstreamCxMaxRequestsReached counts connections that reached
	// max_requests_per_connection.
	DownstreamCxMaxRequestsReached *Counter
	// DownstreamRqTimeout counts requests answered 408 by request_timeout.
	DownstreamRqTimeout *Counter
	DownstreamRqTotal   *Counter
	DownstreamRqActive  *Gauge
	// DownstreamRqHeaderTimeout counts requests answered 408 because
	// their head did not arrive within request_headers_timeout.
	DownstreamRqHeaderTimeout *Counter
	// DownstreamRqIdleTimeout counts tunnels (WebSocket, CONNECT) closed
	// by stream_idle_timeout with no byte moving either way.
	DownstreamRqIdleTimeout *Counter
	// DownstreamRqFailedPathNormalization counts requests answered 400
	// by path normalization (Envoy's name).
	DownstreamRqFailedPathNormalization *Counter
	// DownstreamRqRedirectedWithNormalizedPath counts requests redirected
	// to their unescaped path (Envoy's name).
	DownstreamRqRedirectedWithNormalizedPath *Counter
	// DownstreamRqXx counts responses by class: [0] is 1xx … [4] is 5xx.
	DownstreamRqXx   [5]*Counter
	DownstreamRqTime *Histogram
	NoRoute          *Counter
}

// HTTP resolves the handles of the connection manager with statPrefix.
func (s *Slab) HTTP(statPrefix string) *HTTPStats {
	p := HTTPName(statPrefix)
	h := &HTTPStats{
		DownstreamCxTotal:              s.Counter(p + "downstream_cx_total"),
		DownstreamCxDestroy:            s.Counter(p + "downstream_cx_destroy"),
		DownstreamCxActive:             s.Gauge(p + "downstream_cx_active"),
		DownstreamCxProtocolError:      s.Counter(p + "downstream_cx_protocol_error"),
		DownstreamCxUpgradesTotal:      s.Counter(p + "downstream_cx_upgrades_total"),
		DownstreamCxUpgradesActive:     s.Gauge(p + "downstream_cx_upgrades_active"),
		DownstreamCxMaxDurationReached: s.Counter(p + "downstream_cx_max_duration_reached"),
		DownstreamRqTotal:              s.Counter(p + "downstream_rq_total"),
		DownstreamRqActive:             s.Gauge(p + "downstream_rq_active"),
		DownstreamRqHeaderTimeout:      s.Counter(p + "downstream_rq_header_timeout"),
		DownstreamRqIdleTimeout:        s.Counter(p + "downstream_rq_idle_timeout"),
		DownstreamRqTime:               s.Histogram(p + "downstream_rq_time"),
		NoRoute:                        s.Counter(p + "no_route"),
	}
	h.DownstreamCxMaxRequestsReached = s.Counter(p + "downstream_cx_max_requests_reached")
	h.DownstreamRqTimeout = s.Counter(p + "downstream_rq_timeout")
	h.DownstreamRqFailedPathNormalization = s.Counter(p + "downstream_rq_failed_path_normalization")
	h.DownstreamRqRedirectedWithNormalizedPath = s.Counter(p + "downstream_rq_redirected_with_normalized_path")
	for i := range h.DownstreamRqXx {
		h.DownstreamRqXx[i] = s.Counter(p + "downstream_rq_" + string(rune('1'+i)) + "xx")
	}
	return h
}

// Response counts a response code in its class counter; codes outside
// 100..599 are not counted.
func (h *HTTPStats) Response(code int) {
	if i := classIndex(code); i >= 0 {
		h.DownstreamRqXx[i].Inc()
	}
}

// ClusterStats are the handles of one cluster's stats (cluster.<name>.*).
type ClusterStats struct {
	UpstreamCxTotal          *Counter
	UpstreamCxActive         *Gauge
	UpstreamCxConnectFail    *Counter
	UpstreamCxConnectTimeout *Counter
	UpstreamCxConnectMs      *Histogram
	UpstreamRqTotal          *Counter
	UpstreamRqActive         *Gauge
	UpstreamRqTimeout        *Counter
	// UpstreamRqPendingTotal and UpstreamRqPendingActive count the
	// requests that waited for a connection under max_connections.
	UpstreamRqPendingTotal  *Counter
	UpstreamRqPendingActive *Gauge
	// UpstreamRqXx counts upstream responses by class: [0] is 1xx … [4] 5xx.
	UpstreamRqXx      [5]*Counter
	UpstreamRqTime    *Histogram
	MembershipTotal   *Gauge
	MembershipHealthy *Gauge
}

// Cluster resolves the handles of the named cluster.
func (s *Slab) Cluster(name string) *ClusterStats {
	p := ClusterName(name)
	c := &ClusterStats{
		UpstreamCxTotal:          s.Counter(p + "upstream_cx_total"),
		UpstreamCxActive:         s.Gauge(p + "upstream_cx_active"),
		UpstreamCxConnectFail:    s.Counter(p + "upstream_cx_connect_fail"),
		UpstreamCxConnectTimeout: s.Counter(p + "upstream_cx_connect_timeout"),
		UpstreamCxConnectMs:      s.Histogram(p + "upstream_cx_connect_ms"),
		UpstreamRqTotal:          s.Counter(p + "upstream_rq_total"),
		UpstreamRqActive:         s.Gauge(p + "upstream_rq_active"),
		UpstreamRqTimeout:        s.Counter(p + "upstream_rq_timeout"),
		UpstreamRqPendingTotal:   s.Counter(p + "upstream_rq_pending_total"),
		UpstreamRqPendingActive:  s.Gauge(p + "upstream_rq_pending_active"),
		UpstreamRqTime:           s.Histogram(p + "upstream_rq_time"),
		MembershipTotal:          s.Gauge(p + "membership_total"),
		MembershipHealthy:        s.Gauge(p + "membership_healthy"),
	}
	for i := range c.UpstreamRqXx {
		c.UpstreamRqXx[i] = s.Counter(p + "upstream_rq_" + string(rune('1'+i)) + "xx")
	}
	return c
}

// Response counts an upstream response code in its class counter.
func (c *ClusterStats) Response(code int) {
	if i := classIndex(code); i >= 0 {
		c.UpstreamRqXx[i].Inc()
	}
}

// ServerStats are the handles of the process-wide stats.
type ServerStats struct {
	Live                 *Gauge
	Uptime               *Gauge
	HotRestartGeneration *Gauge
	Concurrency          *Gauge
	WorkerRestarts       *Counter
	AccessLogDropped     *Counter
	AccessLogWriteFailed *Counter
	AccessLogReopenFail  *Counter
}

// Server resolves the handles of the server.* and access_log.* stats. The
// supervisor sets the server gauges on its ServerSlab; workers count access
// log drops on their own slab.
func (s *Slab) Server() *ServerStats {
	return &ServerStats{
		Live:                 s.Gauge("server.live"),
		Uptime:               s.Gauge("server.uptime"),
		HotRestartGeneration: s.Gauge("server.hot_restart_generation"),
		Concurrency:          s.Gauge("server.concurrency"),
		WorkerRestarts:       s.Counter("server.worker_restarts"),
		AccessLogDropped:     s.Counter("access_log.dropped"),
		AccessLogWriteFailed: s.Counter("access_log.write_failed"),
		AccessLogReopenFail:  s.Counter("access_log.reopen_failed"),
	}
}
