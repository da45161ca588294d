#!/usr/bin/env bash
# Checks the deployment kit of deploy/: the systemd unit passes `systemd-analyze verify` and its
# offline security review, and the reverse-proxy examples run in front of a real Hangar and pass
# large transfers through them: nginx (deploy/nginx/hangar.conf, with TLS) carries a 1 GiB upload, a full download
# and Range downloads; Caddy (deploy/caddy/Caddyfile, with its internal CA) a smaller one. The
# example files are used as written, with only names, ports and certificate paths replaced.
# Installs nginx, Caddy, curl, jq, bc, python3 and openssl when missing. Usage: scripts/deploy-check.sh [SIZE_MIB]
# (default 1024 for nginx; Caddy gets a quarter of it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
size_mib=${1:-1024}

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v bc >/dev/null 2>&1 || need+=(bc)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "deploy-check: installing ${need[*]}" >&2
  # The packages' own services are not wanted: policy-rc.d keeps them from starting.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# The server: HANGAR_TEST_SERVER_BIN when the caller built it already (scripts/test.sh), else a
# debug build made here.
hangar=${HANGAR_TEST_SERVER_BIN:-}
if [ -z "$hangar" ]; then
  cargo build --quiet --locked -p hangar
  hangar="${CARGO_TARGET_DIR:-$root/target}/debug/hangar"
fi
work=$(mktemp -d)
chmod 0755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # FILE PATTERN
  for _ in $(seq 1 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "deploy-check: '$2' never appeared in $1" >&2; cat "$1" >&2; return 1
}

failures=0
passed=0
check() { # NAME EXPECTED GOT
  if [ "$2" = "$3" ]; then
    passed=$((passed + 1))
  else
    echo "deploy-check: FAIL $1: expected '$2', got '$3'" >&2
    failures=$((failures + 1))
  fi
}

# The systemd unit: valid, and hardened (systemd's exposure score, 0 best to 10 worst, at most 2).
if command -v systemd-analyze >/dev/null 2>&1; then
  sed "s#/usr/local/bin/hangar#$hangar#" deploy/systemd/hangar.service >"$work/hangar.service"
  if systemd-analyze verify "$work/hangar.service" >"$work/verify.log" 2>&1 && ! [ -s "$work/verify.log" ]; then
    passed=$((passed + 1))
  else
    echo "deploy-check: FAIL systemd-analyze verify:" >&2; cat "$work/verify.log" >&2
    failures=$((failures + 1))
  fi
  exposure=$(systemd-analyze security --offline=true "$work/hangar.service" 2>/dev/null \
    | awk '/Overall exposure level/{print $(NF-2)}')
  check "systemd exposure at most 2" yes "$(echo "${exposure:-10} <= 2" | bc | sed 's/1/yes/;s/0/no/')"
else
  echo "deploy-check: systemd-analyze is not installed: the unit file was not checked" >&2
fi

# Hangar, on the loopback address the examples point at, trusting the local proxy.
hangar_port=$(free_port)
password="proxy-$RANDOM-$RANDOM"
nginx_port=$(free_port)
"$hangar" serve --listen "127.0.0.1:$hangar_port" --data-dir "$work/data" --admin-password "$password" \
  --public-url "https://localhost:$nginx_port" --trusted-proxies 127.0.0.1/32 \
  --max-file-size $(((size_mib + 1) << 20)) >"$work/hangar.log" 2>&1 &
pids+=($!)
wait_for "$work/hangar.log" "listening on"

# A self-signed certificate for nginx.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1

# nginx: the example as written, inside a minimal main configuration of its own.
mkdir -p "$work/nginx/tmp"
chmod 0777 "$work/nginx/tmp"
sed -e "s#127.0.0.1:8080#127.0.0.1:$hangar_port#" \
    -e "s#listen 80;#listen 127.0.0.1:$(free_port);#" \
    -e "/listen \[::\]/d" \
    -e "s#listen 443 ssl http2;#listen 127.0.0.1:$nginx_port ssl http2;#" \
    -e "s#files.example.com#localhost#" \
    -e "s#/etc/letsencrypt/live/localhost/fullchain.pem#$work/cert.pem#" \
    -e "s#/etc/letsencrypt/live/localhost/privkey.pem#$work/key.pem#" \
    deploy/nginx/hangar.conf >"$work/nginx/hangar.conf"
grep -q "127.0.0.1:$nginx_port ssl" "$work/nginx/hangar.conf" || { echo "deploy-check: nginx example changed shape" >&2; exit 1; }
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 256; }
http {
    access_log $work/nginx/access.log;
    client_body_temp_path $work/nginx/tmp/body;
    proxy_temp_path $work/nginx/tmp/proxy;
    fastcgi_temp_path $work/nginx/tmp/fastcgi;
    uwsgi_temp_path $work/nginx/tmp/uwsgi;
    scgi_temp_path $work/nginx/tmp/scgi;
    include $work/nginx/hangar.conf;
}
CONF
"$nginx_bin" -t -c "$work/nginx/nginx.conf" -p "$work/nginx" >/dev/null 2>&1 \
  || { "$nginx_bin" -t -c "$work/nginx/nginx.conf" -p "$work/nginx"; exit 1; }
"$nginx_bin" -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' &
pids+=($!)
for _ in $(seq 1 100); do curl -skf "https://localhost:$nginx_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

# Caddy: the example as written, with its internal CA instead of ACME, no admin endpoint.
caddy_port=$(free_port)
mkdir -p "$work/caddy"
{
  printf '{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\thttp_port %s\n\thttps_port %s\n}\n\n' "$(free_port)" "$caddy_port"
  sed -e "s#127.0.0.1:8080#127.0.0.1:$hangar_port#" -e "s#^files.example.com {#localhost:$caddy_port {#" deploy/caddy/Caddyfile
} >"$work/caddy/Caddyfile"
grep -q "^localhost:$caddy_port {" "$work/caddy/Caddyfile" || { echo "deploy-check: Caddy example changed shape" >&2; exit 1; }
XDG_DATA_HOME="$work/caddy/data" XDG_CONFIG_HOME="$work/caddy/config" HOME="$work/caddy" \
  caddy run --config "$work/caddy/Caddyfile" --adapter caddyfile >"$work/caddy/caddy.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -skf "https://localhost:$caddy_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

# A token, through nginx.
nginx="https://localhost:$nginx_port"
curl -skf -c "$work/cookies" -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$password\"}" "$nginx/api/v1/auth/login" >/dev/null
token=$(curl -skf -b "$work/cookies" -H 'Content-Type: application/json' -H "Origin: $nginx" \
  -d '{"name":"proxy"}' "$nginx/api/v1/me/tokens" | jq -r .token)
[ -n "$token" ] && [ "$token" != null ] || { echo "deploy-check: no token" >&2; exit 1; }

transfer() { # NAME BASE SIZE_MIB
  local name=$1 base=$2 mib=$3 file="$work/$1.bin" id expected got start
  head -c "$((mib << 20))" /dev/urandom >"$file"
  expected=$(sha256sum "$file" | awk '{print $1}')
  start=$(date +%s.%N)
  id=$(curl -skf --http2 -X POST -T "$file" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/octet-stream' "$base/uploads?name=$name.bin") || id="upload failed"
  echo "deploy-check: $name: ${mib} MiB up in $(echo "$(date +%s.%N) - $start" | bc) s" >&2
  got=$(curl -skf -H "Authorization: Bearer $token" "$base/api/v1/attachments/$id" | jq -r .fileChecksum || true)
  check "$name upload checksum" "$expected" "$got"
  start=$(date +%s.%N)
  got=$(curl -skf -H "Authorization: Bearer $token" "$base/api/v1/attachments/$id/$name.bin" | sha256sum | awk '{print $1}')
  echo "deploy-check: $name: ${mib} MiB down in $(echo "$(date +%s.%N) - $start" | bc) s" >&2
  check "$name full download" "$expected" "$got"
  # Range requests: the first KiB, one in the middle, the last bytes; status 206 and the exact bytes.
  local size=$((mib << 20)) from to
  for range in "0-1023" "$((size / 2))-$((size / 2 + 65535))" "$((size - 100))-$((size - 1))"; do
    from=${range%-*} to=${range#*-}
    got=$(curl -sk -o "$work/part" -w '%{http_code}' -r "$range" -H "Authorization: Bearer $token" \
      "$base/api/v1/attachments/$id/$name.bin")
    check "$name range $range status" 206 "$got"
    check "$name range $range bytes" "$(tail -c "+$((from + 1))" "$file" | head -c "$((to - from + 1))" | sha256sum)" \
      "$(sha256sum <"$work/part")"
  done
}

transfer nginx "$nginx" "$size_mib"
transfer caddy "https://localhost:$caddy_port" "$((size_mib / 4 > 0 ? size_mib / 4 : 1))"

# The proxy's client address reaches Hangar's access log through X-Forwarded-For from a trusted peer,
# and nginx's request id is Hangar's.
nginx_id=$(curl -skf -D - -o /dev/null "$nginx/healthz" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-request-id"{print $2}')
check "request id passed through nginx" 32 "${#nginx_id}"

echo "deploy-check: $passed passed, $failures failed"
[ "$failures" = 0 ]
