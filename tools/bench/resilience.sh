#!/usr/bin/env bash
# Upstream resilience benchmark: shows that what sluice shares across worker
# processes does not scale with their number, and what a retry costs end to
# end. Origins are tools/bench/cmd/countorigin (built here), which count
# requests by path, connections, and /slow requests in flight.
#
# One run:
#   1. sluice with RES_WORKERS_A (1), then RES_WORKERS_B (4) workers, same config:
#      - health checks: a cluster with an HTTP health check every
#        RES_HC_INTERVAL_MS to the origin's /health; the origin's count of
#        /health over RES_HC_WINDOW seconds (checks run once, in the supervisor:
#        the two counts should be equal, ratio ≈ 1.0);
#      - rate limit: a listener with sluice.filters.http.local_ratelimit, a
#        bucket of RES_TOKENS tokens refilled once an hour; wrk -c RES_CONNS
#        (connections spread over the workers by SO_REUSEPORT) for
#        RES_LIMIT_DURATION s; requests admitted (200) and limited (429)
#        (the bucket is global: admitted = RES_TOKENS both times);
#      - circuit breaker: a cluster with max_requests = RES_MAX_REQUESTS to the
#        origin's /slow (held RES_SLOW_MS); the same wrk; the most requests the
#        origin held at once (= RES_MAX_REQUESTS both times) and the 503s;
#   2. sluice with 1 worker (gomaxprocs 1) on CPU 0, wrk and origins on CPU 1:
#      a cluster of two origins, one answering 503 to everything, round robin;
#      a route without retries and one with retry_on = ["5xx"], num_retries = 1,
#      retry_host_predicate = previous_hosts, backoff RES_RETRY_BACKOFF; wrk -c50
#      for RES_DURATION s on each, RES_ROUNDS times alternately; CPU µs per
#      request (utime+stime of the supervisor and worker from /proc/<pid>/stat
#      over the run, divided by wrk's requests) both ways, their difference and
#      the difference per retry.
#
# Environment: RES_HC_INTERVAL_MS (100), RES_HC_WINDOW (5), RES_TOKENS (1000),
# RES_LIMIT_DURATION (3), RES_CONNS (64), RES_MAX_REQUESTS (8), RES_SLOW_MS (200),
# RES_WORKERS_A (1), RES_WORKERS_B (4), RES_DURATION (8), RES_ROUNDS (2),
# RES_RETRY_BACKOFF ("1ms"; "0s" is sluice's default of 25ms), RES_PORT_BASE
# (18220: origin, 503 origin, proxy, limited proxy, admin), RES_KEEP (1 keeps the
# work directory). Runs as root on Debian (installs nginx-light and wrk if
# missing); uses bin/sluice (make build) and go.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HC_MS=${RES_HC_INTERVAL_MS:-100}
HC_WINDOW=${RES_HC_WINDOW:-5}
TOKENS=${RES_TOKENS:-1000}
LIMIT_DURATION=${RES_LIMIT_DURATION:-3}
CONNS=${RES_CONNS:-64}
MAX_REQUESTS=${RES_MAX_REQUESTS:-8}
SLOW_MS=${RES_SLOW_MS:-200}
WORKERS_A=${RES_WORKERS_A:-1}
WORKERS_B=${RES_WORKERS_B:-4}
DURATION=${RES_DURATION:-8}
ROUNDS=${RES_ROUNDS:-2}
BACKOFF=${RES_RETRY_BACKOFF:-1ms}
BASE=${RES_PORT_BASE:-18220}
ORIGIN=$BASE
FAILING=$((BASE + 1))
PROXY=$((BASE + 2))
LIMITED=$((BASE + 3))
ADMIN=$((BASE + 4))
HZ=$(getconf CLK_TCK)

log() { echo "resilience-bench: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
bench_tools
for c in wrk curl taskset pgrep go; do
	command -v "$c" >/dev/null 2>&1 || die "$c is missing"
done
((HC_MS > 0 && HC_WINDOW > 0 && TOKENS > 0 && MAX_REQUESTS > 0 && CONNS > 0 && DURATION > 0 && ROUNDS > 0)) ||
	die "every RES_* count and duration must be positive"

WORK=$(mktemp -d /tmp/sluice-resilience.XXXXXX)
STARTED=() # process group leaders
cleanup() {
	local rc=$? p
	set +e
	for p in "${STARTED[@]}"; do stop "$p"; done
	if [[ ${RES_KEEP:-0} == 1 || $rc != 0 ]]; then
		log "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start CPU NAME CMD...: CMD pinned to CPU in its own process group, output
# in $WORK/NAME.log; its pid in $LAST.
start() {
	local cpu=$1 name=$2
	shift 2
	taskset -c "$cpu" setsid "$@" >"$WORK/$name.log" 2>&1 </dev/null &
	LAST=$!
	STARTED+=("$LAST")
}

# stop PID: ends process group PID (TERM, KILL after 5 s) and waits for it.
stop() {
	local i p kept=()
	kill -TERM -- "-$1" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	for p in "${STARTED[@]}"; do [[ $p == "$1" ]] || kept+=("$p"); done
	STARTED=("${kept[@]}")
}

# origin_stat PORT KEY [PATH]: a counter of the countorigin on PORT.
origin_stat() {
	local out
	out=$(curl -sf --max-time 2 "http://127.0.0.1:$1/_stats") || die "origin on port $1 does not answer /_stats"
	if [[ $2 == path ]]; then
		awk -v p="$3" '$1 == "path" && $2 == p {n = $3} END {print n + 0}' <<<"$out"
	else
		awk -v k="$2" '$1 == k {n = $2} END {print n + 0}' <<<"$out"
	fi
}

# sluice_stat NAME: the counter NAME from the admin API ("absent" if it
# has none of that name).
sluice_stat() {
	local out
	out=$(curl -sf --max-time 2 "http://127.0.0.1:$ADMIN/stats") || die "the admin API does not answer /stats"
	awk -v k="$1" '{sub(/:$/, "", $1)} $1 == k {n = $2} END {print (n == "" ? "absent" : n)}' <<<"$out"
}

# ticks PID...: utime+stime of the processes, clock ticks.
ticks() {
	local t=0 p s f
	for p in "$@"; do
		s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		s=${s##*) }
		read -r -a f <<<"$s"
		t=$((t + f[11] + f[12]))
	done
	echo "$t"
}

# wrk_run CPU SECONDS URL: wrk output; total and non-2xx in $REQ and $NON2XX.
wrk_run() {
	WRK_OUT=$(taskset -c "$1" wrk -t1 -c"$CONNS" -d"$2s" "$3") || die "wrk $3 failed"
	REQ=$(awk '/requests in/ {print $1}' <<<"$WRK_OUT")
	NON2XX=$(awk '/Non-2xx/ {print $NF}' <<<"$WRK_OUT")
	NON2XX=${NON2XX:-0}
	[[ -n $REQ ]] || die "no request count in wrk's output: $WRK_OUT"
}

# ---------------------------------------------------------------- origins

go build -o "$WORK/countorigin" ./tools/bench/cmd/countorigin || die "building countorigin failed"
start 1 origin "$WORK/countorigin" -listen "127.0.0.1:$ORIGIN" -slow "${SLOW_MS}ms"
start 1 failing "$WORK/countorigin" -listen "127.0.0.1:$FAILING" -status 503
for port in "$ORIGIN" "$FAILING"; do
	for ((i = 0; i < 100; i++)); do
		curl -sf --max-time 1 "http://127.0.0.1:$port/_stats" >/dev/null 2>&1 && break
		sleep 0.05
	done
	((i < 100)) || die "origin on port $port did not start (logs in $WORK)"
done

# ---------------------------------------------------------------- config

# config WORKERS: the sluice config.
config() {
	cat <<EOF
[server]
workers = $1
$([[ $1 == 1 ]] && echo 'gomaxprocs = 1')
drain_timeout = "1s"
control_socket = "$WORK/control.sock"
[admin]
address = "127.0.0.1:$ADMIN"
[log]
level = "warn"
$(hcm_listener http "127.0.0.1:$PROXY" bench)
$(hcm_listener limited "127.0.0.1:$LIMITED" limited '      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.local_ratelimit"
      [listener.filter_chain.filter.config.http_filter.config]
      stat_prefix = "bench"
      token_bucket = { max_tokens = '"$TOKENS"', tokens_per_fill = 1, fill_interval = "1h" }
')
[[route_config]]
name = "r"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
    [[route_config.virtual_host.route]]
    match = { prefix = "/slow" }
    cluster = "slow"
    [[route_config.virtual_host.route]]
    match = { prefix = "/noretry" }
    cluster = "flaky"
    [[route_config.virtual_host.route]]
    match = { prefix = "/retry" }
    cluster = "flaky"
    retry_policy = { retry_on = ["5xx"], num_retries = 1, retry_host_predicate = ["previous_hosts"], retry_back_off = { base_interval = "$BACKOFF", max_interval = "$BACKOFF" } }
    [[route_config.virtual_host.route]]
    match = { prefix = "/" }
    cluster = "origin"
[[cluster]]
name = "origin"
endpoints = ["127.0.0.1:$ORIGIN"]
max_idle_connections = 128
[[cluster]]
name = "checked"
endpoints = ["127.0.0.1:$ORIGIN"]
  [[cluster.health_check]]
  type = "http"
  interval = "${HC_MS}ms"
  no_traffic_interval = "${HC_MS}ms"
  timeout = "1s"
  unhealthy_threshold = 1
  healthy_threshold = 1
  http = { path = "/health" }
[[cluster]]
name = "slow"
endpoints = ["127.0.0.1:$ORIGIN"]
max_idle_connections = 128
  [cluster.circuit_breakers]
  max_requests = $MAX_REQUESTS
  max_pending_requests = 100000
  max_connections = 100000
[[cluster]]
name = "flaky"
endpoints = ["127.0.0.1:$ORIGIN", "127.0.0.1:$FAILING"]
max_idle_connections = 128
  [cluster.circuit_breakers]
  max_retries = 100000
EOF
}

SUP=
# sluice_start WORKERS CPUS: starts sluice and waits until the admin API
# says LIVE, WORKERS workers run and the proxy answers.
sluice_start() {
	config "$1" >"$WORK/sluice.toml"
	bin/sluice validate -c "$WORK/sluice.toml" >"$WORK/check.log" 2>&1 ||
		die "sluice rejects the config: $(cat "$WORK/check.log")"
	start "$2" "sluice-$1" bin/sluice run -c "$WORK/sluice.toml"
	SUP=$LAST
	local i n
	for ((i = 0; i < 200; i++)); do
		kill -0 "$SUP" 2>/dev/null || die "sluice exited: $(tail -5 "$WORK/sluice-$1.log")"
		n=$({ pgrep -P "$SUP" || true; } | wc -l)
		if [[ $(curl -s --max-time 1 "http://127.0.0.1:$ADMIN/ready" 2>/dev/null) == LIVE* ]] && ((n == $1)) &&
			curl -sf --max-time 1 "http://127.0.0.1:$PROXY/" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.05
	done
	die "sluice with $1 workers not ready after 10 s (log: $WORK/sluice-$1.log)"
}

sluice_stop() {
	stop "$SUP"
	SUP=
}

# ---------------------------------------------------------------- part 1

declare -A HC ADMITTED LIMITED429 SPREAD INFLIGHT BREAKER503 BREAKER200
for w in "$WORKERS_A" "$WORKERS_B"; do
	sluice_start "$w" 0-1
	workers=$(pgrep -P "$SUP" | tr '\n' ' ')

	log "$w worker(s): counting health checks for ${HC_WINDOW}s"
	h0=$(origin_stat "$ORIGIN" path /health)
	sleep "$HC_WINDOW"
	h1=$(origin_stat "$ORIGIN" path /health)
	HC[$w]=$((h1 - h0))

	log "$w worker(s): rate limit, wrk -c$CONNS ${LIMIT_DURATION}s"
	a0=$(origin_stat "$ORIGIN" path /limited)
	declare -A wt0=()
	for p in $workers; do wt0[$p]=$(ticks "$p"); done
	wrk_run 1 "$LIMIT_DURATION" "http://127.0.0.1:$LIMITED/limited"
	busy=0
	for p in $workers; do (($(ticks "$p") > wt0[$p])) && busy=$((busy + 1)); done
	SPREAD[$w]="$busy/$w"
	ADMITTED[$w]=$(($(origin_stat "$ORIGIN" path /limited) - a0))
	LIMITED429[$w]=$NON2XX
	((REQ - NON2XX == ADMITTED[$w])) ||
		log "warning: wrk saw $((REQ - NON2XX)) admitted, the origin ${ADMITTED[$w]}"
	ok=$(sluice_stat http.limited.downstream_rq_2xx)
	[[ $ok == "${ADMITTED[$w]}" ]] ||
		log "warning: sluice's http.limited.downstream_rq_2xx is $ok, the origin counted ${ADMITTED[$w]} admitted"
	ok=$(sluice_stat http_local_rate_limit.bench.ok)
	[[ $ok == "${ADMITTED[$w]}" ]] ||
		log "warning: sluice's http_local_rate_limit.bench.ok is $ok, the origin counted ${ADMITTED[$w]} admitted"

	log "$w worker(s): circuit breaker, wrk -c$CONNS ${LIMIT_DURATION}s on /slow"
	curl -sf --max-time 2 "http://127.0.0.1:$ORIGIN/_stats?reset=1" >/dev/null || die "origin does not answer /_stats"
	s0=$(origin_stat "$ORIGIN" path /slow)
	wrk_run 1 "$LIMIT_DURATION" "http://127.0.0.1:$PROXY/slow"
	INFLIGHT[$w]=$(origin_stat "$ORIGIN" inflight_max)
	BREAKER200[$w]=$(($(origin_stat "$ORIGIN" path /slow) - s0))
	BREAKER503[$w]=$NON2XX
	sluice_stop
done

# ---------------------------------------------------------------- part 2

declare -A CPU_US RETRY_FRAC NON2XX_OF CONN503
for r in noretry retry; do CPU_US[$r]=0 NON2XX_OF[$r]=0 RETRY_FRAC[$r]=0 CONN503[$r]=0; done
sluice_start 1 0
procs="$SUP $(pgrep -P "$SUP" | tr '\n' ' ')"
CONNS_SAVED=$CONNS
CONNS=50
wrk_run 1 2 "http://127.0.0.1:$PROXY/noretry" # warm-up
wrk_run 1 2 "http://127.0.0.1:$PROXY/retry"
RETRIES=$(sluice_stat cluster.flaky.upstream_rq_retry)
for round in $(seq "$ROUNDS"); do
	for r in noretry retry; do
		f0=$(origin_stat "$FAILING" path "/$r")
		c0=$(origin_stat "$FAILING" conns)
		t0=$(ticks $procs)
		wrk_run 1 "$DURATION" "http://127.0.0.1:$PROXY/$r"
		t1=$(ticks $procs)
		f1=$(origin_stat "$FAILING" path "/$r")
		c1=$(origin_stat "$FAILING" conns)
		us=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$REQ" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
		frac=$(awk -v f=$((f1 - f0)) -v n="$REQ" 'BEGIN {printf "%.3f", f / n}')
		log "round $round $r: $REQ requests, $NON2XX non-2xx, $us CPU µs/request, $frac tries on the 503 host per request, $((c1 - c0 - 2)) new connections to it"
		CPU_US[$r]=$(awk -v a="${CPU_US[$r]}" -v b="$us" -v n="$ROUNDS" 'BEGIN {printf "%.3f", a + b / n}')
		RETRY_FRAC[$r]=$(awk -v a="${RETRY_FRAC[$r]}" -v b="$frac" -v n="$ROUNDS" 'BEGIN {printf "%.3f", a + b / n}')
		NON2XX_OF[$r]=$((NON2XX_OF[$r] + NON2XX))
		CONN503[$r]=$((CONN503[$r] + c1 - c0 - 2)) # minus the two /_stats queries
	done
done
r1=$(sluice_stat cluster.flaky.upstream_rq_retry)
[[ $RETRIES == absent || $r1 == absent ]] && RETRIES=absent || RETRIES=$((r1 - RETRIES))
sluice_stop
CONNS=$CONNS_SAVED

# ---------------------------------------------------------------- report

A=$WORKERS_A B=$WORKERS_B
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "n/a"; else printf "%.2f", a / b}'; }
printf '\nsluice upstream resilience benchmark (%s vs %s workers)\n' "$A" "$B"
printf '%-46s %12s %12s %8s\n' "" "$A worker(s)" "$B workers" "ratio"
printf '%-46s %12s %12s %8s\n' "health checks in ${HC_WINDOW}s (interval ${HC_MS}ms)" "${HC[$A]}" "${HC[$B]}" "$(ratio "${HC[$B]}" "${HC[$A]}")"
printf '%-46s %12s %12s %8s\n' "rate limit $TOKENS tokens: admitted" "${ADMITTED[$A]}" "${ADMITTED[$B]}" "$(ratio "${ADMITTED[$B]}" "${ADMITTED[$A]}")"
printf '%-46s %12s %12s\n' "rate limit: limited (429)" "${LIMITED429[$A]}" "${LIMITED429[$B]}"
printf '%-46s %12s %12s\n' "rate limit: workers that served" "${SPREAD[$A]}" "${SPREAD[$B]}"
printf '%-46s %12s %12s %8s\n' "max_requests $MAX_REQUESTS: most in flight at origin" "${INFLIGHT[$A]}" "${INFLIGHT[$B]}" "$(ratio "${INFLIGHT[$B]}" "${INFLIGHT[$A]}")"
printf '%-46s %12s %12s\n' "max_requests: admitted / overflow (503)" "${BREAKER200[$A]} / ${BREAKER503[$A]}" "${BREAKER200[$B]} / ${BREAKER503[$B]}"
printf '\nretry cost: 1 worker on CPU 0, wrk -c50 %ss x %s rounds, cluster of a 200 and a 503 origin (round robin), backoff %s\n' "$DURATION" "$ROUNDS" "$BACKOFF"
printf '%-10s %12s %18s %10s %22s\n' route cpu_us/req 503-tries/req non-2xx new-conns-to-503-host
for r in noretry retry; do
	printf '%-10s %12s %18s %10s %22s\n' "$r" "${CPU_US[$r]}" "${RETRY_FRAC[$r]}" "${NON2XX_OF[$r]}" "${CONN503[$r]}"
done
diff=$(awk -v a="${CPU_US[retry]}" -v b="${CPU_US[noretry]}" 'BEGIN {printf "%.2f", a - b}')
per=$(awk -v d="$diff" -v f="${RETRY_FRAC[retry]}" 'BEGIN {if (f > 0) printf "%.1f", d / f; else print "n/a"}')
printf 'retries add %s CPU µs per request; %s µs per retry (sluice cluster.flaky.upstream_rq_retry: %s over the measured runs)\n' "$diff" "$per" "$RETRIES"
printf 'BENCH resilience hc_a=%s hc_b=%s admitted_a=%s admitted_b=%s inflight_a=%s inflight_b=%s noretry_us=%s retry_us=%s retry_frac=%s per_retry_us=%s\n' \
	"${HC[$A]}" "${HC[$B]}" "${ADMITTED[$A]}" "${ADMITTED[$B]}" "${INFLIGHT[$A]}" "${INFLIGHT[$B]}" "${CPU_US[noretry]}" "${CPU_US[retry]}" "${RETRY_FRAC[retry]}" "$per"
