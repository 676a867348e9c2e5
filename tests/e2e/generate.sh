# generate.sh — qat-generate: greedy output is deterministic, a seed fixes sampled output, an
# anchor generates at mxint4, and bad input gets its exit code (4 checkpoint, 2 usage).
source "$2/tests/e2e/lib/common.sh"
GEN="$BUILD/qat-generate"

CFG=$(tiny_config "$WORK/g" "[quant]" "mode = multi")
"$TRAIN" "$CFG" 2> "$WORK/train.log" || { cat "$WORK/train.log"; fail "training"; }
LAST="$WORK/g/ckpt/step_0000030.h5"
A="$WORK/g/anchor.h5"

# gen NAME ARGS...: run qat-generate, stdout to $WORK/NAME.out, stderr to $WORK/NAME.err
gen() {
  local name=$1; shift
  "$GEN" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" || { cat "$WORK/$name.err"; fail "qat-generate $*"; }
}

gen g1 --checkpoint "$LAST" --prompt "The " --max-new-tokens 20 --temperature 0
gen g2 --checkpoint "$LAST" --prompt "The " --max-new-tokens 20 --temperature 0
cmp -s "$WORK/g1.out" "$WORK/g2.out" || fail "greedy output differs between runs"
head -c 4 "$WORK/g1.out" | grep -q "^The $" || fail "output does not start with the prompt"
[ "$(head -1 "$WORK/g1.out" | wc -c)" -ge 5 ] || [ "$(wc -l < "$WORK/g1.out")" -ge 2 ] || fail "nothing generated"
grep -qE "at fp32: 4 prompt tokens .*, 20 new tokens \([0-9.]+ ms/token\), stopped at max-new-tokens" \
  "$WORK/g1.err" || { cat "$WORK/g1.err"; fail "summary line"; }

gen s1 --checkpoint "$LAST" --prompt "A" --max-new-tokens 40 --temperature 1.0 --top-k 20 --top-p 0.9 --seed 5
gen s2 --checkpoint "$LAST" --prompt "A" --max-new-tokens 40 --temperature 1.0 --top-k 20 --top-p 0.9 --seed 5
cmp -s "$WORK/s1.out" "$WORK/s2.out" || fail "same seed, different output"

# The context is seq_len = 32: a 30-byte prompt leaves room for 3 more bytes at most.
gen c --checkpoint "$LAST" --prompt "012345678901234567890123456789" --max-new-tokens 50 --temperature 0
grep -q "3 new tokens .* stopped at context end" "$WORK/c.err" || { cat "$WORK/c.err"; fail "context end"; }

# From the anchor at mxint4 (Slice-and-Scale), and at the anchor's own format by default.
gen a4 --checkpoint "$A" --format mxint4 --prompt "The " --max-new-tokens 20 --temperature 0
grep -q "at mxint4: 4 prompt tokens" "$WORK/a4.err" || { cat "$WORK/a4.err"; fail "anchor mxint4"; }
gen a8 --checkpoint "$A" --prompt "The " --max-new-tokens 20 --temperature 0 --stop-at-newline
grep -q "at mxint8: " "$WORK/a8.err" || { cat "$WORK/a8.err"; fail "anchor default format"; }

expect_exit 4 "$WORK/none.h5" "$GEN" --checkpoint "$WORK/none.h5" --prompt "x"
expect_exit 2 "longer than the context .*seq_len = 32" "$GEN" --checkpoint "$LAST" \
  --prompt "0123456789012345678901234567890123456789"
expect_exit 2 "unknown option '--frobnicate'" "$GEN" --checkpoint "$LAST" --prompt "x" --frobnicate 1
expect_exit 2 "--top-p expects" "$GEN" --checkpoint "$LAST" --prompt "x" --top-p 1.5
expect_exit 2 "--format: unknown format 'mxint5'" "$GEN" --checkpoint "$LAST" --prompt "x" --format mxint5
echo "generate: ok"
