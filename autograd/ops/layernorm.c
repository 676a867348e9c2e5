/* layernorm.c — y = (x − mean)/√(var + eps)·w + b over the last dim of x.
 * Forward saves mean and rstd per row so backward needs no second statistics pass. */
#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

/* Independent partial sums per row reduction (see layernorm.inc). */
#define AG_NORM_LANES 16
/* Columns per block in the dw/db reduction (one block per task). */
#define AG_NORM_COLBLK 32

/* The kernels, once per precision (begin, kernels, end: the include order matters). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/layernorm.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/layernorm.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

ag_tensor *ag_layernorm(ag_tape *t, ag_tensor *x, ag_tensor *w, ag_tensor *b, double eps) {
    ag_tensor *in[3] = {x, w, b};
    if (!x || !w || !b || x->ndim < 1 || !ag_dtypes_match(x, in + 1, 2))
        return NULL;
    size_t N = ag_rows(x), C = ag_cols(x);
    if (C == 0 || w->ndim != 1 || b->ndim != 1 || (size_t)w->shape[0] != C ||
        (size_t)b->shape[0] != C)
        return NULL;
    ag_tensor *y = ag_op_output(t, x->dtype, x->ndim, x->shape, in, 3);
    if (!y)
        return NULL;
    /* stats = mean (N) then rstd (N), kept for backward only when this op is recorded. */
    bool save = ag_tape_recording(t) && y->requires_grad;
    size_t es = ag_dtype_size(x->dtype);
    char *stats = save ? ag_tape_alloc(t, 2 * N * es) : NULL;
    if (save && !stats)
        return NULL;
    if (x->dtype == AG_F32)
        layernorm_fwd_f32(x->data, w->data, b->data, y->data, (float *)stats,
                          stats ? (float *)(stats + N * es) : NULL, N, C, (float)eps);
    else
        layernorm_fwd_f64(x->data, w->data, b->data, y->data, (double *)stats,
                          stats ? (double *)(stats + N * es) : NULL, N, C, eps);
    if (save) {
        ag_node *n = ag_record(t, AG_OP_LAYERNORM, y, in, 3);
        if (!n)
            return NULL; /* tape full: ag_tape_error says so */
        n->ctx = stats;
    }
    return y;
}

void ag_layernorm_backward(ag_node *n) {
    ag_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out;
    size_t N = ag_rows(x), C = ag_cols(x), es = ag_dtype_size(x->dtype);
    char *stats = n->ctx;
    if (x->dtype == AG_F32) {
        const float *mean = (const float *)stats, *rstd = (const float *)(stats + N * es);
        if (x->requires_grad)
            layernorm_bwd_x_f32(x->data, w->data, y->grad, mean, rstd, x->grad, N, C);
        if (w->requires_grad || b->requires_grad)
            layernorm_bwd_wb_f32(x->data, y->grad, mean, rstd, w->requires_grad ? w->grad : NULL,
                                 b->requires_grad ? b->grad : NULL, N, C);
    } else {
        const double *mean = (const double *)stats, *rstd = (const double *)(stats + N * es);
        if (x->requires_grad)
            layernorm_bwd_x_f64(x->data, w->data, y->grad, mean, rstd, x->grad, N, C);
        if (w->requires_grad || b->requires_grad)
            layernorm_bwd_wb_f64(x->data, y->grad, mean, rstd, w->requires_grad ? w->grad : NULL,
                                 b->requires_grad ? b->grad : NULL, N, C);
    }
}
