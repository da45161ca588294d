#!/usr/bin/env bash
# Checks the OpenAPI document (GET /api/openapi.json, SPEC §9.9) against the running server with an
# independent tool: schemathesis (PyPI) generates requests for every documented operation, valid and
# invalid, from the document itself, and checks that the server never fails (5xx) and that every
# answer's status, content type and body are the ones the document gives for that operation.
#
# schemathesis is installed once into a virtualenv under target/api-check (ignored by git). The
# server is a fresh debug build on 127.0.0.1 with a temporary data directory; the tool logs in as
# the administrator and uses a personal token (bearer), so every operation is reached as an admin.
# Bounded: a fixed seed, the coverage and fuzzing phases with few examples per operation, one worker:
# about half a minute on two cores (8 examples; 30 take about 90 s). Prints
# `api-check: 1 passed, 0 failed` (or `0 passed, 1 failed`).
#
# Both run in a network namespace of their own holding only loopback (when `unshare -n` is allowed
# and `ip` is there, as for root in CI), so that the generated URLs of uploads from a URL, webhooks
# and application endpoints cannot reach any other host. Without it, the operations that may
# connect elsewhere are left out (listed below).
#
# Environment: HANGAR_API_CHECK_EXAMPLES (default 8), HANGAR_API_CHECK_SEED (default 20261202),
# HANGAR_API_CHECK_VERBOSE (print the whole report); arguments go to `schemathesis run`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Installed (and the server built) outside the namespace, which has no way to the registries.
dir="$root/target/api-check"
venv="$dir/venv"
if [ -z "${HANGAR_API_CHECK_INSIDE:-}" ]; then
  mkdir -p "$dir"
  if ! command -v python3 >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv) >/dev/null
  fi
  if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv) >/dev/null
      python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'schemathesis>=4.3,<5' >&2
  fi
  # The server: HANGAR_TEST_SERVER_BIN when the caller built it already (scripts/test.sh), else a
  # debug build made here.
  if [ -z "${HANGAR_TEST_SERVER_BIN:-}" ]; then
    cargo build --quiet --locked -p hangar
    export HANGAR_TEST_SERVER_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/hangar"
  fi
  if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 \
    && unshare -n true 2>/dev/null; then
    exec unshare -n env HANGAR_API_CHECK_INSIDE=netns bash "$0" "$@"
  fi
  export HANGAR_API_CHECK_INSIDE=host
fi

# Operations left out, with the reason. schemathesis reuses values it saw in earlier answers (ids,
# usernames), so these would end the very credentials the run uses:
excluded=(
  # revokes a personal token: with the id listed by GET /api/v1/me/tokens, the run's own token
  --exclude-operation-id delete_api_v1_me_tokens_id
  # a new password, disabled or demoted: with the username `admin` from GET /api/v1/members, every
  # token of the administrator is revoked
  --exclude-operation-id patch_api_v1_members_username
)
if [ "$HANGAR_API_CHECK_INSIDE" = netns ]; then
  ip link set lo up
else
  echo "api-check: no network namespace (needs root and unshare): leaving out what may connect elsewhere" >&2
  # A generated http(s) URL in the JSON body is fetched by the server.
  excluded+=(--exclude-path '/api/v1/space/{space}/storage/{path}/upload')
  # Applications with an endpointUri (connectToSpace: InitPayload), and webhooks with an endpoint,
  # are sent requests by the server.
  excluded+=(--exclude-path-regex '^/api/http/applications')
fi

work=$(mktemp -d)
log="$work/server.log"
password="api-check-$RANDOM-$RANDOM-$RANDOM"
"$HANGAR_TEST_SERVER_BIN" serve --listen 127.0.0.1:0 --data-dir "$work/data" \
  --admin-password "$password" >"$log" 2>&1 &
server=$!
# The server's log stays in target/api-check/server.log for a look after a failure.
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; cp "$log" "$dir/server.log"; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do
  grep -q "listening on" "$log" && break
  sleep 0.1
done
addr=$(grep -o 'listening on [0-9.:]*' "$log" | head -n1 | awk '{print $3}' || true)
[ -n "$addr" ] || { echo "api-check: the server did not start"; cat "$log"; exit 1; }
base="http://$addr"

# A personal token of the administrator, made with a session of the README's login.
curl -sf -c "$work/cookies" -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$password\"}" "$base/api/v1/auth/login" >/dev/null
token=$(curl -sf -b "$work/cookies" -H 'Content-Type: application/json' -d '{"name":"api-check"}' \
  "$base/api/v1/me/tokens" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["token"])')

# Something of every kind, so that listings answer real objects (checked against their schemas)
# and schemathesis finds ids, names and paths to reuse in later requests.
call() { # METHOD PATH [JSON]
  curl -sf -X "$1" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    ${3:+-d "$3"} "$base$2"
}
json_field() { "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
call POST /api/v1/members '{"username":"alice","password":"alice-password","displayName":"Alice"}' >/dev/null
call POST /api/v1/spaces '{"id":"team","name":"Team","quotaBytes":1000000}' >/dev/null
call POST /api/v1/spaces/team/members '{"username":"alice"}' >/dev/null
curl -sf -X POST -H "Authorization: Bearer $token" -H 'Content-Type: text/plain' --data-binary 'hello' \
  "$base/api/v1/space/team/storage/ZG9jcy9oZWxsby50eHQ/upload" >/dev/null
attachment=$(curl -sf -X POST -H "Authorization: Bearer $token" -H 'Content-Type: text/plain' \
  --data-binary 'an attachment' "$base/uploads?name=notes.txt")
channel=$(call POST /api/v1/channels '{"name":"general","members":["alice"]}' | json_field id)
message=$(call POST "/api/v1/channels/$channel/messages" \
  "{\"text\":\"here it is\",\"attachments\":[{\"id\":\"$attachment\"}]}" | json_field messageId)
call POST /api/http/projects '{"key":"OPS","name":"Operations","members":["alice"]}' >/dev/null
call POST /api/http/projects/key:OPS/planning/issues "{\"title\":\"Broken\",\"attachments\":[{\"id\":$attachment}]}" >/dev/null
share=$(call POST /api/v1/share-links "{\"attachmentId\":$attachment,\"maxDownloads\":1000}" | json_field url)
share_token=${share##*/}
share=$(call GET /api/v1/share-links | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
call POST /api/v1/share-links '{"spaceId":"team","pathId":"ZG9jcy9oZWxsby50eHQ"}' >/dev/null
app=$(call POST /api/http/applications '{"name":"CI bot"}' | json_field id)
call POST "/api/http/applications/id:$app/webhooks" \
  '{"name":"files","endpoint":{"url":"https://hooks.invalid/x"},"subscriptions":[{"name":"s","eventTypes":["StorageFile.Created"]}]}' >/dev/null
permanent=$(call POST "/api/http/applications/id:$app/permanent-tokens" '{"name":"deploy","scope":"**"}' | json_field id)
webhook=$(call GET "/api/http/applications/id:$app/webhooks" | "$venv/bin/python" -c \
  'import json,sys; w=json.load(sys.stdin)["data"][0]; print(w["id"], w["subscriptions"][0]["id"])')
subscription=${webhook#* }
webhook=${webhook% *}

# Path parameters take one of these real values half of the time (a schemathesis dictionary), so that
# operations on one thing reach it rather than answering 404 to every made-up id.
cat >"$work/schemathesis.toml" <<TOML
[dictionaries]
app = { values = ["id:$app"] }
space = { values = ["team"] }
path = { values = ["ZG9jcy9oZWxsby50eHQ", "ZG9jcw"] }
channel = { values = ["$channel"] }
message = { values = ["$message"] }
project = { values = ["key:OPS"] }
issue = { values = ["key:OPS-T-1"] }
id = { values = ["$attachment", "$share"] }
name = { values = ["notes.txt"] }
username = { values = ["alice"] }
webhook = { values = ["$webhook"] }
sub = { values = ["$subscription"] }
token = { values = ["$share_token", "$permanent"] }

[parameters]
TOML
for p in app space path channel message project issue id name username webhook sub token; do
  echo "\"path.$p\" = { dictionary = \"$p\", probability = 0.5 }" >>"$work/schemathesis.toml"
done

status=0
# The hooks teach schemathesis to send tus chunks (application/offset+octet-stream).
# Run from the temporary directory: schemathesis keeps a cache of past failures (.schemathesis/),
# which must neither land in the source tree nor make one run depend on another.
(cd "$work" && PYTHONPATH="$root/scripts" SCHEMATHESIS_HOOKS=api_check_hooks "$venv/bin/schemathesis" --no-color --config-file "$work/schemathesis.toml" run "$base/api/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases coverage,fuzzing \
  --max-examples "${HANGAR_API_CHECK_EXAMPLES:-8}" \
  --seed "${HANGAR_API_CHECK_SEED:-20261202}" \
  --workers 1 \
  --request-timeout 20 \
  --generation-database none \
  "${excluded[@]}" "$@") >"$work/report.txt" 2>&1 || status=$?
if [ "$status" = 0 ]; then
  [ -n "${HANGAR_API_CHECK_VERBOSE:-}" ] && cat "$work/report.txt"
  tail -n 5 "$work/report.txt"
  echo "api-check: 1 passed, 0 failed"
else
  cat "$work/report.txt"
  grep -E ' (ERROR|WARN) ' "$log" | tail -n 40 || true
  echo "api-check: 0 passed, 1 failed"
  exit 1
fi
