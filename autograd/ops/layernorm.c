/* layernorm.c — y = (x − mean)/√(var + eps)·w + b over the last dim of x.
 * Forward saves mean and rstd per row so backward needs no second statistics pass, and reserves
 * the per-row-block partial sums of dw/db so backward makes one pass over x and dy without
 * allocating. */
#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

/* Independent partial sums per row reduction (see layernorm.inc). */
#define AG_NORM_LANES 16
/* Rows per block in the backward: each block keeps its own partial dw/db sums (2·C), added up in
 * block order afterwards. Fixed, so dw/db do not depend on the thread count. */
#define AG_NORM_ROWBLK 64

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
    /* stats = mean (N), rstd (N), then room for backward's partial dw/db sums (nblk, 2, C); kept
     * only when this op is recorded. */
    bool save = ag_tape_recording(t) && y->requires_grad;
    size_t es = ag_dtype_size(x->dtype);
    size_t nblk = (N + AG_NORM_ROWBLK - 1) / AG_NORM_ROWBLK;
    char *stats = save ? ag_tape_alloc(t, (2 * N + nblk * 2 * C) * es) : NULL;
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
    size_t nblk = (N + AG_NORM_ROWBLK - 1) / AG_NORM_ROWBLK;
    bool wb = w->requires_grad || b->requires_grad;
    if (!x->requires_grad && !wb)
        return;
    char *stats = n->ctx, *part = stats + 2 * N * es;
    if (x->dtype == AG_F32) {
        const float *mean = (const float *)stats, *rstd = (const float *)(stats + N * es);
        layernorm_bwd_f32(x->data, w->data, y->grad, mean, rstd, x->requires_grad ? x->grad : NULL,
                          wb ? (float *)part : NULL, N, C);
        if (wb)
            layernorm_bwd_wb_sum_f32((const float *)part, w->requires_grad ? w->grad : NULL,
                                     b->requires_grad ? b->grad : NULL, nblk, C);
    } else {
        const double *mean = (const double *)stats, *rstd = (const double *)(stats + N * es);
        layernorm_bwd_f64(x->data, w->data, y->grad, mean, rstd, x->requires_grad ? x->grad : NULL,
                          wb ? (double *)part : NULL, N, C);
        if (wb)
            layernorm_bwd_wb_sum_f64((const double *)part, w->requires_grad ? w->grad : NULL,
                                     b->requires_grad ? b->grad : NULL, nblk, C);
    }
}
