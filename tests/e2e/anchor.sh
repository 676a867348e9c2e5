# anchor.sh — the end of a quantized run (anchor.h5 and the per-format table), qat-eval on the
# anchor, on a training checkpoint and on a converted file, qat-convert both ways, and the refusals
# with their exit codes and messages.
source "$2/tests/e2e/lib/common.sh"
EVAL="$BUILD/qat-eval"
CONVERT="$BUILD/qat-convert"
FORMATS="fp32 mxint8 mxfp8_e4m3 mxfp8_e5m2 mxint6 mxfp6_e3m2 mxfp6_e2m3 mxint4 mxfp4_e2m1 mxint2"
ROW='[0-9]+\.[0-9]{2} +[0-9]+\.[0-9]{4} +[0-9]+\.[0-9]{3} +[+-][0-9]+\.[0-9]{4}$'

# table_rows FILE: the table's rows (format name first), whatever else the file holds
table_rows() { grep -E "^($(echo $FORMATS | tr ' ' '|')) +[0-9]" "$1" || true; }
# loss_of FORMAT FILE: the val_loss column of FORMAT's row
loss_of() { table_rows "$2" | awk -v f="$1" '$1 == f { print $3 }'; }

# A quantized run writes anchor.h5 after its last checkpoint and prints the table from it.
CFG=$(tiny_config "$WORK/q" "[quant]" "mode = multi")
"$TRAIN" "$CFG" 2> "$WORK/train.log" || { cat "$WORK/train.log"; fail "training"; }
A="$WORK/q/anchor.h5"
LAST="$WORK/q/ckpt/step_0000030.h5"
[ -f "$A" ] || fail "no anchor.h5"
"$CKPT" "$A" | grep -q "ok, kind anchor, step 30" || fail "anchor.h5 does not verify"
grep -q "anchor $A: mxint8 (rounding even), 12 quantized tensors" "$WORK/train.log" \
  || { cat "$WORK/train.log"; fail "anchor line"; }
for f in $FORMATS; do
  table_rows "$WORK/train.log" | grep -qE "^$f +$ROW" || { cat "$WORK/train.log"; fail "no $f row"; }
done
grep -q "fp32 = the dequantized mxint8 anchor weights" "$WORK/train.log" || fail "fp32 footnote"
# mxint2 is far coarser than the anchor: the formats were really applied.
[ "$(loss_of mxint2 "$WORK/train.log")" != "$(loss_of fp32 "$WORK/train.log")" ] \
  || fail "mxint2 row equals fp32"

# qat-eval on the anchor reproduces the end-of-run table exactly, and writes it as CSV.
"$EVAL" --checkpoint "$A" --csv "$WORK/a.csv" > "$WORK/a.txt" 2> "$WORK/a.err" \
  || { cat "$WORK/a.err"; fail "qat-eval anchor"; }
diff <(table_rows "$WORK/train.log") <(table_rows "$WORK/a.txt") || fail "tables differ"
grep -q "\[10/10\] mxint2 " "$WORK/a.err" || { cat "$WORK/a.err"; fail "progress lines"; }
[ "$(head -1 "$WORK/a.csv")" = "format,bits_per_element,val_loss,perplexity,delta_vs_fp32,note" ] \
  || fail "csv header"
[ "$(wc -l < "$WORK/a.csv")" -eq 11 ] || fail "csv rows"
grep -qE '^mxfp4_e2m1,4\.25,[0-9.]+,[0-9.]+,-?[0-9.]+,$' "$WORK/a.csv" || fail "csv mxfp4 row"

# On the final training checkpoint: fp32 is the run's final validation loss (same batches).
"$EVAL" --checkpoint "$LAST" --formats mxint4,mxfp4_e2m1 > "$WORK/t.txt" 2> "$WORK/t.err" \
  || { cat "$WORK/t.err"; fail "qat-eval train"; }
[ "$(table_rows "$WORK/t.txt" | wc -l)" -eq 3 ] || { cat "$WORK/t.txt"; fail "train rows"; }
final=$(sed -n 's/.*final val_loss \([0-9.]*\);.*/\1/p' "$WORK/train.log")
[ "$(loss_of fp32 "$WORK/t.txt")" = "$final" ] || fail "fp32 $(loss_of fp32 "$WORK/t.txt") != $final"
grep -q "quantized directly to each format (quant.weights_via_anchor = false)" "$WORK/t.err" \
  || fail "weights note"

# Convert to mxint4 and evaluate: the same mxint4 loss as from the anchor; other formats skipped.
"$CONVERT" --anchor "$A" --to mxint4 --out "$WORK/int4.h5" 2> "$WORK/c.err" \
  || { cat "$WORK/c.err"; fail "convert"; }
"$CKPT" "$WORK/int4.h5" | grep -q "kind anchor" || fail "int4.h5 does not verify"
[ "$(stat -c %s "$WORK/int4.h5")" -lt "$(stat -c %s "$A")" ] || fail "int4.h5 not smaller"
"$EVAL" --checkpoint "$WORK/int4.h5" > "$WORK/i.txt" 2> "$WORK/i.err" \
  || { cat "$WORK/i.err"; fail "qat-eval int4"; }
[ "$(loss_of mxint4 "$WORK/i.txt")" = "$(loss_of mxint4 "$WORK/a.txt")" ] || fail "mxint4 differs"
grep -q "^mxint2 .*skipped: the file was already converted (mxint8 -> mxint4)" "$WORK/i.txt" \
  || { cat "$WORK/i.txt"; fail "skip note"; }
grep -q "mxint4 converted from a mxint8 anchor" "$WORK/i.err" || fail "converted banner"

# An anchor on demand from the training checkpoint is the end-of-run anchor, bit for bit.
"$CONVERT" --checkpoint "$LAST" --to mxint8 --out "$WORK/again.h5" 2> "$WORK/c.err" \
  || { cat "$WORK/c.err"; fail "convert --checkpoint"; }
"$CKPT" --compare-params "$A" "$WORK/again.h5" || fail "on-demand anchor differs"
"$CONVERT" --checkpoint "$LAST" --to mxfp8_e4m3 --out "$WORK/e4m3.h5" 2> /dev/null || fail "e4m3"
"$EVAL" --checkpoint "$WORK/e4m3.h5" --formats mxfp6_e3m2 --quantize weights \
  > "$WORK/e.txt" 2> /dev/null || fail "eval e4m3"
[ "$(table_rows "$WORK/e.txt" | wc -l)" -eq 2 ] || fail "e4m3 rows"

# Refusals: exit code and a message naming the flag or the file.
echo "not hdf5" > "$WORK/junk.h5"
head -c 5000 "$A" > "$WORK/cut.h5"
expect_exit 2 "--to: unknown format 'mxint3'" "$CONVERT" --anchor "$A" --to mxint3 --out "$WORK/x.h5"
expect_exit 2 "--to fp32: cannot convert .*anchor.h5: fp32 \(32 bits\) is above mxint8" \
  "$CONVERT" --anchor "$A" --to fp32 --out "$WORK/x.h5"
expect_exit 2 "--to mxint8: cannot convert .*int4.h5: mxint8 \(8 bits\) is above mxint4" \
  "$CONVERT" --anchor "$WORK/int4.h5" --to mxint8 --out "$WORK/x.h5"
expect_exit 2 "int4.h5: the file was already converted" \
  "$CONVERT" --anchor "$WORK/int4.h5" --to mxint2 --out "$WORK/x.h5"
expect_exit 4 "step_0000030.h5: is a 'train' checkpoint, not an anchor" \
  "$CONVERT" --anchor "$LAST" --to mxint4 --out "$WORK/x.h5"
expect_exit 4 "junk.h5: not an HDF5 file" "$CONVERT" --anchor "$WORK/junk.h5" --to mxint4 --out "$WORK/x.h5"
expect_exit 4 "cut.h5: truncated file" "$CONVERT" --anchor "$WORK/cut.h5" --to mxint4 --out "$WORK/x.h5"
expect_exit 2 "--to mxint4: an anchor made from --checkpoint .* must be mxint8, mxfp8_e4m3 or mxfp8_e5m2" \
  "$CONVERT" --checkpoint "$LAST" --to mxint4 --out "$WORK/x.h5"
expect_exit 4 "anchor.h5: is of kind 'anchor'; --checkpoint takes a training checkpoint" \
  "$CONVERT" --checkpoint "$A" --to mxint8 --out "$WORK/x.h5"
expect_exit 2 "give exactly one of --anchor" "$CONVERT" --to mxint4 --out "$WORK/x.h5"
[ ! -e "$WORK/x.h5" ] || fail "a refused conversion wrote its output"
expect_exit 2 "--formats: unknown format 'mxint5'" "$EVAL" --checkpoint "$A" --formats mxint5
expect_exit 2 "--batches expects a positive integer" "$EVAL" --checkpoint "$A" --batches 0
expect_exit 2 "--checkpoint FILE is required" "$EVAL"
expect_exit 4 "cut.h5: truncated file" "$EVAL" --checkpoint "$WORK/cut.h5"
expect_exit 4 "nope.h5: cannot open checkpoint" "$EVAL" --checkpoint "$WORK/nope.h5"
expect_exit 3 "$WORK/no-corpus" "$EVAL" --checkpoint "$A" --corpus "$WORK/no-corpus"

# No anchor for a run stopped early, nor for a run without [quant].
S=$(tiny_config "$WORK/s" "[quant]" "mode = single" "formats = mxint4")
"$TRAIN" "$S" --stop-after 3 2> "$WORK/s.log" || { cat "$WORK/s.log"; fail "stop-after run"; }
[ ! -e "$WORK/s/anchor.h5" ] || fail "anchor written after --stop-after"
N=$(tiny_config "$WORK/n")
sed -i 's/^steps = 30/steps = 3/' "$N"
"$TRAIN" "$N" 2> "$WORK/n.log" || { cat "$WORK/n.log"; fail "fp32 run"; }
[ ! -e "$WORK/n/anchor.h5" ] || fail "anchor written without [quant]"
echo "anchor: ok"
