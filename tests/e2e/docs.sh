# docs.sh — docs/CONFIG.md documents every config key exactly as `qat-train --help-config` does.
source "$2/tests/e2e/lib/common.sh"
sed -n '/^```$/,/^```$/p' "$SRC/docs/CONFIG.md" | sed '1d;$d' > "$WORK/doc.txt"
"$TRAIN" --help-config > "$WORK/help.txt"
diff "$WORK/help.txt" "$WORK/doc.txt" || fail "docs/CONFIG.md is stale: run scripts/gen_config_doc.sh"
grep -q "quant.weights_via_anchor" "$WORK/help.txt" || fail "help lacks [quant] keys"
echo "docs: ok"
