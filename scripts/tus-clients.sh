#!/usr/bin/env bash
# Installs the standard tus clients that tests/tus.rs drives against the server: tuspy (PyPI package
# `tuspy`, module `tusclient`) in a virtualenv and tus-js-client (npm) run with Debian's nodejs, both
# under target/tus-clients (ignored by git). Idempotent: what is already there is not installed again.
# Prints the two variables the tests read, for `eval`:
#   HANGAR_TUS_PYTHON        the virtualenv's python, which imports tusclient
#   HANGAR_TUS_NODE_MODULES  a node_modules directory holding tus-js-client
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${HANGAR_TUS_CLIENTS_DIR:-$PWD/target/tus-clients}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

apt_install() {
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >/dev/null
  else
    echo "tus-clients.sh: $* missing and no apt-get to install it" >&2
    exit 1
  fi
}

# Python with venv, then tuspy in its own virtualenv.
if ! command -v python3 >/dev/null 2>&1; then apt_install python3 python3-venv; fi
venv="$dir/venv"
if ! "$venv/bin/python" -c 'import tusclient' >/dev/null 2>&1; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'tuspy>=1.0,<2' >&2
fi

# Node with npm, then tus-js-client in a node_modules of its own.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then apt_install nodejs npm; fi
js="$dir/js"
if [ ! -f "$js/node_modules/tus-js-client/package.json" ]; then
  mkdir -p "$js"
  [ -f "$js/package.json" ] || echo '{"private": true}' > "$js/package.json"
  npm install --prefix "$js" --silent --no-audit --no-fund 'tus-js-client@^4' >&2
fi

echo "export HANGAR_TUS_PYTHON=$venv/bin/python"
echo "export HANGAR_TUS_NODE_MODULES=$js/node_modules"
