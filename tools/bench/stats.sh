#!/usr/bin/env bash
# Stats overhead benchmark: CPU µs per proxied request of the same sluice
# built with and without stats recording (go build -tags nostats turns every
# counter, gauge and histogram update into a no-op), in one run, alternating
# the two builds STATS_ROUNDS times. Goal: the stats updates of a connection
# and its requests cost at most 5 % of the CPU of a request.
#
# Environment: STATS_DURATION (8), STATS_ROUNDS (2), STATS_PORT_BASE (18210).
# Runs as root on Debian (installs nginx-light and wrk if missing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
DURATION=${STATS_DURATION:-8}
ROUNDS=${STATS_ROUNDS:-2}
BASE=${STATS_PORT_BASE:-18210}
ORIGIN=$BASE
PROXY=$((BASE + 1))
# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
bench_tools

WORK=$(mktemp -d /tmp/sluice-stats.XXXXXX)
SUP=
cleanup() {
	[[ -n $SUP ]] && kill "$SUP" 2>/dev/null || true
	stop_origin "$WORK"
	rm -rf "$WORK"
}
trap cleanup EXIT
go build -tags nostats -o "$WORK/sluice-nostats" .
cp bin/sluice "$WORK/sluice-stats"
start_origin "$WORK" "$ORIGIN" 1
cat >"$WORK/sluice.toml" <<EOF2
[server]
workers = 1
control_socket = "$WORK/control.sock"
[log]
level = "warn"
$(hcm_listener http "127.0.0.1:$PROXY" bench)
[[route_config]]
name = "r"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
    [[route_config.virtual_host.route]]
    match = { prefix = "/" }
    cluster = "origin"
[[cluster]]
name = "origin"
endpoints = ["127.0.0.1:$ORIGIN"]
max_idle_connections = 128
EOF2
HZ=$(getconf CLK_TCK)

measure() { # measure BUILD: prints CPU µs per request of the worker
	taskset -c 0 "$WORK/sluice-$1" run -c "$WORK/sluice.toml" 2>/dev/null &
	SUP=$!
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$PROXY/" >/dev/null 2>&1 && break
		sleep 0.1
	done
	local w t0 t1 n
	w=$(pgrep -P "$SUP")
	taskset -c 1 wrk -t1 -c50 -d2s "http://127.0.0.1:$PROXY/" >/dev/null
	t0=$(awk '{print $14 + $15}' "/proc/$w/stat")
	n=$(taskset -c 1 wrk -t1 -c50 -d"${DURATION}s" "http://127.0.0.1:$PROXY/" | awk '/requests in/ {print $1}')
	t1=$(awk '{print $14 + $15}' "/proc/$w/stat")
	kill "$SUP"
	wait "$SUP" 2>/dev/null || true
	SUP=
	awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$n" 'BEGIN {printf "%.3f", t / hz * 1e6 / n}'
}

with=() without=()
for r in $(seq "$ROUNDS"); do
	with+=("$(measure stats)")
	without+=("$(measure nostats)")
	echo "stats-bench: round $r: with ${with[-1]} µs, without ${without[-1]} µs" >&2
done
mean() { printf '%s\n' "$@" | awk '{s += $1} END {printf "%.3f", s / NR}'; }
w=$(mean "${with[@]}")
wo=$(mean "${without[@]}")
printf '\nsluice stats overhead: %s rounds of wrk -c50 %ss, 1 worker on CPU 0\n' "$ROUNDS" "$DURATION"
printf 'CPU µs/request with stats %s, without %s: stats cost %s %% (goal <= 5 %%)\n' "$w" "$wo" \
	"$(awk -v a="$w" -v b="$wo" 'BEGIN {printf "%.1f", (a - b) / b * 100}')"
printf 'BENCH stats with_us=%s without_us=%s\n' "$w" "$wo"
