#!/usr/bin/env bash
# Measures webhook delivery: N chat messages posted as fast as one client can, each delivered to a local
# receiver; prints the posting rate, the time until the last delivery arrived, and the median and 95th
# percentile of event-to-delivery latency. Release build. Usage: scripts/webhook-throughput.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
command -v jq >/dev/null || { echo "needs jq"; exit 1; }
cargo build --quiet --release --locked -p hangar
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
# The receiver: records the arrival time of each delivery and its payload's createdUtc.
cat >"$work/rx.py" <<'PY'
import http.server, json, sys, time
out = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        created = json.loads(body)["payload"]["createdUtc"]
        out.write(f"{created} {int(time.time() * 1000)}\n")
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(server.server_address[1]))
server.serve_forever()
PY
# The receiver takes a free port from the system and says which.
python3 "$work/rx.py" "$work/rx.port" "$work/arrivals" &
for _ in $(seq 1 100); do [ -s "$work/rx.port" ] && break; sleep 0.05; done
port=$(cat "$work/rx.port")
password="bench-$RANDOM"
./target/release/hangar serve --listen 127.0.0.1:0 --data-dir "$work/data" --admin-password "$password" \
  --fetch-allow 127.0.0.1 >"$work/server.log" 2>&1 &
for _ in $(seq 1 100); do grep -q "listening on" "$work/server.log" && break; sleep 0.1; done
H="http://$(grep -o 'listening on [0-9.:]*' "$work/server.log" | awk '{print $3}')"
curl -sf -c "$work/cj" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$password\"}" "$H/api/v1/auth/login" >/dev/null
T=$(curl -sf -b "$work/cj" -H 'content-type: application/json' -d '{"name":"b"}' "$H/api/v1/me/tokens" | jq -r .token)
A=(-H "Authorization: Bearer $T" -H 'content-type: application/json')
APP=$(curl -sf "${A[@]}" -d '{"name":"bench"}' "$H/api/http/applications" | jq -r .id)
curl -sf "${A[@]}" -X PATCH -d '{"contextIdentifier":"global","rights":[{"rightCode":"Channel.ViewMessages","status":"GRANTED"}]}' \
  "$H/api/http/applications/id:$APP/authorizations/authorized-rights" >/dev/null
curl -sf "${A[@]}" -d "{\"name\":\"w\",\"endpoint\":{\"url\":\"http://127.0.0.1:$port/\"},\"subscriptions\":[{\"name\":\"m\",\"eventTypes\":[\"ChatMessage.Created\"]}]}" \
  "$H/api/http/applications/id:$APP/webhooks" >/dev/null
C=$(curl -sf "${A[@]}" -d '{"name":"bench","members":[]}' "$H/api/v1/channels" | jq -r .id)
start=$(date +%s%3N)
python3 - "$H" "$C" "$T" "$n" <<'PY'
import http.client, json, sys, urllib.parse
base, channel, token, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
u = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(u.hostname, u.port)
for i in range(n):
    conn.request("POST", f"/api/v1/channels/{channel}/messages", json.dumps({"text": f"m{i}"}),
                 {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = conn.getresponse(); r.read()
    assert r.status == 201, r.status
PY
posted=$(date +%s%3N)
while [ "$(wc -l <"$work/arrivals" 2>/dev/null || echo 0)" -lt "$n" ]; do
  sleep 0.1
  [ $(( $(date +%s%3N) - posted )) -lt 120000 ] || { echo "timed out"; break; }
done
done_at=$(date +%s%3N)
awk -v n="$n" -v s="$start" -v p="$posted" -v d="$done_at" '{print $2 - $1}' "$work/arrivals" | sort -n >"$work/lat"
echo "messages: $n; posted in $((posted - start)) ms ($(( n * 1000 / (posted - start + 1) ))/s)"
echo "all delivered $((done_at - start)) ms after the first post; deliveries received: $(wc -l <"$work/arrivals")"
echo "event-to-delivery latency ms: median $(awk '{a[NR]=$1} END{print a[int(NR/2)+1]}' "$work/lat"), p95 $(awk '{a[NR]=$1} END{print a[int(NR*0.95)]}' "$work/lat")"
