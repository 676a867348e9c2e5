/* rmsnorm.c — y = x/√(mean(x²) + eps)·w over the last dim of x (no centering, no bias).
 * Forward saves rstd per row for backward. */
#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

/* Independent partial sums per row reduction (see rmsnorm.inc). */
#define AG_NORM_LANES 16
/* Columns per block in the dw reduction (one block per task). */
#define AG_NORM_COLBLK 32

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
    /* rstd (N), kept for backward only when this op is recorded. */
    bool save = ag_tape_recording(t) && y->requires_grad;
    void *rstd = save ? ag_tape_alloc(t, N * ag_dtype_size(x->dtype)) : NULL;
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
    if (x->dtype == AG_F32) {
        if (x->requires_grad)
            rmsnorm_bwd_x_f32(x->data, w->data, y->grad, n->ctx, x->grad, N, C);
        if (w->requires_grad)
            rmsnorm_bwd_w_f32(x->data, y->grad, n->ctx, w->grad, N, C);
    } else {
        if (x->requires_grad)
            rmsnorm_bwd_x_f64(x->data, w->data, y->grad, n->ctx, x->grad, N, C);
        if (w->requires_grad)
            rmsnorm_bwd_w_f64(x->data, y->grad, n->ctx, w->grad, N, C);
    }
}
