package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/stats"
)

type endpoint struct {
	path   string
	help   string
	mutate bool // POST only
	serve  func(w http.ResponseWriter, r *http.Request)
}

// Handler serves the admin API over a Server. It is safe for concurrent
// use.
type Handler struct {
	s         Server
	endpoints []endpoint
	byPath    map[string]*endpoint
}

// NewHandler returns the admin handler for s.
func NewHandler(s Server) *Handler {
	h := &Handler{s: s}
	h.endpoints = []endpoint{
		{"/", "this list", false, h.index},
		{"/ready", "200 LIVE when serving, 503 and the state otherwise", false, h.ready},
		{"/server_info", "version, state, uptime and hot restart generation (JSON)", false, h.serverInfo},
		{"/stats", "stats; format=json|prometheus, filter=<regex>, usedonly", false, h.stats},
		{"/stats/prometheus", "stats in the Prometheus text format; filter=<regex>, usedonly", false, h.prometheus},
		{"/clusters", "clusters and hosts; format=json", false, h.clusters},
		{"/listeners", "listeners; format=json", false, h.listeners},
		{"/config_dump", "running config, secrets redacted (JSON)", false, h.configDump},
		{"/certs", "certificates of every TLS context, with days until expiration (JSON)", false, h.certs},
		{"/logging", "GET: logger levels; POST ?level=<level> or ?<logger>=<level>", false, h.logging},
		{"/healthcheck/fail", "fail health checks", true, h.healthcheck(false)},
		{"/healthcheck/ok", "pass health checks", true, h.healthcheck(true)},
		{"/drain_listeners", "stop accepting connections; graceful drains first", true, h.drain},
		{"/reset_counters", "reset counters and histograms to zero", true, h.resetCounters},
		{"/reopen_logs", "reopen access log files", true, h.reopenLogs},
		{"/quitquitquit", "shut down", true, h.quit},
	}
	h.byPath = make(map[string]*endpoint, len(h.endpoints))
	for i := range h.endpoints {
		h.byPath[h.endpoints[i].path] = &h.endpoints[i]
	}
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache, max-age=0")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	ep := h.byPath[r.URL.Path]
	if ep == nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "invalid path %q; admin commands are:\n", r.URL.Path)
		h.list(w)
		return
	}
	switch {
	case ep.mutate && r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed: use POST", http.StatusMethodNotAllowed)
		return
	case !ep.mutate && ep.path != "/logging" && r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
		return
	}
	ep.serve(w, r)
}

func (h *Handler) list(w http.ResponseWriter) {
	for _, ep := range h.endpoints {
		method := "GET "
		if ep.mutate {
			method = "POST"
		}
		fmt.Fprintf(w, "  %s %-20s %s\n", method, ep.path, ep.help)
	}
}

func (h *Handler) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "admin commands are:")
	h.list(w)
}

func (h *Handler) ready(w http.ResponseWriter, _ *http.Request) {
	ok, state := h.s.Ready()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, state)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "admin: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

func (h *Handler) certs(w http.ResponseWriter, _ *http.Request) {
	certs := h.s.Certs()
	if certs == nil {
		certs = []CertContext{}
	}
	writeJSON(w, map[string]any{"certificates": certs})
}

func (h *Handler) serverInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, h.s.ServerInfo())
}

// selected applies filter= and usedonly to a snapshot.
func (h *Handler) selected(w http.ResponseWriter, r *http.Request) (stats.Snapshot, bool) {
	q := r.URL.Query()
	var re *regexp.Regexp
	if f := q.Get("filter"); f != "" {
		var err error
		if re, err = regexp.Compile(f); err != nil {
			http.Error(w, "admin: filter: "+err.Error(), http.StatusBadRequest)
			return nil, false
		}
	}
	return h.s.Snapshot().Select(re, q.Has("usedonly")), true
}

func (h *Handler) stats(w http.ResponseWriter, r *http.Request) {
	switch f := r.URL.Query().Get("format"); f {
	case "prometheus":
		h.prometheus(w, r)
		return
	case "", "json", "text":
	default:
		http.Error(w, fmt.Sprintf("admin: unknown format %q", f), http.StatusBadRequest)
		return
	}
	snap, ok := h.selected(w, r)
	if !ok {
		return
	}
	if r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		stats.WriteJSON(w, snap)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	stats.WriteText(w, snap)
}

func (h *Handler) prometheus(w http.ResponseWriter, r *http.Request) {
	snap, ok := h.selected(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	stats.WritePrometheus(w, snap)
}

// textOrJSON reports whether r asks for JSON (format=json) rather than
// text (no format, or format=text). Any other format is answered 400 and
// reported as not ok.
func textOrJSON(w http.ResponseWriter, r *http.Request) (json, ok bool) {
	switch f := r.URL.Query().Get("format"); f {
	case "", "text":
		return false, true
	case "json":
		return true, true
	default:
		http.Error(w, fmt.Sprintf("admin: unknown format %q (text or json)", f), http.StatusBadRequest)
		return false, false
	}
}

func (h *Handler) clusters(w http.ResponseWriter, r *http.Request) {
	asJSON, ok := textOrJSON(w, r)
	if !ok {
		return
	}
	cs := h.s.Clusters()
	if asJSON {
		writeJSON(w, map[string]any{"clusters": cs})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, c := range cs {
		names := make([]string, 0, len(c.Stats))
		for n := range c.Stats {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "%s::%s::%d\n", c.Name, n, c.Stats[n])
		}
		for _, hst := range c.Hosts {
			health := "healthy"
			if !hst.Healthy {
				health = hst.HealthFlags
				if health == "" {
					health = "/failed_active_hc"
				}
			}
			fmt.Fprintf(w, "%s::%s::health_flags::%s\n", c.Name, hst.Address, health)
			fmt.Fprintf(w, "%s::%s::rq_total::%d\n", c.Name, hst.Address, hst.RqTotal)
			fmt.Fprintf(w, "%s::%s::rq_success::%d\n", c.Name, hst.Address, hst.RqSuccess)
			fmt.Fprintf(w, "%s::%s::rq_error::%d\n", c.Name, hst.Address, hst.RqError)
			fmt.Fprintf(w, "%s::%s::rq_active::%d\n", c.Name, hst.Address, hst.RqActive)
		}
	}
}

func (h *Handler) listeners(w http.ResponseWriter, r *http.Request) {
	asJSON, ok := textOrJSON(w, r)
	if !ok {
		return
	}
	ls := h.s.Listeners()
	if asJSON {
		writeJSON(w, map[string]any{"listeners": ls})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, l := range ls {
		fmt.Fprintf(w, "%s::%s\n", l.Name, l.Address)
	}
}

func (h *Handler) configDump(w http.ResponseWriter, _ *http.Request) {
	doc, err := h.s.ConfigDump()
	if err == nil {
		doc, err = RedactJSON(doc)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(doc, '\n'))
}

func (h *Handler) logging(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		q := r.URL.Query()
		names := make([]string, 0, len(q))
		for k := range q {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			name := k
			if k == "level" {
				name = ""
			}
			if err := h.s.SetLogLevel(name, q.Get(k)); err != nil {
				http.Error(w, "admin: logging: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	levels := h.s.Loggers()
	names := make([]string, 0, len(levels))
	for n := range levels {
		names = append(names, n)
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "active loggers:")
	for _, n := range names {
		fmt.Fprintf(w, "  %s: %s\n", n, levels[n])
	}
}

func ok(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "OK")
}

func (h *Handler) healthcheck(healthy bool) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		h.s.SetHealthy(healthy)
		ok(w)
	}
}

func (h *Handler) drain(w http.ResponseWriter, r *http.Request) {
	if err := h.s.DrainListeners(r.URL.Query().Has("graceful")); err != nil {
		http.Error(w, "admin: drain: "+err.Error(), http.StatusInternalServerError)
		return
	}
	ok(w)
}

func (h *Handler) resetCounters(w http.ResponseWriter, _ *http.Request) {
	h.s.ResetCounters()
	ok(w)
}

func (h *Handler) reopenLogs(w http.ResponseWriter, _ *http.Request) {
	if err := h.s.ReopenLogs(); err != nil {
		http.Error(w, "admin: reopen_logs: "+strings.ReplaceAll(err.Error(), "\n", "; "), http.StatusInternalServerError)
		return
	}
	ok(w)
}

func (h *Handler) quit(w http.ResponseWriter, _ *http.Request) {
	ok(w)
	if f, isFlusher := w.(http.Flusher); isFlusher {
		f.Flush()
	}
	h.s.Quit()
}
