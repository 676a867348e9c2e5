# grpo.sh — the task modes end to end. SFT on 2-digit addition: the metrics gain an accuracy
# column filled at evaluations, and a resumed run is bit-identical. GRPO from the SFT run's
# directory: its metrics columns, bit-identical resume (rollouts, rewards, losses), with MF-QAT
# and KL to the reference, QLoRA with the base as the reference, every loss type; qat-eval reports
# held-out accuracy per format; configuration errors.
source "$2/tests/e2e/lib/common.sh"

# task_config OUT_DIR MODE [INI lines for [run]...] [-- INI lines appended at the end...]
# 1-digit addition (100 problems, 20 held out): a tiny model gets some right within 60 steps, so
# GRPO sees non-zero advantages.
task_config() {
  local out=$1 mode=$2; shift 2
  local cfg="$WORK/$(basename "$out").ini" run=""
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do run+="$1"$'\n'; shift; done
  [ $# -gt 0 ] && shift
  for kv in "seed = 5" "eval_every = 20" "ckpt_every = 20" "keep = 2" "log_every = 5" "threads = 2"; do
    grep -q "^${kv%% =*} =" <<< "$run" || run+="$kv"$'\n'
  done
  { printf '[run]\nout_dir = %s\nmode = %s\n%s' "$out" "$mode" "$run"
    cat <<INI
[model]
n_layer = 2
n_head = 2
d_model = 32
d_ff = 64
seq_len = 8
[data]
batch_size = 16
[optim]
lr = 1e-2
warmup_steps = 5
[task]
min_digits = 1
max_digits = 1
eval_size = 20
INI
    printf '%s\n' "$@"; } > "$cfg"
  echo "$cfg"
}
# metrics without the timing columns (ms_per_step, tokens_per_s)
nontiming() { cut -d, -f1-7,10- "$1"; }

# ---- SFT ----
S1=$(task_config "$WORK/s1" sft "steps = 60")
S2=$(task_config "$WORK/s2" sft "steps = 60")
"$TRAIN" "$S1" 2> "$WORK/s1.log" || { cat "$WORK/s1.log"; fail "sft run"; }
grep -q "task add, 1..1-digit operands; 20 held-out problems" "$WORK/s1.log" || { cat "$WORK/s1.log"; fail "task line"; }
grep -qE "final val_loss [0-9.]+, held-out accuracy [0-9.]+%" "$WORK/s1.log" || fail "final accuracy line"
head -1 "$WORK/s1/metrics.csv" | grep -qx "step,tokens,lr,format,loss,val_loss,grad_norm,ms_per_step,tokens_per_s,accuracy" \
  || fail "sft metrics header: $(head -1 "$WORK/s1/metrics.csv")"
[ "$(awk -F, 'NR > 1 && $10 != ""' "$WORK/s1/metrics.csv" | wc -l)" -eq 3 ] || fail "accuracy at 3 evaluations"
awk -F, 'NR > 1 && $10 != "" && ($10 < 0 || $10 > 1) { exit 1 }' "$WORK/s1/metrics.csv" || fail "accuracy outside [0,1]"
first=$(sed -n 2p "$WORK/s1/metrics.csv" | cut -d, -f5); last=$(tail -1 "$WORK/s1/metrics.csv" | cut -d, -f5)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 1) }' || fail "SFT loss did not fall: $first -> $last"
"$TRAIN" "$S2" --stop-after 27 2> "$WORK/s2a.log" || { cat "$WORK/s2a.log"; fail "sft part 1"; }
"$TRAIN" "$S2" --resume auto 2> "$WORK/s2b.log" || { cat "$WORK/s2b.log"; fail "sft part 2"; }
diff <(nontiming "$WORK/s1/metrics.csv") <(nontiming "$WORK/s2/metrics.csv") || fail "resumed SFT metrics differ"

# ---- GRPO: full fine-tuning under MF-QAT with a KL penalty and two updates per batch ----
GRUN=("steps = 6" "eval_every = 3" "ckpt_every = 3" "init_from = $WORK/s1" --
      "[grpo]" "prompts_per_step = 4" "group_size = 4" "beta = 0.05" "iterations = 2"
      "[quant]" "mode = multi")
G1=$(task_config "$WORK/g1" grpo "${GRUN[@]}")
G2=$(task_config "$WORK/g2" grpo "${GRUN[@]}")
"$TRAIN" "$G1" 2> "$WORK/g1.log" || { cat "$WORK/g1.log"; fail "grpo run"; }
grep -q "weights from $WORK/s1/ckpt/step_0000060.h5" "$WORK/g1.log" || { cat "$WORK/g1.log"; fail "init_from a run directory"; }
grep -q "GRPO steps of 4 prompts x 4 completions (2 updates each, loss grpo)" "$WORK/g1.log" || { cat "$WORK/g1.log"; fail "grpo banner"; }
head -1 "$WORK/g1/metrics.csv" | grep -qx "step,tokens,lr,format,loss,val_loss,grad_norm,ms_per_step,tokens_per_s,reward_mean,reward_std,kl,clip_frac,completion_len,truncated,accuracy" \
  || fail "grpo metrics header: $(head -1 "$WORK/g1/metrics.csv")"
[ "$(tail -n +2 "$WORK/g1/metrics.csv" | wc -l)" -eq 6 ] || fail "6 grpo rows"
# MF-QAT: the steps run in MX formats; some reward; KL measured after the first update; two
# updates per batch move the ratio off 1 (clipping may or may not bite); lengths within limits
awk -F, 'NR > 1 && $4 !~ /^mx/ { exit 1 }' "$WORK/g1/metrics.csv" || fail "grpo steps not in MX formats"
awk -F, 'NR > 1 { r += $10 } END { exit !(r > 0) }' "$WORK/g1/metrics.csv" || { cat "$WORK/g1/metrics.csv"; fail "no reward at all"; }
awk -F, 'NR > 2 && !($12 > 0) { exit 1 }' "$WORK/g1/metrics.csv" || fail "no KL measured"
awk -F, 'NR > 1 && ($10 < 0 || $10 > 1 || $14 < 1 || $14 > 3) { exit 1 }' "$WORK/g1/metrics.csv" || fail "reward or completion length out of range"
"$TRAIN" "$G2" --stop-after 4 2> "$WORK/g2a.log" || { cat "$WORK/g2a.log"; fail "grpo part 1"; }
"$TRAIN" "$G2" --resume auto 2> "$WORK/g2b.log" || { cat "$WORK/g2b.log"; fail "grpo part 2"; }
diff <(nontiming "$WORK/g1/metrics.csv") <(nontiming "$WORK/g2/metrics.csv") || fail "resumed GRPO metrics differ"
"$CKPT" --compare-params "$WORK/g1/ckpt/step_0000006.h5" "$WORK/g2/ckpt/step_0000006.h5" \
  || fail "final GRPO parameters differ"
grep -q "anchor $WORK/g1/anchor.h5" "$WORK/g1.log" || { cat "$WORK/g1.log"; fail "grpo MF-QAT anchor"; }

# ---- every loss type and reward scale; QLoRA with the base as reference ----
for extra in "loss_type = dr_grpo|scale_rewards = batch" "loss_type = dapo|scale_rewards = none|mask_truncated = true"; do
  IFS='|' read -r -a lines <<< "$extra"
  C=$(task_config "$WORK/l" grpo "steps = 2" "init_from = $WORK/s1" -- "[grpo]" "${lines[@]}")
  "$TRAIN" "$C" 2> "$WORK/l.log" || { cat "$WORK/l.log"; fail "grpo $extra"; }
  grep -q "loss ${lines[0]#loss_type = })" "$WORK/l.log" || { cat "$WORK/l.log"; fail "banner $extra"; }
done
C=$(task_config "$WORK/lora" grpo "steps = 3" -- "[grpo]" "beta = 0.1" \
    "[lora]" "enabled = true" "init_from = $WORK/s1" "rank = 4" "alpha = 8")
"$TRAIN" "$C" 2> "$WORK/lora.log" || { cat "$WORK/lora.log"; fail "grpo qlora"; }
grep -q "QLoRA: frozen base" "$WORK/lora.log" || fail "qlora banner"
awk -F, 'NR > 2 && !($12 > 0) { exit 1 }' "$WORK/lora/metrics.csv" || { cat "$WORK/lora/metrics.csv"; fail "no KL to the base under QLoRA"; }

# ---- qat-eval of a task checkpoint: accuracy per format ----
"$BUILD/qat-eval" --checkpoint "$WORK/g1/ckpt/step_0000006.h5" --formats fp32,mxint8,mxfp4_e2m1 \
  --csv "$WORK/e.csv" > "$WORK/e.out" 2> "$WORK/e.err" || { cat "$WORK/e.err"; fail "qat-eval task"; }
grep -q "20 held-out problems" "$WORK/e.err" || { cat "$WORK/e.err"; fail "qat-eval task line"; }
head -1 "$WORK/e.csv" | grep -q ",accuracy$" || fail "csv accuracy column"
[ "$(awk -F, 'NR > 1 && $NF != ""' "$WORK/e.csv" | wc -l)" -eq 3 ] || { cat "$WORK/e.csv"; fail "3 accuracy rows"; }
# the fp32 row equals what the run measured at its end (same held-out set, greedy decoding)
acc_run=$(tail -1 "$WORK/g1/metrics.csv" | awk -F, '{ print $NF }')
acc_eval=$(awk -F, '$1 == "fp32" { print $NF }' "$WORK/e.csv")
awk -v a="$acc_run" -v b="$acc_eval" 'BEGIN { exit !(a - b < 1e-6 && b - a < 1e-6) }' \
  || fail "qat-eval fp32 accuracy $acc_eval != the run's $acc_run"

# ---- errors ----
BAD=$(task_config "$WORK/bad" grpo)
expect_exit 2 "run.mode = grpo .* starts from a trained policy: set run.init_from" "$TRAIN" "$BAD"
expect_exit 2 "model.seq_len = 5 .* too short for add problems .* need a context of 6 tokens" "$TRAIN" "$S1" --set model.seq_len=5
expect_exit 2 "task.min_digits = 3 .* is greater than task.max_digits = 1" "$TRAIN" "$S1" --set task.min_digits=3
expect_exit 4 "run.mode differs \(checkpoint 'sft', config 'grpo'\)" "$TRAIN" "$G1" --resume "$WORK/s1/ckpt/step_0000060.h5"
expect_exit 4 "run.init_from = $WORK/nothing: .*" "$TRAIN" "$G1" --set "run.init_from=$WORK/nothing"
mkdir -p "$WORK/empty"
expect_exit 4 "is a directory without checkpoints" "$TRAIN" "$G1" --set "run.init_from=$WORK/empty"
echo "grpo: ok"
