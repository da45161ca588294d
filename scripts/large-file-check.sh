#!/usr/bin/env bash
# Uploads a large random file through POST /uploads with curl, checks that the answered fileChecksum is
# `sha256sum` of the file and that the download is byte-identical, and reports throughput and the
# server's peak resident memory (VmHWM from /proc). Usage: scripts/large-file-check.sh [SIZE_MIB]
# (default 1024). Needs curl and jq. Uses a release build and a temporary directory on the same disk.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
cargo build --quiet --release --locked -p hangar
work=$(mktemp -d "${TMPDIR:-/tmp}/hangar-large.XXXXXX")
password="large-$RANDOM-$RANDOM"
./target/release/hangar serve --listen 127.0.0.1:0 --data-dir "$work/data" --admin-password "$password" \
  >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do grep -q "listening on" "$work/server.log" && break; sleep 0.1; done
base="http://$(grep -o 'listening on [0-9.:]*' "$work/server.log" | head -n1 | awk '{print $3}')"

curl -sf -c "$work/cookies" -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$password\"}" "$base/api/v1/auth/login" >/dev/null
token=$(curl -sf -b "$work/cookies" -H 'Content-Type: application/json' -d '{"name":"large"}' \
  "$base/api/v1/me/tokens" | jq -r .token)

echo "generating ${size_mib} MiB of random data"
head -c "$((size_mib << 20))" /dev/urandom >"$work/big.bin"
expected=$(sha256sum "$work/big.bin" | awk '{print $1}')
rss_before=$(awk '/VmRSS/{print $2}' "/proc/$server/status")

start=$(date +%s.%N)
id=$(curl -sf -X POST -T "$work/big.bin" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/octet-stream' "$base/uploads?name=big.bin")
up_s=$(echo "$(date +%s.%N) - $start" | bc)
got=$(curl -sf -H "Authorization: Bearer $token" "$base/api/v1/attachments/$id" | jq -r .fileChecksum)
rss_upload=$(awk '/VmHWM/{print $2}' "/proc/$server/status")

start=$(date +%s.%N)
down=$(curl -sf -H "Authorization: Bearer $token" "$base/api/v1/attachments/$id/big.bin" | sha256sum | awk '{print $1}')
down_s=$(echo "$(date +%s.%N) - $start" | bc)
rss_peak=$(awk '/VmHWM/{print $2}' "/proc/$server/status")

printf 'file          %s MiB\n' "$size_mib"
printf 'sha256sum     %s\nfileChecksum  %s\ndownload      %s\n' "$expected" "$got" "$down"
printf 'upload        %.1f s (%.0f MB/s, durable, hashed)\n' "$up_s" "$(echo "$size_mib * 1.048576 / $up_s" | bc -l)"
printf 'download      %.1f s (%.0f MB/s, with sha256sum on the client)\n' "$down_s" "$(echo "$size_mib * 1.048576 / $down_s" | bc -l)"
printf 'server RSS    %s KiB at start, peak %s KiB after upload, peak %s KiB after download\n' \
  "$rss_before" "$rss_upload" "$rss_peak"
[ "$expected" = "$got" ] && [ "$expected" = "$down" ] || { echo "MISMATCH"; exit 1; }
[ "$rss_peak" -lt $((100 * 1024)) ] || { echo "peak RSS over 100 MiB"; exit 1; }
echo "large-file check: 1 passed, 0 failed"
