#!/usr/bin/env bash
# ffmpeg for the video-poster test (crates/hangar/tests/previews.rs): installs Debian's `ffmpeg`
# (without recommends: about 55 MiB to download, half a minute) when it is not on the PATH. Idempotent:
# does nothing when ffmpeg is there. Without it (no root, no apt-get) the poster test says so and skips.
set -euo pipefail
if command -v ffmpeg >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ffmpeg is not installed and cannot be installed here: the video-poster test will skip" >&2
  exit 0
fi
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg) >&2
