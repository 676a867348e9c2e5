/* rmsnorm.c — y = x/√(mean(x²) + eps)·w over the last dim of x (no centering, no bias).
 * Forward saves rstd per row for backward and reserves the per-row-block partial sums of dw, so
 * backward makes one pass over x and dy without allocating. */
#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

/* Independent partial sums per row reduction (see rmsnorm.inc). */
#define AG_NORM_LANES 16
/* Rows per block in the backward: each block keeps its own partial dw sums (C), added up in block
 * order afterwards. Fixed, so dw does not depend on the thread count. */
#define AG_NORM_ROWBLK 64

/* The kernels, once per precision (begin, kernels, end: the include order matters). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/rmsnorm.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/rmsnorm.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

ag_tensor *ag_rmsnorm(ag_tape *t, ag_tensor *x, ag_tensor *w, double eps) {
    ag_tensor *in[2] = {x, w};
    if (!x || !w || x->ndim < 1 || !ag_dtypes_match(x, in + 1, 1))
        return NULL;
    size_t N = ag_rows(x), C = ag_cols(x);
    if (C == 0 || w->ndim != 1 || (size_t)w->shape[0] != C)
        return NULL;
    ag_tensor *y = ag_op_output(t, x->dtype, x->ndim, x->shape, in, 2);
    if (!y)
        return NULL;
    /* rstd (N), then room for backward's partial dw sums (nblk, C); kept only when this op is
     * recorded. */
    bool save = ag_tape_recording(t) && y->requires_grad;
    size_t nblk = (N + AG_NORM_ROWBLK - 1) / AG_NORM_ROWBLK;
    void *rstd = save ? ag_tape_alloc(t, (N + nblk * C) * ag_dtype_size(x->dtype)) : NULL;
    if (save && !rstd)
        return NULL;
    if (x->dtype == AG_F32)
        rmsnorm_fwd_f32(x->data, w->data, y->data, rstd, N, C, (float)eps);
    else
        rmsnorm_fwd_f64(x->data, w->data, y->data, rstd, N, C, eps);
    if (save) {
        ag_node *n = ag_record(t, AG_OP_RMSNORM, y, in, 2);
        if (!n)
            return NULL; /* tape full: ag_tape_error says so */
        n->ctx = rstd;
    }
    return y;
}

void ag_rmsnorm_backward(ag_node *n) {
    ag_tensor *x = n->in[0], *w = n->in[1], *y = n->out;
    size_t N = ag_rows(x), C = ag_cols(x);
    size_t nblk = (N + AG_NORM_ROWBLK - 1) / AG_NORM_ROWBLK;
    if (!x->requires_grad && !w->requires_grad)
        return;
    if (x->dtype == AG_F32) {
        const float *rstd = n->ctx;
        float *part = w->requires_grad ? (float *)n->ctx + N : NULL;
        rmsnorm_bwd_f32(x->data, w->data, y->grad, rstd, x->requires_grad ? x->grad : NULL, part, N,
                        C);
        if (part)
            rmsnorm_bwd_w_sum_f32(part, w->grad, nblk, C);
    } else {
        const double *rstd = n->ctx;
        double *part = w->requires_grad ? (double *)n->ctx + N : NULL;
        rmsnorm_bwd_f64(x->data, w->data, y->grad, rstd, x->requires_grad ? x->grad : NULL, part, N,
                        C);
        if (part)
            rmsnorm_bwd_w_sum_f64(part, w->grad, nblk, C);
    }
}
