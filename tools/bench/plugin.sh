#!/usr/bin/env bash
# Auth plugin benchmark: the CPU and latency an ext_authz plugin call adds to
# a proxied request. One run, two configs in front of the same nginx origin:
# sluice alone, then sluice with the apikey plugin checking every request.
# Reports requests/s, p99 and CPU µs per request (sluice's worker, plus the
# plugin process), and the difference. Goal: sluice and plugin together at
# most 60 µs of CPU per request at 50 connections.
#
# Environment: PLUGIN_DURATION (10), PLUGIN_PORT_BASE (18200). Runs as root
# on Debian (installs nginx-light and wrk if missing); builds bin/ if needed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
DURATION=${PLUGIN_DURATION:-10}
BASE=${PLUGIN_PORT_BASE:-18200}
ORIGIN=$BASE
PROXY=$((BASE + 1))

log() { echo "plugin-bench: $*" >&2; }
# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
bench_tools

WORK=$(mktemp -d /tmp/sluice-plugin.XXXXXX)
SUP=
cleanup() {
	[[ -n $SUP ]] && kill "$SUP" 2>/dev/null || true
	stop_origin "$WORK"
	rm -rf "$WORK"
}
trap cleanup EXIT
start_origin "$WORK" "$ORIGIN" 1
echo "bench-key" >"$WORK/keys"

config() { # config WITH_PLUGIN
	cat <<EOF2
[server]
workers = 1
control_socket = "$WORK/control.sock"
[log]
level = "warn"
EOF2
	if [[ $1 == yes ]]; then
		printf '[[plugin]]\nname = "apikey"\npath = "%s"\nargs = ["-keys", "%s"]\n' "$ROOT/bin/apikey" "$WORK/keys"
	fi
	local authz=
	if [[ $1 == yes ]]; then
		authz=$'      [[listener.filter_chain.filter.config.http_filter]]\n      name = "sluice.filters.http.ext_authz"\n      [listener.filter_chain.filter.config.http_filter.config]\n      plugin = "apikey"\n'
	fi
	hcm_listener http "127.0.0.1:$PROXY" bench "$authz"
	cat <<EOF2
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
}

ticks() { # ticks PID...: utime+stime of the processes, clock ticks
	local t=0 p
	for p in "$@"; do
		[[ -r /proc/$p/stat ]] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}
HZ=$(getconf CLK_TCK)

measure() { # measure NAME WITH_PLUGIN
	config "$2" >"$WORK/sluice.toml"
	taskset -c 0 bin/sluice run -c "$WORK/sluice.toml" 2>"$WORK/$1.log" &
	SUP=$!
	for _ in $(seq 100); do
		curl -sf -H 'x-api-key: bench-key' "http://127.0.0.1:$PROXY/" >/dev/null 2>&1 && break
		sleep 0.1
	done
	local procs
	procs=$(pgrep -P "$SUP" | tr '\n' ' ')
	taskset -c 1 wrk -t1 -c50 -d2s -H 'x-api-key: bench-key' "http://127.0.0.1:$PROXY/" >/dev/null
	local t0 t1 out n p99
	t0=$(ticks $procs)
	out=$(taskset -c 1 wrk -t1 -c50 -d"${DURATION}s" --latency -H 'x-api-key: bench-key' "http://127.0.0.1:$PROXY/")
	t1=$(ticks $procs)
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	p99=$(awk '/ 99%/ {print $2}' <<<"$out")
	kill "$SUP"
	wait "$SUP" 2>/dev/null || true
	SUP=
	local cpu
	cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$n" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
	printf '%-12s %10s %9s %14s %s\n' "$1" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$p99" "$cpu" "$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ')"
	echo "$cpu" >"$WORK/$1.cpu"
}

printf '\nsluice ext_authz plugin benchmark: wrk -c50 %ss, sluice on CPU 0 (1 worker, plugin beside it), wrk and origin on CPU 1\n' "$DURATION"
printf '%-12s %10s %9s %14s %s\n' config req/s p99 cpu_us/req errors
measure no-plugin no
measure apikey yes
printf 'the plugin call adds %s µs of CPU per request (sluice and plugin together: %s µs; goal <= 60)\n' \
	"$(awk -v a="$(cat "$WORK/apikey.cpu")" -v b="$(cat "$WORK/no-plugin.cpu")" 'BEGIN {printf "%.2f", a - b}')" "$(cat "$WORK/apikey.cpu")"
