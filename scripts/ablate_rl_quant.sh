#!/usr/bin/env bash
# ablate_rl_quant.sh — how quantization interacts with RL: from one SFT checkpoint, GRPO in fp32
# then PTQ, GRPO under (MF-)QAT, and GRPO of QLoRA adapters on a 4-bit base (docs/GRPO.md).
#
#   scripts/ablate_rl_quant.sh [--quick] [--out runs/rl_ablation] [--build build]
#       [--sft-config configs/sft.ini] [--grpo-config configs/grpo.ini] [--sft-checkpoint PATH]
#       [--steps N] [--seed N] [--formats LIST] [--lora-rank R] [--lora-alpha A]
#
# Arms, every GRPO arm from the same SFT checkpoint with the same config, seed and steps; only the
# quantization differs. Each is judged by held-out exact-match accuracy (greedy) with qat-eval:
#   sft                     the SFT checkpoint: fp32, and RTN PTQ at every --formats format
#   rl-fp32-then-ptq        GRPO in fp32 (quant.mode = none), then fp32 and RTN PTQ
#   qat-rl                  GRPO under MF-QAT (quant.mode = multi, the default format list)
#   qat-rl-mxint4           GRPO under single-format QAT in mxint4
#   qat-rl-mxfp4_e2m1       GRPO under single-format QAT in mxfp4_e2m1
#   qlora-rl-nf4            GRPO of LoRA adapters on the SFT weights frozen in NF4: fp32 (its
#                           nf4 base + fp32 adapters)
#   qlora-rl-mxint4         the same on an MXINT4 base: fp32, and mxint4 (adapters and
#                           activations fake-quantized too)
# Every evaluation quantizes weights and activations (qat-eval --quantize weights+activations).
# The SFT model is trained by the script from --sft-config unless --sft-checkpoint (a checkpoint, or
# a run directory: its newest checkpoint) is given. Writes OUT/rl_ablation.csv
# (arm,train_format,eval_format,accuracy,val_loss,rl_steps,seconds), OUT/rl_ablation.md (arms x
# eval formats, accuracy in %, with each arm's command, seed, steps and wall time) and
# OUT/rl_ablation.png (grouped bars). Every step is cached in OUT/jobs/NAME-HASH/ under a hash of
# what it depends on (config text, overrides, options, the SHA-256 of the checkpoint it starts
# from; not the binaries): a re-run skips what is done, an interrupted study resumes, a changed
# option redoes exactly what it affects. --quick: 1-digit addition and a tiny model (under a
# minute on 2 cores; tests/e2e/rl_ablation.sh runs it).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
me=ablate_rl_quant.sh
usage() {
  sed -n '5,7p' "$0" | sed 's/^# *//' >&2
  exit 2
}
die() { echo "$me: $*" >&2; exit 2; }

sft_config=$root/configs/sft.ini grpo_config=$root/configs/grpo.ini out=runs/rl_ablation
build=$root/build quick=0 sft_ckpt_arg="" steps="" seed="" formats=mxint8,mxint4,mxfp4_e2m1
lora_rank=16 lora_alpha=32
argv=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --out) out=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    --sft-config) sft_config=${2:?}; shift 2 ;;
    --grpo-config) grpo_config=${2:?}; shift 2 ;;
    --sft-checkpoint) sft_ckpt_arg=${2:?}; shift 2 ;;
    --steps) steps=${2:?}; shift 2 ;;
    --seed) seed=${2:?}; shift 2 ;;
    --formats) formats=${2:?}; shift 2 ;;
    --lora-rank) lora_rank=${2:?}; shift 2 ;;
    --lora-alpha) lora_alpha=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "$me: unknown option '$1'" >&2; usage ;;
  esac
done

for n in $steps $lora_rank; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "'$n' is not a positive integer"
done
[ -z "$seed" ] || [[ "$seed" =~ ^[0-9]+$ ]] || die "--seed '$seed' is not a non-negative integer"
[[ "$lora_alpha" =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]] || die "--lora-alpha '$lora_alpha' is not a number"
[[ "$formats" =~ ^[a-z0-9_]+(,[a-z0-9_]+)*$ ]] || die "--formats '$formats' is not a comma-separated list of formats"
[[ ",$formats," == *,fp32,* ]] && die "--formats: fp32 is always evaluated, list the MX formats only"
for f in "$grpo_config" "$sft_config"; do
  [ -f "$f" ] || die "no such config '$f'"
done
for tool in qat-train qat-eval; do
  [ -x "$build/$tool" ] || die "$build/$tool missing: build first (cmake -S . -B $build && cmake --build $build), or pass --build DIR"
done
command -v gnuplot > /dev/null || die "gnuplot missing (./scripts/bootstrap.sh --deps installs it)"
command -v python3 > /dev/null || die "python3 missing"
build=$(cd "$build" && pwd)
mkdir -p "$out/jobs"
out=$(cd "$out" && pwd)
# qat-train keeps paths (run.out_dir, run.init_from, lora.init_from) to 160 bytes.
probe="$out/jobs/train-qlora-rl-mxint4-0123456789ab/run/ckpt/step_0000000000.h5"
[ "${#probe}" -le 160 ] || die "--out $out is too deep: run paths under it would exceed qat-train's 160-byte path limit"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

# Every step reads a snapshot of the two configs taken now: a config edited while the study runs
# cannot give its arms different settings (the next run sees the edit and redoes what it affects).
snapshot() { # CONFIG NAME: copy CONFIG to OUT/jobs/configs/NAME-HASH.ini, print that path
  local h; h=$(sha256sum < "$1" | cut -c1-12)
  mkdir -p "$out/jobs/configs"
  cp "$1" "$out/jobs/configs/$2-$h.ini.tmp" && mv "$out/jobs/configs/$2-$h.ini.tmp" "$out/jobs/configs/$2-$h.ini"
  echo "$out/jobs/configs/$2-$h.ini"
}
sft_name=$(basename "$sft_config") grpo_name=$(basename "$grpo_config")
sft_config=$(snapshot "$sft_config" "${sft_name%.ini}")
grpo_config=$(snapshot "$grpo_config" "${grpo_name%.ini}")

# ---- overrides -------------------------------------------------------------------------------------

# Shared by the SFT run and every GRPO arm ([model] and [task] must agree between them).
common_sets=()
sft_sets=(--set run.ckpt_every=0)
grpo_sets=(--set run.ckpt_every=0)
if [ "$quick" = 1 ]; then
  # 1-digit addition (100 problems, 20 held out) on a tiny model: SFT ends near 50% accuracy.
  common_sets=(--set model.n_head=2 --set model.d_model=32 --set model.d_ff=64 --set model.seq_len=8
               --set task.min_digits=1 --set task.max_digits=1 --set task.eval_size=20)
  sft_sets+=(--set run.steps=200 --set run.eval_every=0 --set run.log_every=50
             --set data.batch_size=16 --set optim.lr=1e-2 --set optim.warmup_steps=5)
  grpo_sets+=(--set run.steps=20 --set run.eval_every=0 --set run.log_every=10
              --set grpo.prompts_per_step=8 --set grpo.group_size=8)
fi
[ -n "$steps" ] && grpo_sets+=(--set "run.steps=$steps")
[ -n "$seed" ] && grpo_sets+=(--set "run.seed=$seed")

# The GRPO step count and seed each arm runs with: the last override, else the config's value.
ini_value() { # FILE SECTION KEY: the value in FILE, empty if absent
  awk -v s="[$2]" -v k="$3" '
    { sub(/^[ \t]+/, ""); sub(/[ \t\r]+$/, "") }
    /^\[/ { in_s = ($0 == s); next }
    in_s && $0 ~ "^" k "[ \t]*=" { v = $0; sub(/^[^=]*=[ \t]*/, "", v) }
    END { print v }' "$1"
}
set_value() { # KEY ARGS...: the value of the last --set KEY=... among ARGS, empty if none
  local key=$1 v=""; shift
  while [ $# -gt 0 ]; do
    [ "$1" = --set ] && [[ "$2" == "$key="* ]] && v=${2#*=}
    shift
  done
  printf '%s' "$v"
}
rl_steps=$(set_value run.steps "${grpo_sets[@]}")
[ -n "$rl_steps" ] || rl_steps=$(ini_value "$grpo_config" run steps)
[ -n "$rl_steps" ] || rl_steps=1000 # qat-train's default
rl_seed=$(set_value run.seed "${grpo_sets[@]}")
[ -n "$rl_seed" ] || rl_seed=$(ini_value "$grpo_config" run seed)
[ -n "$rl_seed" ] || rl_seed=1337
sft_seed=$(ini_value "$sft_config" run seed)
sft_steps=$(set_value run.steps "${sft_sets[@]}")
[ -n "$sft_steps" ] || sft_steps=$(ini_value "$sft_config" run steps)

# ---- jobs: cached by the hash of what they depend on ------------------------------------------------

arms=(rl-fp32-then-ptq qat-rl qat-rl-mxint4 qat-rl-mxfp4_e2m1 qlora-rl-nf4 qlora-rl-mxint4)
n_jobs=$((1 + 2 * ${#arms[@]} + 1))
[ -z "$sft_ckpt_arg" ] && n_jobs=$((n_jobs + 1))
job_i=0
JOB=""
manifest=$out/jobs/manifest.tsv
: > "$manifest"

# job NAME WHAT KEY FN [ARGS...]: FN runs with $JOB (an empty directory) unless
# OUT/jobs/NAME-HASH/done exists; its output goes to $JOB/log.txt, its wall time to $JOB/seconds.
job() {
  local name=$1 what=$2 key=$3; shift 3
  local h; h=$(printf '%s' "$key" | sha256sum | cut -c1-12)
  JOB=$out/jobs/$name-$h
  job_i=$((job_i + 1))
  local line; line=$(printf '[%2d/%d] %-18s %s ...' "$job_i" "$n_jobs" "${name#*-}:" "$what")
  if [ -f "$JOB/done" ]; then
    echo "$line cached"
    return 0
  fi
  rm -rf "$JOB"
  mkdir -p "$JOB"
  printf '%s' "$line"
  local t0 rc=0
  t0=$(date +%s.%N)
  "$@" > "$JOB/log.txt" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo " failed"
    tail -n 20 "$JOB/log.txt" >&2
    echo "$me: step '$name' failed (exit $rc); log: $JOB/log.txt" >&2
    exit 1
  fi
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' > "$JOB/seconds"
  touch "$JOB/done"
  echo " $(cat "$JOB/seconds") s"
}

# train CONFIG ARGS...: qat-train into $JOB/run, the command kept in $JOB/command.txt
train() {
  local cfg=$1; shift
  local cmd=("$build/qat-train" "$cfg" "$@" --set "run.out_dir=$JOB/run")
  printf '%q ' "${cmd[@]}" | sed "s/ \$//; s|$root/||g" > "$JOB/command.txt"
  "${cmd[@]}"
}
last_ckpt() { ls "$1"/run/ckpt/step_*.h5 | tail -n 1; }
evaluate() { # CHECKPOINT FORMATS
  "$build/qat-eval" --checkpoint "$1" --formats "$2" --quantize weights+activations --csv "$JOB/eval.csv"
}
secs() { cat "$1/seconds"; }
add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a + b }'; }
# record ARM TRAIN_FORMAT RL_STEPS SEED SECONDS EVAL_CSV COMMAND_FILE
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$manifest"; }

# 1. the SFT policy
if [ -z "$sft_ckpt_arg" ]; then
  job train-sft "training $sft_steps SFT steps" "v1|$(cat "$sft_config")|${common_sets[*]}|${sft_sets[*]}" \
    train "$sft_config" "${common_sets[@]}" "${sft_sets[@]}"
  sft_ckpt=$(last_ckpt "$JOB") sft_train_s=$(secs "$JOB") sft_cmd=$JOB/command.txt
else
  [ -e "$sft_ckpt_arg" ] || die "--sft-checkpoint '$sft_ckpt_arg': no such file or directory"
  sft_ckpt=$sft_ckpt_arg
  if [ -d "$sft_ckpt" ]; then
    sft_ckpt=$(ls "$sft_ckpt"/ckpt/step_*.h5 2> /dev/null | tail -n 1) \
      || die "--sft-checkpoint '$sft_ckpt_arg' is a directory without ckpt/step_*.h5"
  fi
  sft_ckpt=$(cd "$(dirname "$sft_ckpt")" && pwd)/$(basename "$sft_ckpt")
  sft_train_s=0 sft_cmd=$out/jobs/sft-command.txt sft_steps="?" sft_seed="?"
  echo "(given: $sft_ckpt)" > "$sft_cmd"
fi
sft_what="$sft_name, seed $sft_seed, $sft_steps steps"
[ -z "$sft_ckpt_arg" ] || sft_what="the given checkpoint $sft_ckpt"
[ "${#sft_ckpt}" -le 160 ] || die "SFT checkpoint path '$sft_ckpt' exceeds qat-train's 160-byte path limit"
sft_key="v1|sft=$(sha256sum < "$sft_ckpt" | cut -c1-16)"
job eval-sft "evaluating fp32 + PTQ at $formats" "$sft_key|$formats" evaluate "$sft_ckpt" "$formats"
record sft fp32 0 "$sft_seed" "$(add "$sft_train_s" "$(secs "$JOB")")" "$JOB/eval.csv" "$sft_cmd"

# 2-7. the GRPO arms: the same config, seed and steps; only the quantization differs
lora_sets=(--set run.init_from= --set lora.enabled=true --set "lora.init_from=$sft_ckpt"
           --set "lora.rank=$lora_rank" --set "lora.alpha=$lora_alpha")
declare -A arm_sets=(
  [rl-fp32-then-ptq]="--set quant.mode=none"
  [qat-rl]="--set quant.mode=multi"
  [qat-rl-mxint4]="--set quant.mode=single --set quant.formats=mxint4"
  [qat-rl-mxfp4_e2m1]="--set quant.mode=single --set quant.formats=mxfp4_e2m1"
  [qlora-rl-nf4]="--set quant.mode=none --set lora.base_format=nf4"
  [qlora-rl-mxint4]="--set quant.mode=none --set lora.base_format=mxint4"
)
declare -A arm_format=([rl-fp32-then-ptq]=fp32 [qat-rl]=multi [qat-rl-mxint4]=mxint4
  [qat-rl-mxfp4_e2m1]=mxfp4_e2m1 [qlora-rl-nf4]=nf4 [qlora-rl-mxint4]=mxint4)
declare -A arm_what=([rl-fp32-then-ptq]="in fp32" [qat-rl]="under MF-QAT"
  [qat-rl-mxint4]="under QAT mxint4" [qat-rl-mxfp4_e2m1]="under QAT mxfp4_e2m1"
  [qlora-rl-nf4]="QLoRA on nf4" [qlora-rl-mxint4]="QLoRA on mxint4")
declare -A arm_evals=([qlora-rl-nf4]=fp32 [qlora-rl-mxint4]=mxint4)
grpo_key="$sft_key|$(cat "$grpo_config")|${common_sets[*]}|${grpo_sets[*]}"
for arm in "${arms[@]}"; do
  read -r -a sets <<< "${arm_sets[$arm]}"
  if [[ "$arm" == qlora* ]]; then
    sets+=("${lora_sets[@]}")
  else
    sets+=(--set "run.init_from=$sft_ckpt")
  fi
  job "train-$arm" "training $rl_steps GRPO steps ${arm_what[$arm]}" "$grpo_key|${sets[*]}" \
    train "$grpo_config" "${common_sets[@]}" "${grpo_sets[@]}" "${sets[@]}"
  train_dir=$JOB
  ckpt=$(last_ckpt "$train_dir")
  fmts=${arm_evals[$arm]:-$formats}
  what="evaluating fp32"
  [ "$fmts" = fp32 ] || what="$what + $fmts"
  job "eval-$arm" "$what" "v1|$(sha256sum < "$ckpt" | cut -c1-16)|$fmts" evaluate "$ckpt" "$fmts"
  record "$arm" "${arm_format[$arm]}" "$rl_steps" "$rl_seed" "$(add "$(secs "$train_dir")" "$(secs "$JOB")")" \
    "$JOB/eval.csv" "$train_dir/command.txt"
done

# ---- report -------------------------------------------------------------------------------------------

job_i=$((job_i + 1))
printf '[%2d/%d] %-18s tables and plot ...' "$job_i" "$n_jobs" "report:"
study_cmd="scripts/$me"
[ ${#argv[@]} -gt 0 ] && study_cmd="$study_cmd $(printf '%q ' "${argv[@]}" | sed 's/ $//')"
python3 "$root/scripts/lib/rl_report.py" "$manifest" "$out" "fp32,$formats" "$study_cmd" \
  "SFT: $sft_what; GRPO: $grpo_name, seed $rl_seed, $rl_steps steps"
gnuplot -e "datafile='$out/rl_ablation_plot.dat'; outfile='$out/rl_ablation.png'" \
  "$root/scripts/plot_rl_ablation.gp"
echo " done"
echo "wrote $out/rl_ablation.csv, $out/rl_ablation.md and $out/rl_ablation.png"
cat "$out/rl_ablation.md"
