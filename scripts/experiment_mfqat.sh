#!/usr/bin/env bash
# experiment_mfqat.sh — FP32 vs single-format QAT (MXINT4, MXFP4) vs MF-QAT, each evaluated at every
# MX format (direct quantization of the final weights), plus the MF-QAT anchor converted to each
# format by Slice-and-Scale. MF-QAT trains on four formats only, so the other formats show how it
# carries over to formats it never saw.
#   scripts/experiment_mfqat.sh [--config configs/default.ini] [--steps N] [--out results/mfqat]
# Re-running skips runs whose final checkpoint exists. Writes OUT/mfqat.csv and OUT/mfqat.md.
set -euo pipefail
cd "$(dirname "$0")/.."
config=configs/default.ini steps="" out=results/mfqat
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--config F] [--steps N] [--out DIR]" >&2; exit 2 ;;
  esac
done
[ -x build/qat-train ] && [ -x build/qat-eval ] || { echo "build first: ./scripts/bootstrap.sh" >&2; exit 2; }
mkdir -p "$out"
train_formats="mxint8,mxint4,mxfp8_e4m3,mxfp4_e2m1"
declare -A arms=(
  [fp32]="--set quant.mode=none"
  [qat_mxint4]="--set quant.mode=single --set quant.formats=mxint4"
  [qat_mxfp4]="--set quant.mode=single --set quant.formats=mxfp4_e2m1"
  [mfqat]="--set quant.mode=multi --set quant.formats=$train_formats"
)
order=(fp32 qat_mxint4 qat_mxfp4 mfqat)
stepset=(); [ -n "$steps" ] && stepset=(--set "run.steps=$steps")
for arm in "${order[@]}"; do
  dir="$out/$arm"
  if [ -f "$dir/done" ]; then echo "== $arm: done already"; continue; fi
  echo "== training $arm"
  # shellcheck disable=SC2086
  ./build/qat-train "$config" --set "run.out_dir=$dir" "${stepset[@]}" ${arms[$arm]}
  touch "$dir/done"
done
evals=()
for arm in "${order[@]}"; do
  ck=$(ls "$out/$arm"/ckpt/step_*.h5 | tail -1)
  echo "== evaluating $arm ($ck)"
  ./build/qat-eval --checkpoint "$ck" --formats all --csv "$out/$arm.eval.csv"
  evals+=("$arm:$out/$arm.eval.csv")
done
echo "== evaluating the MF-QAT anchor by Slice-and-Scale"
./build/qat-eval --checkpoint "$out/mfqat/anchor.h5" --formats all --csv "$out/mfqat_anchor.eval.csv"
evals+=("mfqat_anchor_sns:$out/mfqat_anchor.eval.csv")
python3 scripts/lib/merge_evals.py "$out/mfqat.csv" "$out/mfqat.md" "$train_formats" "${evals[@]}"
cat "$out/mfqat.md"
