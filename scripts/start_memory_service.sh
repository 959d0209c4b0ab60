#!/usr/bin/env bash
# The original's safe start script, now a thin wrapper over `memory-service start`
# (which checks for our instance, replaces a stuck one, starts a detached one and
# waits for /health to answer with the new PID). Extra arguments pass through,
# e.g. --force, --port, --home.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if command -v memory-service >/dev/null 2>&1; then
  exec memory-service start "$@"
fi
bin="$here/target/release/memory-service"
if [ ! -x "$bin" ]; then
  echo "Building memory-service (release)..." >&2
  cargo build --release --manifest-path "$here/Cargo.toml" -p memory-service >&2
fi
exec "$bin" start "$@"
