#!/usr/bin/env bash
# A real S3-compatible server for tests: s3s-fs (it checks SigV4 signatures), built once per machine,
# run on 127.0.0.1 on a port the system picks, with a temporary root and fixed test credentials.
#
#   scripts/s3.sh install                     build s3s-fs unless this version is already installed
#   scripts/s3.sh start STATE_DIR [--watch PID]
#                                             start one (installing first if needed); STATE_DIR/env then
#                                             holds `export HANGAR_TEST_S3_…=…` lines, also printed; with
#                                             --watch, the server stops by itself when process PID ends
#   scripts/s3.sh stop STATE_DIR              stop it and remove its data
#   scripts/s3.sh pause STATE_DIR             stop it, keeping its data (for fault tests)
#   scripts/s3.sh resume STATE_DIR            start it again on the same directory and port
#
# s3s-fs lands in $HANGAR_TOOLS_DIR/bin (default ~/.cargo/bin), outside the repository, so that every
# worktree and CI run on the machine share one build.
set -euo pipefail

S3S_VERSION=0.14.1 # the newest that builds on the pinned toolchain (0.15+ wants Rust 1.96)
TOOLS_DIR=${HANGAR_TOOLS_DIR:-$HOME/.cargo}
BIN=$TOOLS_DIR/bin/s3s-fs
ACCESS_KEY=hangar-test-access
SECRET_KEY=hangar-test-secret-key
BUCKET=hangar-test

installed() {
  [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null)" = "s3s-fs $S3S_VERSION" ]
}

install() {
  installed && return 0
  mkdir -p "$TOOLS_DIR"
  # One build per machine even when several test runs start at once.
  exec 9>"$TOOLS_DIR/.s3s-fs-install.lock"
  flock 9
  if ! installed; then
    echo "building s3s-fs $S3S_VERSION into $TOOLS_DIR/bin (once per machine)…" >&2
    # Its own temporary target directory: the caller's CARGO_TARGET_DIR is for Hangar.
    env -u CARGO_TARGET_DIR cargo install s3s-fs --version "=$S3S_VERSION" --features binary \
      --locked --root "$TOOLS_DIR" --quiet >&2
  fi
  flock -u 9
  exec 9>&-
}

# Runs s3s-fs on STATE_DIR/root and port $2 (0: one the system picks) and prints the address it
# reports once it listens.
launch() {
  local state=$1 port=$2
  RUST_LOG=s3s_fs=info setsid "$BIN" --host 127.0.0.1 --port "$port" \
    --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$state/root" \
    >"$state/log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$state/pid"
  local address=""
  for _ in $(seq 1 300); do
    address=$(grep -so 'server is running at http://[0-9.:]*' "$state/log" | head -n1 | sed 's/.* at //') || true
    [ -n "$address" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "s3s-fs exited at start:" >&2
      cat "$state/log" >&2
      exit 1
    fi
    sleep 0.1
  done
  if [ -z "$address" ]; then
    echo "s3s-fs did not report its address within 30 s:" >&2
    cat "$state/log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
  fi
  echo "$address"
}

start() {
  local state=${1:?usage: s3.sh start STATE_DIR [--watch PID]}
  local watch=""
  if [ "${2:-}" = "--watch" ]; then watch=${3:?--watch needs a PID}; fi
  install
  mkdir -p "$state/root/$BUCKET"
  state=$(cd "$state" && pwd)
  local address
  address=$(launch "$state" 0)
  if [ -n "$watch" ]; then
    # Stops the server (and removes its data) once the process that asked for it is gone. The
    # server's process id is read then: `resume` may have started another.
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done
                    kill "$(cat "$2/pid")" 2>/dev/null; sleep 1; rm -rf "$2"' _ "$watch" "$state" \
      >/dev/null 2>&1 </dev/null &
  fi
  cat >"$state/env" <<EOF
export HANGAR_TEST_S3_ENDPOINT=$address
export HANGAR_TEST_S3_BUCKET=$BUCKET
export HANGAR_TEST_S3_ACCESS_KEY_ID=$ACCESS_KEY
export HANGAR_TEST_S3_SECRET_ACCESS_KEY=$SECRET_KEY
EOF
  cat "$state/env"
}

# Stops the server and waits until it is gone.
kill_server() {
  local state=$1 pid
  [ -f "$state/pid" ] || return 0
  pid=$(cat "$state/pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# For fault tests: stops the server, keeping its data; `resume` starts it again on the same port.
pause() {
  kill_server "${1:?usage: s3.sh pause STATE_DIR}"
}

resume() {
  local state=${1:?usage: s3.sh resume STATE_DIR}
  local port
  port=$(sed -n 's/^export HANGAR_TEST_S3_ENDPOINT=.*:\([0-9]*\)$/\1/p' "$state/env")
  launch "$state" "${port:?no port in $state/env}" >/dev/null
}

stop() {
  local state=${1:?usage: s3.sh stop STATE_DIR}
  kill_server "$state"
  rm -rf "$state"
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  pause) shift; pause "$@" ;;
  resume) shift; resume "$@" ;;
  *) echo "usage: $0 install | start STATE_DIR [--watch PID] | stop STATE_DIR | pause STATE_DIR | resume STATE_DIR" >&2; exit 2 ;;
esac
