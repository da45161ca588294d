#!/usr/bin/env bash
# A throwaway PostgreSQL for tests: installs Debian's `postgresql` package when no `initdb` is found,
# then starts a cluster in a new temporary directory, listening on 127.0.0.1 on a free port with
# trust authentication, as the `postgres` system user when run as root (initdb refuses root).
#
#   scripts/postgres.sh start [--durable] [--watch PID]
#                                             prints `export HANGAR_TEST_PG_URL=…` and
#                                             `export HANGAR_TEST_PG_DIR=…` (eval it); with --watch,
#                                             the cluster stops by itself once process PID has ended.
#                                             A test cluster does not wait for the disk (fsync off);
#                                             --durable keeps PostgreSQL's own defaults (fsync,
#                                             synchronous commits, full page writes), as a server
#                                             in production runs: for the benchmarks
#   scripts/postgres.sh stop DIR              stops the cluster in DIR and removes DIR
#   scripts/postgres.sh pause DIR             stops the server of the cluster in DIR (a clean, fast
#                                             shutdown), keeping its data: for fault tests
#   scripts/postgres.sh resume DIR PORT       starts that server again on PORT
set -euo pipefail

find_bin() {
  local dir
  if command -v initdb >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return
  fi
  for dir in /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ]; then
      echo "$dir"
      return
    fi
  done
  return 1
}

install_postgres() {
  if find_bin >/dev/null; then
    return
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL (initdb) is not installed and cannot be installed here: install the postgresql package" >&2
    exit 1
  fi
  echo "installing PostgreSQL (Debian's postgresql package)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
}

# Runs a command as the cluster's owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  local watch="" durable=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --durable) durable=1; shift ;;
      --watch) watch="${2:?--watch needs a process id}"; shift 2 ;;
      *) echo "start: unknown option $1" >&2; exit 2 ;;
    esac
  done
  install_postgres
  local bin dir port tries=0
  bin="$(find_bin)"
  dir="$(mktemp -d "${TMPDIR:-/tmp}/hangar-pg.XXXXXX")"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
  fi
  as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
  }
  cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 400
EOF
  if [ -z "$durable" ]; then
    # A test cluster: nothing in it must survive a crash, so it does not wait for the disk.
    cat >>"$dir/data/postgresql.conf" <<EOF
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  fi
  while :; do
    port=$((20000 + RANDOM % 40000))
    tries=$((tries + 1))
    if port_in_use "$port"; then
      continue
    fi
    if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port" -w -t 60 start >/dev/null 2>&1; then
      break
    fi
    if [ "$tries" -ge 10 ]; then
      cat "$dir/server.log" >&2 || true
      echo "cannot start PostgreSQL" >&2
      exit 1
    fi
  done
  if [ -n "$watch" ]; then
    # Stops the cluster once the process that asked for it has ended (a test binary).
    setsid bash -c "while kill -0 $watch 2>/dev/null; do sleep 1; done; bash '$0' stop '$dir'" \
      </dev/null >/dev/null 2>&1 &
  fi
  echo "export HANGAR_TEST_PG_URL=postgres://postgres@127.0.0.1:$port/postgres"
  echo "export HANGAR_TEST_PG_DIR=$dir"
}

stop() {
  local dir="${1:?stop needs the directory of the cluster}" bin
  bin="$(find_bin)"
  if [ -d "$dir/data" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

pause() {
  local dir="${1:?pause needs the directory of the cluster}" bin
  bin="$(find_bin)"
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
}

resume() {
  local dir="${1:?resume needs the directory of the cluster}" port="${2:?resume needs the port}" bin
  bin="$(find_bin)"
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port" -w -t 60 start >/dev/null
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  pause) shift; pause "$@" ;;
  resume) shift; resume "$@" ;;
  *) echo "usage: $0 start [--durable] [--watch PID] | stop DIR | pause DIR | resume DIR PORT" >&2; exit 2 ;;
esac
