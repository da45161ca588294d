#!/usr/bin/env bash
# Hangar against nginx, side by side on this machine: the figures of SPEC §12.
#
#   bash bench/run.sh                                  # the full run (ROUNDS=3, 1 GiB, 10 GiB)
#   ROUNDS=1 SIZE_MIB=64 RSS_GIB=1 WRK_DURATION=3s bash bench/run.sh   # a quick check
#   BACKEND=postgres bash bench/run.sh                 # Hangar on PostgreSQL + the local disk
#   BACKEND=postgres-s3 bash bench/run.sh              # Hangar on PostgreSQL + S3 (s3s-fs), plus
#                                                      # the S3-direct and two-node figures
#
# It installs nginx and wrk (Debian packages) if missing, builds Hangar in release mode, starts both
# servers on loopback with their data in a temporary directory on a real disk, measures every figure
# ROUNDS times, prints each measurement, and ends with one table of medians and ratios. Both servers
# are stopped and the temporary data removed on exit, also on failure. See bench/README.md.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-1024}         # the large upload/download file, MiB
RSS_GIB=${RSS_GIB:-10}             # the memory test file, GiB (0 skips it)
WRK_DURATION=${WRK_DURATION:-10s}  # each wrk run
WRK_THREADS=${WRK_THREADS:-2}
DOWN_CONNECTIONS=${DOWN_CONNECTIONS:-64}
UP_CONNECTIONS=${UP_CONNECTIONS:-32}
BACKEND=${BACKEND:-sqlite}         # sqlite (SQLite + local disk), postgres (+ local disk) or postgres-s3
PROFILE=${PROFILE:-release}        # cargo profile of the binary (release-symbols: for perf)
FLAME_DIR=${FLAME_DIR:-}           # when set: flame graphs of the 4 KiB paths are written there
SETTLE=${SETTLE:-300}              # s after the last run's cleanup before measuring (ext4 without a journal)
ROUND_PAUSE=${ROUND_PAUSE:-20}     # s of quiet after the sync before each 4 KiB upload round (0: none)

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
STARTED=$SECONDS

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
  printf '[bench %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
  exit 1
}

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $SIZE_MIB =~ ^[1-9][0-9]*$ ]] || die "SIZE_MIB must be a positive integer"
[[ $RSS_GIB =~ ^[0-9]+$ ]] || die "RSS_GIB must be a non-negative integer"
[[ $SETTLE =~ ^[0-9]+$ ]] || die "SETTLE must be a number of seconds"
[[ $BACKEND == sqlite || $BACKEND == postgres || $BACKEND == postgres-s3 ]] ||
  die "BACKEND is sqlite, postgres or postgres-s3"

# ---------------------------------------------------------------------------------------------
# 1. Tools
# ---------------------------------------------------------------------------------------------
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 && SUDO=(sudo)
fi
have() { command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 ]]; }
missing=()
have nginx || missing+=(nginx)
for tool in wrk curl jq bc python3; do
  have "$tool" || missing+=("$tool")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]} from Debian's packages"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
"$NGINX" -V 2>&1 | grep -q -- '--with-http_dav_module' ||
  die "$NGINX was built without the DAV module (needed for PUT)"

# ---------------------------------------------------------------------------------------------
# 2. Build
# ---------------------------------------------------------------------------------------------
if [[ -n ${HANGAR_BIN:-} ]]; then
  # A binary built elsewhere (to set two builds side by side, one run each).
  log "using $HANGAR_BIN (HANGAR_BIN), not building"
  BIN=$HANGAR_BIN
else
  log "building Hangar ($PROFILE)"
  (cd "$REPO" && cargo build --profile "$PROFILE" --locked -p hangar)
  BIN="${CARGO_TARGET_DIR:-$REPO/target}/$PROFILE/hangar"
fi
[[ -x $BIN ]] || die "no binary at $BIN"

# ---------------------------------------------------------------------------------------------
# 3. Temporary data on a real disk, cleanup on exit
# ---------------------------------------------------------------------------------------------
tmp_parent=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
fstype=$(df --output=fstype "$tmp_parent" | tail -n 1 | tr -d ' ')
if [[ $fstype == tmpfs || $fstype == ramfs ]]; then
  tmp_parent="${CARGO_TARGET_DIR:-$REPO/target}"
  log "$tmp_parent is used for temporary data ($([[ -n ${BENCH_TMPDIR:-} ]] && echo BENCH_TMPDIR || echo /tmp) is $fstype)"
fi
WORK=$(mktemp -d "$tmp_parent/hangar-bench.XXXXXX")
# When the last run on this disk finished removing its files (see "ext4 without a journal" below).
CLEANED_AT="$tmp_parent/hangar-bench.cleaned"

HANGAR_PID=""
HANGAR2_PID=""
NGINX_PID=""
PG_DIR=""
S3_STATE=""
BG_PIDS=()
stop_pid() { # pid signal: signal, wait up to 15 s, then SIGKILL
  local pid=$1 sig=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill "-$sig" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  set +e
  for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  if ((rc != 0)) && [[ -f $WORK/hangar.log ]]; then
    echo "--- last lines of the Hangar log ---" >&2
    tail -n 30 "$WORK/hangar.log" >&2
    if [[ -f $WORK/nginx/logs/error.log ]]; then
      echo "--- last lines of the nginx error log ---" >&2
      tail -n 10 "$WORK/nginx/logs/error.log" >&2
    fi
  fi
  log "stopping the servers"
  [[ -n $HANGAR_PID ]] && stop_pid "$HANGAR_PID" TERM
  [[ -n $HANGAR2_PID ]] && stop_pid "$HANGAR2_PID" TERM
  [[ -n $NGINX_PID ]] && stop_pid "$NGINX_PID" TERM
  [[ -n $PG_DIR ]] && bash "$REPO/scripts/postgres.sh" stop "$PG_DIR" >/dev/null 2>&1
  [[ -n $S3_STATE ]] && bash "$REPO/scripts/s3.sh" stop "$S3_STATE" >/dev/null 2>&1
  log "removing $WORK"
  [[ -n ${WORK:-} && -d $WORK ]] && rm -rf "$WORK" && date +%s >"$CLEANED_AT"
  local elapsed=$((SECONDS - STARTED))
  log "total run time: $((elapsed / 60)) min $((elapsed % 60)) s (build, setup, measurements and cleanup)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
median() { # numbers... -> median
  printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
    if (NR % 2) printf "%.6f\n", a[(NR + 1) / 2]; else printf "%.6f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
calc() { echo "scale=6; $*" | bc -l; }
fmt() { printf "%.${2:-1}f" "$1"; }
mbps() { calc "$1 / $2 / 1000000"; } # bytes seconds -> MB/s (10^6 bytes)
size_label() { # MiB -> "1 GiB" / "64 MiB"
  if (($1 % 1024 == 0)); then echo "$(($1 / 1024)) GiB"; else echo "$1 MiB"; fi
}
free_bytes() { df -B1 --output=avail "$WORK" | tail -n 1 | tr -d ' '; }
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # pid... -> user + system clock ticks of those processes so far
  local pid total=0
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")))
  done
  echo "$total"
}
nginx_pids() { echo "$NGINX_PID" $(pgrep -P "$NGINX_PID" || true); }
# PostgreSQL's CPU so far: the postmaster's own and that of its children, living (their stat) or
# ended (the postmaster's cutime and cstime), so that a difference counts the time in between of
# backends that came or went meanwhile.
pg_ticks() {
  local pm
  pm=$(head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null) || { echo 0; return; }
  echo $(($(awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$pm/stat") + \
    $(cpu_ticks "$pm" $(pgrep -P "$pm" || true))))
}
s3_ticks() { cpu_ticks "$(cat "$S3_STATE/pid")"; }
us_per_req() { calc "$1 * 1000000 / $CLK_TCK / $2"; } # ticks requests -> µs of CPU per request
machine_ticks() { # -> "busy total" clock ticks of every CPU so far (/proc/stat; iowait counts as idle)
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat
}
busy_share() { # "busy total" before, after -> percent of the machine's CPU time that was busy
  local b0 t0 b1 t1
  read -r b0 t0 <<<"$1"
  read -r b1 t1 <<<"$2"
  calc "100 * ($b1 - $b0) / ($t1 - $t0)"
}

# ---------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------
log "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), " \
  "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory, kernel $(uname -r)"
log "disk for data: $(df -h --output=source,fstype,size,avail "$WORK" | tail -n 1 | tr -s ' ') ($WORK)"
log "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), wrk: $(wrk -v 2>&1 | head -n 1 | awk '{print $2}')," \
  "curl: $(curl --version | head -n 1 | awk '{print $2}')"
log "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine skews the figures)"
log "ROUNDS=$ROUNDS SIZE_MIB=$SIZE_MIB RSS_GIB=$RSS_GIB WRK_DURATION=$WRK_DURATION WRK_THREADS=$WRK_THREADS ROUND_PAUSE=$ROUND_PAUSE"

# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------
need=$(((2 * ROUNDS + 2) * SIZE_MIB * 1048576 + 4 * 1073741824))
(($(free_bytes) >= need)) ||
  die "$(($(free_bytes) / 1073741824)) GiB free under $WORK; the run needs about $((need / 1073741824)) GiB (less with a smaller SIZE_MIB or ROUNDS)"
mkdir -p "$WORK/input"
BIG="$WORK/input/big.bin"
SMALL="$WORK/input/small.bin"
BIG_BYTES=$((SIZE_MIB * 1048576))
BIG_LABEL=$(size_label "$SIZE_MIB")
log "making the $BIG_LABEL input from /dev/urandom"
head -c "$BIG_BYTES" /dev/urandom >"$BIG"
head -c 4096 /dev/urandom >"$SMALL"

# ---------------------------------------------------------------------------------------------
# Hangar
# ---------------------------------------------------------------------------------------------
PW="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
HANGAR_ARGS=()
HANGAR_ENV=()
# The PostgreSQL figures are for a server that waits for the disk, as a production one does: the
# run stops if the cluster does not (the tests' cluster has fsync off).
pg_check_durable() {
  local settings
  settings=$(psql -Atq "$HANGAR_TEST_PG_URL" \
    -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings
        WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')") ||
    die "cannot read PostgreSQL's settings"
  [[ $settings == "fsync=on full_page_writes=on synchronous_commit=on" ]] ||
    die "PostgreSQL is not durable ($settings)"
  log "PostgreSQL is durable ($settings)"
}
if [[ $BACKEND == postgres ]]; then
  # A throwaway PostgreSQL, as the tests use (installed once per machine by the same script), but
  # durable as a production server is (fsync, synchronous commits, full page writes: the tests'
  # cluster has them off); the blobs stay on the local disk, as on SQLite: this run shows
  # PostgreSQL's share alone.
  log "starting a durable PostgreSQL (scripts/postgres.sh start --durable)"
  pg_env=$(bash "$REPO/scripts/postgres.sh" start --durable) || die "PostgreSQL did not start"
  eval "$pg_env"
  PG_DIR=$HANGAR_TEST_PG_DIR
  pg_check_durable
  HANGAR_ARGS=(--database-url "$HANGAR_TEST_PG_URL")
  log "PostgreSQL at ${HANGAR_TEST_PG_URL%%/postgres}"
fi
if [[ $BACKEND == postgres-s3 ]]; then
  # A throwaway PostgreSQL and s3s-fs, as the tests use (installed once per machine by the same
  # scripts); the object store keeps its files under $WORK, on the same disk as nginx's.
  log "starting a durable PostgreSQL and s3s-fs (scripts/postgres.sh start --durable, scripts/s3.sh)"
  pg_env=$(bash "$REPO/scripts/postgres.sh" start --durable) || die "PostgreSQL did not start"
  eval "$pg_env"
  PG_DIR=$HANGAR_TEST_PG_DIR
  pg_check_durable
  S3_STATE="$WORK/s3"
  mkdir -p "$S3_STATE"
  s3_env=$(bash "$REPO/scripts/s3.sh" start "$S3_STATE") || die "s3s-fs did not start"
  eval "$s3_env"
  export AWS_ACCESS_KEY_ID=$HANGAR_TEST_S3_ACCESS_KEY_ID
  export AWS_SECRET_ACCESS_KEY=$HANGAR_TEST_S3_SECRET_ACCESS_KEY
  S3_BASE="$HANGAR_TEST_S3_ENDPOINT/$HANGAR_TEST_S3_BUCKET"
  head -c 32 /dev/urandom >"$WORK/secret.key"
  HANGAR_ARGS=(--database-url "$HANGAR_TEST_PG_URL" --storage-url "s3://$HANGAR_TEST_S3_BUCKET/bench"
    --secret-key-file "$WORK/secret.key")
  HANGAR_ENV=(HANGAR_S3_ENDPOINT="$HANGAR_TEST_S3_ENDPOINT")
  log "PostgreSQL at ${HANGAR_TEST_PG_URL%%/postgres}, s3s-fs at $HANGAR_TEST_S3_ENDPOINT"
fi
start_hangar() { # name [flags…] -> sets STARTED_PID and STARTED_ADDR
  local name=$1 i addr=""
  shift
  mkdir -p "$WORK/$name"
  env "${HANGAR_ENV[@]}" "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/$name" "$@" \
    "${HANGAR_ARGS[@]}" >"$WORK/$name.log" 2>&1 &
  STARTED_PID=$!
  for ((i = 0; i < 300; i++)); do
    addr=$(grep -o 'listening on [^ ]*' "$WORK/$name.log" 2>/dev/null | head -n 1 | awk '{print $3}' || true)
    [[ -n $addr ]] && break
    kill -0 "$STARTED_PID" 2>/dev/null || die "hangar exited at start: $(cat "$WORK/$name.log")"
    sleep 0.1
  done
  [[ -n $addr ]] || die "hangar did not log 'listening on' within 30 s"
  STARTED_ADDR=$addr
}
start_hangar hangar --admin-password "$PW"
HANGAR_PID=$STARTED_PID
HADDR=$STARTED_ADDR
H="http://$HADDR"
log "Hangar ($BACKEND, pid $HANGAR_PID) listening on $HADDR"

curl -sSf -c "$WORK/cookies.txt" -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PW\"}" "$H/api/v1/auth/login" >/dev/null
TOKEN=$(curl -sSf -b "$WORK/cookies.txt" -H 'Content-Type: application/json' \
  -d '{"name":"bench"}' "$H/api/v1/me/tokens" | jq -r .token)
[[ -n $TOKEN && $TOKEN != null ]] || die "no token from POST /api/v1/me/tokens"
AUTH="Authorization: Bearer $TOKEN"

# ---------------------------------------------------------------------------------------------
# nginx, from its own configuration, as the current user
# ---------------------------------------------------------------------------------------------
NGX="$WORK/nginx"
mkdir -p "$NGX"/{root/dav,body,proxy,fastcgi,uwsgi,scgi,logs}
cp "$SMALL" "$NGX/root/small.bin"
user_line=""
if [[ $(id -u) -eq 0 ]]; then
  user_line="user $(id -un) $(id -gn);" # otherwise the workers would drop to nobody
fi
write_nginx_conf() { # port
  cat >"$NGX/nginx.conf" <<EOF
$user_line
worker_processes auto;
daemon off;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path $NGX/body;
    proxy_temp_path $NGX/proxy;
    fastcgi_temp_path $NGX/fastcgi;
    uwsgi_temp_path $NGX/uwsgi;
    scgi_temp_path $NGX/scgi;
    server {
        listen 127.0.0.1:$1;
        root $NGX/root;
        location / { }
        location /dav/ {
            dav_methods PUT;
            dav_access user:rw group:r all:r;
            create_full_put_path on;
            client_max_body_size 0;
            client_body_temp_path $NGX/body;
        }
    }
}
EOF
}
NPORT=""
for ((attempt = 0; attempt < 20; attempt++)); do
  port=$((20000 + RANDOM % 40000))
  write_nginx_conf "$port"
  "$NGINX" -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/logs/error.log" &
  NGINX_PID=$!
  for ((i = 0; i < 50; i++)); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/small.bin" || true) == 200 ]]; then
      NPORT=$port
      break
    fi
    kill -0 "$NGINX_PID" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $NPORT ]] && break
  stop_pid "$NGINX_PID" TERM
  NGINX_PID=""
done
[[ -n $NPORT ]] || die "nginx did not start: $(tail -n 5 "$NGX/logs/error.log" 2>/dev/null)"
N="http://127.0.0.1:$NPORT"
log "nginx (pid $NGINX_PID, $(pgrep -c -P "$NGINX_PID" || echo '?') workers) listening on 127.0.0.1:$NPORT"

# Runs "$1" and "$2" (Hangar's and nginx's measurement) in alternating order: Hangar first in odd
# rounds, nginx first in even ones, so neither always runs right after the other's load.
both() {
  if ((r % 2)); then "$1"; "$2"; else "$2"; "$1"; fi
}
# ---------------------------------------------------------------------------------------------
# The disk right now (for reading the upload figures): the input copied with and without fsync
# ---------------------------------------------------------------------------------------------
dd_rate() { # extra dd flags... -> MB/s
  sync
  local out
  out=$(LC_ALL=C dd if="$BIG" of="$WORK/dd.out" bs=1M "$@" 2>&1 | tail -n 1)
  rm -f "$WORK/dd.out"
  awk -F, '{ print $(NF-1) }' <<<"$out" | awk -v b="$BIG_BYTES" '{ printf "%.1f\n", b / $1 / 1000000 }'
}
DD_CACHE=$(dd_rate)
DD_SYNC=$(dd_rate conv=fsync)
log "disk now: dd of the $BIG_LABEL input: $DD_CACHE MB/s into the page cache, $DD_SYNC MB/s with fsync"
# ext4 without a journal will not reuse an inode deleted in the last 60 s (300 s while its inode
# table block is not written back) and checks every such inode on each file creation: for minutes
# after many files were deleted (the cleanup of a previous run: hundreds of thousands), creating
# files costs several times its usual CPU, for nginx's PUTs as for Hangar's uploads and s3s-fs.
WORK_DEV=$(basename "$(df --output=source "$WORK" | tail -n 1)")
if [[ $(cat "/sys/fs/ext4/$WORK_DEV/journal_task" 2>/dev/null) == "<none>" ]]; then
  log "note: $WORK is on ext4 without a journal; file creation is slow for up to 5 minutes after" \
    "many deletions (such as a previous run's cleanup): leave 5 minutes between runs"
  # The last run's own cleanup is known: wait out what is left of SETTLE after it, so that runs
  # started one after another measure the disk as it is, not its recovery (nginx's 4 KiB upload
  # rounds fell from 12,000 to 2,300 requests/s two minutes after such a cleanup).
  cleaned=$(cat "$CLEANED_AT" 2>/dev/null || true)
  if [[ $cleaned =~ ^[0-9]+$ ]] && (($(date +%s) - cleaned < SETTLE)); then
    wait_s=$((SETTLE - ($(date +%s) - cleaned)))
    log "the last run removed its files $(($(date +%s) - cleaned)) s ago: waiting $wait_s s more (SETTLE=$SETTLE)"
    sleep "$wait_s"
  fi
fi

# ---------------------------------------------------------------------------------------------
# 4a. Large upload
# ---------------------------------------------------------------------------------------------
log "== $BIG_LABEL upload: Hangar POST /uploads (SHA-256, fsync) vs nginx PUT /dav/ (no fsync)"
up_h=()
up_n=()
BIG_ID=""
up_hangar() {
  sync
  read -r code secs sent < <(curl -sS -o "$WORK/resp" -w '%{http_code} %{time_total} %{size_upload}\n' \
    -H 'Expect:' -H "$AUTH" -H 'Content-Type: application/octet-stream' \
    -X POST -T "$BIG" "$H/uploads?name=big.bin")
  [[ $code == 200 && $sent == "$BIG_BYTES" ]] ||
    die "Hangar upload answered $code after $sent bytes: $(head -c 300 "$WORK/resp")"
  id=$(cat "$WORK/resp")
  [[ $id =~ ^[0-9]+$ ]] || die "Hangar upload answered no id: $(head -c 300 "$WORK/resp")"
  BIG_ID=$id
  up_h+=("$(mbps "$BIG_BYTES" "$secs")")
  hsecs=$secs
}
up_nginx() {
  sync
  read -r code secs sent < <(curl -sS -o "$WORK/resp" -w '%{http_code} %{time_total} %{size_upload}\n' \
    -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$BIG" "$N/dav/big-$r.bin")
  [[ ($code == 201 || $code == 204) && $sent == "$BIG_BYTES" ]] ||
    die "nginx PUT answered $code after $sent bytes"
  up_n+=("$(mbps "$BIG_BYTES" "$secs")")
  nsecs=$secs
  cmp -s "$BIG" "$NGX/root/dav/big-$r.bin" || die "nginx stored different bytes"
}
# Nothing is deleted between rounds: the root filesystem may be mounted with "discard", and the
# discards of a deleted file slow down the writes that follow. Each round changes the first 32
# bytes of the input, so that Hangar stores new content every time (identical bytes would be
# deduplicated: the temporary removed instead of renamed).
for ((r = 1; r <= ROUNDS; r++)); do
  head -c 32 /dev/urandom | dd of="$BIG" bs=32 count=1 conv=notrunc status=none
  both up_hangar up_nginx
  log "  round $r: Hangar $(fmt "${up_h[-1]}") MB/s (${hsecs} s)   nginx $(fmt "${up_n[-1]}") MB/s (${nsecs} s)"
done
# nginx's static big.bin: the same bytes as Hangar's last upload (a hard link, same disk).
ln -f "$BIG" "$NGX/root/big.bin" 2>/dev/null || cp "$BIG" "$NGX/root/big.bin"
BIG_SHA=$(sha256sum "$BIG" | awk '{print $1}')
meta=$(curl -sSf -H "$AUTH" "$H/api/v1/attachments/$BIG_ID")
[[ $(jq -r .fileChecksum <<<"$meta") == "$BIG_SHA" ]] ||
  die "Hangar's checksum of big.bin differs from sha256sum: $meta"
UP_H=$(median "${up_h[@]}")
UP_N=$(median "${up_n[@]}")
UP_R=$(calc "$UP_H / $UP_N")
log "  median: Hangar $(fmt "$UP_H") MB/s, nginx $(fmt "$UP_N") MB/s, ratio $(fmt "$UP_R" 2) (checksum verified)"

# ---------------------------------------------------------------------------------------------
# 4b. Large download
# ---------------------------------------------------------------------------------------------
log "== $BIG_LABEL download: Hangar GET /api/v1/attachments/{id}/big.bin vs nginx static file"
down_h=()
down_n=()
down_hangar() {
  read -r code secs got < <(curl -sS -o /dev/null -w '%{http_code} %{time_total} %{size_download}\n' \
    -H "$AUTH" "$H/api/v1/attachments/$BIG_ID/big.bin")
  [[ $code == 200 && $got == "$BIG_BYTES" ]] || die "Hangar download answered $code with $got bytes"
  down_h+=("$(mbps "$BIG_BYTES" "$secs")")
  hsecs=$secs
}
down_nginx() {
  read -r code secs got < <(curl -sS -o /dev/null -w '%{http_code} %{time_total} %{size_download}\n' \
    -H "$AUTH" "$N/big.bin")
  [[ $code == 200 && $got == "$BIG_BYTES" ]] || die "nginx download answered $code with $got bytes"
  down_n+=("$(mbps "$BIG_BYTES" "$secs")")
  nsecs=$secs
}
# The uploads before leave gigabytes for the kernel to write back (s3s-fs and nginx do not fsync):
# written out first, so that the write-back does not land inside whichever download comes next.
sync
for ((r = 1; r <= ROUNDS; r++)); do
  both down_hangar down_nginx
  log "  round $r: Hangar $(fmt "${down_h[-1]}") MB/s (${hsecs} s)   nginx $(fmt "${down_n[-1]}") MB/s (${nsecs} s)"
done
curl -sSf -H "$AUTH" "$H/api/v1/attachments/$BIG_ID/big.bin" | cmp -s - "$BIG" ||
  die "Hangar served different bytes"
DOWN_H=$(median "${down_h[@]}")
DOWN_N=$(median "${down_n[@]}")
DOWN_R=$(calc "$DOWN_H / $DOWN_N")
log "  median: Hangar $(fmt "$DOWN_H") MB/s, nginx $(fmt "$DOWN_N") MB/s, ratio $(fmt "$DOWN_R" 2) (bytes verified)"

# ---------------------------------------------------------------------------------------------
# wrk helpers
# ---------------------------------------------------------------------------------------------
wrk_field() { # file -> "requests non2xx rps"
  awk '
    /requests in/ { req = $1 }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    /^Requests\/sec:/ { rps = $2 }
    END { printf "%s %s %s\n", req + 0, bad + 0, rps + 0 }' "$1"
}
check_errors() { # name requests bad
  local name=$1 total=$2 bad=$3
  ((total > 0)) || die "$name: wrk completed no request"
  if ((bad * 2 > total)); then
    die "$name: $bad of $total responses were not 2xx (see above)"
  elif ((bad > 0)); then
    log "  WARNING: $name: $bad of $total responses were not 2xx"
    PROBLEMS+=("$name: $bad of $total responses not 2xx")
  fi
}
PROBLEMS=()

# ---------------------------------------------------------------------------------------------
# 4c. Small authenticated downloads
# ---------------------------------------------------------------------------------------------
log "== 4 KiB authenticated download: wrk -t$WRK_THREADS -c$DOWN_CONNECTIONS -d$WRK_DURATION"
SMALL_ID=$(curl -sSf -H "$AUTH" -H 'Content-Type: application/octet-stream' --data-binary @"$SMALL" \
  "$H/uploads?name=small.bin")
[[ $SMALL_ID =~ ^[0-9]+$ ]] || die "small upload answered: $SMALL_ID"
SMALL_H_URL="$H/api/v1/attachments/$SMALL_ID/small.bin"
SMALL_N_URL="$N/small.bin"
for url in "$SMALL_H_URL" "$SMALL_N_URL"; do
  read -r code got < <(curl -sS -o "$WORK/small.out" -w '%{http_code} %{size_download}\n' -H "$AUTH" "$url")
  [[ $code == 200 && $got == 4096 ]] || die "$url answered $code with $got bytes"
  cmp -s "$WORK/small.out" "$SMALL" || die "$url served different bytes"
done
log "  both answer 200 with the same 4096 bytes"
sd_h=()
sd_n=()
sd_hc=()
sd_nc=()
sd_hangar() {
  local t0
  t0=$(cpu_ticks "$HANGAR_PID")
  wrk -t"$WRK_THREADS" -c"$DOWN_CONNECTIONS" -d"$WRK_DURATION" -H "$AUTH" "$SMALL_H_URL" >"$WORK/wrk.out" 2>&1 ||
    die "wrk failed: $(cat "$WORK/wrk.out")"
  read -r total bad rps < <(wrk_field "$WORK/wrk.out")
  check_errors "Hangar 4 KiB download round $r" "$total" "$bad"
  sd_h+=("$rps")
  sd_hc+=("$(us_per_req $(($(cpu_ticks "$HANGAR_PID") - t0)) "$total")")
}
sd_nginx() {
  local t0
  t0=$(cpu_ticks $(nginx_pids))
  wrk -t"$WRK_THREADS" -c"$DOWN_CONNECTIONS" -d"$WRK_DURATION" -H "$AUTH" "$SMALL_N_URL" >"$WORK/wrk.out" 2>&1 ||
    die "wrk failed: $(cat "$WORK/wrk.out")"
  read -r total bad rps < <(wrk_field "$WORK/wrk.out")
  check_errors "nginx 4 KiB download round $r" "$total" "$bad"
  sd_n+=("$rps")
  sd_nc+=("$(us_per_req $(($(cpu_ticks $(nginx_pids)) - t0)) "$total")")
}
for ((r = 1; r <= ROUNDS; r++)); do
  both sd_hangar sd_nginx
  log "  round $r: Hangar $(fmt "${sd_h[-1]}" 0) req/s ($(fmt "${sd_hc[-1]}" 0) µs CPU/req)   nginx $(fmt "${sd_n[-1]}" 0) req/s ($(fmt "${sd_nc[-1]}" 0) µs CPU/req)"
done
SD_H=$(median "${sd_h[@]}")
SD_N=$(median "${sd_n[@]}")
SD_R=$(calc "$SD_H / $SD_N")
SD_HC=$(median "${sd_hc[@]}")
SD_NC=$(median "${sd_nc[@]}")
log "  median: Hangar $(fmt "$SD_H" 0) req/s, nginx $(fmt "$SD_N" 0) req/s, ratio $(fmt "$SD_R" 2)"

# ---------------------------------------------------------------------------------------------
# 4d. Small durable authenticated uploads, 32 clients
# ---------------------------------------------------------------------------------------------
log "== 4 KiB upload: wrk -t$WRK_THREADS -c$UP_CONNECTIONS -d$WRK_DURATION -s bench/upload.lua" \
  "(Hangar POST /uploads, durable; nginx PUT /dav/)"
su_h=()
su_n=()
su_hc=()
su_nc=()
run_upload_wrk() { # target url run-tag -> sets U_TOTAL U_OK U_BAD U_RPS
  BENCH_TARGET=$1 BENCH_TOKEN=$TOKEN BENCH_RUN=$3 BENCH_BODY_BYTES=4096 \
    wrk -t"$WRK_THREADS" -c"$UP_CONNECTIONS" -d"$WRK_DURATION" -s "$BENCH_DIR/upload.lua" "$2" \
    >"$WORK/wrk.out" 2>&1 || die "wrk failed: $(cat "$WORK/wrk.out")"
  local line
  line=$(grep '^BENCH_RESULT' "$WORK/wrk.out" || true)
  [[ -n $line ]] || die "upload.lua printed no result: $(cat "$WORK/wrk.out")"
  local total ok bad first rps
  total=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
  ok=$(sed -E 's/.* ok=([0-9]+).*/\1/' <<<"$line")
  bad=$(sed -E 's/.* bad=([0-9]+).*/\1/' <<<"$line")
  first=$(sed -E 's/.*first_bad_status=([0-9]+).*/\1/' <<<"$line")
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk.out")
  if ((bad > 0)); then
    log "  $1: $bad non-2xx responses (first status $first); $line"
  fi
  U_TOTAL=$total U_OK=$ok U_BAD=$bad U_RPS=${rps:-0}
}
su_busy=()
su_pgc=()
su_s3c=()
# Each round starts on a quiet machine: the other server's round is written back (sync), then
# ROUND_PAUSE seconds pass. Measured on the Xeon machine (docs/performance.md, "Fewer
# checkpoints"): right after nginx's round (about 220,000 files written, then synced) Hangar's round
# ran 26-30% slower than with nginx's rounds left out (12,236, 8,471 and 8,032 uploads/s against
# 12,146, 11,497 and 11,220), with the guest's disk idle once the sync returned; 20 s later it ran as
# if they had been left out (12,474, 11,487, 11,061). Both servers get the same pause.
quiet_for_round() {
  sync
  ((ROUND_PAUSE > 0)) && sleep "$ROUND_PAUSE"
  return 0
}
su_hangar() {
  local t0 m0 p0=0 s0=0
  quiet_for_round
  [[ $BACKEND == postgres* ]] && p0=$(pg_ticks)
  [[ $BACKEND == postgres-s3 ]] && s0=$(s3_ticks)
  t0=$(cpu_ticks "$HANGAR_PID")
  m0=$(machine_ticks)
  run_upload_wrk hangar "$H" "r$r"
  su_busy+=("$(busy_share "$m0" "$(machine_ticks)")")
  check_errors "Hangar 4 KiB upload round $r" "$U_TOTAL" "$U_BAD"
  su_h+=("$U_RPS")
  su_hc+=("$(us_per_req $(($(cpu_ticks "$HANGAR_PID") - t0)) "$U_TOTAL")")
  # What each upload costs the servers behind Hangar too (they share the same CPUs).
  [[ $BACKEND == postgres* ]] && su_pgc+=("$(us_per_req $(($(pg_ticks) - p0)) "$U_TOTAL")")
  [[ $BACKEND == postgres-s3 ]] && su_s3c+=("$(us_per_req $(($(s3_ticks) - s0)) "$U_TOTAL")")
  h_ok=$U_OK
}
su_nginx() {
  local t0
  quiet_for_round
  t0=$(cpu_ticks $(nginx_pids))
  run_upload_wrk nginx "$N" "r$r"
  check_errors "nginx 4 KiB upload round $r" "$U_TOTAL" "$U_BAD"
  su_n+=("$U_RPS")
  su_nc+=("$(us_per_req $(($(cpu_ticks $(nginx_pids)) - t0)) "$U_TOTAL")")
  sleep 1 # nginx may still be finishing PUTs that wrk stopped waiting for
  stored=$(find "$NGX/root/dav/r$r" -type f | wc -l) # kept until the end (see "discard" above)
}
for ((r = 1; r <= ROUNDS; r++)); do
  both su_hangar su_nginx
  log "  round $r: Hangar $(fmt "${su_h[-1]}" 0) req/s ($h_ok stored)   nginx $(fmt "${su_n[-1]}" 0) req/s ($stored files)"
done
SU_H=$(median "${su_h[@]}")
SU_N=$(median "${su_n[@]}")
SU_R=$(calc "$SU_H / $SU_N")
SU_HC=$(median "${su_hc[@]}")
SU_NC=$(median "${su_nc[@]}")
if [[ $BACKEND == postgres ]]; then
  SU_PGC=$(median "${su_pgc[@]}")
  log "  CPU per upload: Hangar $(fmt "$SU_HC" 0) µs, PostgreSQL $(fmt "$SU_PGC" 0) µs (medians)"
elif [[ $BACKEND == postgres-s3 ]]; then
  SU_PGC=$(median "${su_pgc[@]}")
  SU_S3C=$(median "${su_s3c[@]}")
  log "  CPU per upload: Hangar $(fmt "$SU_HC" 0) µs, PostgreSQL $(fmt "$SU_PGC" 0) µs, s3s-fs $(fmt "$SU_S3C" 0) µs (medians)"
fi
log "  median: Hangar $(fmt "$SU_H" 0) req/s, nginx $(fmt "$SU_N" 0) req/s, ratio $(fmt "$SU_R" 2)"
log "  the machine's CPUs were $(fmt "$(median "${su_busy[@]}")" 0)% busy during Hangar's rounds (median;" \
  "server, wrk and the kernel's write-back together)"
# nginx's own rounds are the yardstick: when its fastest is more than twice its slowest (files slow
# to create after a previous run's mass deletion, above), the ratio measures the disk's state, not
# Hangar, and the summary says so instead of judging it.
SU_SPREAD=$(calc "$(printf '%s\n' "${su_n[@]}" | sort -g | tail -n 1) / $(printf '%s\n' "${su_n[@]}" | sort -g | head -n 1)")
SU_VOID=""
if (($(calc "$SU_SPREAD > 2"))); then
  SU_VOID="nginx's 4 KiB upload rounds went from $(fmt "$(printf '%s\n' "${su_n[@]}" | sort -g | head -n 1)" 0) to $(fmt "$(printf '%s\n' "${su_n[@]}" | sort -g | tail -n 1)" 0) requests/s: the 4 KiB upload ratio is void (file creation slowed by recent mass deletions? leave 5 minutes between runs)"
  log "  WARNING: $SU_VOID"
  PROBLEMS+=("$SU_VOID")
fi
# What the disk allows for small durable bodies with neither HTTP nor a database, one thread (the
# floor under the figure above; see bench/floor.py): packed as Hangar's placer packs them, and a
# file per body as it stored them before. And how far Hangar and the target are from the first:
# the disk's speed moves between runs of one build more than most changes do.
FLOOR=$(python3 "$BENCH_DIR/floor.py" pack "$WORK/floor" 32 3 2>&1 | tail -n 1)
log "  durable floor of this disk: $FLOOR"
FILES_FLOOR=$(python3 "$BENCH_DIR/floor.py" files "$WORK/floor-files" 32 3 2>&1 | tail -n 1)
log "  (a file per body: $FILES_FLOOR)"
FLOOR_RATE=$(sed -nE 's/^pack: ([0-9]+)\/s.*/\1/p' <<<"$FLOOR")
if [[ -n $FLOOR_RATE ]] && ((FLOOR_RATE > 0)); then
  log "  Hangar's median is $(fmt "$(calc "100 * $SU_H / $FLOOR_RATE")" 0)% of that floor, and 0.5× nginx is" \
    "$(fmt "$(calc "100 * $SU_N / 2 / $FLOOR_RATE")" 0)% of it"
fi

# ---------------------------------------------------------------------------------------------
# 4e. PostgreSQL + S3 only: the same transfers straight against the S3 server, two-stage presigned
#     uploads, and a second node
# ---------------------------------------------------------------------------------------------
if [[ $BACKEND == postgres-s3 ]]; then
  log "== $BIG_LABEL straight against s3s-fs (presigned PUT and GET with curl) and two-stage presigned PUTs"
  curl -sSf -H "$AUTH" -H 'Content-Type: application/json' -d '{"id":"bench","name":"Bench"}' \
    "$H/api/v1/spaces" >/dev/null || die "could not create the bench space"
  path_id() { printf %s "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; } # a storage path's pathId
  s3_up=()
  s3_down=()
  ts_up=()
  s3_put() {
    local url code secs sent
    url=$(python3 "$BENCH_DIR/s3presign.py" PUT "$S3_BASE/direct/big-$r.bin")
    read -r code secs sent < <(curl -sS -o "$WORK/resp" -w '%{http_code} %{time_total} %{size_upload}\n' \
      -H 'Expect:' -T "$BIG" "$url")
    [[ $code == 200 && $sent == "$BIG_BYTES" ]] || die "S3 PUT answered $code after $sent bytes: $(head -c 300 "$WORK/resp")"
    s3_up+=("$(mbps "$BIG_BYTES" "$secs")")
  }
  two_stage_put() {
    local answer url code secs sent
    answer=$(curl -sSf -H "$AUTH" -H 'Content-Type: application/json' \
      -d "{\"file\":{\"type\":\"application/octet-stream\",\"size\":$BIG_BYTES}}" \
      "$H/api/v1/space/bench/storage/$(path_id "two/big-$r.bin")/upload") || die "two-stage declaration failed"
    url=$(jq -r .uploadRequest.url <<<"$answer")
    [[ $url == "$HANGAR_TEST_S3_ENDPOINT"* ]] || die "the two-stage URL does not point at S3: $url"
    mapfile -t headers < <(jq -r '.uploadRequest.headers | to_entries[] | "-H\n\(.key): \(.value)"' <<<"$answer")
    read -r code secs sent < <(curl -sS -o "$WORK/resp" -w '%{http_code} %{time_total} %{size_upload}\n' \
      -H 'Expect:' "${headers[@]}" -X PUT -T "$BIG" "$url")
    [[ $code == 200 && $sent == "$BIG_BYTES" ]] || die "two-stage PUT answered $code after $sent bytes: $(head -c 300 "$WORK/resp")"
    ts_up+=("$(mbps "$BIG_BYTES" "$secs")")
  }
  s3_get() {
    local url code secs got
    url=$(python3 "$BENCH_DIR/s3presign.py" GET "$S3_BASE/direct/big-1.bin")
    read -r code secs got < <(curl -sS -o /dev/null -w '%{http_code} %{time_total} %{size_download}\n' "$url")
    [[ $code == 200 && $got == "$BIG_BYTES" ]] || die "S3 GET answered $code with $got bytes"
    s3_down+=("$(mbps "$BIG_BYTES" "$secs")")
  }
  # Hangar's download from S3 again, alternated with the direct GET: s3s-fs's speed changes from
  # minute to minute (direct GETs of 94 to 578 MB/s within one run), so the ratio compares
  # transfers made side by side, as every nginx ratio does, not rounds minutes apart.
  s3_via_hangar=()
  via_hangar_get() {
    down_hangar
    s3_via_hangar+=("${down_h[-1]}")
  }
  for ((r = 1; r <= ROUNDS; r++)); do
    sync
    both s3_put two_stage_put
    sync
    both s3_get via_hangar_get
    log "  round $r: direct PUT $(fmt "${s3_up[-1]}") MB/s   two-stage PUT $(fmt "${ts_up[-1]}") MB/s   direct GET $(fmt "${s3_down[-1]}") MB/s   Hangar's download $(fmt "${s3_via_hangar[-1]}") MB/s"
  done
  # The file appears once a node has found, hashed and moved the object: reading its metadata looks
  # at once (waiting for the hash), and it must carry the bytes' SHA-256.
  meta=$(curl -sS --max-time 300 -H "$AUTH" "$H/api/v1/space/bench/storage/$(path_id "two/big-$ROUNDS.bin")/meta")
  [[ $(jq -r '.sha256 // .checksum // .fileChecksum // empty' <<<"$meta") == "$(sha256sum "$BIG" | awk '{print $1}')" ]] ||
    die "the last two-stage upload is not recorded with its SHA-256: $meta"
  S3_UP=$(median "${s3_up[@]}")
  S3_DOWN=$(median "${s3_down[@]}")
  TS_UP=$(median "${ts_up[@]}")
  S3_UP_R=$(calc "$UP_H / $S3_UP")
  S3_VIA_H=$(median "${s3_via_hangar[@]}")
  S3_DOWN_R=$(calc "$S3_VIA_H / $S3_DOWN")
  TS_R=$(calc "$TS_UP / $S3_UP")
  log "  median: direct PUT $(fmt "$S3_UP") MB/s, GET $(fmt "$S3_DOWN") MB/s; two-stage PUT $(fmt "$TS_UP") MB/s (checksum verified); Hangar's download alternated with the GET $(fmt "$S3_VIA_H") MB/s"

  # What the S3 server alone accepts of the 4 KiB upload's load: the same wrk script and clients,
  # each PUT to a presigned URL of a key of its own. Each of Hangar's uploads there is one such
  # PUT (and a PostgreSQL record), so this rate bounds Hangar's on this backend.
  log "== 4 KiB PUTs straight against s3s-fs: wrk -t$WRK_THREADS -c$UP_CONNECTIONS -d$WRK_DURATION, presigned URLs"
  s3_small=()
  s3_small_c=()
  per_round=$((${WRK_DURATION%s} * 15000))
  for ((r = 1; r <= ROUNDS; r++)); do
    python3 "$BENCH_DIR/s3presign.py" PUT "$S3_BASE/small/r$r" "$per_round" >"$WORK/urls" ||
      die "could not presign the 4 KiB PUTs"
    sync
    t0=$(s3_ticks)
    BENCH_TARGET=urls BENCH_URLS="$WORK/urls" BENCH_THREADS=$WRK_THREADS BENCH_RUN="s$r" BENCH_BODY_BYTES=4096 \
      wrk -t"$WRK_THREADS" -c"$UP_CONNECTIONS" -d"$WRK_DURATION" -s "$BENCH_DIR/upload.lua" "$HANGAR_TEST_S3_ENDPOINT" \
      >"$WORK/wrk.out" 2>&1 || die "wrk failed: $(cat "$WORK/wrk.out")"
    line=$(grep '^BENCH_RESULT' "$WORK/wrk.out" || true)
    [[ -n $line ]] || die "upload.lua printed no result: $(cat "$WORK/wrk.out")"
    total=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
    bad=$(sed -E 's/.* bad=([0-9]+).*/\1/' <<<"$line")
    check_errors "S3 4 KiB PUT round $r" "$total" "$bad"
    s3_small+=("$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk.out")")
    s3_small_c+=("$(us_per_req $(($(s3_ticks) - t0)) "$total")")
    log "  round $r: $(fmt "${s3_small[-1]}" 0) PUTs/s ($(fmt "${s3_small_c[-1]}" 0) µs of s3s-fs's CPU per PUT)"
  done
  S3_SMALL=$(median "${s3_small[@]}")
  S3_SMALL_C=$(median "${s3_small_c[@]}")
  S3_SMALL_R=$(calc "$SU_H / $S3_SMALL")
  log "  median: $(fmt "$S3_SMALL" 0) PUTs/s; Hangar's 4 KiB uploads are $(fmt "$S3_SMALL_R" 2) of that"

  log "== 4 KiB authenticated download on two nodes (one PostgreSQL, one S3): wrk on each node at once"
  # Without --admin-password: giving it again would reset the admin and revoke the bench's token.
  start_hangar hangar2
  HANGAR2_PID=$STARTED_PID
  H2="http://$STARTED_ADDR"
  log "  second node (pid $HANGAR2_PID) listening on $STARTED_ADDR"
  # A start queues one-off jobs (the sweeps of temporaries and of orphan blobs) that look at every
  # object the earlier rounds stored; one node runs them beside serving. The node mostly waits while
  # s3s-fs lists the objects, which took s3s-fs 1.2 CPUs for about 100 s after this bench's rounds
  # (`top`): two-node rounds begun in that time went at 0.59-0.66 of one node, against 1.1-1.6 after
  # it. Measured once that is done: both nodes idle (under 5 ticks of CPU in a second) and the
  # machine under 10% busy, for two seconds in a row, at most 600 s (with 4 KiB upload rounds of
  # 2,118/s on 73be6ae the listing still kept s3s-fs at 1.07 CPUs after 120 s, and the two-node
  # rounds begun then went at 0.23 of one node).
  settle_start=$SECONDS
  quiet=0
  while ((quiet < 2 && SECONDS - settle_start < 600)); do
    t0=$(cpu_ticks "$HANGAR_PID" "$HANGAR2_PID")
    m0=$(machine_ticks)
    sleep 1
    busy=$(busy_share "$m0" "$(machine_ticks)")
    if (($(cpu_ticks "$HANGAR_PID" "$HANGAR2_PID") - t0 < 5)) && awk -v b="$busy" 'BEGIN { exit !(b < 10) }'; then
      quiet=$((quiet + 1))
    else
      quiet=0
    fi
  done
  log "  both nodes idle and the machine $(fmt "$busy" 0)% busy after $((SECONDS - settle_start)) s" \
    "(the new node's start-up jobs done, and s3s-fs's listing for them)"
  SMALL_H2_URL="$H2/api/v1/attachments/$SMALL_ID/small.bin"
  curl -sS -o "$WORK/small.out" -H "$AUTH" "$SMALL_H2_URL" && cmp -s "$WORK/small.out" "$SMALL" ||
    die "the second node does not serve the same 4 KiB"
  two=()
  two_c=()
  half=$((DOWN_CONNECTIONS / 2))
  for ((r = 1; r <= ROUNDS; r++)); do
    t0=$(cpu_ticks "$HANGAR_PID" "$HANGAR2_PID")
    wrk -t1 -c"$half" -d"$WRK_DURATION" -H "$AUTH" "$SMALL_H_URL" >"$WORK/wrk1.out" 2>&1 &
    w1=$!
    wrk -t1 -c"$half" -d"$WRK_DURATION" -H "$AUTH" "$SMALL_H2_URL" >"$WORK/wrk2.out" 2>&1 ||
      die "wrk failed: $(cat "$WORK/wrk2.out")"
    wait "$w1" || die "wrk failed: $(cat "$WORK/wrk1.out")"
    read -r total1 bad1 rps1 < <(wrk_field "$WORK/wrk1.out")
    read -r total2 bad2 rps2 < <(wrk_field "$WORK/wrk2.out")
    check_errors "two nodes, node 1, round $r" "$total1" "$bad1"
    check_errors "two nodes, node 2, round $r" "$total2" "$bad2"
    two+=("$(calc "$rps1 + $rps2")")
    two_c+=("$(us_per_req $(($(cpu_ticks "$HANGAR_PID" "$HANGAR2_PID") - t0)) $((total1 + total2)))")
    log "  round $r: $(fmt "$rps1" 0) + $(fmt "$rps2" 0) = $(fmt "${two[-1]}" 0) req/s ($(fmt "${two_c[-1]}" 0) µs CPU/req)"
  done
  TWO=$(median "${two[@]}")
  TWO_C=$(median "${two_c[@]}")
  TWO_R=$(calc "$TWO / $SD_H")
  stop_pid "$HANGAR2_PID" TERM
  HANGAR2_PID=""
  log "  median: two nodes $(fmt "$TWO" 0) req/s, one node $(fmt "$SD_H" 0) req/s, ratio $(fmt "$TWO_R" 2)"
fi

# ---------------------------------------------------------------------------------------------
# 4f. Peak RSS while uploading and downloading a RSS_GIB file
# ---------------------------------------------------------------------------------------------
RSS_LABEL="$RSS_GIB GiB"
RSS_VALUE=""
RSS_NOTE=""
status_kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$HANGAR_PID/status"; }
mib() { calc "$1 / 1024"; }
if ((RSS_GIB == 0)); then
  RSS_NOTE="skipped (RSS_GIB=0)"
  log "== peak RSS: $RSS_NOTE"
else
  need=$(((RSS_GIB + 5) * 1073741824))
  avail=$(free_bytes)
  if ((avail < need)); then
    RSS_NOTE="skipped: $((avail / 1073741824)) GiB free, needs $((need / 1073741824))"
    log "== peak RSS: $RSS_NOTE"
  else
    RSS_BYTES=$((RSS_GIB * 1073741824))
    log "== peak Hangar RSS while uploading (chunked, from /dev/zero) and downloading a $RSS_LABEL file"
    hwm0=$(status_kib VmHWM)
    log "  VmHWM before: $(fmt "$(mib "$hwm0")") MiB (peak since start, all tests so far); VmRSS now $(fmt "$(mib "$(status_kib VmRSS)")") MiB"
    if echo 5 >"/proc/$HANGAR_PID/clear_refs" 2>/dev/null; then
      log "  peak reset (clear_refs 5): VmHWM now $(fmt "$(mib "$(status_kib VmHWM)")") MiB"
    else
      log "  could not reset the peak; the figure below includes the earlier tests"
    fi
    read -r code secs < <(head -c "$RSS_BYTES" /dev/zero |
      curl -sS -o "$WORK/resp" -w '%{http_code} %{time_total}\n' -H 'Expect:' -H "$AUTH" \
        -H 'Content-Type: application/octet-stream' -X POST -T - "$H/uploads?name=ten.bin")
    [[ $code == 200 ]] || die "Hangar chunked upload answered $code: $(head -c 300 "$WORK/resp")"
    TEN_ID=$(cat "$WORK/resp")
    hwm_up=$(status_kib VmHWM)
    log "  upload: $(fmt "$(mbps "$RSS_BYTES" "$secs")") MB/s ($secs s); VmHWM after upload: $(fmt "$(mib "$hwm_up")") MiB"
    read -r code secs got < <(curl -sS -o /dev/null -w '%{http_code} %{time_total} %{size_download}\n' \
      -H "$AUTH" "$H/api/v1/attachments/$TEN_ID/ten.bin")
    [[ $code == 200 && $got == "$RSS_BYTES" ]] || die "Hangar download of ten.bin answered $code with $got bytes"
    hwm_down=$(status_kib VmHWM)
    log "  download: $(fmt "$(mbps "$RSS_BYTES" "$secs")") MB/s ($secs s); VmHWM after download: $(fmt "$(mib "$hwm_down")") MiB"
    # SPEC §12 says "concurrently": when the disk allows, download it again while uploading a
    # second copy (same bytes, so it is deduplicated: the temporary needs RSS_GIB while it lasts).
    if (($(free_bytes) >= RSS_BYTES + 5 * 1073741824)); then
      (curl -sS -o /dev/null -w '%{http_code} %{size_download}\n' -H "$AUTH" \
        "$H/api/v1/attachments/$TEN_ID/ten.bin" >"$WORK/conc-down") &
      down_pid=$!
      BG_PIDS+=("$down_pid")
      t0=$(date +%s.%N)
      code=$(head -c "$RSS_BYTES" /dev/zero |
        curl -sS -o "$WORK/resp" -w '%{http_code}' -H 'Expect:' -H "$AUTH" \
          -H 'Content-Type: application/octet-stream' -X POST -T - "$H/uploads?name=ten-2.bin" || true)
      wait "$down_pid" || true
      t1=$(date +%s.%N)
      [[ $code == 200 ]] || die "concurrent upload answered $code: $(head -c 300 "$WORK/resp")"
      read -r dcode dgot <"$WORK/conc-down"
      [[ $dcode == 200 && $dgot == "$RSS_BYTES" ]] || die "concurrent download answered $dcode with $dgot bytes"
      hwm_conc=$(status_kib VmHWM)
      log "  concurrent download + upload: $(fmt "$(calc "$t1 - $t0")") s; VmHWM after: $(fmt "$(mib "$hwm_conc")") MiB"
    else
      log "  (not enough free disk for the concurrent upload + download phase; skipped)"
    fi
    RSS_VALUE=$(mib "$(status_kib VmHWM)")
    log "  peak RSS during this test: $(fmt "$RSS_VALUE") MiB"
  fi
fi

# ---------------------------------------------------------------------------------------------
# 4g. Flame graphs of the 4 KiB paths (FLAME_DIR set), after every measurement so that perf's
#     sampling slows none of them
# ---------------------------------------------------------------------------------------------
if [[ -n $FLAME_DIR ]]; then
  for tool in perf inferno-collapse-perf inferno-flamegraph; do
    have "$tool" || die "FLAME_DIR needs $tool (perf: Debian's linux-perf; inferno: cargo install inferno)"
  done
  [[ $PROFILE == release ]] && log "  note: the release profile strips symbols; PROFILE=release-symbols keeps them"
  mkdir -p "$FLAME_DIR"
  # DWARF stacks: the release build keeps no frame pointers, so `-g` alone would stop at the
  # first frame of most stacks.
  flame() { # name command...
    local name=$1 out="$FLAME_DIR/$1-$BACKEND.svg"
    shift
    perf record -q -F 499 --call-graph dwarf,32768 -p "$HANGAR_PID" -o "$WORK/perf.data" \
      -- sleep "${WRK_DURATION%s}" >/dev/null 2>&1 &
    local perf_pid=$!
    "$@" >"$WORK/wrk.out" 2>&1 || die "wrk failed: $(cat "$WORK/wrk.out")"
    wait "$perf_pid" || die "perf record failed"
    # --no-inline: resolving inlined frames runs addr2line over the whole binary, for minutes.
    perf script --no-inline -i "$WORK/perf.data" 2>/dev/null | inferno-collapse-perf >"${out%.svg}.folded"
    inferno-flamegraph --title "Hangar ($BACKEND), $name, $(date -u +%Y-%m-%d)" \
      <"${out%.svg}.folded" >"$out"
    rm -f "$WORK/perf.data"
    log "  flame graph: $out"
  }
  log "== flame graphs (perf record -F 499 --call-graph dwarf during one more wrk run each)"
  flame download-4k wrk -t"$WRK_THREADS" -c"$DOWN_CONNECTIONS" -d"$WRK_DURATION" -H "$AUTH" "$SMALL_H_URL"
  flame upload-4k env BENCH_TARGET=hangar BENCH_TOKEN="$TOKEN" BENCH_RUN=flame BENCH_BODY_BYTES=4096 \
    wrk -t"$WRK_THREADS" -c"$UP_CONNECTIONS" -d"$WRK_DURATION" -s "$BENCH_DIR/upload.lua" "$H"
fi

# ---------------------------------------------------------------------------------------------
# Hangar's health after the runs
# ---------------------------------------------------------------------------------------------
kill -0 "$HANGAR_PID" 2>/dev/null || die "Hangar is no longer running"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$H/healthz" || true) == 200 ]] || PROBLEMS+=("/healthz not 200 after the runs")
log_errors=$(grep -c -E '\b(ERROR|WARN)\b' "$WORK/hangar.log" || true)
if ((log_errors > 0)); then
  PROBLEMS+=("Hangar logged $log_errors ERROR/WARN lines")
  log "Hangar logged $log_errors ERROR/WARN lines; the first ones:"
  # -m, not `| head`: with pipefail, grep killed by SIGPIPE would end the whole run.
  grep -m 5 -E '\b(ERROR|WARN)\b' "$WORK/hangar.log" || true
fi

# ---------------------------------------------------------------------------------------------
# 5. The table
# ---------------------------------------------------------------------------------------------
met_ge() { if (($(calc "$1 >= $2"))); then echo yes; else echo NO; fi; }
# Column widths count characters, not bytes ("≥" and "§" are two bytes in UTF-8).
pad() { # text width [right]
  local LC_ALL=C.UTF-8
  local n=$(($2 - ${#1}))
  ((n > 0)) || n=0
  if [[ ${3:-} == right ]]; then printf '%*s%s' "$n" '' "$1"; else printf '%s%*s' "$1" "$n" ''; fi
}
WIDTHS=(42 10 10 5 15 3)
row() {
  printf '| %s | %s | %s | %s | %s | %s |\n' "$(pad "$1" "${WIDTHS[0]}")" "$(pad "$2" "${WIDTHS[1]}" right)" \
    "$(pad "$3" "${WIDTHS[2]}" right)" "$(pad "$4" "${WIDTHS[3]}" right)" "$(pad "$5" "${WIDTHS[4]}")" \
    "$(pad "$6" "${WIDTHS[5]}")"
}
rule() {
  local w line="|"
  for w in "${WIDTHS[@]}"; do line+=$(printf -- '-%.0s' $(seq 1 $((w + 2))))"|"; done
  echo "$line"
}
echo
BACKEND_LABEL="SQLite + local disk"
[[ $BACKEND == postgres ]] && BACKEND_LABEL="PostgreSQL + local disk"
[[ $BACKEND == postgres-s3 ]] && BACKEND_LABEL="PostgreSQL + S3 (s3s-fs)"
echo "Hangar ($BACKEND_LABEL) vs nginx, medians of $ROUNDS round(s), $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo
row "figure" "Hangar" "nginx" "ratio" "SPEC §12 target" "met"
rule
row "$BIG_LABEL upload, SHA-256 + fsync (MB/s)" "$(fmt "$UP_H")" "$(fmt "$UP_N")" "$(fmt "$UP_R" 2)" "≥ 0.8" "$(met_ge "$UP_R" 0.8)"
row "$BIG_LABEL download (MB/s)" "$(fmt "$DOWN_H")" "$(fmt "$DOWN_N")" "$(fmt "$DOWN_R" 2)" "≥ 0.8" "$(met_ge "$DOWN_R" 0.8)"
row "4 KiB download, authenticated (req/s)" "$(fmt "$SD_H" 0)" "$(fmt "$SD_N" 0)" "$(fmt "$SD_R" 2)" "≥ 0.5" "$(met_ge "$SD_R" 0.5)"
if [[ -n $SU_VOID ]]; then su_met="void"; else su_met=$(met_ge "$SU_R" 0.5); fi
row "4 KiB upload, durable, $UP_CONNECTIONS clients (req/s)" "$(fmt "$SU_H" 0)" "$(fmt "$SU_N" 0)" "$(fmt "$SU_R" 2)" "≥ 0.5" "$su_met"
if [[ -n $RSS_VALUE ]]; then
  if (($(calc "$RSS_VALUE < 100"))); then rss_met=yes; else rss_met=NO; fi
  row "peak RSS, $RSS_LABEL up + down (MiB)" "$(fmt "$RSS_VALUE")" "-" "-" "< 100 MiB" "$rss_met"
else
  row "peak RSS, $RSS_LABEL up + down (MiB)" "-" "-" "-" "< 100 MiB" "-"
fi
if [[ $BACKEND == postgres-s3 ]]; then
  echo
  row "against the same S3 server" "Hangar" "S3" "ratio" "SPEC §12 target" "met"
  rule
  row "$BIG_LABEL upload (MB/s)" "$(fmt "$UP_H")" "$(fmt "$S3_UP")" "$(fmt "$S3_UP_R" 2)" "≥ 0.8" "$(met_ge "$S3_UP_R" 0.8)"
  row "$BIG_LABEL download (MB/s)" "$(fmt "$S3_VIA_H")" "$(fmt "$S3_DOWN")" "$(fmt "$S3_DOWN_R" 2)" "≥ 0.8" "$(met_ge "$S3_DOWN_R" 0.8)"
  row "$BIG_LABEL two-stage presigned PUT (MB/s)" "$(fmt "$TS_UP")" "$(fmt "$S3_UP")" "$(fmt "$TS_R" 2)" "S3's own speed" "$(met_ge "$TS_R" 0.9)"
  row "4 KiB upload, $UP_CONNECTIONS clients (req/s)" "$(fmt "$SU_H" 0)" "$(fmt "$S3_SMALL" 0)" "$(fmt "$S3_SMALL_R" 2)" "- (bounds it)" "-"
  if (($(nproc) >= 4)); then two_met=$(met_ge "$TWO_R" 1.6); else two_met="-"; fi
  row "4 KiB download, 2 nodes vs 1 (req/s)" "$(fmt "$TWO" 0)" "$(fmt "$SD_H" 0)" "$(fmt "$TWO_R" 2)" "≥ 1.6 (4+ CPUs)" "$two_met"
fi
echo
echo "CPU per request (user + system time of the server processes / requests, medians):"
echo "  4 KiB download: Hangar $(fmt "$SD_HC" 0) µs, nginx $(fmt "$SD_NC" 0) µs"
echo "  4 KiB upload:   Hangar $(fmt "$SU_HC" 0) µs, nginx $(fmt "$SU_NC" 0) µs"
[[ $BACKEND == postgres ]] && echo "  4 KiB upload behind Hangar: PostgreSQL $(fmt "$SU_PGC" 0) µs per upload"
[[ $BACKEND == postgres-s3 ]] && echo "  4 KiB upload behind Hangar: PostgreSQL $(fmt "$SU_PGC" 0) µs, s3s-fs $(fmt "$SU_S3C" 0) µs per upload; s3s-fs $(fmt "$S3_SMALL_C" 0) µs per direct 4 KiB PUT"
[[ $BACKEND == postgres-s3 ]] && echo "  4 KiB download on two nodes: $(fmt "$TWO_C" 0) µs (both nodes; PostgreSQL's and s3s-fs's own CPU not counted)"
[[ -z $RSS_NOTE ]] || echo "peak RSS: $RSS_NOTE"
if ((${#PROBLEMS[@]})); then
  echo "problems seen:"
  printf '  - %s\n' "${PROBLEMS[@]}"
else
  echo "no errors seen: every response checked was 2xx, Hangar logged no ERROR/WARN line"
fi
elapsed=$((SECONDS - STARTED))
echo "disk during the run: dd $BIG_LABEL, $DD_CACHE MB/s without fsync, $DD_SYNC MB/s with fsync (before the uploads)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "measurements done after $((elapsed / 60)) min $((elapsed % 60)) s"
