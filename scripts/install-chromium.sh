#!/usr/bin/env bash
# Installs Debian's chromium for the status page's end-to-end test
# (crates/memory-service/tests/page.rs drives /usr/bin/chromium headless over
# the DevTools protocol). Idempotent: does nothing when it is already there.
# Quiet on success; apt's output is shown only if the install fails.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-chromium.sh: installing Debian's chromium failed" >&2
  exit 1
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "install-chromium.sh: apt-get finished but /usr/bin/chromium is missing" >&2
  exit 1
fi
