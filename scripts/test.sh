#!/usr/bin/env bash
# Runs Hangar's whole test suite: unit tests of every crate and the HTTP-level tests against the real
# server binary (127.0.0.1, port 0, temporary data directories). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

# The toolchain pinned in rust-toolchain.toml; rustup fetches nothing if it is already there.
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install Rust (https://rustup.rs) and run this again" >&2
  exit 1
fi
# The README walkthrough check (scripts/walkthrough.sh) needs curl and jq; it installs jq itself.
if ! command -v curl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq curl) >/dev/null
fi

# One real S3-compatible server (s3s-fs, built once per machine) for the whole run, for the tests of
# the S3 blob store; stopped at the end (and by its watcher should this shell die first).
if [ -z "${HANGAR_TEST_S3_ENDPOINT:-}" ]; then
  s3_state=$(mktemp -d)
  trap 'bash scripts/s3.sh stop "$s3_state"' EXIT
  s3_env=$(bash scripts/s3.sh start "$s3_state" --watch $$)
  eval "$s3_env"
fi

cargo test --workspace --all-targets --locked "$@"
bash scripts/walkthrough.sh
