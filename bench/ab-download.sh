#!/usr/bin/env bash
# Two Hangar binaries side by side on the 4 KiB authenticated download: each serves the same 4 KiB
# file from its own data directory (on disk, under /var/tmp), and `wrk -t2 -c64` runs against one
# and then the other, ROUNDS times. Prints, per run, requests per second and the server's CPU time
# per request (from /proc/PID/stat, in nanoseconds): on a noisy shared machine, only a comparison
# made in the same minutes means anything. Needs wrk, curl and jq (bench/run.sh installs them).
#
#   bash bench/ab-download.sh OLD_BINARY NEW_BINARY [ROUNDS]    # D=4s sets each wrk run's length
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 BIN_A BIN_B [ROUNDS]" >&2; exit 2; }
A=$1; B=$2; R=${3:-5}; W=$(mktemp -d /var/tmp/ab.XXXX)
trap 'kill ${PID_a:-} ${PID_b:-} 2>/dev/null || true; rm -rf "$W"' EXIT
head -c 4096 /dev/urandom > $W/small.bin
start() { # name bin -> sets PID_name URL_name TOK_name
  local n=$1 bin=$2
  HANGAR_LOG=info "$bin" serve --listen 127.0.0.1:0 --data-dir $W/$n --admin-password adminpass123 > $W/$n.log 2>&1 &
  local pid=$!
  for i in $(seq 100); do grep -q "listening on" $W/$n.log && break; sleep 0.1; done
  local addr=$(grep -o "listening on [^ ]*" $W/$n.log | head -1 | awk '{print $3}' | tr -d '"')
  local h="http://$addr"
  curl -s -c $W/$n.jar -H 'content-type: application/json' -d '{"username":"admin","password":"adminpass123"}' $h/api/v1/auth/login >/dev/null
  local tok=$(curl -s -b $W/$n.jar -H "content-type: application/json" -d "{\"name\":\"ab\"}" $h/api/v1/me/tokens | jq -r .token)
  local id=$(curl -s -H "authorization: Bearer $tok" -H "content-type: application/octet-stream" --data-binary @$W/small.bin "$h/uploads?name=small.bin")
  eval "PID_$n=$pid URL_$n=$h/api/v1/attachments/$id/small.bin TOK_$n=$tok"
}
cpu() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' /proc/$1/stat; }
start a $A; start b $B
for n in a b; do eval "u=\$URL_$n t=\$TOK_$n"; test "$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $t" $u)" = 200 || { echo "$n not 200: $u"; cat $W/$n.log | tail; exit 1; }; done
for r in $(seq $R); do
  for n in a b; do
    eval "u=\$URL_$n t=\$TOK_$n p=\$PID_$n"
    c0=$(cpu $p); out=$(wrk -t2 -c64 -d${D:-8s} -H "authorization: Bearer $t" $u); c1=$(cpu $p)
    req=$(echo "$out" | awk '/requests in/ {print $1}'); rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    echo "round $r $n: $rps req/s  $(( (c1-c0)*10000000/req )) ns CPU/req"
  done
done
for n in a b; do echo "$n: $(grep -c hangar::access "$W/$n.log") access-log lines"; done
