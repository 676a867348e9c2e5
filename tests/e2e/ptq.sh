# ptq.sh — qat-ptq: every method writes a 'ptq' file qat-eval reads at its format; RTN equals
# direct quantization of the checkpoint; SmoothQuant keeps fp32 unchanged; the refusals with
# their exit codes; and [run] init_from, which the ablation's fine-tunes start from.
source "$2/tests/e2e/lib/common.sh"
EVAL="$BUILD/qat-eval"
PTQ="$BUILD/qat-ptq"
CFG=$(tiny_config "$WORK/base")
"$TRAIN" "$CFG" 2> "$WORK/train.log" || { cat "$WORK/train.log"; fail "training"; }
BASE="$WORK/base/ckpt/step_0000030.h5"

# loss_of FORMAT CSV: the val_loss of FORMAT in a qat-eval CSV
loss_of() { awk -F, -v f="$1" '$1 == f { print $3 }' "$2"; }

"$EVAL" --checkpoint "$BASE" --formats mxint4,mxfp4_e2m1 --csv "$WORK/direct.csv" > /dev/null 2>&1 \
  || fail "qat-eval of the baseline"
for m in rtn gptq smoothquant+rtn smoothquant+gptq; do
  for f in mxint4 mxfp4_e2m1; do
    out="$WORK/${m/+/_}_$f.h5"
    "$PTQ" --checkpoint "$BASE" --method "$m" --format "$f" --calib-batches 3 --out "$out" \
      2> "$WORK/ptq.log" || { cat "$WORK/ptq.log"; fail "qat-ptq $m $f"; }
    grep -q "wrote $out: 12 quantized tensors" "$WORK/ptq.log" || { cat "$WORK/ptq.log"; fail "summary"; }
    "$CKPT" "$out" | grep -q "ok, kind ptq, step 30" || fail "$out does not verify as kind ptq"
    "$EVAL" --checkpoint "$out" --formats "$f" --csv "$WORK/e.csv" > "$WORK/e.txt" 2> "$WORK/e.err" \
      || { cat "$WORK/e.err"; fail "qat-eval $m $f"; }
    grep -q "post-training quantized to $f by $m" "$WORK/e.err" || { cat "$WORK/e.err"; fail "describe"; }
    l=$(loss_of "$f" "$WORK/e.csv")
    [[ "$l" =~ ^[0-9]+\.[0-9]+$ ]] || fail "$m $f: loss '$l'"
    echo "$m $f $l" >> "$WORK/losses.txt"
  done
done
# RTN is MX round-to-nearest: the same model as qat-eval's direct quantization, to the last digit.
for f in mxint4 mxfp4_e2m1; do
  [ "$(awk -v f="$f" '$1 == "rtn" && $2 == f { print $3 }' "$WORK/losses.txt")" = \
    "$(loss_of "$f" "$WORK/direct.csv")" ] || { cat "$WORK/losses.txt" "$WORK/direct.csv"; fail "rtn != direct at $f"; }
done
# GPTQ and SmoothQuant really change the weights.
[ "$(awk '$2 == "mxint4" { print $3 }' "$WORK/losses.txt" | sort -u | wc -l)" -ge 3 ] \
  || { cat "$WORK/losses.txt"; fail "methods give identical losses"; }
grep -q "gptq h.1.mlp.down .*damp" "$WORK/ptq.log" || { cat "$WORK/ptq.log"; fail "gptq progress"; }

# A PTQ file reaches only its own format.
"$EVAL" --checkpoint "$WORK/rtn_mxint4.h5" --formats all > "$WORK/all.txt" 2> "$WORK/all.err" || fail "eval all"
grep -q "mxfp4_e2m1 *skipped: the file holds mxint4 weights quantized by post-training quantization (rtn)" \
  "$WORK/all.err" || { cat "$WORK/all.err"; fail "skip note"; }
expect_exit 2 "post-training quantization \(gptq\) for mxint4 only" \
  "$BUILD/qat-convert" --anchor "$WORK/gptq_mxint4.h5" --to mxint2 --out "$WORK/x.h5"

# Refusals.
expect_exit 2 "unknown method 'awq'" "$PTQ" --checkpoint "$BASE" --method awq --format mxint4 --out "$WORK/x.h5"
expect_exit 2 "'fp32' is not an MX format" "$PTQ" --checkpoint "$BASE" --method rtn --format fp32 --out "$WORK/x.h5"
expect_exit 2 "--alpha must be in \[0, 1\]" "$PTQ" --checkpoint "$BASE" --method smoothquant+rtn --format mxint4 --alpha 2 --out "$WORK/x.h5"
expect_exit 2 "--checkpoint, --method, --format and --out are required" "$PTQ" --checkpoint "$BASE" --method rtn
expect_exit 4 "is a 'ptq' checkpoint; post-training quantization starts from the float weights" \
  "$PTQ" --checkpoint "$WORK/rtn_mxint4.h5" --method rtn --format mxint4 --out "$WORK/x.h5"
expect_exit 4 "missing.h5" "$PTQ" --checkpoint "$WORK/missing.h5" --method rtn --format mxint4 --out "$WORK/x.h5"
[ ! -e "$WORK/x.h5" ] || fail "a refused run wrote its output"

# [run] init_from: the fine-tune starts from the baseline's weights (its first loss is the
# baseline's level, far below a fresh model's), and a different model is refused by key.
FT=$(tiny_config "$WORK/ft")
"$TRAIN" "$FT" --set "run.init_from=$BASE" --set run.steps=5 2> "$WORK/ft.log" || { cat "$WORK/ft.log"; fail "init_from run"; }
grep -q "weights from $BASE (train checkpoint, step 30)" "$WORK/ft.log" || { cat "$WORK/ft.log"; fail "init_from line"; }
fresh=$(awk -F, 'NR == 2 { print $5 }' "$WORK/base/metrics.csv")
first=$(awk -F, 'NR == 2 { print $5 }' "$WORK/ft/metrics.csv")
awk -v a="$first" -v b="$fresh" 'BEGIN { exit !(a < b - 0.3) }' || fail "init_from loss $first vs fresh $fresh"
BAD=$(tiny_config "$WORK/bad")
expect_exit 4 "its model differs from this config .*d_model: 32 vs 64" \
  "$TRAIN" "$BAD" --set "run.init_from=$BASE" --set model.d_model=64
expect_exit 4 "nope.h5" "$TRAIN" "$BAD" --set "run.init_from=$WORK/nope.h5"
echo "ptq: ok"
