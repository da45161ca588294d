#!/usr/bin/env bash
# Runs Hangar's whole test suite: unit tests of every crate and the HTTP-level tests against the real
# server binary (127.0.0.1, port 0, temporary data directories), the metadata store's tests on SQLite
# and on a real PostgreSQL. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

# The toolchain pinned in rust-toolchain.toml; rustup fetches nothing if it is already there.
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install Rust (https://rustup.rs) and run this again" >&2
  exit 1
fi
# The README walkthrough check (scripts/walkthrough.sh) needs curl and jq; it installs jq itself. The
# deployment check (scripts/deploy-check.sh) installs nginx and Caddy when missing.
if ! command -v curl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq curl) >/dev/null
fi

# One throwaway PostgreSQL for the whole run (scripts/postgres.sh installs it if needed): the store
# tests run on it as well as on SQLite. One real S3-compatible server (s3s-fs, built once per
# machine) for the tests of the S3 blob store. Both stopped and removed however the run ends (s3s-fs
# also by its watcher, should this shell die first).
pg_env="$(bash scripts/postgres.sh start)"
eval "$pg_env"
s3_state=""
clamd_dir=""
cleanup() {
  bash scripts/postgres.sh stop "$HANGAR_TEST_PG_DIR" || true
  if [ -n "$s3_state" ]; then bash scripts/s3.sh stop "$s3_state" || true; fi
  if [ -n "$clamd_dir" ]; then bash scripts/clamd.sh stop "$clamd_dir" || true; fi
}
trap cleanup EXIT
if [ -z "${HANGAR_TEST_S3_ENDPOINT:-}" ]; then
  s3_state=$(mktemp -d)
  s3_env=$(bash scripts/s3.sh start "$s3_state" --watch $$)
  eval "$s3_env"
fi
# A real clamd for tests/scanning.rs (scripts/clamd.sh installs Debian's clamav-daemon if needed),
# with a database of one test signature (EICAR) instead of the internet's.
if [ -z "${HANGAR_TEST_CLAMD:-}" ]; then
  clamd_env=$(bash scripts/clamd.sh start --watch $$)
  eval "$clamd_env"
  clamd_dir=$HANGAR_TEST_CLAMD_DIR
fi

# The standard tus clients that tests/tus.rs drives (tuspy, tus-js-client), installed once under
# target/tus-clients.
tus_env=$(bash scripts/tus-clients.sh)
eval "$tus_env"

# ffmpeg, for the test of video posters (tests/previews.rs), installed once when missing.
bash scripts/ffmpeg.sh

# Debian's Chromium and Playwright for Python (under target/browser), for the web UI's test in a real
# browser (tests/web_ui.rs); its screenshots land in target/screenshots.
browser_env=$(bash scripts/browser.sh)
eval "$browser_env"

cargo test --workspace --all-targets --locked "$@"
# The server binary that build made (cargo puts it at target/debug/hangar for the tests), for the
# checks below: each would otherwise build `-p hangar` again, whose features unify differently and
# which recompiled every crate of the workspace (about 1.5 minutes of a fresh clone's CI).
export HANGAR_TEST_SERVER_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/hangar"

# The in-process HTTP suite again, on two nodes sharing one PostgreSQL database and one S3 prefix
# behind nginx, which sends requests to them in turn (SPEC §13). That is PostgreSQL and S3 as well:
# `HANGAR_TEST_BACKEND=postgres-s3` runs it on one node of that kind, for a local check.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || {
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx) >/dev/null
  rm -f /usr/sbin/policy-rc.d
}
# `--workspace` (not `-p hangar`) so that cargo reuses the build above: with one package selected,
# features unify differently and half the workspace would compile again.
HANGAR_TEST_BACKEND=two-nodes cargo test --workspace --locked --test applications --test attachments \
  --test containment --test management --test scanning --test share_links --test storage --test retention "$@"

bash scripts/walkthrough.sh
# The OpenAPI document against the running server: schemathesis (installed once under
# target/api-check) with a fixed seed, about half a minute.
bash scripts/api-check.sh
bash scripts/deploy-check.sh
