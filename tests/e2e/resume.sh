# resume.sh — same seed ⇒ identical losses; 2N steps == N + resume + N, bit for bit (metrics and
# final parameters); 1 and 2 threads give the same bits; Ctrl-C (SIGINT) checkpoints and exits
# 130, and --resume auto continues it.
source "$2/tests/e2e/lib/common.sh"

A=$(tiny_config "$WORK/a"); B=$(tiny_config "$WORK/b"); C=$(tiny_config "$WORK/c")
"$TRAIN" "$A" 2> "$WORK/a.log" || { cat "$WORK/a.log"; fail "run a"; }
"$TRAIN" "$B" --stop-after 15 2> "$WORK/b1.log" || { cat "$WORK/b1.log"; fail "run b part 1"; }
[ -f "$WORK/b/ckpt/step_0000015.h5" ] || fail "no checkpoint at the stop"
"$TRAIN" "$B" --resume auto 2> "$WORK/b2.log" || { cat "$WORK/b2.log"; fail "run b part 2"; }
grep -q "resumed from .*step_0000015.h5 at step 15" "$WORK/b2.log" || fail "resume message"

diff <(losses "$WORK/a/metrics.csv") <(losses "$WORK/b/metrics.csv") || fail "resumed metrics differ"
[ "$(wc -l < "$WORK/a/metrics.csv")" -eq 31 ] || fail "expected 30 rows + header"
head -1 "$WORK/a/metrics.csv" | grep -qx "step,tokens,lr,format,loss,val_loss,grad_norm,ms_per_step,tokens_per_s" \
  || fail "metrics header"
"$CKPT" --compare-params "$WORK/a/ckpt/step_0000030.h5" "$WORK/b/ckpt/step_0000030.h5" \
  || fail "final parameters differ"

# Same config and seed twice: identical losses.
"$TRAIN" "$C" 2> "$WORK/c.log" || fail "run c"
diff <(losses "$WORK/a/metrics.csv") <(losses "$WORK/c/metrics.csv") || fail "two runs differ"

# A fresh run into the same out_dir keeps the earlier run, moved aside, instead of mixing with it.
"$TRAIN" "$C" --stop-after 2 2> "$WORK/c2.log" || fail "second fresh run"
grep -q "held an earlier run; moved it to" "$WORK/c2.log" || fail "no set-aside message"
prev=$(ls -d "$WORK"/c/previous-* | head -1)
diff <(losses "$WORK/a/metrics.csv") <(losses "$prev/metrics.csv") || fail "earlier metrics not kept"
[ -f "$prev/ckpt/step_0000030.h5" ] || fail "earlier checkpoints not kept"
[ "$(ls "$WORK"/c/ckpt)" = "step_0000002.h5" ] || fail "new run's ckpt dir not fresh"

# The loss falls.
first=$(sed -n 2p "$WORK/a/metrics.csv" | cut -d, -f5); last=$(tail -1 "$WORK/a/metrics.csv" | cut -d, -f5)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }' || fail "loss did not fall: $first -> $last"

# MF-QAT: the per-step format comes from its own RNG stream, saved in checkpoints, so a resumed
# run draws the same formats and stays bit-identical.
Q1=$(tiny_config "$WORK/q1" "[quant]" "mode = multi" "ste = clipped")
Q2=$(tiny_config "$WORK/q2" "[quant]" "mode = multi" "ste = clipped")
"$TRAIN" "$Q1" 2> "$WORK/q1.log" || { cat "$WORK/q1.log"; fail "mfqat run"; }
"$TRAIN" "$Q2" --stop-after 13 2> "$WORK/q2a.log" || { cat "$WORK/q2a.log"; fail "mfqat part 1"; }
"$TRAIN" "$Q2" --resume auto 2> "$WORK/q2b.log" || { cat "$WORK/q2b.log"; fail "mfqat part 2"; }
diff <(losses "$WORK/q1/metrics.csv") <(losses "$WORK/q2/metrics.csv") || fail "resumed MF-QAT metrics differ"
[ "$(cut -d, -f4 "$WORK/q1/metrics.csv" | sort -u | wc -l)" -ge 5 ] || fail "MF-QAT drew too few formats"
"$CKPT" --compare-params "$WORK/q1/ckpt/step_0000030.h5" "$WORK/q2/ckpt/step_0000030.h5" \
  || fail "final MF-QAT parameters differ"

# The thread count does not change the result: linear layers multiply in row panels fixed by the
# shape (autograd/ops/gemm.c), attention per (batch, head) with single-threaded BLAS. A model big
# enough for the panels (512 rows, d 128, F 512), under MF-QAT, at 1 and 2 threads.
mid_config() {
  tiny_config "$1" "[quant]" "mode = multi" | xargs sed -i -e 's/^d_model = 32/d_model = 128/' \
    -e 's/^d_ff = 64/d_ff = 512/' -e 's/^seq_len = 32/seq_len = 64/' -e 's/^batch_size = 4/batch_size = 8/' \
    -e 's/^steps = 30/steps = 8/' -e 's/^eval_every = 10/eval_every = 4/'
  echo "$WORK/$(basename "$1").ini"
}
T1=$(mid_config "$WORK/t1"); T2=$(mid_config "$WORK/t2")
grep -q "^d_ff = 512" "$T1" || fail "mid config"
"$TRAIN" "$T1" --set run.threads=1 2> "$WORK/t1.log" || { cat "$WORK/t1.log"; fail "1-thread run"; }
"$TRAIN" "$T2" --set run.threads=2 2> "$WORK/t2.log" || { cat "$WORK/t2.log"; fail "2-thread run"; }
diff <(losses "$WORK/t1/metrics.csv") <(losses "$WORK/t2/metrics.csv") || fail "1 and 2 threads differ"
"$CKPT" --compare-params "$WORK/t1/ckpt/step_0000008.h5" "$WORK/t2/ckpt/step_0000008.h5" \
  || fail "1 and 2 threads: final parameters differ"

# SIGINT: finish the step, checkpoint, exit 130; then resume to the same result.
D=$(tiny_config "$WORK/d" ; ) ; sed -i 's/^steps = 30/steps = 100000/' "$D"
"$TRAIN" "$D" 2> "$WORK/d.log" & pid=$!
for _ in $(seq 100); do [ -f "$WORK/d/metrics.csv" ] && [ "$(wc -l < "$WORK/d/metrics.csv")" -gt 3 ] && break; sleep 0.1; done
kill -INT $pid; rc=0; wait $pid || rc=$?
[ "$rc" -eq 130 ] || { cat "$WORK/d.log"; fail "SIGINT exit code $rc"; }
grep -q "interrupted; checkpoint written" "$WORK/d.log" || fail "interrupt message"
n=$(tail -1 "$WORK/d/metrics.csv" | cut -d, -f1)
[ -f "$WORK/d/ckpt/step_$(printf %07d "$n").h5" ] || fail "no checkpoint at interrupted step $n"
"$TRAIN" "$D" --resume auto --stop-after $((n + 2)) 2> "$WORK/d2.log" || fail "resume after SIGINT"
echo "resume: ok"
