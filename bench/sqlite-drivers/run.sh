#!/usr/bin/env bash
# Builds bench/sqlite-drivers once and runs each driver ROUNDS times (default 3), one after the
# other: UPLOADS uploads' records (default 8192) in groups of BATCH (default 32), on a database file
# under DIR (default /var/tmp), WAL and synchronous=FULL as Hangar runs SQLite. Prints the CPU time
# and the wall time per upload.
set -euo pipefail
cd "$(dirname "$0")"
cargo build -q --release --locked
ROUNDS=${ROUNDS:-3} UPLOADS=${UPLOADS:-8192} BATCH=${BATCH:-32}
trap 'rm -f "${DIR:-/var/tmp}"/sqlbench-*.db*' EXIT
for ((r = 1; r <= ROUNDS; r++)); do
  for driver in sqlx rusqlite; do
    ./target/release/sqlite-drivers "$driver" "$UPLOADS" "$BATCH"
  done
done
