/* clinear.c — complex-linear projection (CRoPE attention): x [..., d] read as d/2 complex numbers
 * x̃_k = x[2k] + i·x[2k+1], ỹ = W̃·x̃ with W̃ = A + iB, A and B [D/2, d/2] two real parameter
 * tensors, y [..., D] interleaved the same way:
 *     y_r = A x_r − B x_i,   y_i = B x_r + A x_i.
 *
 * How: each step expands W̃ into its real matrix W_e [D, d] in the interleaved basis (2×2 blocks
 * [[a, −b], [b, a]]), then every O(R·D·d) product is one gemm on the data as it lies:
 *     forward  y   = x·W_eᵀ
 *     backward dx += dy·W_e,   dW_e = dyᵀ·x, folded into dA, dB (the adjoint of the expansion).
 * Each gemm runs in fixed row blocks (clin_gemm in clinear.inc) so that results, float included,
 * are bit-identical for any thread count; the expansion and fold write each element once.
 * Why not four gemms on deinterleaved planes (x_r, x_i, ...): the multiply-add count is the same
 * (R·D·d either way), but planes cost copies of x, y, dy and dx in and out of the interleaved
 * layout — O(R·(d+D)) memory traffic and arena per call — and four quarter-size gemms run further
 * from peak than one. The expansion and fold are O(D·d), a 1/R fraction of the gemm work. Gauss's
 * three-multiplication trick would save 25% of the flops but needs planes and their sums, and
 * loses accuracy to cancellation. The cost is arena, not time: W_e (D·d) is kept for dx, and a
 * dW_e scratch (D·d) is reserved by forward only when A or B needs a grad (backward must not
 * allocate). The parameters stored, checkpointed and fake-quantized are A and B only. */
#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <string.h>

#include "autograd/ops/ops.h"

/* Below this many complex weights the expansion and fold run on one thread: a team costs more
 * than such a pass, and gradient checks make thousands of tiny calls. */
#define AG_CLIN_PAR_MIN 16384
/* gemm partition (see clin_gemm in clinear.inc): one direct call up to AG_CLIN_GEMM_SERIAL
 * multiply-adds, otherwise row blocks of max(AG_CLIN_GEMM_MIN_ROWS, ⌈M/AG_CLIN_GEMM_MAX_BLOCKS⌉)
 * rows. Measured forward+backward at R=2048, d=D=256 against OpenBLAS's own threading (ratio of
 * times): 64-row blocks 1.07–1.13 at 2 threads (each block re-packs the shared operand, worst in
 * dW_e = dyᵀ·x where that operand is all of x); 128 rows 1.00–1.04 at 2 threads but 1.08 at 1;
 * 256 rows 1.2 at 2 threads (dW_e in one block, one thread idle); ≤ 8 blocks of ≥ 128 rows
 * 0.95–1.00 at 2 threads, 1.04–1.05 at 1. */
#define AG_CLIN_GEMM_SERIAL 65536.0
#define AG_CLIN_GEMM_MIN_ROWS 128
#define AG_CLIN_GEMM_MAX_BLOCKS 8

/* The kernels, once per precision (the include order matters, so no sorting). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/clinear.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/clinear.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

/* Rows of x as a matrix: the product of its leading dims (not numel/cols, which is 0 when d = 0).
 */
static int64_t lead_rows(const ag_tensor *x) {
    int64_t r = 1;
    for (int k = 0; k + 1 < x->ndim; k++)
        r *= x->shape[k];
    return r;
}

ag_tensor *ag_clinear(ag_tape *t, ag_tensor *x, ag_tensor *a, ag_tensor *b) {
    ag_tensor *in[3] = {x, a, b};
    if (!x || !a || !b || x->ndim < 1 || a->ndim != 2 || !ag_same_shape(a, b) ||
        !ag_dtypes_match(x, in + 1, 2))
        return NULL;
    /* x is (R,d) with R = product of leading dims; a, b are (D2,d2) with d = 2·d2; y is (R,D)
     * with D = 2·D2. */
    int64_t R = lead_rows(x), d = (int64_t)ag_cols(x), D2 = a->shape[0], d2 = a->shape[1];
    if (d % 2 != 0 || d2 != d / 2 || D2 > INT_MAX / 2 || R > INT_MAX || d > INT_MAX)
        return NULL; /* BLAS takes int dims */
    int64_t D = 2 * D2, shape[AG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = D;
    ag_tensor *y = ag_op_output(t, x->dtype, x->ndim, shape, in, 3);
    if (!y)
        return NULL;
    bool save = ag_tape_recording(t) && y->requires_grad;
    /* One block: W_e (D,d), then at the next 64-byte boundary the dW_e scratch when needed. */
    size_t es = ag_dtype_size(x->dtype), we_bytes = (size_t)D * (size_t)d * es;
    size_t off = (we_bytes + 63) & ~(size_t)63;
    bool need_dwe = save && (a->requires_grad || b->requires_grad);
    char *we = ag_tape_alloc(t, need_dwe ? off + we_bytes : we_bytes);
    if (!we)
        return NULL;
    if (x->dtype == AG_F32) {
        clinear_expand_f32(a->data, b->data, (float *)we, (size_t)D2, (size_t)d2);
        clinear_forward_f32(x->data, (float *)we, y->data, R, d, D);
    } else {
        clinear_expand_f64(a->data, b->data, (double *)we, (size_t)D2, (size_t)d2);
        clinear_forward_f64(x->data, (double *)we, y->data, R, d, D);
    }
    if (save) {
        ag_node *n = ag_record(t, AG_OP_CLINEAR, y, in, 3);
        if (!n)
            return NULL; /* tape full: ag_tape_error says so */
        n->ctx = we;
        n->i[0] = need_dwe;     /* whether the dW_e scratch exists */
        n->i[1] = (int64_t)off; /* its byte offset from W_e */
    }
    return y;
}

void ag_clinear_backward(ag_node *n) {
    ag_tensor *x = n->in[0], *a = n->in[1], *b = n->in[2], *y = n->out;
    int64_t R = lead_rows(x), d = (int64_t)ag_cols(x), D = (int64_t)ag_cols(y);
    void *dx = x->requires_grad ? x->grad : NULL;
    void *dwe = n->i[0] ? (char *)n->ctx + n->i[1] : NULL;
    void *da = a->requires_grad ? a->grad : NULL, *db = b->requires_grad ? b->grad : NULL;
    if (y->dtype == AG_F32)
        clinear_backward_f32(x->data, n->ctx, y->grad, dx, dwe, da, db, R, d, D);
    else
        clinear_backward_f64(x->data, n->ctx, y->grad, dx, dwe, da, db, R, d, D);
}
