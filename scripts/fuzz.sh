#!/usr/bin/env bash
# Runs every fuzz target under fuzz/ for SECONDS each (default 20), JOBS at a time (default 1).
# Installs cargo-fuzz when missing. Works on stable Rust: no sanitizer (-s none), and
# RUSTC_BOOTSTRAP=1 for the one unstable flag libFuzzer's instrumentation needs.
# Usage: scripts/fuzz.sh [SECONDS] [JOBS]     e.g. scripts/fuzz.sh 600 2   (ten minutes each)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-20}
jobs=${2:-1}
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cargo fuzz build -s none
logs=${FUZZ_LOGS:-$(mktemp -d)}
targets=$(cargo fuzz list)
failed=0
passed=0
run() {
  local target=$1
  mkdir -p "corpus/$target"
  if cargo fuzz run -s none "$target" "corpus/$target" -- -max_total_time="$seconds" -print_final_stats=1 \
      >"$logs/$target.log" 2>&1; then
    echo "fuzz $target: clean for ${seconds}s ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$logs/$target.log" | awk '{print $2}') runs)"
  else
    echo "fuzz $target: FAILED, see $logs/$target.log"
    tail -n 30 "$logs/$target.log"
    return 1
  fi
}
pids=()
for target in $targets; do
  run "$target" &
  pids+=($!)
  if [ "${#pids[@]}" -ge "$jobs" ]; then
    if wait "${pids[0]}"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do
  if wait "$pid"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
