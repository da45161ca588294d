#!/usr/bin/env bash
# Runs the README's curl walkthrough, exactly as written there, against a fresh server, so that the
# README cannot drift from what the server does. Needs curl and jq (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if ! command -v jq >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq jq) >/dev/null
  else
    echo "walkthrough: jq is missing" >&2
    exit 1
  fi
fi

# The server: HANGAR_TEST_SERVER_BIN when the caller built it already (scripts/test.sh passes the
# binary its `cargo test` built), else a debug build made here.
hangar=${HANGAR_TEST_SERVER_BIN:-}
if [ -z "$hangar" ]; then
  cargo build --quiet --locked -p hangar
  hangar="${CARGO_TARGET_DIR:-$root/target}/debug/hangar"
fi
work=$(mktemp -d)
log="$work/server.log"
password="walkthrough-$RANDOM-$RANDOM"
"$hangar" serve --listen 127.0.0.1:0 --data-dir "$work/data" --admin-password "$password" \
  --fetch-allow 127.0.0.1 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do
  grep -q "listening on" "$log" && break
  sleep 0.1
done
addr=$(grep -o 'listening on [0-9.:]*' "$log" | head -n1 | awk '{print $3}' || true)
[ -n "$addr" ] || { echo "walkthrough: the server did not start"; cat "$log"; exit 1; }

# Every ```sh block that follows a walkthrough marker in the README, in order, as one script.
awk '/<!-- walkthrough -->/{marked=1; next}
     marked && /^```sh$/{inside=1; marked=0; next}
     inside && /^```$/{inside=0; next}
     inside{print}' README.md >"$work/walkthrough.sh"
[ -s "$work/walkthrough.sh" ] || { echo "walkthrough: no walkthrough block in README.md"; exit 1; }

cd "$work"
export HANGAR="http://$addr" ADMIN_PASSWORD="$password"
if bash -euo pipefail "$work/walkthrough.sh" >"$work/out.txt" 2>&1; then
  [ -n "${WALKTHROUGH_VERBOSE:-}" ] && cat "$work/out.txt"
  echo "walkthrough: 1 passed, 0 failed"
else
  cat "$work/out.txt"
  echo "walkthrough: 0 passed, 1 failed"
  exit 1
fi
