#!/usr/bin/env bash
# test.sh — build and run the whole test suite, in release and under ASan+UBSan.
#   ./scripts/test.sh            both builds
#   ./scripts/test.sh --release  release only (faster, for development)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --deps
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DQAT_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")
if [ "${1:-}" != "--release" ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DQAT_SANITIZE=ON -DQAT_WERROR=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j"$jobs")
fi
