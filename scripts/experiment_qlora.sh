#!/usr/bin/env bash
# experiment_qlora.sh — one fine-tuning task, five ways (docs/QLORA.md): full fine-tuning, LoRA on
# an FP32 base, and QLoRA with NF4, MXINT4 and MXFP4 bases; equal steps, same data and seed.
#   scripts/experiment_qlora.sh [--base CKPT] [--config configs/qlora.ini] [--steps N]
#                               [--out results/qlora] [--build build]
# --base: the model to fine-tune (default: the config's lora.init_from, runs/default/anchor.h5
# after the README's command 1). Each arm is one qat-train run, skipped when its `done` marker
# exists. Writes OUT/qlora.csv and OUT/qlora.md: trainable parameters, base bytes in memory, final
# validation loss on the new text, peak RSS, and the base model's own loss there for reference.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
config=$root/configs/qlora.ini base="" steps="" out=results/qlora build=$root/build
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base=${2:?}; shift 2 ;;
    --config) config=${2:?}; shift 2 ;;
    --steps) steps=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    *) echo "usage: $0 [--base CKPT] [--config F] [--steps N] [--out DIR] [--build DIR]" >&2; exit 2 ;;
  esac
done
[ -x "$build/qat-train" ] || { echo "experiment_qlora.sh: build first ($build/qat-train missing)" >&2; exit 2; }
[ -n "$base" ] || base=$(sed -n 's/^init_from *= *//p' "$config" | tail -1)
[ -f "$base" ] || { echo "experiment_qlora.sh: no base checkpoint '$base' (run the README's command 1, or pass --base)" >&2; exit 2; }
mkdir -p "$out"
common=(--set "lora.init_from=$base")
[ -n "$steps" ] && common+=(--set "run.steps=$steps")
arms=(full_ft lora_fp32 qlora_nf4 qlora_mxint4 qlora_mxfp4_e2m1)
declare -A sets=(
  [full_ft]="--set lora.enabled=false --set lora.init_from= --set run.init_from=$base --set optim.weight_decay=0.1"
  [lora_fp32]="--set lora.base_format=fp32"
  [qlora_nf4]="--set lora.base_format=nf4"
  [qlora_mxint4]="--set lora.base_format=mxint4"
  [qlora_mxfp4_e2m1]="--set lora.base_format=mxfp4_e2m1"
)
i=0
for arm in "${arms[@]}"; do
  i=$((i + 1))
  dir=$out/$arm
  if [ -f "$dir/done" ]; then echo "[$i/${#arms[@]}] $arm: done already"; continue; fi
  echo "[$i/${#arms[@]}] $arm"
  # shellcheck disable=SC2086
  "$build/qat-train" "$config" "${common[@]}" --set "run.out_dir=$dir" ${sets[$arm]} 2> "$dir.log" \
    || { tail -20 "$dir.log" >&2; echo "experiment_qlora.sh: $arm failed (log $dir.log)" >&2; exit 1; }
  touch "$dir/done"
done
corpus=$(sed -n 's/^corpus *= *//p' "$config" | tail -1)
"$build/qat-eval" --checkpoint "$base" --corpus "$corpus" --formats fp32 --batches \
  "$(sed -n 's/^eval_batches *= *//p' "$config")" --csv "$out/base.csv" > /dev/null 2> "$out/base.log"
base_loss=$(awk -F, '$1 == "fp32" { print $3 }' "$out/base.csv")
{
  echo "arm,trainable_params,base_bytes,val_loss,peak_rss_mib"
  for arm in "${arms[@]}"; do
    log=$out/$arm.log
    trainable=$(sed -n 's/.*; \([0-9]*\) trainable parameters.*/\1/p' "$log")
    bytes=$(sed -n 's/.*in [a-z0-9_]*, \([0-9.]*\) MB packed.*/\1/p' "$log")
    [ -n "$trainable" ] || trainable=$(sed -n 's/.*seq [0-9]*: \([0-9]*\) parameters.*/\1/p' "$log")
    loss=$(sed -n 's/.*final val_loss \([0-9.]*\);.*/\1/p' "$log")
    rss=$(sed -n 's/.*peak RSS \([0-9.]*\) MiB.*/\1/p' "$log")
    echo "$arm,$trainable,${bytes:+${bytes}e6},$loss,$rss"
  done
} > "$out/qlora.csv"
python3 - "$out/qlora.csv" "$out/qlora.md" "$base_loss" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
with open(sys.argv[2], "w") as f:
    f.write(f"Base model on the new text, before fine-tuning: val loss {sys.argv[3]}.\n\n")
    f.write("| arm | trainable params | frozen base in memory | val loss | peak RSS MiB |\n|---|---|---|---|---|\n")
    for r in rows:
        base = f"{float(r['base_bytes']) / 1e6:.2f} MB packed" if r["base_bytes"] else "– (float, trained)"
        f.write(f"| {r['arm']} | {r['trainable_params']} | {base} | {r['val_loss']} | {r['peak_rss_mib']} |\n")
PY
cat "$out/qlora.md"
