#!/usr/bin/env bash
# Previews per second for a 12-megapixel JPEG (SPEC §9.3): the whole preview set (decode with EXIF
# orientation, resize to 1024, 256 and 64, encode) on one thread and on every core, release build.
# Usage: bash bench/previews.sh [ROUNDS]   (default 20 sets per thread)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --locked -q -p hangar-media --example preview_bench -- "${1:-20}"
