# qlora.sh — QLoRA end to end: a base trained on one text, adapters fine-tuned on a new one with
# the base frozen and packed (every base format); the loss on the new text falls; checkpoints
# hold the adapters (not the base) plus the base's fingerprint; resume is bit-exact (dropout on);
# another base is refused; qat-merge folds the adapters in (float32 and quantized) and the merged
# model evaluates like the adapters; bad configs.
source "$2/tests/e2e/lib/common.sh"
EVAL="$BUILD/qat-eval"
MERGE="$BUILD/qat-merge"

BASECFG=$(tiny_config "$WORK/base")
"$TRAIN" "$BASECFG" --set run.steps=200 2> "$WORK/base.log" || { cat "$WORK/base.log"; fail "base run"; }
BASE="$WORK/base/ckpt/step_0000200.h5"
# The new text: lines the base never saw.
NEW="$WORK/new.txt"
for i in $(seq 1 4000); do echo "item $((i % 97)) costs $((i % 13)) coins and weighs $((i % 7)) stones"; done > "$NEW"

lora_config() { # OUT_DIR BASE_FORMAT
  tiny_config "$1" "[lora]" "enabled = true" "init_from = $BASE" "base_format = $2" "rank = 4" \
    "dropout = 0.1"
}
A=$(lora_config "$WORK/a" nf4)
RUN=(--set "data.corpus=$NEW" --set optim.lr=1e-2 --set run.steps=100)
"$TRAIN" "$A" "${RUN[@]}" 2> "$WORK/a.log" || { cat "$WORK/a.log"; fail "qlora run"; }
# tiny model: L=2, C=32, F=64 -> base 2·(4·32² + 2·32·64) = 16384 weights; adapters r=4:
# per block 4·4·(32+32) + 4·(32+64) + 4·(64+32) = 1792, two blocks 3584.
grep -q "QLoRA: frozen base of 16384 weights in nf4, .* 3584 trainable parameters (adapters rank 4 on all-linear, scale 4)" \
  "$WORK/a.log" || { cat "$WORK/a.log"; fail "banner"; }
# The loss on the new text's validation split falls well below the base model's.
# (100 steps: at 60 the fall ranged 0.11-0.45 over base seeds and float rounding; at 100, 0.27-0.52.)
"$EVAL" --checkpoint "$BASE" --corpus "$NEW" --formats fp32 --csv "$WORK/base.csv" > /dev/null 2>&1 || fail "eval base"
first=$(awk -F, '$1 == "fp32" { print $3 }' "$WORK/base.csv"); last=$(awk -F, '$6 != "" { v = $6 } END { print v }' "$WORK/a/metrics.csv")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.15) }' || fail "val loss on the new text did not fall: $first -> $last"
CK="$WORK/a/ckpt/step_0000100.h5"
# The checkpoint holds no base weight: wte 8192 + norms 2·128 + 64 + adapters 3584 = 12096
# elements, and optimizer moments for the 24 adapter tensors only.
"$CKPT" "$CK" | grep -q "ok, kind train, step 100, 35 tensors (12096 elements), 48 optimizer tensors" \
  || { "$CKPT" "$CK"; fail "checkpoint contents"; }

# Resume: 100 steps vs 23 + resume + 77, bit for bit (dropout masks come from the saved stream).
B=$(lora_config "$WORK/b" nf4)
"$TRAIN" "$B" "${RUN[@]}" --stop-after 23 2> "$WORK/b1.log" || { cat "$WORK/b1.log"; fail "part 1"; }
"$TRAIN" "$B" "${RUN[@]}" --resume auto 2> "$WORK/b2.log" || { cat "$WORK/b2.log"; fail "part 2"; }
diff <(losses "$WORK/a/metrics.csv") <(losses "$WORK/b/metrics.csv") || fail "resumed QLoRA metrics differ"
"$CKPT" --compare-params "$CK" "$WORK/b/ckpt/step_0000100.h5" || fail "resumed adapters differ"
# The same adapters on another base are refused.
expect_exit 4 "trained on another base .* fingerprints differ" \
  "$TRAIN" "$B" "${RUN[@]}" --set lora.base_format=mxint4 --resume "$CK"

# Every base format trains.
for f in mxint4 mxfp4_e2m1 mxint8 mxfp8_e4m3 fp32; do
  C=$(lora_config "$WORK/f_$f" "$f")
  "$TRAIN" "$C" --set "data.corpus=$NEW" --set run.steps=5 2> "$WORK/f.log" || { cat "$WORK/f.log"; fail "base $f"; }
  grep -q "frozen base of 16384 weights in $f" "$WORK/f.log" || { cat "$WORK/f.log"; fail "banner $f"; }
done

# Under MF-QAT the adapter path is fake-quantized too (the composed ops), and still resumes.
Q=$(lora_config "$WORK/q" mxint4)
"$TRAIN" "$Q" "${RUN[@]}" --set run.steps=8 --set quant.mode=multi 2> "$WORK/q.log" || { cat "$WORK/q.log"; fail "qlora mfqat"; }
grep -q "no anchor.h5 for a QLoRA run" "$WORK/q.log" || { cat "$WORK/q.log"; fail "anchor note"; }
[ "$(cut -d, -f4 "$WORK/q/metrics.csv" | sort -u | wc -l)" -ge 4 ] || fail "MF-QAT formats under QLoRA"

# qat-merge: float32 merge evaluates as the adapters do (fp32 row), and quantized merges.
"$EVAL" --checkpoint "$CK" --corpus "$NEW" --formats fp32 --csv "$WORK/lora.csv" > /dev/null 2>&1 || fail "qat-eval of QLoRA ckpt"
"$MERGE" --adapters "$CK" --out "$WORK/m.h5" 2> "$WORK/m.log" || { cat "$WORK/m.log"; fail "merge"; }
grep -q "folded 12 adapters (rank 4, scale 4) into the nf4 base" "$WORK/m.log" || { cat "$WORK/m.log"; fail "merge line"; }
"$EVAL" --checkpoint "$WORK/m.h5" --corpus "$NEW" --formats fp32 --csv "$WORK/m.csv" > /dev/null 2>&1 || fail "qat-eval of merged"
l1=$(awk -F, '$1 == "fp32" { print $3 }' "$WORK/lora.csv"); l2=$(awk -F, '$1 == "fp32" { print $3 }' "$WORK/m.csv")
awk -v a="$l1" -v b="$l2" 'BEGIN { d = a - b; exit !(d < 1e-3 && d > -1e-3) }' || fail "merged $l2 vs adapters $l1"
"$MERGE" --adapters "$CK" --out "$WORK/m8.h5" --format mxint8 2> "$WORK/m8.log" || { cat "$WORK/m8.log"; fail "merge mxint8"; }
grep -qE "re-quantizing the merged weights to mxint8: relative RMS error 0\.0[0-9]+ overall" "$WORK/m8.log" || { cat "$WORK/m8.log"; fail "error line"; }
"$CKPT" "$WORK/m8.h5" | grep -q "ok, kind anchor" || fail "merged anchor"
"$MERGE" --adapters "$CK" --out "$WORK/m4.h5" --format mxfp4_e2m1 2> "$WORK/m4.log" || { cat "$WORK/m4.log"; fail "merge mxfp4"; }
"$CKPT" "$WORK/m4.h5" | grep -q "ok, kind ptq" || fail "merged mxfp4 file"
"$EVAL" --checkpoint "$WORK/m4.h5" --formats mxfp4_e2m1 > /dev/null 2>&1 || fail "qat-eval of merged mxfp4"
# Merged into a plain model, it fine-tunes further with run.init_from.
P=$(tiny_config "$WORK/p")
"$TRAIN" "$P" --set "run.init_from=$WORK/m.h5" --set run.steps=2 2> "$WORK/p.log" || { cat "$WORK/p.log"; fail "init_from merged"; }

# Refusals.
expect_exit 2 "a QLoRA checkpoint holds adapters on a frozen base; fold them in first" \
  "$BUILD/qat-ptq" --checkpoint "$CK" --method gptq --format mxint4 --out "$WORK/x.h5"
expect_exit 4 "a QLoRA checkpoint holds adapters on a frozen base; fold them in first" \
  "$BUILD/qat-convert" --checkpoint "$CK" --to mxint8 --out "$WORK/x.h5"
expect_exit 4 "not a QLoRA checkpoint" "$MERGE" --adapters "$BASE" --out "$WORK/x.h5"
expect_exit 2 "'fp16' is not an MX format" "$MERGE" --adapters "$CK" --out "$WORK/x.h5" --format fp16
expect_exit 2 "lora.enabled = true .* needs lora.init_from" "$TRAIN" "$BASECFG" --set lora.enabled=true
expect_exit 2 "lora.rank = 100 .* is above the smallest layer dimension" "$TRAIN" "$A" --set lora.rank=100
expect_exit 4 "lora.init_from = .*: its model differs from this config .*d_model: 32 vs 64" \
  "$TRAIN" "$A" --set model.d_model=64
echo "qlora: ok"
