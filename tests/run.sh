#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, builds flexo
# twice — optimised, and with AddressSanitizer + UBSan — and runs the whole
# ctest suite on both builds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash .ci/install-deps

jobs=$(nproc)
run_suite() {
  local dir=$1; shift
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 900)
}

echo "== optimised build" >&2
run_suite build -DCMAKE_BUILD_TYPE=Release
echo "== sanitizer build (ASan + UBSan)" >&2
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DFLEXO_SANITIZE=ON
