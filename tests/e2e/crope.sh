# crope.sh — CRoPE attention end to end: the start-up line counts its attention parameters
# (2d² with a complex output projection, 2.5d² with a real one, against 4d²); a CRoPE model
# trains under MF-QAT (loss falls) and resumes bit for bit; its anchor holds the quantized planes
# and qat-eval reaches every format from it; qat-ptq takes RTN and refuses GPTQ; bad configs.
source "$2/tests/e2e/lib/common.sh"
EVAL="$BUILD/qat-eval"

# tiny_config has d_model 32 and 2 layers: standard 2·4·32² = 8192, CRoPE 4096 / 5120.
for spec in "standard complex 8192" "crope complex 4096" "crope real 5120"; do
  set -- $spec
  CFG=$(tiny_config "$WORK/p_$1_$2" "[model]" "attention = $1" "crope_output = $2")
  "$TRAIN" "$CFG" --stop-after 1 2> "$WORK/p.log" || { cat "$WORK/p.log"; fail "start-up $spec"; }
  grep -q "(attention projections $3)" "$WORK/p.log" || { cat "$WORK/p.log"; fail "attention count $spec"; }
done

Q1=$(tiny_config "$WORK/q1" "[model]" "attention = crope" "[quant]" "mode = multi")
Q2=$(tiny_config "$WORK/q2" "[model]" "attention = crope" "[quant]" "mode = multi")
"$TRAIN" "$Q1" 2> "$WORK/q1.log" || { cat "$WORK/q1.log"; fail "crope mfqat run"; }
"$TRAIN" "$Q2" --stop-after 13 2> "$WORK/q2a.log" || { cat "$WORK/q2a.log"; fail "part 1"; }
"$TRAIN" "$Q2" --resume auto 2> "$WORK/q2b.log" || { cat "$WORK/q2b.log"; fail "part 2"; }
diff <(losses "$WORK/q1/metrics.csv") <(losses "$WORK/q2/metrics.csv") || fail "resumed CRoPE metrics differ"
"$CKPT" --compare-params "$WORK/q1/ckpt/step_0000030.h5" "$WORK/q2/ckpt/step_0000030.h5" \
  || fail "final CRoPE parameters differ"
first=$(sed -n 2p "$WORK/q1/metrics.csv" | cut -d, -f5); last=$(tail -1 "$WORK/q1/metrics.csv" | cut -d, -f5)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }' || fail "CRoPE loss did not fall: $first -> $last"

# The anchor stores the planes quantized: 2 layers x (8 planes + up + down) = 20 tensors.
grep -q "anchor $WORK/q1/anchor.h5: mxint8 (rounding even), 20 quantized tensors" "$WORK/q1.log" \
  || { cat "$WORK/q1.log"; fail "anchor line"; }
"$EVAL" --checkpoint "$WORK/q1/anchor.h5" --formats all --csv "$WORK/a.csv" > /dev/null 2> "$WORK/a.err" \
  || { cat "$WORK/a.err"; fail "qat-eval anchor"; }
[ "$(grep -cE '^mx[a-z0-9_]+,[0-9.]+,[0-9]+\.[0-9]+,' "$WORK/a.csv")" -eq 9 ] || { cat "$WORK/a.csv"; fail "9 MX rows"; }
l2=$(awk -F, '$1 == "mxint2" { print $3 }' "$WORK/a.csv"); l8=$(awk -F, '$1 == "mxint8" { print $3 }' "$WORK/a.csv")
[ "$l2" != "$l8" ] || fail "mxint2 equals mxint8: the planes were not quantized"

"$BUILD/qat-ptq" --checkpoint "$WORK/q1/ckpt/step_0000030.h5" --method rtn --format mxint4 \
  --out "$WORK/rtn.h5" 2> "$WORK/ptq.log" || { cat "$WORK/ptq.log"; fail "crope rtn"; }
expect_exit 2 "uses CRoPE attention .* use --method rtn" "$BUILD/qat-ptq" \
  --checkpoint "$WORK/q1/ckpt/step_0000030.h5" --method gptq --format mxint4 --out "$WORK/g.h5"

BAD=$(tiny_config "$WORK/bad" "[model]" "attention = crope" "positions = learned")
expect_exit 2 "model.attention = crope .* rotates q and k by position itself" "$TRAIN" "$BAD"
expect_exit 2 "crope_output.*'imaginary'" "$TRAIN" "$Q1" --set model.crope_output=imaginary
echo "crope: ok"
