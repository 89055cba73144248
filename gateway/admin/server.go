package admin

import (
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Server is what the admin API shows and acts on; the supervisor implements
// it. Methods are called from the admin server's goroutines, concurrently
// with each other, and must not block for long: mutations start the work
// (a drain, a shutdown) and return.
type Server interface {
	// Snapshot returns the stats aggregated over every worker.
	Snapshot() stats.Snapshot
	// ServerInfo describes the process.
	ServerInfo() ServerInfo
	// Listeners lists the active listeners.
	Listeners() []Listener
	// Clusters lists the clusters and their hosts.
	Clusters() []Cluster
	// Certs describes the certificates of every TLS context of the running
	// config.
	Certs() []CertContext
	// ConfigDump returns the running config as JSON with secrets redacted.
	// The handler redacts it again with RedactJSON.
	ConfigDump() ([]byte, error)
	// Ready reports whether sluice is serving, and the state name
	// ("LIVE", "PRE_INITIALIZING", "INITIALIZING", "DRAINING").
	Ready() (bool, string)
	// SetHealthy fails (false) or passes (true) health checks.
	SetHealthy(healthy bool)
	// DrainListeners stops accepting on every listener; graceful first
	// drains for the drain timeout.
	DrainListeners(graceful bool) error
	// Loggers returns the level of each named logger.
	Loggers() map[string]string
	// SetLogLevel sets a logger's level; name "" means all loggers.
	SetLogLevel(name, level string) error
	// ResetCounters zeroes the counters as read from now on.
	ResetCounters()
	// ReopenLogs reopens every access log file, in every worker.
	ReopenLogs() error
	// Quit starts a shutdown and returns; it is called after the response
	// has been sent.
	Quit()
}

// ServerInfo is the /server_info document.
type ServerInfo struct {
	Version              string  `json:"version"`
	State                string  `json:"state"`
	UptimeSeconds        float64 `json:"uptime_current_epoch"`
	UptimeAllEpochs      float64 `json:"uptime_all_epochs"`
	HotRestartGeneration int     `json:"hot_restart_generation"`
	Workers              int     `json:"concurrency"`
	ConfigPath           string  `json:"config_path"`
	PID                  int     `json:"pid"`
}

// Listener is one /listeners entry.
type Listener struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Cluster is one /clusters entry.
type Cluster struct {
	Name  string `json:"name"`
	Hosts []Host `json:"hosts"`
	// Stats are the cluster's counters and gauges aggregated over every
	// worker, by name without the "cluster.<name>." prefix.
	Stats map[string]int64 `json:"stats,omitempty"`
}

// Host is one host of a cluster.
type Host struct {
	Address string `json:"address"`
	Healthy bool   `json:"healthy"`
	// HealthFlags are Envoy's: "/failed_active_hc", "/failed_outlier_check",
	// joined; empty when healthy.
	HealthFlags string `json:"health_flags,omitempty"`
	// RqTotal, RqSuccess and RqError count the requests sent to the host
	// and their outcomes (5xx or local-origin failure is an error), over
	// every worker and generation.
	RqTotal   uint64 `json:"rq_total"`
	RqSuccess uint64 `json:"rq_success"`
	RqError   uint64 `json:"rq_error"`
	// RqActive is the requests in flight to the host across workers (a
	// dead worker's are given back when it is reaped).
	RqActive int64 `json:"rq_active"`
}

// CertContext is one /certs entry: the certificates of a TLS context, in
// the shape of Envoy's Certificates message (with the context's name).
type CertContext struct {
	Name      string        `json:"name"`
	CACert    []CertDetails `json:"ca_cert"`
	CertChain []CertDetails `json:"cert_chain"`
}

// CertDetails is Envoy's CertificateDetails: days_until_expiration is a
// string (an int64 in proto3 JSON) and the times are RFC 3339, so that
// Envoy's tooling reads it unchanged. Error replaces the rest for a file
// that cannot be read now.
type CertDetails struct {
	Path                string           `json:"path"`
	SerialNumber        string           `json:"serial_number,omitempty"`
	SubjectAltNames     []SubjectAltName `json:"subject_alt_names,omitempty"`
	DaysUntilExpiration string           `json:"days_until_expiration,omitempty"`
	ValidFrom           string           `json:"valid_from,omitempty"`
	ExpirationTime      string           `json:"expiration_time,omitempty"`
	Error               string           `json:"error,omitempty"`
}

// SubjectAltName is one subject alternative name; one field is set.
type SubjectAltName struct {
	DNS       string `json:"dns,omitempty"`
	URI       string `json:"uri,omitempty"`
	IPAddress string `json:"ip_address,omitempty"`
}
