#!/usr/bin/env bash
# Measures the lifecycle commands (issue "Lifecycle"): median wall time of
# `start` until healthy, of `start` answering "already running", and the time
# from freezing an instance (SIGSTOP) until `start` has replaced it.
# Usage: scripts/measure_lifecycle.sh [BIN] [RUNS]   (default: target/release/memory-service, 20)
# Uses a temp home and a free port; never ~/.chatdo or 5858; stops what it starts.
set -euo pipefail
bin="${1:-target/release/memory-service}"
runs="${2:-20}"
[ -x "$bin" ] || { echo "no binary at $bin; build it: cargo build --release -p memory-service" >&2; exit 1; }
root=$(mktemp -d)
home="$root/home"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
ms_frac() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2] + a[NR/2+1]) / 2 }'; }
ms_cli() { env -u MEMORY_SERVICE_HOME HOME="$root" "$bin" --home "$home" --port "$port" "$@"; }
cleanup() { ms_cli stop --force >/dev/null 2>&1 || true; rm -rf "$root"; }
trap cleanup EXIT

start_t=(); already_t=(); replace_t=()
for _ in $(seq "$runs"); do
  t=$(date +%s%N); ms_cli start >/dev/null; start_t+=("$(ms_frac "$t")")
  t=$(date +%s%N); out=$(ms_cli start); already_t+=("$(ms_frac "$t")")
  case "$out" in *"already running"*) ;; *) echo "expected 'already running', got: $out" >&2; exit 1 ;; esac
  pid=$(cat "$home/memory_service.pid")
  t=$(date +%s%N); kill -STOP "$pid"; ms_cli start --kill-timeout 5 >/dev/null; replace_t+=("$(ms_frac "$t")")
  ms_cli stop >/dev/null
done
echo "runs: $runs   binary: $bin"
echo "start -> healthy (new PID answers /health), median ms:   $(printf '%s\n' "${start_t[@]}" | median)"
echo "start -> 'already running', median ms:                     $(printf '%s\n' "${already_t[@]}" | median)"
echo "SIGSTOP -> start has replaced the frozen instance, median ms: $(printf '%s\n' "${replace_t[@]}" | median)"
