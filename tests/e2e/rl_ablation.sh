# rl_ablation.sh — scripts/ablate_rl_quant.sh --quick end to end: it writes rl_ablation.csv, .md
# and .png, with an accuracy in [0, 1] for every arm at every format it is evaluated at; a re-run
# takes every step from the cache; a new --steps redoes the GRPO arms but not the SFT run.
source "$2/tests/e2e/lib/common.sh"
OUT="$WORK/x"
run() { bash "$SRC/scripts/ablate_rl_quant.sh" --quick --build "$BUILD" --out "$OUT" "$@"; }
run > "$WORK/1.log" 2>&1 || { tail -40 "$WORK/1.log"; fail "quick RL ablation"; }

# CSV: header, then sft, rl-fp32-then-ptq and the three QAT arms at fp32 + 3 formats (20 rows),
# qlora-rl-nf4 at fp32, qlora-rl-mxint4 at fp32 and mxint4: 23 rows.
[ "$(head -1 "$OUT/rl_ablation.csv")" = "arm,train_format,eval_format,accuracy,val_loss,rl_steps,seconds" ] \
  || fail "csv header: $(head -1 "$OUT/rl_ablation.csv")"
[ "$(tail -n +2 "$OUT/rl_ablation.csv" | wc -l)" -eq 23 ] || { cat "$OUT/rl_ablation.csv"; fail "csv rows"; }
bad=$(tail -n +2 "$OUT/rl_ablation.csv" | grep -cvE '^[a-z0-9_-]+,(fp32|multi|mxint4|mxfp4_e2m1|nf4),(fp32|mxint8|mxint4|mxfp4_e2m1),(0\.[0-9]{4}|1\.0000),[0-9]+\.[0-9]{6},[0-9]+,[0-9]+\.[0-9]$' || true)
[ "$bad" -eq 0 ] || { cat "$OUT/rl_ablation.csv"; fail "$bad malformed csv rows"; }
for arm in sft rl-fp32-then-ptq qat-rl qat-rl-mxint4 qat-rl-mxfp4_e2m1; do
  for f in fp32 mxint8 mxint4 mxfp4_e2m1; do
    grep -q "^$arm,[a-z0-9_]*,$f," "$OUT/rl_ablation.csv" || fail "no $arm at $f"
  done
done
for row in qlora-rl-nf4,nf4,fp32 qlora-rl-mxint4,mxint4,fp32 qlora-rl-mxint4,mxint4,mxint4; do
  grep -q "^$row," "$OUT/rl_ablation.csv" || fail "no row $row"
done
awk -F, 'NR > 1 && ($6 != ($1 == "sft" ? 0 : 20)) { exit 1 }' "$OUT/rl_ablation.csv" || fail "rl_steps column"
# Markdown: the header, one row per arm (accuracy in %, – where not evaluated); PNG: a real image.
grep -qx '| arm | trained in | fp32 | mxint8 | mxint4 | mxfp4_e2m1 |' "$OUT/rl_ablation.md" \
  || { cat "$OUT/rl_ablation.md"; fail "md header"; }
for arm in sft rl-fp32-then-ptq qat-rl qat-rl-mxint4 qat-rl-mxfp4_e2m1 qlora-rl-nf4 qlora-rl-mxint4; do
  grep -qE "^\| $arm \| [a-z0-9_]+ \|( ([0-9]{1,3}\.[0-9]|–) \|){4}$" "$OUT/rl_ablation.md" \
    || { cat "$OUT/rl_ablation.md"; fail "md row of $arm"; }
  grep -qE "^\| $arm \| [0-9]+ \| [0-9]+ \| [0-9.]+ s \| \`.*qat-train .*\` \|$" "$OUT/rl_ablation.md" \
    || { cat "$OUT/rl_ablation.md"; fail "md details of $arm"; }
done
grep -qx '| qlora-rl-nf4 | nf4 | [0-9.]* | – | – | – |' "$OUT/rl_ablation.md" || fail "md qlora-rl-nf4 cells"
[ "$(head -c 8 "$OUT/rl_ablation.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "png signature"
[ "$(stat -c %s "$OUT/rl_ablation.png")" -gt 10000 ] || fail "png too small"
grep -qE '^\[ 1/15\] sft: +training 200 SFT steps \.\.\. [0-9.]+ s$' "$WORK/1.log" || { head "$WORK/1.log"; fail "progress lines"; }
grep -qE '^\[ 5/15\] qat-rl: +training 20 GRPO steps under MF-QAT \.\.\. [0-9.]+ s$' "$WORK/1.log" || { cat "$WORK/1.log"; fail "arm progress line"; }

# A re-run computes nothing and reproduces the same table.
cp "$OUT/rl_ablation.csv" "$WORK/first.csv"
run > "$WORK/2.log" 2>&1 || { tail -20 "$WORK/2.log"; fail "re-run"; }
[ "$(grep -c ' cached$' "$WORK/2.log")" -eq 14 ] || { cat "$WORK/2.log"; fail "re-run recomputed steps"; }
cmp -s "$WORK/first.csv" "$OUT/rl_ablation.csv" || fail "re-run changed the table"

# A new step count redoes the 6 GRPO arms (training and evaluation), not the SFT run or its evaluation.
run --steps 10 > "$WORK/3.log" 2>&1 || { tail -20 "$WORK/3.log"; fail "--steps run"; }
[ "$(grep -cE '^\[[ 0-9]+/15\] [a-z0-9_-]+: +training 10 GRPO steps .* \.\.\. [0-9.]+ s$' "$WORK/3.log")" -eq 6 ] \
  || { cat "$WORK/3.log"; fail "--steps did not redo the GRPO arms"; }
[ "$(grep -c ' cached$' "$WORK/3.log")" -eq 2 ] || { cat "$WORK/3.log"; fail "--steps redid more than the GRPO arms"; }
grep -qE '^\[ 1/15\] sft: .* cached$' "$WORK/3.log" || fail "--steps retrained the SFT model"
awk -F, 'NR > 1 && ($6 != ($1 == "sft" ? 0 : 10)) { exit 1 }' "$OUT/rl_ablation.csv" || fail "rl_steps after --steps"

# No binaries: a clear message, exit 2.
expect_exit 2 "qat-train missing: build first" bash "$SRC/scripts/ablate_rl_quant.sh" --quick --build "$WORK" --out "$WORK/y"
echo "rl_ablation: ok"
