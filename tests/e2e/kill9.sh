# kill9.sh — SIGKILL at random moments, many of them during checkpoint writes (one per step):
# every checkpoint file left behind must verify, and --resume auto must continue.
source "$2/tests/e2e/lib/common.sh"

CFG=$(tiny_config "$WORK/k" "")
sed -i -e 's/^steps = 30/steps = 100000/' -e 's/^ckpt_every = 10/ckpt_every = 1/' "$CFG"
RANDOM=42
resume=()
for round in 1 2 3 4 5 6; do
  "$TRAIN" "$CFG" "${resume[@]}" 2> "$WORK/k$round.log" & pid=$!
  sleep "0.$((RANDOM % 9 + 3))"
  kill -9 $pid; wait $pid 2>/dev/null || true
  shopt -s nullglob; files=("$WORK"/k/ckpt/step_*.h5); shopt -u nullglob
  [ ${#files[@]} -gt 0 ] || continue
  "$CKPT" "${files[@]}" > "$WORK/verify.txt" || { cat "$WORK/verify.txt"; fail "round $round: a checkpoint under its final name is damaged"; }
  resume=(--resume auto)
done
ls "$WORK"/k/ckpt/step_*.h5 > /dev/null || fail "no checkpoint was ever completed"
last=$(ls "$WORK"/k/ckpt/step_*.h5 | tail -1); step=$((10#$(basename "$last" .h5 | sed 's/step_//')))
"$TRAIN" "$CFG" --resume auto --stop-after $((step + 1)) 2> "$WORK/final.log" \
  || { cat "$WORK/final.log"; fail "resume after kill -9"; }
grep -q "resumed from" "$WORK/final.log" || fail "did not resume"
echo "kill9: ok"
