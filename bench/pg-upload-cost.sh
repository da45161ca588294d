#!/usr/bin/env bash
# What one small durable upload costs PostgreSQL: a throwaway durable cluster
# (`scripts/postgres.sh start --durable`, PostgreSQL's own defaults), Hangar on it with its blobs on
# the local disk, and ROUNDS rounds of 4 KiB uploads from 32 clients (`wrk -t2 -c32`,
# bench/upload.lua) on one database. Per round it prints uploads per second and, per upload, the CPU
# time of every PostgreSQL process (/proc), the WAL records, full-page images and bytes
# (`pg_stat_wal`) and the commits (`pg_stat_database`). With PERF=1 the last round is also recorded
# with `perf record -g` over every PostgreSQL process (PostgreSQL keeps its frame pointers) into
# PERF_OUT (default /tmp/pg-upload-cost.perf). PG_CONF adds lines to postgresql.conf (the cluster is
# restarted before Hangar starts), to compare settings; PG_SQL is run once Hangar has migrated the
# database, before the first round, to compare schemas (an index or a constraint dropped). Needs wrk, curl, jq and psql (bench/run.sh
# installs wrk; scripts/postgres.sh installs PostgreSQL).
#
#   HANGAR_BIN=target/release/hangar bash bench/pg-upload-cost.sh      # ROUNDS=3 DURATION=10s
#   PG_CONF="wal_compression = on" HANGAR_BIN=… bash bench/pg-upload-cost.sh
#   PG_SQL="DROP INDEX events_created" HANGAR_BIN=… bash bench/pg-upload-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
PERF_OUT=${PERF_OUT:-/tmp/pg-upload-cost.perf}
if [[ -z ${HANGAR_BIN:-} ]]; then
  cargo build --quiet --locked --release -p hangar
  HANGAR_BIN=target/release/hangar
fi
for tool in wrk curl jq psql; do
  command -v "$tool" >/dev/null 2>&1 || { echo "pg-upload-cost: $tool is missing" >&2; exit 1; }
done

pg_env=$(bash scripts/postgres.sh start --durable)
eval "$pg_env"
work=$(mktemp -d)
server=""
cleanup() {
  if [[ -n $server ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  bash scripts/postgres.sh stop "$HANGAR_TEST_PG_DIR" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
if [[ -n ${PG_CONF:-} ]]; then
  printf '%s\n' "$PG_CONF" >>"$HANGAR_TEST_PG_DIR/data/postgresql.conf"
  port=${HANGAR_TEST_PG_URL##*:}
  port=${port%%/*}
  bash scripts/postgres.sh pause "$HANGAR_TEST_PG_DIR"
  bash scripts/postgres.sh resume "$HANGAR_TEST_PG_DIR" "$port"
fi
echo "PostgreSQL: $(psql -Atq "$HANGAR_TEST_PG_URL" -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name)
  FROM pg_settings WHERE name IN ('shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'wal_compression',
  'full_page_writes', 'synchronous_commit', 'fsync', 'server_version')")"

password="pg-upload-cost-$RANDOM-$RANDOM"
"$HANGAR_BIN" serve --listen 127.0.0.1:0 --data-dir "$work/data" --admin-password "$password" \
  --database-url "$HANGAR_TEST_PG_URL" >"$work/server.log" 2>&1 &
server=$!
addr=""
for _ in $(seq 1 300); do
  addr=$(grep -o 'listening on [0-9.:]*' "$work/server.log" | head -n1 | awk '{print $3}' || true)
  [[ -n $addr ]] && break
  sleep 0.1
done
[[ -n $addr ]] || { echo "pg-upload-cost: the server did not start" >&2; cat "$work/server.log" >&2; exit 1; }
url="http://$addr"
curl -sSf -c "$work/cookies" -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$password\"}" "$url/api/v1/auth/login" >/dev/null
token=$(curl -sSf -b "$work/cookies" -H 'Content-Type: application/json' -d '{"name":"pg-upload-cost"}' \
  "$url/api/v1/me/tokens" | jq -r .token)

# Every PostgreSQL process alive now: the postmaster and its children (backends and workers).
pg_pids() {
  local postmaster
  postmaster=$(head -n1 "$HANGAR_TEST_PG_DIR/data/postmaster.pid")
  echo "$postmaster" $(pgrep -P "$postmaster" || true)
}
# Their clock ticks (user + system).
pg_ticks() {
  local sum=0 pid t
  for pid in $(pg_pids); do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    sum=$((sum + t))
  done
  echo "$sum"
}
wal() {
  psql -Atq -F' ' "$HANGAR_TEST_PG_URL" -c "SELECT wal_records, wal_fpi, wal_bytes,
    (SELECT sum(xact_commit) FROM pg_stat_database) FROM pg_stat_wal"
}
if [[ -n ${PG_SQL:-} ]]; then
  psql -Atq -v ON_ERROR_STOP=1 "$HANGAR_TEST_PG_URL" -c "$PG_SQL"
  echo "PG_SQL: $PG_SQL"
fi
hz=$(getconf CLK_TCK)
for ((r = 1; r <= ROUNDS; r++)); do
  sync
  sleep 10
  c0=$(pg_ticks)
  read -r rec0 fpi0 bytes0 commits0 < <(wal)
  if [[ -n ${PERF:-} && $r == "$ROUNDS" ]]; then
    perf record -F 999 -g -o "$PERF_OUT" -p "$(pg_pids | tr ' ' ',')" -- sleep 8 >/dev/null 2>&1 &
  fi
  BENCH_TARGET=hangar BENCH_TOKEN=$token BENCH_RUN="r$r" \
    wrk -t2 -c32 -d"$DURATION" -s bench/upload.lua "$url" >"$work/wrk" 2>&1
  c1=$(pg_ticks)
  read -r rec1 fpi1 bytes1 commits1 < <(wal)
  # Only answered uploads count (bench/upload.lua's BENCH_RESULT line); a refused one stops the run.
  n=$(grep -o ' ok=[0-9]*' "$work/wrk" | cut -d= -f2)
  bad=$(grep -o ' bad=[0-9]*' "$work/wrk" | cut -d= -f2)
  rate=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk")
  [[ -n $n && $n -gt 0 && $bad == 0 ]] ||
    { echo "pg-upload-cost: $n uploads answered, ${bad:-?} refused"; cat "$work/wrk"; exit 1; }
  awk -v r="$r" -v rate="$rate" -v n="$n" -v c=$((c1 - c0)) -v hz="$hz" -v rec=$((rec1 - rec0)) \
    -v fpi=$((fpi1 - fpi0)) -v b=$((bytes1 - bytes0)) -v x=$((commits1 - commits0)) 'BEGIN {
      printf "round %d: %s uploads/s (%d); per upload: PostgreSQL %.0f µs of CPU, %.1f WAL records, %.2f full-page images, %.0f WAL bytes, %.3f commits\n",
        r, rate, n, c * 1e6 / hz / n, rec / n, fpi / n, b / n, x / n }'
done
[[ -z ${PERF:-} ]] || echo "profile of the last round: $PERF_OUT (perf report -i $PERF_OUT --no-children)"
