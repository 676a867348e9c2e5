# errors.sh — bad input gets a clear message and the documented exit code, never a crash.
source "$2/tests/e2e/lib/common.sh"

CFG=$(tiny_config "$WORK/e")
expect_exit 2 "cannot open config '$WORK/nope.ini'" "$TRAIN" "$WORK/nope.ini"
expect_exit 2 "usage: qat-train" "$TRAIN"
expect_exit 2 "unknown or incomplete option '--frobnicate'" "$TRAIN" "$CFG" --frobnicate

BAD=$(tiny_config "$WORK/bad" "[optim]" "lrr = 0.1")
expect_exit 2 "bad.ini:[0-9]+: .*unknown key 'lrr' in \[optim\]" "$TRAIN" "$BAD"
expect_exit 2 "n_layer" "$TRAIN" "$CFG" --set model.n_layer=0
expect_exit 2 "lr" "$TRAIN" "$CFG" --set optim.lr=abc
expect_exit 3 "$WORK/missing-corpus" "$TRAIN" "$CFG" --set "data.corpus=$WORK/missing-corpus"

# Checkpoints: good one first, then damaged copies.
"$TRAIN" "$CFG" --stop-after 3 2> "$WORK/e.log" || { cat "$WORK/e.log"; fail "training"; }
good="$WORK/e/ckpt/step_0000003.h5"
"$CKPT" "$good" > /dev/null || fail "good checkpoint does not verify"
size=$(stat -c %s "$good")
head -c $((size / 2)) "$good" > "$WORK/trunc.h5"
expect_exit 4 "trunc.h5" "$TRAIN" "$CFG" --resume "$WORK/trunc.h5"
expect_exit 4 "trunc.h5" "$CKPT" "$WORK/trunc.h5"
cp "$good" "$WORK/flip.h5"
off=$((size / 2))
printf '\xff\x00\xff\x00' | dd of="$WORK/flip.h5" bs=1 seek=$off conv=notrunc status=none
expect_exit 4 "flip.h5" "$TRAIN" "$CFG" --resume "$WORK/flip.h5"
echo "not hdf5" > "$WORK/text.h5"
expect_exit 4 "text.h5" "$TRAIN" "$CFG" --resume "$WORK/text.h5"
expect_exit 4 "no such file|No such file|cannot open|does not exist" "$TRAIN" "$CFG" --resume "$WORK/none.h5"
expect_exit 4 "n_layer.*d_model|d_model.*n_layer" "$TRAIN" "$CFG" --resume "$good" \
  --set model.n_layer=3 --set model.d_model=48

# A NaN loss stops the run with exit 5 and writes no checkpoint for the bad step.
N=$(tiny_config "$WORK/n")
sed -i 's/^ckpt_every = 10/ckpt_every = 2/' "$N"
expect_exit 5 "loss is nan at step 5" "$TRAIN" "$N" --debug-nan-at 5
[ -f "$WORK/n/ckpt/step_0000004.h5" ] || fail "last good checkpoint missing"
[ ! -e "$WORK/n/ckpt/step_0000005.h5" ] || fail "checkpoint written for the NaN step"
echo "errors: ok"
