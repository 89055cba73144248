# Shared by the benchmark scripts (sourced, not run).

# bench_tools installs nginx-light and wrk when missing (Debian, as root)
# and brings bin/ up to date with the source (a run alone, outside
# `make bench`, must not measure a stale binary; the build is cached).
bench_tools() {
	local need=()
	command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
	command -v wrk >/dev/null 2>&1 || need+=(wrk)
	if ((${#need[@]})); then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	fi
	make build >/dev/null
}

# start_origin DIR PORT [CPU]: an nginx answering 64 bytes on 127.0.0.1:PORT,
# its config and pid file in DIR; stop_origin DIR stops it.
start_origin() {
	cat >"$1/origin.conf" <<EOF2
worker_processes 1;
daemon off;
pid $1/origin.pid;
error_log /dev/null;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$2;
    keepalive_requests 100000000;
    location / { return 200 "0123456789012345678901234567890123456789012345678901234567890123"; }
  }
}
EOF2
	if [[ -n ${3:-} ]]; then
		taskset -c "$3" nginx -c "$1/origin.conf" -p "$1" &
	else
		nginx -c "$1/origin.conf" -p "$1" &
	fi
}

stop_origin() { nginx -c "$1/origin.conf" -p "$1" -s stop 2>/dev/null || true; }

# hcm_listener NAME ADDRESS STAT_PREFIX [HTTP_FILTERS]: a sluice [[listener]]
# with one filter chain running the HTTP connection manager on route table
# "r": the HTTP filter tables given (TOML, indented as filter tables of the
# manager), then the router.
hcm_listener() {
	cat <<EOF2
[[listener]]
name = "$1"
address = "$2"
  [[listener.filter_chain]]
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "$3"
    route_config = "r"
    generate_request_id = false
${4:-}      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"
EOF2
}
