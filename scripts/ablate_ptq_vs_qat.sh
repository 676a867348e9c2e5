#!/usr/bin/env bash
# ablate_ptq_vs_qat.sh — how much quantization-aware training buys over post-training
# quantization, format by format (docs/ABLATION.md reads one full run).
#
#   scripts/ablate_ptq_vs_qat.sh [--quick] [--config configs/ablation.ini] [--out results]
#       [--build build] [--formats LIST] [--methods LIST] [--finetune-steps N]
#       [--calib-batches N] [--alpha A] [--eval-batches N]
#
# The study, all from one FP32 baseline and judged on the same validation batches:
#   1. baseline      train CONFIG in fp32
#   2. PTQ           every method (rtn, gptq, smoothquant+rtn, smoothquant+gptq) at every format,
#                    on the baseline's weights (qat-ptq), calibrated on training windows
#   3. ft_fp32       the baseline trained N more steps in fp32, then RTN at every format: the
#                    control that gives PTQ the same token budget as the QAT arms
#   4. qat           the baseline fine-tuned N steps with single-format QAT, one run per format
#   5. mfqat         the baseline fine-tuned N steps with multi-format QAT over all the formats,
#                    evaluated by direct quantization and from its MXINT8 anchor by
#                    Slice-and-Scale (mfqat_anchor_sns)
# Writes OUT/ablation.csv (method,format,bits_per_element,val_loss,delta_vs_fp32),
# OUT/ablation.md (the table) and OUT/ablation.png (validation loss against bits per element, one
# line per method). Every step is cached in OUT/jobs/NAME-HASH/ under a hash of everything it
# depends on (config text, overrides, options, the steps it starts from): re-running skips what
# is done, so an interrupted study resumes, and a changed config or option redoes exactly what
# it affects. --quick: a tiny model and three formats, for a smoke test (under 5 minutes).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
usage() {
  sed -n '5,7p' "$0" | sed 's/^# *//' >&2
  exit 2
}

config=$root/configs/ablation.ini out=results build=$root/build quick=0
formats=mxint8,mxint6,mxint4,mxfp8_e4m3,mxfp8_e5m2,mxfp6_e3m2,mxfp6_e2m3,mxfp4_e2m1
methods=rtn,gptq,smoothquant+rtn,smoothquant+gptq
ft_steps=300 calib=16 alpha=0.5 eval_batches=32
set_formats="" set_ft="" set_calib="" set_eval=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --config) config=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    --formats) set_formats=${2:?}; shift 2 ;;
    --methods) methods=${2:?}; shift 2 ;;
    --finetune-steps) set_ft=${2:?}; shift 2 ;;
    --calib-batches) set_calib=${2:?}; shift 2 ;;
    --alpha) alpha=${2:?}; shift 2 ;;
    --eval-batches) set_eval=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "ablate_ptq_vs_qat.sh: unknown option '$1'" >&2; usage ;;
  esac
done

# The baseline's overrides; every fine-tune repeats them so that all arms share one model.
base_sets=()
if [ "$quick" = 1 ]; then
  base_sets=(--set run.steps=150 --set run.eval_every=0 --set run.ckpt_every=0 --set run.log_every=50
             --set model.n_layer=2 --set model.n_head=2 --set model.d_model=32 --set model.d_ff=64
             --set model.seq_len=32 --set data.batch_size=8 --set optim.lr=3e-3
             --set optim.warmup_steps=10)
  formats=mxint8,mxint4,mxfp4_e2m1 ft_steps=40 calib=4 eval_batches=4
fi
formats=${set_formats:-$formats} ft_steps=${set_ft:-$ft_steps}
calib=${set_calib:-$calib} eval_batches=${set_eval:-$eval_batches}
for n in "$ft_steps" "$calib" "$eval_batches"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "ablate_ptq_vs_qat.sh: '$n' is not a positive integer" >&2; exit 2; }
done
[ -f "$config" ] || { echo "ablate_ptq_vs_qat.sh: no such config '$config'" >&2; exit 2; }
for tool in qat-train qat-eval qat-ptq; do
  [ -x "$build/$tool" ] || { echo "ablate_ptq_vs_qat.sh: $build/$tool missing: build first (./scripts/bootstrap.sh)" >&2; exit 2; }
done
command -v gnuplot > /dev/null || { echo "ablate_ptq_vs_qat.sh: gnuplot missing (./scripts/bootstrap.sh --deps installs it)" >&2; exit 2; }
IFS=, read -r -a fmt_list <<< "$formats"
IFS=, read -r -a method_list <<< "$methods"
mkdir -p "$out/jobs"
out=$(cd "$out" && pwd)

# Fine-tunes: the baseline's weights, a fresh AdamW, a short warm-up and a cosine decay.
ft_sets=(--set "run.steps=$ft_steps" --set run.eval_every=0 --set run.ckpt_every=0
         --set optim.lr=5e-4 --set optim.min_lr=5e-5 --set optim.warmup_steps=$((ft_steps / 10)))

# ---- jobs: cached by the hash of what they depend on --------------------------------------------

study_key="v1|$(cat "$config")|${base_sets[*]}|eval_batches=$eval_batches"
n_jobs=$((2 + ${#fmt_list[@]} * ${#method_list[@]} + 1 + ${#fmt_list[@]} + 2 + 1))
job_i=0
JOB=""
manifest=$out/jobs/manifest.tsv
: > "$manifest"

# job NAME KEY FN [ARGS...]: FN runs with $JOB (an empty directory) unless OUT/jobs/NAME-HASH/done
# exists. Its output goes to $JOB/log.txt; training jobs also show it, indented.
job() {
  local name=$1 key=$2; shift 2
  local h; h=$(printf '%s' "$key" | sha256sum | cut -c1-12)
  JOB=$out/jobs/$name-$h
  job_i=$((job_i + 1))
  if [ -f "$JOB/done" ]; then
    printf '[%2d/%d] %-32s cached\n' "$job_i" "$n_jobs" "$name"
    return 0
  fi
  rm -rf "$JOB"
  mkdir -p "$JOB"
  printf '[%2d/%d] %-32s ...\n' "$job_i" "$n_jobs" "$name"
  local t0=$SECONDS rc=0
  if [[ "$name" == train* ]]; then
    "$@" 2>&1 | tee "$JOB/log.txt" | sed -u 's/^/         /' || rc=$?
  else
    "$@" > "$JOB/log.txt" 2>&1 || rc=$?
  fi
  if [ "$rc" -ne 0 ]; then
    tail -n 20 "$JOB/log.txt" >&2
    echo "ablate_ptq_vs_qat.sh: step '$name' failed (exit $rc); log: $JOB/log.txt" >&2
    exit 1
  fi
  touch "$JOB/done"
  printf '        %-32s done in %ds\n' "$name" $((SECONDS - t0))
}

# record METHOD FORMAT|all CSV: the rows of a qat-eval CSV that go into the study.
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$manifest"; }

train() { "$build/qat-train" "$config" --set "run.out_dir=$JOB/run" "${base_sets[@]}" "$@"; }
last_ckpt() { ls "$1"/run/ckpt/step_*.h5 | tail -n 1; }
evaluate() { "$build/qat-eval" --checkpoint "$1" --formats "$2" --batches "$eval_batches" --csv "$JOB/eval.csv"; }
ptq() {
  "$build/qat-ptq" --checkpoint "$1" --method "$2" --format "$3" --calib-batches "$calib" \
    --alpha "$alpha" --out "$JOB/ptq.h5" && evaluate "$JOB/ptq.h5" "$3"
}
train_eval() { # FORMATS OVERRIDES...: fine-tune from the baseline, then evaluate the result
  local fmts=$1; shift
  train --set "run.init_from=$base_ckpt" "${ft_sets[@]}" "$@" && evaluate "$(last_ckpt "$JOB")" "$fmts"
}

job train_baseline "$study_key" train --set quant.mode=none
base_dir=$JOB base_ckpt=$(last_ckpt "$base_dir")
base_key="$study_key|baseline=$(sha256sum < "$base_ckpt" | cut -c1-16)"
job eval_baseline "$base_key" evaluate "$base_ckpt" fp32
record fp32 fp32 "$JOB/eval.csv"

for m in "${method_list[@]}"; do
  for f in "${fmt_list[@]}"; do
    extra=""
    [[ "$m" == *gptq* || "$m" == smoothquant* ]] && extra="calib=$calib"
    [[ "$m" == smoothquant* ]] && extra="$extra alpha=$alpha"
    job "ptq_${m/+/_}_$f" "$base_key|ptq|$m|$f|$extra" ptq "$base_ckpt" "$m" "$f"
    record "$m" "$f" "$JOB/eval.csv"
  done
done

ft_key="$base_key|ft=${ft_sets[*]}"
job train_ft_fp32 "$ft_key|fp32|$formats" train_eval "$formats" --set quant.mode=none
record ft_fp32 fp32 "$JOB/eval.csv"
record ft_fp32+rtn all "$JOB/eval.csv"
for f in "${fmt_list[@]}"; do
  job "train_qat_$f" "$ft_key|qat|$f" train_eval "$f" --set quant.mode=single --set "quant.formats=$f"
  record qat "$f" "$JOB/eval.csv"
done
job train_mfqat "$ft_key|mfqat|$formats" train_eval "$formats" --set quant.mode=multi --set "quant.formats=$formats"
mf_dir=$JOB
record mfqat all "$JOB/eval.csv"
job eval_mfqat_anchor "$ft_key|mfqat|$formats|anchor" evaluate "$mf_dir/run/anchor.h5" "$formats"
record mfqat_anchor_sns all "$JOB/eval.csv"

# ---- report ---------------------------------------------------------------------------------------

job_i=$((job_i + 1))
printf '[%2d/%d] %-32s ...\n' "$job_i" "$n_jobs" report
cmd="scripts/ablate_ptq_vs_qat.sh"
[ "$quick" = 1 ] && cmd="$cmd --quick"
python3 "$root/scripts/lib/ablation_report.py" "$manifest" "$out" "$formats" \
  "$cmd (baseline $(basename "$config"), fine-tunes of $ft_steps steps, $calib calibration batches, alpha $alpha, $eval_batches validation batches)"
gnuplot -e "datafile='$out/ablation_plot.dat'; outfile='$out/ablation.png'; baseline=$(cat "$out/ablation_fp32.txt")" \
  "$root/scripts/plot_ablation.gp"
echo "wrote $out/ablation.csv, $out/ablation.md and $out/ablation.png"
cat "$out/ablation.md"
