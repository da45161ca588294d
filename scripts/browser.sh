#!/usr/bin/env bash
# Installs what the web UI's browser tests (crates/hangar/tests/web_ui.rs) need: Debian's chromium and
# Playwright for Python (PyPI) in a virtualenv under target/browser. Playwright's own browser download
# (`playwright install`) is never run: the tests launch Debian's binary. Idempotent.
# Prints the variables the tests read, for `eval`:
#   HANGAR_BROWSER_PYTHON  the virtualenv's python, which imports playwright
#   HANGAR_CHROMIUM        the browser binary
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${HANGAR_BROWSER_DIR:-$PWD/target/browser}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

apt_install() {
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@") >/dev/null
  else
    echo "browser.sh: $* missing and no apt-get to install it" >&2
    exit 1
  fi
}

chromium="${HANGAR_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  apt_install chromium fonts-dejavu-core
  chromium=/usr/bin/chromium
fi
if ! command -v python3 >/dev/null 2>&1; then apt_install python3 python3-venv; fi
venv="$dir/venv"
if ! "$venv/bin/python" -c 'import playwright.sync_api' >/dev/null 2>&1; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'playwright>=1.40,<2' >&2
fi

echo "export HANGAR_BROWSER_PYTHON=$venv/bin/python"
echo "export HANGAR_CHROMIUM=$chromium"
