#!/usr/bin/env bash
# A throwaway clamd for the scanning tests (SPEC §9.6): installs Debian's `clamav-daemon` when no
# `clamd` is found, then starts one in a new temporary directory, listening on 127.0.0.1 on a free
# port, as the unprivileged `clamav` user when run as root. There is no network for signature
# updates (and no freshclam here): its database is one `.hdb` line written by this script, the MD5
# and size of the EICAR test string, so it loads in a second or two and detects exactly that file.
# StreamMaxLength is 1 MiB, so that a test can pass clamd's size limit with a small file.
#
#   scripts/clamd.sh start [--watch PID]   prints `export HANGAR_TEST_CLAMD=127.0.0.1:PORT` and
#                                          `export HANGAR_TEST_CLAMD_DIR=…` (eval it; clamd also
#                                          listens on the Unix socket DIR/clamd.sock); with --watch,
#                                          clamd stops by itself once process PID has ended
#   scripts/clamd.sh stop DIR              stops the clamd of DIR and removes DIR
set -euo pipefail

# The EICAR anti-virus test file (68 bytes): harmless, and every scanner is meant to flag it.
EICAR='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'

find_clamd() {
  if command -v clamd >/dev/null 2>&1; then
    command -v clamd
  elif [ -x /usr/sbin/clamd ]; then
    echo /usr/sbin/clamd
  else
    return 1
  fi
}

install_clamd() {
  if find_clamd >/dev/null; then
    return
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "clamd is not installed and cannot be installed here: install the clamav-daemon package" >&2
    exit 1
  fi
  echo "installing clamd (Debian's clamav-daemon package)" >&2
  # No service is started by the package (policy-rc.d): this script runs its own clamd, and the
  # packaged freshclam could not reach the internet anyway.
  local policy_made=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    policy_made=1
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clamav-daemon) >&2
  if [ -n "$policy_made" ]; then rm -f /usr/sbin/policy-rc.d; fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Whether clamd on PORT answers `zPING` with PONG.
pong() {
  local reply=""
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'zPING\0' >&3
  IFS= read -r -d '' -t 5 reply <&3 || true
  exec 3<&- 3>&-
  [ "$reply" = "PONG" ]
}

start() {
  local watch=""
  if [ "${1:-}" = "--watch" ]; then
    watch="${2:?--watch needs a process id}"
  fi
  install_clamd
  local bin dir port tries=0 md5
  bin="$(find_clamd)"
  dir="$(mktemp -d "${TMPDIR:-/tmp}/hangar-clamd.XXXXXX")"
  mkdir -p "$dir/db" "$dir/tmp"
  md5="$(printf '%s' "$EICAR" | md5sum | cut -d' ' -f1)"
  printf '%s:%s:Hangar.Test.EICAR\n' "$md5" "${#EICAR}" >"$dir/db/hangar-test.hdb"
  while :; do
    port=$((20000 + RANDOM % 40000))
    tries=$((tries + 1))
    if ! port_in_use "$port"; then
      break
    fi
    if [ "$tries" -ge 20 ]; then
      echo "cannot find a free port for clamd" >&2
      exit 1
    fi
  done
  cat >"$dir/clamd.conf" <<EOF
Foreground yes
TCPSocket $port
TCPAddr 127.0.0.1
LocalSocket $dir/clamd.sock
LocalSocketMode 666
DatabaseDirectory $dir/db
TemporaryDirectory $dir/tmp
PidFile $dir/clamd.pid
LogFile $dir/clamd.log
LogTime yes
StreamMaxLength 1M
MaxThreads 4
EOF
  if [ "$(id -u)" = 0 ]; then
    chown -R clamav: "$dir"
  fi
  # Detached, so that it outlives this script; its PidFile names it for `stop`.
  setsid bash -c "$(printf '%q ' "$0") run $(printf '%q' "$bin") $(printf '%q' "$dir")" \
    </dev/null >"$dir/stdout.log" 2>&1 &
  tries=0
  until pong "$port" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 240 ]; then
      cat "$dir/stdout.log" "$dir/clamd.log" >&2 2>/dev/null || true
      echo "clamd did not answer PING within 60 s" >&2
      stop "$dir"
      exit 1
    fi
    sleep 0.25
  done
  if [ -n "$watch" ]; then
    # Stops clamd once the process that asked for it has ended (a test binary, a CI run).
    setsid bash -c "while kill -0 $watch 2>/dev/null; do sleep 1; done; bash '$0' stop '$dir'" \
      </dev/null >/dev/null 2>&1 &
  fi
  echo "export HANGAR_TEST_CLAMD=127.0.0.1:$port"
  echo "export HANGAR_TEST_CLAMD_DIR=$dir"
}

# The detached half of `start`: clamd in the foreground, as `clamav` when we are root.
run() {
  local bin="$1" dir="$2"
  if [ "$(id -u)" = 0 ]; then
    exec runuser -u clamav -- "$bin" --config-file="$dir/clamd.conf"
  fi
  exec "$bin" --config-file="$dir/clamd.conf"
}

stop() {
  local dir="${1:?stop needs the directory of the clamd}" pid tries=0
  if [ -f "$dir/clamd.pid" ]; then
    pid="$(cat "$dir/clamd.pid")"
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
      while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 50 ]; do
        sleep 0.1
        tries=$((tries + 1))
      done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 start [--watch PID] | stop DIR" >&2; exit 2 ;;
esac
