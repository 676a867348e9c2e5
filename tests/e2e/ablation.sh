# ablation.sh — scripts/ablate_ptq_vs_qat.sh --quick end to end: it writes ablation.csv, .md and
# .png, well formed and with a finite loss for every method at every format; a re-run takes every
# step from the cache; a changed option redoes exactly the steps it affects.
source "$2/tests/e2e/lib/common.sh"
OUT="$WORK/abl"
run() { bash "$SRC/scripts/ablate_ptq_vs_qat.sh" --quick --build "$BUILD" --out "$OUT" "$@"; }
run > "$WORK/1.log" 2>&1 || { tail -40 "$WORK/1.log"; fail "quick ablation"; }

# CSV: header, then 1 baseline + 4 PTQ methods x 3 formats + ft_fp32 (fp32 and 3 formats)
# + 3 single-format QAT + 3 MF-QAT + 3 anchor rows = 26 rows, every loss a finite number.
[ "$(head -1 "$OUT/ablation.csv")" = "method,format,bits_per_element,val_loss,delta_vs_fp32" ] || fail "csv header"
[ "$(tail -n +2 "$OUT/ablation.csv" | wc -l)" -eq 26 ] || { cat "$OUT/ablation.csv"; fail "csv rows"; }
bad=$(tail -n +2 "$OUT/ablation.csv" | grep -cvE '^[a-z0-9_+]+,(fp32|mxint8|mxint4|mxfp4_e2m1),(32|8\.25|4\.25)\.?[0-9]*,[0-9]+\.[0-9]{6},[+-][0-9]+\.[0-9]{6}$' || true)
[ "$bad" -eq 0 ] || { cat "$OUT/ablation.csv"; fail "$bad malformed csv rows"; }
for m in rtn gptq smoothquant+rtn smoothquant+gptq ft_fp32+rtn qat mfqat mfqat_anchor_sns; do
  for f in mxint8 mxint4 mxfp4_e2m1; do
    grep -q "^$m,$f," "$OUT/ablation.csv" || fail "no $m at $f"
  done
done
# Markdown: the header and one row per format; PNG: a real image.
grep -q '^| format | bits/elem | rtn | gptq | smoothquant+rtn | smoothquant+gptq | ft_fp32+rtn | qat | mfqat | mfqat_anchor_sns | best PTQ | best QAT | QAT gain |$' \
  "$OUT/ablation.md" || { cat "$OUT/ablation.md"; fail "md header"; }
[ "$(grep -cE '^\| (mxint8|mxint4|mxfp4_e2m1) \| [0-9.]+ \|( [0-9]+\.[0-9]{4} \|){10} [+-][0-9]+\.[0-9]{4} \|$' "$OUT/ablation.md")" -eq 3 ] \
  || { cat "$OUT/ablation.md"; fail "md rows"; }
[ "$(head -c 8 "$OUT/ablation.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "png signature"
[ "$(stat -c %s "$OUT/ablation.png")" -gt 10000 ] || fail "png too small"
grep -qE '^\[ 1/21\] train_baseline +\.\.\.$' "$WORK/1.log" || { head "$WORK/1.log"; fail "progress lines"; }

# A re-run computes nothing and reproduces the same table.
cp "$OUT/ablation.csv" "$WORK/first.csv"
run > "$WORK/2.log" 2>&1 || { tail -20 "$WORK/2.log"; fail "re-run"; }
[ "$(grep -c ' cached$' "$WORK/2.log")" -eq 20 ] || { cat "$WORK/2.log"; fail "re-run recomputed steps"; }
cmp -s "$WORK/first.csv" "$OUT/ablation.csv" || fail "re-run changed the table"

# A new SmoothQuant alpha redoes the 6 SmoothQuant steps and nothing else.
run --alpha 0.8 > "$WORK/3.log" 2>&1 || { tail -20 "$WORK/3.log"; fail "alpha run"; }
[ "$(grep -cE '^\[[ 0-9]+/21\] ptq_smoothquant_[a-z]+_[a-z0-9_]+ +\.\.\.$' "$WORK/3.log")" -eq 6 ] \
  || { cat "$WORK/3.log"; fail "alpha change did not redo the smoothquant steps"; }
[ "$(grep -c ' cached$' "$WORK/3.log")" -eq 14 ] || { cat "$WORK/3.log"; fail "alpha change redid others"; }
echo "ablation: ok"
