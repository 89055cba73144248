#!/usr/bin/env bash
# Restart benchmark: how long a reload and a binary upgrade take from the
# request to the new generation serving, and what they do to latency.
#
# One run:
#   1. an nginx origin (64-byte answers) and sluice (2 workers) in front of it;
#   2. RESTART_COUNT reloads, then RESTART_COUNT upgrades, each timed from the
#      command to its answer (sluice reload/upgrade return once the new
#      generation serves);
#   3. wrk for RESTART_DURATION seconds in steady state, then again while
#      sluice alternately reloads and upgrades every RESTART_EVERY seconds;
#      p99 latency of both and their ratio (goal: <= 2), and errors.
#
# Environment: RESTART_COUNT (5), RESTART_DURATION (10), RESTART_EVERY (1),
# RESTART_PORT_BASE (18190). Runs as root on Debian (installs nginx-light and
# wrk if missing); uses bin/sluice (make build).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
COUNT=${RESTART_COUNT:-5}
DURATION=${RESTART_DURATION:-10}
EVERY=${RESTART_EVERY:-1}
BASE=${RESTART_PORT_BASE:-18190}
ORIGIN=$BASE
PROXY=$((BASE + 1))

log() { echo "restart-bench: $*" >&2; }

# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
bench_tools

WORK=$(mktemp -d /tmp/sluice-restart.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	pkill -f "$WORK/sluice.toml" 2>/dev/null || true
	stop_origin "$WORK"
	rm -rf "$WORK"
}
trap cleanup EXIT

start_origin "$WORK" "$ORIGIN"
PIDS+=($!)

config() { # config MARKER
	cat <<EOF
[server]
workers = 2
drain_timeout = "30s"
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
    name = "$1"
    match = { prefix = "/" }
    cluster = "origin"
[[cluster]]
name = "origin"
endpoints = ["127.0.0.1:$ORIGIN"]
max_idle_connections = 128
EOF
}
config gen0 >"$WORK/sluice.toml"
bin/sluice run -c "$WORK/sluice.toml" 2>"$WORK/sluice.log" &
SUP=$!
PIDS+=($SUP)
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$PROXY/" >/dev/null 2>&1 && break
	sleep 0.1
done

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

reload_ms=() upgrade_ms=()
for i in $(seq "$COUNT"); do
	config "reload$i" >"$WORK/sluice.toml"
	t=$(date +%s%N)
	bin/sluice reload -c "$WORK/sluice.toml" >/dev/null
	reload_ms+=("$(ms_since "$t")")
done
for i in $(seq "$COUNT"); do
	t=$(date +%s%N)
	out=$(bin/sluice upgrade -c "$WORK/sluice.toml")
	upgrade_ms+=("$(ms_since "$t")")
	# the next upgrade is refused until the old supervisor is gone
	while kill -0 "$SUP" 2>/dev/null; do sleep 0.02; done
	SUP=$(sed -n 's/.*supervisor pid \([0-9]*\).*/\1/p' <<<"$out")
	PIDS+=($SUP)
done

p99() { awk '/ 99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}'; }
errors() { awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' '; }

log "steady state: wrk ${DURATION}s"
steady=$(wrk -t1 -c50 -d"${DURATION}s" --latency "http://127.0.0.1:$PROXY/")
log "restarting every ${EVERY}s: wrk ${DURATION}s"
(
	end=$((SECONDS + DURATION))
	n=0
	while ((SECONDS < end)); do
		sleep "$EVERY"
		n=$((n + 1))
		if ((n % 2)); then
			bin/sluice reload -c "$WORK/sluice.toml" >/dev/null 2>&1 || true
		else
			bin/sluice upgrade -c "$WORK/sluice.toml" >/dev/null 2>&1 || true
		fi
	done
) &
RESTARTER=$!
restarting=$(wrk -t1 -c50 -d"${DURATION}s" --latency "http://127.0.0.1:$PROXY/")
wait "$RESTARTER" || true

s99=$(p99 <<<"$steady")
r99=$(p99 <<<"$restarting")
printf '\nsluice restart benchmark (%s reloads, %s upgrades; wrk -c50 %ss)\n' "$COUNT" "$COUNT" "$DURATION"
printf 'reload to serving, ms:   median %s  all: %s\n' "$(printf '%s\n' "${reload_ms[@]}" | median)" "${reload_ms[*]}"
printf 'upgrade to serving, ms:  median %s  all: %s\n' "$(printf '%s\n' "${upgrade_ms[@]}" | median)" "${upgrade_ms[*]}"
printf 'p99 steady %s ms, during restarts %s ms, ratio %s\n' "$s99" "$r99" "$(awk -v a="$r99" -v b="$s99" 'BEGIN {printf "%.2f", a / b}')"
printf 'errors steady: %s\nerrors during restarts: %s\n' "$(errors <<<"$steady")" "$(errors <<<"$restarting")"
printf 'BENCH restart reload_ms=%s upgrade_ms=%s p99_steady_ms=%s p99_restarting_ms=%s\n' \
	"$(printf '%s\n' "${reload_ms[@]}" | median)" "$(printf '%s\n' "${upgrade_ms[@]}" | median)" "$s99" "$r99"
