#!/usr/bin/env bash
# compare.sh — qat's training step against the same GPT in PyTorch (CPU), same config and threads.
#
#   bench/compare.sh CONFIG.ini [--steps N] [--warmup W] [--threads N] [--rounds R]
#                    [--set section.key=value]...
#
# Each round runs, one after the other: bench_train (qat); bench/torch_gpt.py with the system's
# default BLAS; bench/torch_gpt.py with LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp
# (the OpenMP OpenBLAS: the pthread build oversubscribes the cores next to PyTorch's own OpenMP,
# ../shared/PERF_NOTES.md). Ratios are taken within a round, so a change of the machine's load
# between rounds does not bias them. A run whose process kept fewer than 90% of its threads busy
# was disturbed by other load; its round is marked '*' and left out of the "quiet" median.
#
# Environment:
#   QAT_BENCH_BUILD        build directory (default ./build-bench; configured if missing)
#   PYTHON                 default /usr/bin/python3, the interpreter Debian's python3-torch is for
#   QAT_BENCH_PTHREAD_BLAS optional directory holding the pthread OpenBLAS (libblas.so.3 and
#                          libopenblas.so.0) for a third PyTorch row; docs/BENCH.md shows how to
#                          unpack one without installing it
# Full logs stay in a temporary directory, named in the first line of output.
set -euo pipefail

usage() {
  sed -n '4,5p' "$0" | sed 's/^# *//' >&2
  exit 2
}

root=$(cd "$(dirname "$0")/.." && pwd)
build=${QAT_BENCH_BUILD:-$root/build-bench}
python=${PYTHON:-/usr/bin/python3}
omp_blas_dir=/usr/lib/x86_64-linux-gnu/openblas-openmp
pthread_blas_dir=${QAT_BENCH_PTHREAD_BLAS:-}

config="" steps=10 warmup=2 threads="" rounds=1
sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=${2:?}; shift 2 ;;
    --warmup) warmup=${2:?}; shift 2 ;;
    --threads) threads=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --set) sets+=("${2:?}"); shift 2 ;;
    --set=*) sets+=("${1#--set=}"); shift ;;
    -h|--help) usage ;;
    -*) echo "compare.sh: unknown option '$1'" >&2; usage ;;
    *)
      if [ -n "$config" ]; then echo "compare.sh: more than one config" >&2; usage; fi
      config=$1; shift ;;
  esac
done
[ -n "$config" ] || usage
[ -f "$config" ] || { echo "compare.sh: no such config file '$config'" >&2; exit 2; }
for n in "$steps" "$warmup" "$rounds" ${threads:+"$threads"}; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "compare.sh: '$n' is not a number" >&2; exit 2; }
done
if [ -n "$pthread_blas_dir" ] && [ ! -e "$pthread_blas_dir/libblas.so.3" ]; then
  echo "compare.sh: QAT_BENCH_PTHREAD_BLAS=$pthread_blas_dir holds no libblas.so.3" >&2
  exit 2
fi
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "compare.sh: PyTorch is not available to $python; run ./scripts/bootstrap.sh --bench" \
       "(it installs Debian's python3-torch)" >&2
  exit 3
fi

# Build bench_train if needed (an up-to-date build is a no-op).
buildlog=$(mktemp "${TMPDIR:-/tmp}/qat-compare-build-XXXXXX")
trap 'rm -f "$buildlog"' EXIT
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >"$buildlog" 2>&1 ||
    { tail -n 30 "$buildlog" >&2; exit 1; }
fi
if ! cmake --build "$build" --target bench_train -j"$(nproc)" >"$buildlog" 2>&1; then
  if [ ! -x "$build/bench_train" ]; then
    echo "compare.sh: building bench_train failed:" >&2
    tail -n 30 "$buildlog" >&2
    exit 1
  fi
  # Others may be mid-edit in the tree: measure the last good build rather than nothing.
  echo "compare.sh: warning: building bench_train failed (tree mid-edit?); using the existing" \
       "$build/bench_train of $(date -r "$build/bench_train" '+%F %T'). Build log tail:" >&2
  tail -n 5 "$buildlog" >&2
fi

qat_args=(--steps "$steps" --warmup "$warmup" --no-profile)
py_args=(--steps "$steps" --warmup "$warmup")
for s in "${sets[@]+"${sets[@]}"}"; do
  qat_args+=(--set "$s")
  py_args+=(--set "$s")
done
if [ -n "$threads" ]; then
  qat_args+=(--set "run.threads=$threads")
  py_args+=(--threads "$threads")
fi

logs=$(mktemp -d "${TMPDIR:-/tmp}/qat-compare-XXXXXX")

# field NAME FILE: the value of NAME= on the RESULT line of FILE.
field() {
  awk -v k="$1" '/^RESULT /{for(i=2;i<=NF;i++) if(index($i,k"=")==1) print substr($i,length(k)+2)}' "$2"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf("%.3f", (b > 0) ? a / b : 0)}'; }
# quiet FILE: true when the run kept >= 90% of its threads busy (CPU time / wall time).
quiet() { awk -v u="$(field cpu_use "$1")" -v t="$(field threads "$1")" 'BEGIN{exit !(u >= 0.9 * t)}'; }
median() {
  [ $# -gt 0 ] || { echo "-"; return; }
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'
}
# blas_dirs FILE: the directories of the BLAS libraries the PyTorch run had mapped.
blas_dirs() { field blas "$1" | tr ',' '\n' | xargs -r -n1 dirname | sort -u | paste -sd, -; }

run() { # run NAME CMD...: output to $logs/NAME.log; stop with the log's tail if it fails
  local name=$1; shift
  if ! "$@" >"$logs/$name.log" 2>&1 || ! grep -q '^RESULT ' "$logs/$name.log"; then
    echo "compare.sh: $name failed; last lines of $logs/$name.log:" >&2
    tail -n 15 "$logs/$name.log" >&2
    exit 1
  fi
}

row() { # row ROUND LABEL FILE NOTE
  local mark=" "
  quiet "$3" || mark="*"
  printf '%-6s %-26s %7s %12s %10s %8s %10s  %s\n' "$1$mark" "$2" "$(field threads "$3")" \
    "$(field ms_median "$3")" "$(field tokens_per_s "$3")" "$(field cpu_use "$3")" \
    "$(field cpu_ms_per_step "$3")" "$4"
}

torch_runs=(default omp)
[ -z "$pthread_blas_dir" ] || torch_runs+=(pthread)
declare -A label=([default]="PyTorch, default BLAS" [omp]="PyTorch, openblas-openmp"
                  [pthread]="PyTorch, pthread OpenBLAS")
declare -A libdir=([default]="" [omp]="$omp_blas_dir" [pthread]="$pthread_blas_dir")
declare -A all=() calm=()

echo "compare.sh: $config, $steps timed steps after $warmup warm-up, $rounds round(s); logs in $logs"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
printf '\n%-6s %-26s %7s %12s %10s %8s %10s  %s\n' round implementation threads "ms/step med" \
  tokens/s "CPU use" "CPU ms/st" "BLAS directory / notes"
for r in $(seq 1 "$rounds"); do
  q="$logs/qat.$r.log"
  run "qat.$r" "$build/bench_train" "$config" "${qat_args[@]}"
  for t in "${torch_runs[@]}"; do
    env_args=()
    [ -z "${libdir[$t]}" ] ||
      env_args=(LD_LIBRARY_PATH="${libdir[$t]}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
    run "torch-$t.$r" env "${env_args[@]+"${env_args[@]}"}" "$python" "$root/bench/torch_gpt.py" \
      "$config" "${py_args[@]}"
  done
  sg=$(field sgemm_gflops "$q") gf=$(field gflops "$q")
  row "$r" "qat bench_train" "$q" \
    "$gf GFLOP/s = $(awk -v a="$gf" -v b="$sg" 'BEGIN{printf("%.0f", (b > 0) ? 100 * a / b : 0)}')% of sgemm in-process ($sg)"
  line="ratio qat/PyTorch tokens/s:"
  for t in "${torch_runs[@]}"; do
    f="$logs/torch-$t.$r.log"
    row "$r" "${label[$t]}" "$f" "$(blas_dirs "$f")"
    x=$(ratio "$(field tokens_per_s "$q")" "$(field tokens_per_s "$f")")
    all[$t]="${all[$t]:-} $x"
    if quiet "$q" && quiet "$f"; then calm[$t]="${calm[$t]:-} $x"; else x="$x*"; fi
    line="$line $x (${label[$t]#PyTorch, })"
    [ "$(field threads "$q")" = "$(field threads "$f")" ] ||
      echo "compare.sh: warning: thread counts differ (qat $(field threads "$q"), torch $(field threads "$f"))" >&2
  done
  echo "       $line"
done

echo
echo "median ratio qat/PyTorch tokens/s (> 1: qat faster; target >= 1.5, and qat >= 50% of sgemm):"
for t in "${torch_runs[@]}"; do
  # shellcheck disable=SC2086 # word splitting of the lists is intended
  printf '  vs %-26s all rounds %-7s quiet rounds %s\n' "${label[$t]}:" "$(median ${all[$t]})" \
    "$(median ${calm[$t]:-})"
done
echo "('*': that process kept < 90% of its threads busy — other load on the machine; CPU ms/st is"
echo " process CPU time per step, spinning threads included)"
if [ "$(blas_dirs "$logs/torch-default.1.log")" = "$(blas_dirs "$logs/torch-omp.1.log")" ]; then
  echo "note: the default BLAS is the OpenMP OpenBLAS on this machine (libblas.so.3 alternative), so"
  echo "      the first two PyTorch rows use the same library"
fi
grep -h '^WARNING' "$logs"/*.1.log 2>/dev/null | sort -u || true
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
