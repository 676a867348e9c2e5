#!/usr/bin/env bash
# lora_memory.sh — peak resident memory of QLoRA fine-tuning against full fine-tuning of the same
# model, on a model large enough for its weights to dominate (not part of ctest).
#
#   bench/lora_memory.sh [--build DIR] [--layers L] [--d-model C] [--steps N] [--base-format F]
#
# Builds a GPT of L layers, width C, MLP 4C, seq 64, batch 4 (defaults 8 x 768: 56.8 M weights),
# trains it 1 step to get weights, packs them into an MXINT8 anchor (the base both runs start
# from), then runs bench_train for N steps twice in separate processes: full fine-tuning (every
# weight trainable, AdamW moments for all) and QLoRA (base packed in F, default nf4; adapters of
# rank 8 on every linear layer). Prints each process's peak RSS (getrusage) and the ratio.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QAT_BENCH_BUILD:-$root/build}
layers=8 dmodel=768 steps=3 base_format=nf4
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=${2:?}; shift 2 ;;
    --layers) layers=${2:?}; shift 2 ;;
    --d-model) dmodel=${2:?}; shift 2 ;;
    --steps) steps=${2:?}; shift 2 ;;
    --base-format) base_format=${2:?}; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--layers L] [--d-model C] [--steps N] [--base-format F]" >&2; exit 2 ;;
  esac
done
for t in qat-train qat-convert bench_train; do
  [ -x "$build/$t" ] || { echo "lora_memory.sh: $build/$t missing (cmake --build $build)" >&2; exit 2; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/qat-lora-mem.XXXXXX")
trap 'rm -rf "$work"' EXIT
cat > "$work/big.ini" <<INI
[run]
out_dir = $work/base
steps = 1
eval_every = 0
ckpt_every = 0
keep = 1
[model]
n_layer = $layers
n_head = 8
d_model = $dmodel
d_ff = $((4 * dmodel))
seq_len = 64
[data]
corpus = /usr/share/common-licenses
batch_size = 4
[optim]
warmup_steps = 0
INI
echo "model: $layers layers, d_model $dmodel, d_ff $((4 * dmodel)), seq 64, batch 4 (work dir $work)"
"$build/qat-train" "$work/big.ini" 2> "$work/base.log" || { cat "$work/base.log" >&2; exit 1; }
"$build/qat-convert" --checkpoint "$work/base/ckpt/step_0000001.h5" --to mxint8 --out "$work/anchor.h5" \
  2> "$work/convert.log" || { cat "$work/convert.log" >&2; exit 1; }
run() { # NAME OVERRIDES... -> prints "NAME peak_rss_mib ms_median"
  local name=$1; shift
  "$build/bench_train" "$work/big.ini" --steps "$steps" --warmup 1 --no-sgemm --no-profile "$@" \
    > "$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; exit 1; }
  local line; line=$(grep '^RESULT' "$work/$name.log")
  echo "$name $(sed 's/.*peak_rss_mib=\([0-9.]*\).*/\1/' <<< "$line") $(sed 's/.*ms_median=\([0-9.]*\).*/\1/' <<< "$line")"
}
full=$(run full --set "run.init_from=$work/anchor.h5")
qlora=$(run qlora --set lora.enabled=true --set "lora.init_from=$work/anchor.h5" --set "lora.base_format=$base_format")
grep -E '^parameters|^QLoRA' "$work/qlora.log" | sed 's/^/  /'
read -r _ full_rss full_ms <<< "$full"
read -r _ q_rss q_ms <<< "$qlora"
printf '%-34s %12s %12s\n' "run" "peak RSS MiB" "ms/step"
printf '%-34s %12.1f %12.1f\n' "full fine-tuning (AdamW, fp32)" "$full_rss" "$full_ms"
printf '%-34s %12.1f %12.1f\n' "QLoRA ($base_format base, rank 8)" "$q_rss" "$q_ms"
awk -v a="$q_rss" -v b="$full_rss" 'BEGIN { printf "QLoRA / full fine-tuning peak RSS: %.1f%%\n", 100 * a / b }'
