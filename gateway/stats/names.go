package stats

import (
	"reflect"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/config"
)

// Prefix is prepended to every Prometheus metric family.
const Prefix = "sluice_"

type stat struct {
	suffix string
	kind   Kind
}

// maxGauges are the suffixes of gauges aggregated by Def.Max: every worker
// holds the whole cluster, so its membership gauges are copies of one value.
var maxGauges = map[string]bool{"membership_total": true, "membership_healthy": true}

// Envoy's per-listener stats: listener.<address>.<suffix>.
var listenerStats = []stat{
	{"downstream_cx_total", KindCounter},
	{"downstream_cx_destroy", KindCounter},
	{"downstream_cx_active", KindGauge},
	{"downstream_cx_length_ms", KindHistogram},
	{"no_filter_chain_match", KindCounter},
	{"downstream_pre_cx_timeout", KindCounter},
}

// Envoy's per-connection-manager stats: http.<stat_prefix>.<suffix>.
var httpStats = []stat{
	{"downstream_cx_total", KindCounter},
	{"downstream_cx_destroy", KindCounter},
	{"downstream_cx_active", KindGauge},
	{"downstream_cx_protocol_error", KindCounter},
	{"downstream_cx_upgrades_total", KindCounter},
	{"downstream_cx_upgrades_active", KindGauge},
	{"downstream_cx_max_duration_reached", KindCounter},
	{"downstream_cx_max_requests_reached", KindCounter},
	{"downstream_rq_total", KindCounter},
	{"downstream_rq_active", KindGauge},
	{"downstream_rq_header_timeout", KindCounter},
	{"downstream_rq_idle_timeout", KindCounter},
	{"downstream_rq_timeout", KindCounter},
	{"downstream_rq_failed_path_normalization", KindCounter},
	{"downstream_rq_redirected_with_normalized_path", KindCounter},
	{"downstream_rq_1xx", KindCounter},
	{"downstream_rq_2xx", KindCounter},
	{"downstream_rq_3xx", KindCounter},
	{"downstream_rq_4xx", KindCounter},
	{"downstream_rq_5xx", KindCounter},
	{"downstream_rq_time", KindHistogram},
	{"no_route", KindCounter},
}

// Envoy's per-cluster stats: cluster.<name>.<suffix>.
var clusterStats = []stat{
	{"upstream_cx_total", KindCounter},
	{"upstream_cx_active", KindGauge},
	{"upstream_cx_connect_fail", KindCounter},
	{"upstream_cx_connect_timeout", KindCounter},
	{"upstream_cx_connect_ms", KindHistogram},
	{"upstream_rq_total", KindCounter},
	{"upstream_rq_active", KindGauge},
	{"upstream_rq_timeout", KindCounter},
	{"upstream_rq_pending_total", KindCounter},
	{"upstream_rq_pending_active", KindGauge},
	{"upstream_rq_1xx", KindCounter},
	{"upstream_rq_2xx", KindCounter},
	{"upstream_rq_3xx", KindCounter},
	{"upstream_rq_4xx", KindCounter},
	{"upstream_rq_5xx", KindCounter},
	{"upstream_rq_time", KindHistogram},
	{"membership_total", KindGauge},
	{"membership_healthy", KindGauge},
	{"upstream_rq_pending_overflow", KindCounter},
	{"upstream_cx_overflow", KindCounter},
	{"upstream_rq_retry_overflow", KindCounter},
	{"upstream_rq_retry", KindCounter},
	{"upstream_rq_retry_success", KindCounter},
	{"upstream_rq_per_try_timeout", KindCounter},
	{"upstream_rq_per_try_idle_timeout", KindCounter},
}

// CertExpiryGauge is Envoy's server.days_until_first_cert_expiring, which
// the supervisor sets in the snapshots it serves from the config's
// certificates.
const CertExpiryGauge = "server.days_until_first_cert_expiring"

// Process-wide stats: server.<suffix> and access_log.<suffix>.
var serverStats = []stat{
	{"server.live", KindGauge},
	{"server.uptime", KindGauge},
	{"server.hot_restart_generation", KindGauge},
	{"server.concurrency", KindGauge},
	{CertExpiryGauge, KindGauge},
	{"server.worker_restarts", KindCounter},
	{"access_log.dropped", KindCounter},
	{"access_log.write_failed", KindCounter},
	{"access_log.reopen_failed", KindCounter},
	// Envoy's codec stats of headers_with_underscores_action.
	{"http1.dropped_headers_with_underscores", KindCounter},
	{"http1.requests_rejected_with_underscores_in_headers", KindCounter},
	{"http2.dropped_headers_with_underscores", KindCounter},
	{"http2.requests_rejected_with_underscores_in_headers", KindCounter},
	{"http3.dropped_headers_with_underscores", KindCounter},
	{"http3.requests_rejected_with_underscores_in_headers", KindCounter},
}

// ListenerName returns the stat scope of a listener address as Envoy writes
// it: "listener.127.0.0.1_8080." (':' becomes '_').
func ListenerName(address string) string {
	return "listener." + strings.ReplaceAll(address, ":", "_") + "."
}

// HTTPName returns the stat scope of an HTTP connection manager:
// "http.<stat_prefix>.".
func HTTPName(statPrefix string) string { return "http." + statPrefix + "." }

// ClusterName returns the stat scope of a cluster: "cluster.<name>.".
func ClusterName(name string) string { return "cluster." + name + "." }

func scoped(scope, family string, label Label, list []stat) []Def {
	defs := make([]Def, 0, len(list))
	for _, s := range list {
		d := Def{Name: scope + s.suffix, Kind: s.kind, Family: family + "_" + s.suffix, Labels: []Label{label}, Max: maxGauges[s.suffix] && s.kind == KindGauge}
		// downstream_rq_2xx -> downstream_rq_xx{response_code_class="2"}, as Envoy's tag extractor.
		if n := len(s.suffix); n > 4 && s.suffix[n-2:] == "xx" && s.suffix[n-3] >= '1' && s.suffix[n-3] <= '5' && s.suffix[n-4] == '_' {
			d.Family = family + "_" + s.suffix[:n-3] + "xx"
			d.Labels = []Label{label, {Name: "response_code_class", Value: s.suffix[n-3 : n-2]}}
		}
		defs = append(defs, d)
	}
	return defs
}

// ListenerDefs declares the stats of the listener bound to address.
func ListenerDefs(address string) []Def {
	return scoped(ListenerName(address), "listener", Label{"listener_address", strings.ReplaceAll(address, ":", "_")}, listenerStats)
}

// HTTPDefs declares the stats of an HTTP connection manager.
func HTTPDefs(statPrefix string) []Def {
	return scoped(HTTPName(statPrefix), "http", Label{"http_conn_manager_prefix", statPrefix}, httpStats)
}

// ClusterDefs declares the stats of a cluster.
func ClusterDefs(name string) []Def {
	return scoped(ClusterName(name), "cluster", Label{"cluster_name", name}, clusterStats)
}

// ServerDefs declares the process-wide stats.
func ServerDefs() []Def {
	defs := make([]Def, 0, len(serverStats))
	for _, s := range serverStats {
		defs = append(defs, Def{Name: s.suffix, Kind: s.kind})
	}
	return defs
}

// FilterStats is implemented by filter configs that declare stats of their
// own. scope is "http.<stat_prefix>." for an HTTP filter and "" for a
// listener or network filter; the filter returns full names (Envoy puts
// filter stats under the scope, e.g. "http.ingress.ext_authz.denied", and
// network filters under their own prefix, e.g. "tcp.<stat_prefix>.").
// StatDefs must be deterministic and must not have side effects.
type FilterStats interface {
	StatDefs(scope string) []Def
}

// HTTPScoper is implemented by network filter configs that own an HTTP
// stat scope (http.<stat_prefix>.*), such as the HTTP connection manager.
// Configs without the method are read through an exported string field
// named StatPrefix, which is what the HTTP connection manager's Config has.
type HTTPScoper interface {
	HTTPStatPrefix() string
}

func statPrefixOf(c any) (string, bool) {
	if p, ok := c.(HTTPScoper); ok {
		return p.HTTPStatPrefix(), true
	}
	v := reflect.ValueOf(c)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return "", false
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return "", false
	}
	f := v.FieldByName("StatPrefix")
	if !f.IsValid() || f.Kind() != reflect.String {
		return "", false
	}
	return f.String(), true
}

// FromConfig builds the schema of a loaded config: server stats, every
// listener, every HTTP connection manager (by stat_prefix), every cluster,
// and the stats filters declare through FilterStats. The same config always
// gives the same schema.
func FromConfig(cfg *config.Config) (*Schema, error) {
	defs := ServerDefs()
	for _, l := range cfg.Listeners {
		defs = append(defs, ListenerDefs(l.Address)...)
		for _, f := range l.ListenerFilters {
			defs = append(defs, filterDefs(f, "")...)
		}
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				defs = append(defs, filterDefs(f, "")...)
				n, ok := f.Decoded.(config.NestedFilters)
				if !ok {
					continue
				}
				scope := ""
				if p, ok := statPrefixOf(f.Decoded); ok && p != "" {
					defs = append(defs, HTTPDefs(p)...)
					scope = HTTPName(p)
				}
				_, _, nested := n.Nested()
				for _, hf := range nested {
					defs = append(defs, filterDefs(hf, scope)...)
				}
			}
		}
	}
	for _, c := range cfg.Clusters {
		defs = append(defs, ClusterDefs(c.Name)...)
	}
	for i := range cfg.RouteConfigs {
		rc := &cfg.RouteConfigs[i]
		defs = append(defs, perFilterDefs(rc.PerFilter)...)
		for j := range rc.VirtualHosts {
			vh := &rc.VirtualHosts[j]
			defs = append(defs, perFilterDefs(vh.PerFilter)...)
			for k := range vh.Routes {
				defs = append(defs, perFilterDefs(vh.Routes[k].PerFilter)...)
			}
		}
	}
	return NewSchema(defs)
}

// PerRouteStats is implemented by per-route filter configs
// (registry.PerRouteConfig) whose built values count under names of their
// own, such as a per-route local_ratelimit's
// http_local_rate_limit.<stat_prefix>.*. A route table may serve several
// connection managers, so these names have no HTTP scope. Like StatDefs,
// PerRouteStatDefs must be deterministic and free of side effects.
type PerRouteStats interface {
	PerRouteStatDefs() []Def
}

// perFilterDefs returns the stats typed_per_filter_config tables declare.
func perFilterDefs(pfs []config.PerFilterConfig) []Def {
	var defs []Def
	for _, pf := range pfs {
		if fs, ok := pf.Config.(PerRouteStats); ok {
			defs = append(defs, fs.PerRouteStatDefs()...)
		}
	}
	return defs
}

func filterDefs(f config.Filter, scope string) []Def {
	if fs, ok := f.Decoded.(FilterStats); ok {
		return fs.StatDefs(scope)
	}
	return nil
}

// classIndex maps a status code to 0..4 for 1xx..5xx, or -1.
func classIndex(code int) int {
	if code < 100 || code > 599 {
		return -1
	}
	return code/100 - 1
}
