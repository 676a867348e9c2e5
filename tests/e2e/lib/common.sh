# common.sh — sourced by the end-to-end tests. Usage in a test: source "$SRC/tests/e2e/lib/common.sh"
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/qat-e2e.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
TRAIN="$BUILD/qat-train"
CKPT="$BUILD/qat-ckpt"
CORPUS=/usr/share/games/fortunes/science
[ -f "$CORPUS" ] || { echo "missing $CORPUS (install the fortunes package)"; exit 1; }

# tiny_config OUT_DIR [extra INI lines...] -> path of a small, fast config
tiny_config() {
  local out=$1; shift
  local cfg="$WORK/$(basename "$out").ini"
  cat > "$cfg" <<INI
[run]
out_dir = $out
seed = 7
steps = 30
eval_every = 10
eval_batches = 2
ckpt_every = 10
keep = 2
log_every = 5
threads = 2
[model]
n_layer = 2
n_head = 2
d_model = 32
d_ff = 64
seq_len = 32
[data]
corpus = $CORPUS
batch_size = 4
[optim]
lr = 3e-3
warmup_steps = 5
INI
  printf '%s\n' "$@" >> "$cfg"
  echo "$cfg"
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_exit CODE PATTERN CMD... : run CMD, check exit code and that stderr matches PATTERN
expect_exit() {
  local code=$1 pat=$2; shift 2
  local rc=0
  "$@" > "$WORK/out.txt" 2> "$WORK/err.txt" || rc=$?
  [ "$rc" -eq "$code" ] || { cat "$WORK/err.txt" >&2; fail "'$*' exited $rc, expected $code"; }
  grep -qE -- "$pat" "$WORK/err.txt" || { cat "$WORK/err.txt" >&2; fail "'$*': stderr lacks /$pat/"; }
}

# loss column (and val_loss) of a metrics.csv, without timing columns
losses() { cut -d, -f1-7 "$1"; }
