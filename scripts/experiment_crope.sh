#!/usr/bin/env bash
# experiment_crope.sh — standard (RoPE) vs CRoPE attention with a complex and with a real output
# projection, each in FP32 and under MF-QAT, at equal steps on the default config (docs/CROPE.md).
#   scripts/experiment_crope.sh [--config configs/default.ini] [--steps N] [--out results/crope]
#                               [--build build]
# Each arm is one qat-train run; a run whose out_dir holds a `done` marker is skipped on re-runs.
# Writes OUT/crope.csv (arm,attention,crope_output,quant,attention_params,val_loss, then the
# MF-QAT arms' anchor losses at mxint8,mxint4,mxfp4_e2m1) and OUT/crope.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
config=$root/configs/default.ini steps="" out=results/crope build=$root/build
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=${2:?}; shift 2 ;;
    --steps) steps=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    *) echo "usage: $0 [--config F] [--steps N] [--out DIR] [--build DIR]" >&2; exit 2 ;;
  esac
done
[ -x "$build/qat-train" ] || { echo "experiment_crope.sh: build first ($build/qat-train missing)" >&2; exit 2; }
mkdir -p "$out"
stepset=(); [ -n "$steps" ] && stepset=(--set "run.steps=$steps")
arms=(standard_fp32 crope_complex_fp32 crope_real_fp32 standard_mfqat crope_complex_mfqat crope_real_mfqat)
i=0
for arm in "${arms[@]}"; do
  i=$((i + 1))
  attn=${arm%%_*}; rest=${arm#*_}
  case "$arm" in
    crope_complex*) sets=(--set model.attention=crope --set model.crope_output=complex) ;;
    crope_real*) sets=(--set model.attention=crope --set model.crope_output=real) ;;
    *) sets=(--set model.attention=standard) ;;
  esac
  case "$arm" in
    *_fp32) sets+=(--set quant.mode=none) ;;
    *) sets+=(--set quant.mode=multi) ;;
  esac
  dir=$out/$arm
  if [ -f "$dir/done" ]; then echo "[$i/${#arms[@]}] $arm: done already"; continue; fi
  echo "[$i/${#arms[@]}] $arm: qat-train $(basename "$config") ${sets[*]} ${stepset[*]}"
  "$build/qat-train" "$config" --set "run.out_dir=$dir" "${stepset[@]}" "${sets[@]}" 2> "$dir.log" \
    || { tail -20 "$dir.log" >&2; echo "experiment_crope.sh: $arm failed (log $dir.log)" >&2; exit 1; }
  touch "$dir/done"
done

# attention params from the start-up line, final val_loss from the done line, anchor rows from
# the end-of-run table of the MF-QAT arms.
{
  echo "arm,attention_params,val_loss,anchor_mxint8,anchor_mxint4,anchor_mxfp4_e2m1"
  for arm in "${arms[@]}"; do
    log=$out/$arm.log
    params=$(sed -n 's/.*(attention projections \([0-9]*\)).*/\1/p' "$log" | head -1)
    loss=$(sed -n 's/.*final val_loss \([0-9.]*\).*/\1/p' "$log" | tail -1)
    row() { awk -v f="$1" '$1 == f && $2 ~ /^[0-9.]+$/ { print $3 }' "$log" | tail -1; }
    echo "$arm,$params,$loss,$(row mxint8),$(row mxint4),$(row mxfp4_e2m1)"
  done
} > "$out/crope.csv"
python3 - "$out/crope.csv" "$out/crope.md" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
with open(sys.argv[2], "w") as f:
    f.write("| arm | attention params | val loss (fp32 weights) | anchor→mxint8 | anchor→mxint4 | anchor→mxfp4_e2m1 |\n")
    f.write("|---|---|---|---|---|---|\n")
    for r in rows:
        cells = [r[k] or "–" for k in ("attention_params", "val_loss", "anchor_mxint8", "anchor_mxint4", "anchor_mxfp4_e2m1")]
        f.write(f"| {r['arm']} | " + " | ".join(cells) + " |\n")
PY
cat "$out/crope.md"
