// Package admin is sluice's admin API: an http.Handler over a Server (which
// the supervisor implements) and Serve, which runs it on its own listener
// and goroutines with timeouts, apart from the data plane, so the admin API
// keeps answering while workers are saturated or crash-looping.
//
// Endpoints (GET unless marked POST; a mutating endpoint answers any other
// method with 405 and "Allow: POST"):
//
//	/                     this list
//	/ready                200 "LIVE" when serving, 503 and the state otherwise
//	/server_info          JSON: version, state, uptime, hot restart generation, workers
//	/stats                text; format=json|prometheus, filter=<RE2>, usedonly
//	/stats/prometheus     Prometheus text format; filter=, usedonly
//	/clusters             hosts and their health; format=json
//	/listeners            listener names and addresses; format=json
//	/config_dump          the running config as JSON, secrets redacted
//	/logging              GET: logger levels; POST ?level=L or ?<logger>=L
//	/healthcheck/fail     POST: fail health checks (/ready answers 503)
//	/healthcheck/ok       POST: pass health checks again
//	/drain_listeners      POST: stop accepting; ?graceful drains first
//	/reset_counters       POST: counters and histograms read 0 from now on
//	/reopen_logs          POST: reopen access log files (logrotate)
//	/quitquitquit         POST: shut down
package admin
