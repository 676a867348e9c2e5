#!/usr/bin/env bash
# bootstrap.sh — install qat's dependencies (Debian, idempotent) and build it into ./build.
#   ./scripts/bootstrap.sh            dependencies + release build
#   ./scripts/bootstrap.sh --bench    also python3-torch, for bench/compare.sh
#   ./scripts/bootstrap.sh --deps     dependencies only
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config libopenblas-openmp-dev libhdf5-dev libcmocka-dev
      libinih-dev fortunes gnuplot-nox python3)
build=1
for arg in "$@"; do
  case "$arg" in
    --bench) pkgs+=(python3-torch) ;;
    --deps) build=0 ;;
    *) echo "bootstrap.sh: unknown option '$arg' (use --bench or --deps)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "bootstrap: all dependencies present"
fi

if [ "$build" -eq 1 ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)"
  echo "bootstrap: built ./build/qat-train"
fi
