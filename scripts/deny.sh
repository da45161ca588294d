#!/usr/bin/env bash
# Checks the dependency graph against deny.toml (licences, banned crates, sources) with cargo-deny,
# built once per machine when missing. Advisories need the RustSec database from a Git host that CI
# cannot reach: see deny.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "deny: building cargo-deny (once per machine)" >&2
  cargo install --locked --quiet cargo-deny --version 0.20.2
fi
# cargo-deny reads the metadata of every platform's crates, some of which a build here never
# downloads: fetch them first (from crates.io), then check without network.
cargo fetch --locked --quiet
cargo deny --offline check --hide-inclusion-graph licenses bans sources
