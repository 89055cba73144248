#!/usr/bin/env bash
# End-to-end benchmark: sluice against nginx and HAProxy, each proxying
# HTTP/1.1 with an upstream keep-alive pool to the same origin, one worker
# pinned to CPU 0, load generator and origin pinned to CPU 1.
#
# Environment:
#   BENCH_DURATION    measured wrk run per proxy, seconds (default 10)
#   BENCH_WARMUP      warm-up wrk run per proxy, seconds (default 2)
#   BENCH_CONNS       wrk connections (default 50)
#   BENCH_IDLE_CONNS  idle keep-alive connections for the memory test
#                     (default 10000; 0 skips the test)
#   BENCH_IDLE_SETTLE seconds the idle connections sit before RSS is read (default 3)
#   BENCH_IDLE_TLS_CONNS idle keep-alive connections of the memory test over
#                     TLS, run twice (HTTP/1.1 and HTTP/2) in the TLS part by
#                     sluice and nginx (default 2000; 0 skips it)
#   BENCH_PROXIES     proxies to run, in order (default "sluice nginx haproxy")
#   BENCH_TLS         if 0, skips the TLS part (default 1): HTTP/2 over TLS
#                     (h2load -c20 -m10), HTTP/3 for sluice only (h3load -c20
#                     -m10, tools/bench/cmd/h3load on quic-go; Debian's nginx
#                     has no HTTP/3) and full TLS handshakes per second
#                     (openssl s_time -new: a new connection and handshake
#                     per request, no session resumption), sluice and nginx,
#                     and the idle-connection memory test over TLS
#   BENCH_H2_ONLY     if 1, runs only the HTTP/2 over TLS measurement of each
#                     proxy (no wrk run, idle test, HTTP/3 or handshakes):
#                     BENCH_PROXIES="sluice nginx" BENCH_H2_ONLY=1 for a
#                     quick sluice/nginx HTTP/2 comparison
#   BENCH_UPSTREAM_IDLE idle upstream connections sluice and nginx keep
#                     (default 256, above h2load's 200 streams in flight)
#   BENCH_PORT_BASE   origin port; the proxies use the next three, and the
#                     TLS listeners of sluice and nginx the two after (default 18080)
#   BENCH_OUT         if set, the results are also written to this file
#   BENCH_KEEP        if set to 1, keep the work directory (configs, logs)
#
# Runs as root on Debian: installs nginx, haproxy, wrk, h2load
# (nghttp2-client) and openssl if missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-10}
DURATION=${DURATION%s}
WARMUP=${BENCH_WARMUP:-2}
WARMUP=${WARMUP%s}
CONNS=${BENCH_CONNS:-50}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
IDLE_SETTLE=${BENCH_IDLE_SETTLE:-3}
IDLE_TLS_CONNS=${BENCH_IDLE_TLS_CONNS:-2000}
# UPSTREAM_IDLE is the idle upstream connections a proxy keeps (sluice's
# max_idle_connections, nginx's keepalive; HAProxy keeps every one): more than
# the 200 streams h2load keeps in flight, so neither proxy dials and closes
# upstream connections under a steady load.
UPSTREAM_IDLE=${BENCH_UPSTREAM_IDLE:-256}
PROXIES=${BENCH_PROXIES:-sluice nginx haproxy}
PORT_BASE=${BENCH_PORT_BASE:-18080}
ORIGIN_PORT=$PORT_BASE
declare -A PORT=([sluice]=$((PORT_BASE + 1)) [nginx]=$((PORT_BASE + 2)) [haproxy]=$((PORT_BASE + 3)))
declare -A TLS_PORT=([sluice]=$((PORT_BASE + 4)) [nginx]=$((PORT_BASE + 5)))
TLS=${BENCH_TLS:-1}
H2_ONLY=${BENCH_H2_ONLY:-0}
[[ $H2_ONLY != 1 ]] || TLS=1
H2_CONNS=20
H2_STREAMS=10
PROXY_CPU=0
LOAD_CPU=1

# ORIGIN_BODY is the origin's fixed 64-byte answer.
ORIGIN_BODY="sluice-bench-origin-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEF"
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
STARTED=()  # pids of every server started, each the leader of its own process group
IDLE_PID=
NOFILE=
MAX_IDLE=  # the most idle connections a proxy holds at once (raise_fd_limit)

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
	local rc=$?
	set +e
	if [[ -n $IDLE_PID ]]; then
		kill "$IDLE_PID" 2>/dev/null
		wait "$IDLE_PID" 2>/dev/null
	fi
	local pid
	for pid in "${STARTED[@]}"; do
		stop "$pid"
	done
	if [[ ${BENCH_KEEP:-0} == 1 || $rc != 0 ]]; then
		log "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# ---------------------------------------------------------------- setup

install_tools() {
	local missing=()
	command -v nginx >/dev/null || missing+=(nginx-light)
	command -v haproxy >/dev/null || missing+=(haproxy)
	command -v wrk >/dev/null || missing+=(wrk)
	command -v taskset >/dev/null || missing+=(util-linux)
	command -v curl >/dev/null || missing+=(curl)
	command -v h2load >/dev/null || missing+=(nghttp2-client)
	command -v openssl >/dev/null || missing+=(openssl)
	command -v pgrep >/dev/null || missing+=(procps)
	((${#missing[@]} == 0)) && return
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# Debian packages start their service on install where they can; keep
	# them from doing so, so that only the instances started here run.
	local policy=
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
	fi
	apt-get install -y -qq "${missing[@]}" >/dev/null || {
		[[ -n $policy ]] && rm -f "$policy"
		die "apt-get install ${missing[*]} failed"
	}
	[[ -n $policy ]] && rm -f "$policy"
	return 0
}

# build_sluice: builds bin/sluice if it is missing.
build_sluice() {
	[[ -x bin/sluice ]] && return 0
	log "building bin/sluice"
	if [[ -f Makefile ]]; then
		make build
	else
		go build -o bin/sluice .
	fi
}

# raise_fd_limit: raises the open-file limit to fit MAX_IDLE, the larger of
# IDLE_CONNS and (with the TLS part) IDLE_TLS_CONNS, lowering those that do
# not fit.
raise_fd_limit() {
	MAX_IDLE=$IDLE_CONNS
	if [[ $TLS == 1 ]] && ((IDLE_TLS_CONNS > MAX_IDLE)); then
		MAX_IDLE=$IDLE_TLS_CONNS
	fi
	local want=$((MAX_IDLE * 2 + 4096)) hard
	hard=$(ulimit -Hn)
	if [[ $hard != unlimited ]] && ((hard < want)); then
		ulimit -Hn "$want" 2>/dev/null || true
		hard=$(ulimit -Hn)
	fi
	ulimit -n "$hard"
	NOFILE=$(ulimit -n)
	if [[ $hard != unlimited ]] && ((hard < MAX_IDLE + 1024)); then
		local n=$((hard - 1024))
		if ((IDLE_CONNS > n)); then
			log "open-file limit is $hard: idle connections lowered from $IDLE_CONNS to $n"
			IDLE_CONNS=$n
		fi
		if ((IDLE_TLS_CONNS > n)); then
			log "open-file limit is $hard: idle TLS connections lowered from $IDLE_TLS_CONNS to $n"
			IDLE_TLS_CONNS=$n
		fi
		((MAX_IDLE <= n)) || MAX_IDLE=$n
	fi
}

# ---------------------------------------------------------------- processes

# start NAME CPU CMD...: starts CMD pinned to CPU in a new process group,
# output to $WORK/NAME.log, and records its pid in PID_<NAME>.
start() {
	local name=$1 cpu=$2
	shift 2
	taskset -c "$cpu" setsid "$@" >"$WORK/$name.log" 2>&1 </dev/null &
	local pid=$!
	STARTED+=("$pid")
	printf -v "PID_$name" '%s' "$pid"
}

# stop PID: ends the process group PID (SIGTERM, then SIGKILL after 10 s)
# and waits for its leader.
stop() {
	local i
	kill -TERM -- "-$1" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$1" 2>/dev/null || true # a leader past 10 s, or members that outlived it
	wait "$1" 2>/dev/null || true
	local kept=() p
	for p in "${STARTED[@]}"; do [[ $p == "$1" ]] || kept+=("$p"); done
	STARTED=("${kept[@]}")
}

# tree PID: prints PID and all its descendants.
tree() {
	local p
	echo "$1"
	for p in $(pgrep -P "$1"); do
		tree "$p"
	done
}

# cpu_ticks PID: utime+stime (clock ticks) summed over PID's process tree.
cpu_ticks() {
	local total=0 p stat
	for p in $(tree "$1"); do
		stat=$(cat /proc/"$p"/stat 2>/dev/null) || continue
		stat=${stat##*) }             # drop "pid (comm) ": fields from 3 on
		read -r -a f <<<"$stat"
		total=$((total + f[11] + f[12])) # fields 14 (utime) and 15 (stime)
	done
	echo "$total"
}

# cpu_busy CPU: busy clock ticks of CPU since boot (all but idle and iowait).
cpu_busy() {
	awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# origin_accepts: connections the origin has accepted so far (not counting
# the one this query opens).
origin_accepts() {
	curl -s --max-time 2 "http://127.0.0.1:$ORIGIN_PORT/origin-status" | awk 'NR == 3 { print $1 - 1 }'
}

# rss_kib PID: resident set size of PID in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' /proc/"$1"/status; }

# pin_tree PID CPU: pins every thread of PID's process tree to CPU, in case a
# process reset its own affinity.
pin_tree() {
	local p
	for p in $(tree "$1"); do
		taskset -a -c -p "$2" "$p" >/dev/null 2>&1 || true
	done
}

# wait_http URL TENTHS [PID]: waits until URL answers 200 with the origin's
# body; gives up early if process PID ends.
wait_http() {
	local i body
	for ((i = 0; i < $2; i++)); do
		[[ -z ${3:-} ]] || kill -0 "$3" 2>/dev/null || return 1
		body=$(curl -s --max-time 1 "$1" 2>/dev/null) && [[ $body == "$ORIGIN_BODY" ]] && return 0
		sleep 0.1
	done
	return 1
}

# ---------------------------------------------------------------- configs

origin_conf() {
	mkdir -p "$WORK/origin"
	cat >"$WORK/origin.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 8192;
error_log $WORK/origin-error.log warn;
pid $WORK/origin.pid;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    default_type text/plain;
    server {
        listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
        location / { return 200 "$ORIGIN_BODY"; }
        location = /origin-status { stub_status; }
    }
}
EOF
}

sluice_conf() {
	cat >"$WORK/sluice.toml" <<EOF
[server]
workers = 1
gomaxprocs = 1
drain_timeout = "1s"
control_socket = "$WORK/sluice-control.sock"

[log]
level = "info"

[[listener]]
name = "bench"
address = "127.0.0.1:${PORT[sluice]}"
backlog = 4096

  [[listener.filter_chain]]
  name = "default"

    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "bench"
    route_config = "bench"
    generate_request_id = false

      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"

$(sluice_tls_listener)

[[route_config]]
name = "bench"

  [[route_config.virtual_host]]
  name = "bench"
  domains = ["*"]

    [[route_config.virtual_host.route]]
    name = "all"
    match = { prefix = "/" }
    cluster = "origin"

[[cluster]]
name = "origin"
endpoints = ["127.0.0.1:$ORIGIN_PORT"]
max_idle_connections = $UPSTREAM_IDLE
idle_timeout = "300s"
EOF
}

# sluice_tls_listener: the TLS listener (ALPN h2, http/1.1) of the TLS part.
# tls_chain STAT_PREFIX PROTOCOL_OPTIONS: the TLS filter chain with the
# connection manager that both TLS listeners (TCP and UDP) use.
tls_chain() {
	cat <<EOF
  [[listener.filter_chain]]
  name = "tls"
  [listener.filter_chain.tls]
  [[listener.filter_chain.tls.certificate]]
  cert_file = "$WORK/certs/server.pem"
  key_file = "$WORK/certs/server-key.pem"

    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "$1"
    route_config = "bench"
    generate_request_id = false
    $2

      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"
EOF
}

sluice_tls_listener() {
	[[ $TLS == 1 ]] || return 0
	cat <<EOF
[[listener]]
name = "bench-tls"
address = "127.0.0.1:${TLS_PORT[sluice]}"
backlog = 4096

$(tls_chain bench_tls "http2_protocol_options = { max_concurrent_streams = 100 }")

[[listener]]
name = "bench-h3"
address = "127.0.0.1:${TLS_PORT[sluice]}"
protocol = "udp"

$(tls_chain bench_h3 "http3_protocol_options = { max_concurrent_streams = 100 }")
EOF
}

# nginx_tls_server: the TLS server block (ALPN h2, http/1.1) of the TLS part.
nginx_tls_server() {
	[[ $TLS == 1 ]] || return 0
	cat <<EOF
    server {
        listen 127.0.0.1:${TLS_PORT[nginx]} ssl http2 backlog=4096;
        ssl_certificate $WORK/certs/server.pem;
        ssl_certificate_key $WORK/certs/server-key.pem;
        ssl_session_cache off;
        ssl_session_tickets off;
        http2_max_concurrent_streams 100;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
EOF
}

nginx_conf() {
	local NGINX_NOFILE=$NOFILE
	[[ $NOFILE != unlimited ]] || NGINX_NOFILE=$((MAX_IDLE * 2 + 4096))
	mkdir -p "$WORK/nginx"
	cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $NGINX_NOFILE;
error_log $WORK/nginx-error.log warn;
pid $WORK/nginx.pid;
events { worker_connections $(((MAX_IDLE * 2 + 1024) < NGINX_NOFILE ? MAX_IDLE * 2 + 1024 : NGINX_NOFILE - 64)); }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive $UPSTREAM_IDLE;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]} backlog=4096;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
$(nginx_tls_server)
}
EOF
}

haproxy_conf() {
	# HAProxy reserves two descriptors per connection (client and server
	# side) and refuses to start if the open-file limit cannot cover them.
	HAPROXY_MAXCONN=$((IDLE_CONNS + 1024))
	if [[ $NOFILE != unlimited ]] && ((HAPROXY_MAXCONN * 2 + 256 > NOFILE)); then
		HAPROXY_MAXCONN=$(((NOFILE - 256) / 2))
	fi
	cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $HAPROXY_MAXCONN
    pidfile $WORK/haproxy.pid

defaults
    mode http
    option http-keep-alive
    option forwardfor
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s

frontend bench
    bind 127.0.0.1:${PORT[haproxy]} backlog 4096
    default_backend origin

backend origin
    server origin 127.0.0.1:$ORIGIN_PORT
EOF
}

# start_proxy NAME: starts proxy NAME on CPU 0 and waits until it proxies.
# Sets PROXY_PID (the root of its process tree) and DATA_PID (the process
# that serves connections).
start_proxy() {
	local name=$1 pidvar
	case $name in
	sluice)
		sluice_conf
		start sluice "$PROXY_CPU" bin/sluice run -c "$WORK/sluice.toml"
		;;
	nginx)
		nginx_conf
		start nginx "$PROXY_CPU" nginx -p "$WORK/nginx/" -e "$WORK/nginx-error.log" \
			-c "$WORK/nginx.conf" -g 'daemon off;'
		;;
	haproxy)
		haproxy_conf
		start haproxy "$PROXY_CPU" haproxy -db -f "$WORK/haproxy.cfg"
		;;
	*) die "unknown proxy $name" ;;
	esac
	pidvar=PID_$name
	PROXY_PID=${!pidvar}
	if ! wait_http "http://127.0.0.1:${PORT[$name]}/" 300 "$PROXY_PID"; then
		tail -n 20 "$WORK/$name.log" >&2 || true
		return 1
	fi
	if [[ $name == sluice ]] && ! grep -q '"msg":"listening"' "$WORK/sluice.log"; then
		log "sluice: no \"listening\" line in its log"
	fi
	pin_tree "$PROXY_PID" "$PROXY_CPU"
	# The data-plane process: nginx's and sluice's single worker child, or
	# HAProxy itself.
	DATA_PID=$PROXY_PID
	if [[ $name != haproxy ]]; then
		local child
		for child in $(tree "$PROXY_PID"); do
			[[ $child == "$PROXY_PID" ]] && continue
			if [[ $name == nginx ]] || tr '\0' ' ' </proc/"$child"/cmdline | grep -q ' worker'; then
				DATA_PID=$child
				break
			fi
		done
	fi
}

# ---------------------------------------------------------------- measuring

# to_ms VALUE: converts a wrk duration (e.g. 812.00us, 1.23ms, 1.02s) to ms.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
		printf "%.3f", n
	}'
}

run_wrk() {
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$1"s --latency "http://127.0.0.1:$2/"
}

# measure NAME: warm-up, measured run and idle-connection test for proxy NAME.
# Appends a line to RESULTS: name rps p99_ms cpu_us_per_req requests errors
# rss_kib idle_kib_per_conn upstream_new_conns idle_conns other_cpu_pct.
measure() {
	local name=$1 out a0 a1 t0 t1 b0 b1 w0 w1 other upstream requests rps p99 errors cpu_us rss idle=- idle_n=0
	log "$name: warm-up ${WARMUP}s"
	run_wrk "$WARMUP" "${PORT[$name]}" >"$WORK/$name-warmup.txt"
	log "$name: measuring ${DURATION}s"
	a0=$(origin_accepts)
	t0=$(cpu_ticks "$PROXY_PID")
	b0=$(cpu_busy "$PROXY_CPU")
	w0=$EPOCHREALTIME
	run_wrk "$DURATION" "${PORT[$name]}" >"$WORK/$name-wrk.txt"
	t1=$(cpu_ticks "$PROXY_PID")
	b1=$(cpu_busy "$PROXY_CPU")
	w1=$EPOCHREALTIME
	# Share of the proxy's CPU taken by anything else during the run: a
	# measure of how noisy the machine was.
	other=$(awk -v b=$((b1 - b0 - (t1 - t0))) -v hz="$CLK_TCK" -v d="$w0" -v e="$w1" 'BEGIN { p = 100 * b / hz / (e - d); if (p < 0) p = 0; if (p > 100) p = 100; printf "%.0f", p }')
	if ((other > 10)); then
		log "$name: other processes took ${other}% of CPU $PROXY_CPU during the run: its numbers are unreliable"
	fi
	a1=$(origin_accepts)
	upstream=$((a1 - a0 - 1)) # less the first query's own connection
	out=$(<"$WORK/$name-wrk.txt")
	requests=$(awk '/requests in/ { print $1 }' <<<"$out")
	rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
	p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
	errors=$(awk '/Non-2xx or 3xx/ { e += $NF } /Socket errors/ { gsub(",", ""); e += $4 + $6 + $8 + $10 } END { print e + 0 }' <<<"$out")
	[[ -n $requests && $requests -gt 0 ]] || die "$name: wrk served no request: $out"
	cpu_us=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')
	rss=$(rss_kib "$DATA_PID")
	if ((errors > 0)); then
		log "$name: $errors errors in the measured run (see $WORK/$name-wrk.txt)"
	fi
	if ((IDLE_CONNS > 0)); then
		if idle_test "$name" "${PORT[$name]}" "$IDLE_CONNS"; then
			idle=$IDLE_KIB
			idle_n=$IDLE_N
		else
			log "$name: idle-connection test failed"
		fi
	fi
	RESULTS+=("$name $rps $p99 $cpu_us $requests $errors $rss $idle $upstream $idle_n $other")
}

# measure_tls NAME: HTTP/2 over TLS with h2load (H2_CONNS connections,
# H2_STREAMS concurrent streams each) and full TLS handshakes with openssl
# s_time -new (one request per connection, no resumption), with the CPU time
# of proxy NAME's process tree per request and per handshake. Appends a line
# to TLS_RESULTS: name h2_rps h2_cpu_us h2_requests h2_errors hs_per_s
# hs_cpu_us handshakes h3_rps h3_cpu_us h3_requests h3_errors (HTTP/3 with
# h3load, the same connections and streams as h2load; "-" but for sluice),
# idle_tls idle_h2 idle_tls_conns (the idle-connection memory test over TLS,
# HTTP/1.1 and HTTP/2, with IDLE_TLS_CONNS connections).
measure_tls() {
	local name=$1 port=${TLS_PORT[$1]} out a0 a1 t0 t1 w0 w1 h2_rps h2_req h2_err h2_cpu hs hs_rate hs_cpu h3_rps h3_cpu h3_req h3_err idle_tls=- idle_h2=- idle_n=0
	log "$name: HTTP/2 over TLS warm-up ${WARMUP}s"
	taskset -c "$LOAD_CPU" h2load -c"$H2_CONNS" -m"$H2_STREAMS" -D"$WARMUP" "https://127.0.0.1:$port/" >"$WORK/$name-h2-warmup.txt" 2>&1 || true
	log "$name: HTTP/2 over TLS measuring ${DURATION}s"
	a0=$(origin_accepts)
	t0=$(cpu_ticks "$PROXY_PID")
	taskset -c "$LOAD_CPU" h2load -c"$H2_CONNS" -m"$H2_STREAMS" -D"$DURATION" "https://127.0.0.1:$port/" >"$WORK/$name-h2.txt" 2>&1 || true
	t1=$(cpu_ticks "$PROXY_PID")
	a1=$(origin_accepts)
	log "$name: HTTP/2 upstream new connections: $((a1 - a0 - 1))"
	out=$(<"$WORK/$name-h2.txt")
	# "finished in 10.00s, 41234.50 req/s, ...",
	# "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
	# and "status codes: N 2xx, N 3xx, N 4xx, N 5xx": errors are errored,
	# timed-out, 4xx and 5xx requests.
	h2_rps=$(awk '/^finished in/ { printf "%.0f", $4 }' <<<"$out")
	h2_req=$(awk '/^requests:/ { print $6 }' <<<"$out")
	h2_err=$(awk '/^requests:/ { e += $12 + $14 } /^status codes:/ { e += $7 + $9 } END { print e + 0 }' <<<"$out")
	if [[ -z $h2_req || $h2_req -eq 0 ]]; then
		log "$name: h2load served no request (see $WORK/$name-h2.txt)"
		h2_req=0 h2_rps=0 h2_cpu=-
	else
		h2_cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$h2_req" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')
	fi
	h3_rps=- h3_cpu=- h3_req=- h3_err=-
	if [[ $H2_ONLY == 1 ]]; then
		TLS_RESULTS+=("$name $h2_rps $h2_cpu $h2_req ${h2_err:-0} - - 0 - - - - - - 0")
		return 0
	fi
	if [[ $name == sluice ]]; then
		log "$name: HTTP/3 warm-up ${WARMUP}s"
		taskset -c "$LOAD_CPU" "$WORK/h3load" -c "$H2_CONNS" -m "$H2_STREAMS" -warmup 0 -d "${WARMUP}s" -url "https://127.0.0.1:$port/" >"$WORK/$name-h3-warmup.txt" 2>&1 || true
		log "$name: HTTP/3 measuring ${DURATION}s"
		t0=$(cpu_ticks "$PROXY_PID")
		taskset -c "$LOAD_CPU" "$WORK/h3load" -c "$H2_CONNS" -m "$H2_STREAMS" -warmup 0 -d "${DURATION}s" -url "https://127.0.0.1:$port/" >"$WORK/$name-h3.txt" 2>&1 || true
		t1=$(cpu_ticks "$PROXY_PID")
		# "BENCH_H3 requests=N rps=R errors=E p50_ms=... p99_ms=..."
		read -r h3_req h3_rps h3_err < <(awk '/^BENCH_H3/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } print v["requests"], v["rps"], v["errors"] }' "$WORK/$name-h3.txt") || true
		if [[ -z ${h3_req:-} || $h3_req -eq 0 ]]; then
			log "$name: h3load served no request (see $WORK/$name-h3.txt)"
			h3_req=0 h3_rps=0 h3_err=- h3_cpu=-
		else
			h3_cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$h3_req" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')
		fi
	fi
	log "$name: full TLS handshakes ${DURATION}s"
	t0=$(cpu_ticks "$PROXY_PID")
	w0=$EPOCHREALTIME
	taskset -c "$LOAD_CPU" openssl s_time -connect "127.0.0.1:$port" -new -time "$DURATION" -www / >"$WORK/$name-handshakes.txt" 2>&1 </dev/null || true
	t1=$(cpu_ticks "$PROXY_PID")
	w1=$EPOCHREALTIME
	# "1234 connections in 10.01s; 123.29 connections/user sec, ..."
	hs=$(awk '/ connections in .*s;/ { print $1; exit }' "$WORK/$name-handshakes.txt")
	if [[ -z $hs || $hs -eq 0 ]]; then
		log "$name: no TLS handshake completed (see $WORK/$name-handshakes.txt)"
		hs=0 hs_rate=0 hs_cpu=-
	else
		hs_rate=$(awk -v n="$hs" -v d="$w0" -v e="$w1" 'BEGIN { printf "%.0f", n / (e - d) }')
		hs_cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$hs" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')
	fi
	# The idle-connection test over TLS, HTTP/1.1 then HTTP/2, each against a
	# freshly started proxy: else the connections reuse memory that the load
	# runs or the other test freed, and the growth understates their cost.
	local mode
	for mode in http/1.1 h2; do
		((IDLE_TLS_CONNS > 0)) || break
		stop "$PROXY_PID"
		if ! start_proxy "$name"; then
			log "$name: did not restart for the idle-connection test over TLS"
			break
		fi
		if ! idle_test "$name" "$port" "$IDLE_TLS_CONNS" "$mode"; then
			log "$name: idle-connection test over TLS ($mode) failed"
			continue
		fi
		idle_n=$IDLE_N
		if [[ $mode == h2 ]]; then idle_h2=$IDLE_KIB; else idle_tls=$IDLE_KIB; fi
	done
	TLS_RESULTS+=("$name $h2_rps $h2_cpu $h2_req ${h2_err:-0} $hs_rate $hs_cpu $hs $h3_rps $h3_cpu $h3_req $h3_err $idle_tls $idle_h2 $idle_n")
}

# idle_test NAME PORT N [TLS]: opens IDLE_N idle keep-alive connections to
# proxy NAME on PORT (N, or fewer where HAProxy's connection limit is lower),
# plaintext HTTP/1.1 or, with TLS "http/1.1" or "h2", that protocol over TLS
# (idleconns -tls), and sets IDLE_KIB to the growth of its data-plane
# process's RSS per connection, KiB. (coproc IDLE sets IDLE_PID, which
# cleanup also uses.)
idle_test() {
	local name=$1 port=$2 mode=${4:-} before after line what=keep-alive logf
	IDLE_N=$3
	if [[ $name == haproxy ]] && ((IDLE_N > HAPROXY_MAXCONN - 256)); then
		IDLE_N=$((HAPROXY_MAXCONN - 256))
	fi
	[[ -z $mode ]] || what="keep-alive TLS ($mode)"
	logf=$WORK/$name-idle${mode:+-${mode//\//}}.log
	before=$(rss_kib "$DATA_PID")
	log "$name: opening $IDLE_N idle $what connections"
	coproc IDLE { exec taskset -c "$LOAD_CPU" "$WORK/idleconns" -addr "127.0.0.1:$port" -n "$IDLE_N" -tls "$mode" 2>"$logf"; }
	if ! read -r -t 120 line <&"${IDLE[0]}" || [[ $line != "ready $IDLE_N" ]]; then
		cat "$logf" >&2
		kill "$IDLE_PID" 2>/dev/null || true
		wait "$IDLE_PID" 2>/dev/null || true
		IDLE_PID=
		return 1
	fi
	# Measure idle connections once they are idle: a proxy may hold a
	# connection's request buffers for a moment after its last response
	# (sluice parks it after 100 ms and returns a burst's memory once quiet).
	sleep "$IDLE_SETTLE"
	after=$(rss_kib "$DATA_PID")
	kill "$IDLE_PID"
	wait "$IDLE_PID" 2>/dev/null || true
	IDLE_PID=
	log "$name: RSS $before KiB -> $after KiB"
	IDLE_KIB=$(awk -v a="$after" -v b="$before" -v n="$IDLE_N" 'BEGIN { printf "%.2f", (a - b) / n }')
}

# ---------------------------------------------------------------- report

report() {
	local best=0 r name rps p99 cpu requests errors rss idle upstream idle_n other ratio
	if ((${#RESULTS[@]} == 0)); then
		report_tls
		for r in "${FAILED[@]}"; do
			printf 'BENCH proxy=%s status=failed\n' "$r"
		done
		return 0
	fi
	for r in "${RESULTS[@]}"; do
		read -r name rps p99 cpu requests errors rss idle upstream idle_n other <<<"$r"
		if [[ $name == nginx || $name == haproxy ]]; then
			best=$(awk -v b="$best" -v c="$cpu" 'BEGIN { print (b == 0 || c < b) ? c : b }')
		fi
	done
	printf '\nsluice end-to-end benchmark: %s s, %s connections, proxy on CPU %s, wrk and origin on CPU %s, %s\n' \
		"$DURATION" "$CONNS" "$PROXY_CPU" "$LOAD_CPU" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf '%-8s %10s %9s %12s %7s %7s %9s %14s %10s\n' proxy req/s p99_ms cpu_us/req ratio errors rss_KiB idle_KiB/conn cpu0_other%
	for r in "${RESULTS[@]}"; do
		read -r name rps p99 cpu requests errors rss idle upstream idle_n other <<<"$r"
		ratio=$(awk -v b="$best" -v c="$cpu" 'BEGIN { if (b > 0) printf "%.2f", c / b; else print "-" }')
		printf '%-8s %10s %9s %12s %7s %7s %9s %14s %10s\n' "$name" "$rps" "$p99" "$cpu" "$ratio" "$errors" "$rss" "$idle" "$other"
	done
	echo
	for r in "${RESULTS[@]}"; do
		read -r name rps p99 cpu requests errors rss idle upstream idle_n other <<<"$r"
		ratio=$(awk -v b="$best" -v c="$cpu" 'BEGIN { if (b > 0) printf "%.2f", c / b; else print "-" }')
		printf 'BENCH proxy=%s rps=%s p99_ms=%s cpu_us_per_req=%s ratio=%s requests=%s errors=%s rss_kib=%s idle_conns=%s idle_kib_per_conn=%s upstream_new_conns=%s cpu0_other_pct=%s duration_s=%s conns=%s\n' \
			"$name" "$rps" "$p99" "$cpu" "$ratio" "$requests" "$errors" "$rss" "$idle_n" "$idle" "$upstream" "$other" "$DURATION" "$CONNS"
	done
	report_tls
	for r in "${FAILED[@]}"; do
		printf 'BENCH proxy=%s status=failed\n' "$r"
	done
}

# report_tls: the TLS part, with each proxy's CPU per request and per
# handshake as a ratio of nginx's.
report_tls() {
	((${#TLS_RESULTS[@]} > 0)) || return 0
	local r name h2_rps h2_cpu h2_req h2_err hs_rate hs_cpu hs h3_rps h3_cpu h3_req h3_err idle_tls idle_h2 idle_n ng_h2=0 ng_hs=0 h2_ratio hs_ratio lines=()
	for r in "${TLS_RESULTS[@]}"; do
		read -r name h2_rps h2_cpu h2_req h2_err hs_rate hs_cpu hs h3_rps h3_cpu h3_req h3_err idle_tls idle_h2 idle_n <<<"$r"
		if [[ $name == nginx ]]; then
			ng_h2=$h2_cpu ng_hs=$hs_cpu
		fi
	done
	printf '\nTLS: HTTP/2 (h2load -c%s -m%s), HTTP/3 (h3load -c%s -m%s), full handshakes (openssl s_time -new, one request each), %s s; idle keep-alive memory over TLS, HTTP/1.1 and HTTP/2\n' "$H2_CONNS" "$H2_STREAMS" "$H2_CONNS" "$H2_STREAMS" "$DURATION"
	printf '%-8s %10s %12s %8s %7s %10s %12s %7s %8s %12s %8s %18s %17s\n' proxy h2_req/s cpu_us/req ratio errors h3_req/s cpu_us/req errors hs/s cpu_us/hs ratio idle_tls_KiB/conn idle_h2_KiB/conn
	for r in "${TLS_RESULTS[@]}"; do
		read -r name h2_rps h2_cpu h2_req h2_err hs_rate hs_cpu hs h3_rps h3_cpu h3_req h3_err idle_tls idle_h2 idle_n <<<"$r"
		h2_ratio=$(awk -v b="$ng_h2" -v c="$h2_cpu" 'BEGIN { if (b + 0 > 0 && c + 0 > 0) printf "%.2f", c / b; else print "-" }')
		hs_ratio=$(awk -v b="$ng_hs" -v c="$hs_cpu" 'BEGIN { if (b + 0 > 0 && c + 0 > 0) printf "%.2f", c / b; else print "-" }')
		printf '%-8s %10s %12s %8s %7s %10s %12s %7s %8s %12s %8s %18s %17s\n' "$name" "$h2_rps" "$h2_cpu" "$h2_ratio" "$h2_err" "$h3_rps" "$h3_cpu" "$h3_err" "$hs_rate" "$hs_cpu" "$hs_ratio" "$idle_tls" "$idle_h2"
		lines+=("$(printf 'BENCH_TLS proxy=%s h2_rps=%s h2_cpu_us_per_req=%s h2_ratio=%s h2_requests=%s h2_errors=%s h3_rps=%s h3_cpu_us_per_req=%s h3_requests=%s h3_errors=%s handshakes_per_s=%s cpu_us_per_handshake=%s handshake_ratio=%s handshakes=%s idle_tls_conns=%s idle_tls_kib_per_conn=%s idle_h2_kib_per_conn=%s h2_conns=%s h2_streams=%s duration_s=%s' \
			"$name" "$h2_rps" "$h2_cpu" "$h2_ratio" "$h2_req" "$h2_err" "$h3_rps" "$h3_cpu" "$h3_req" "$h3_err" "$hs_rate" "$hs_cpu" "$hs_ratio" "$hs" "$idle_n" "$idle_tls" "$idle_h2" "$H2_CONNS" "$H2_STREAMS" "$DURATION")")
	done
	echo
	printf '%s\n' "${lines[@]}"
}

# ---------------------------------------------------------------- main

main() {
	(($(nproc) >= 2)) || die "needs at least 2 CPUs for pinning"
	install_tools
	raise_fd_limit
	go build -o "$WORK/idleconns" ./tools/bench/cmd/idleconns
	go build -o "$WORK/h3load" ./tools/bench/cmd/h3load
	if [[ $TLS == 1 ]]; then
		go run ./tools/gencert -dir "$WORK/certs" >/dev/null
	fi

	origin_conf
	start origin "$LOAD_CPU" nginx -p "$WORK/origin/" -e "$WORK/origin-error.log" \
		-c "$WORK/origin.conf" -g 'daemon off;'
	wait_http "http://127.0.0.1:$ORIGIN_PORT/" 100 "$PID_origin" || die "origin did not start: $(cat "$WORK/origin.log")"

	RESULTS=()
	TLS_RESULTS=()
	FAILED=()
	local name
	for name in $PROXIES; do
		if [[ $name == sluice ]] && ! build_sluice; then
			log "sluice: build failed; skipped"
			FAILED+=("$name")
			continue
		fi
		log "$name: starting on 127.0.0.1:${PORT[$name]}"
		if ! start_proxy "$name"; then
			log "$name: does not proxy to the origin; skipped"
			FAILED+=("$name")
			stop "$PROXY_PID"
			continue
		fi
		[[ $H2_ONLY == 1 ]] || measure "$name"
		if [[ $TLS == 1 && -n ${TLS_PORT[$name]:-} ]]; then
			measure_tls "$name"
		fi
		stop "$PROXY_PID"
	done

	if [[ -n ${BENCH_OUT:-} ]]; then
		report | tee "$BENCH_OUT"
	else
		report
	fi
	((${#FAILED[@]} == 0)) || die "failed: ${FAILED[*]}"
}

main
