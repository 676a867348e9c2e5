/* linear.c — y[..., out] = x[..., in]·wᵀ (nn.Linear without bias). The leading dims of x are
 * flattened into rows, so each direction is a single gemm. */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

/* The kernels, once per precision (the include order matters, so no sorting). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/linear.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/linear.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

/* Rows of x as a matrix: the product of its leading dims (not numel/cols, which is 0 when in = 0).
 */
static int64_t lead_rows(const ag_tensor *x) {
    int64_t r = 1;
    for (int d = 0; d + 1 < x->ndim; d++)
        r *= x->shape[d];
    return r;
}

ag_tensor *ag_linear(ag_tape *t, ag_tensor *x, ag_tensor *w) {
    ag_tensor *in[2] = {x, w};
    if (!x || !w || x->ndim < 1 || w->ndim != 2 || x->dtype != w->dtype)
        return NULL;
    /* x is (R,IC) with R = product of leading dims, w is (OC,IC), y is (R,OC) */
    int64_t R = lead_rows(x), IC = (int64_t)ag_cols(x), OC = w->shape[0];
    if (w->shape[1] != IC || R > INT_MAX || IC > INT_MAX || OC > INT_MAX) /* BLAS takes int dims */
        return NULL;
    int64_t shape[AG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = OC;
    ag_tensor *y = ag_op_output(t, x->dtype, x->ndim, shape, in, 2);
    if (!y)
        return NULL;
    if (x->dtype == AG_F32)
        linear_forward_f32(x->data, w->data, y->data, R, IC, OC);
    else
        linear_forward_f64(x->data, w->data, y->data, R, IC, OC);
    ag_record(t, AG_OP_LINEAR, y, in, 2);
    return y;
}

void ag_linear_backward(ag_node *n) {
    ag_tensor *x = n->in[0], *w = n->in[1], *y = n->out;
    int64_t R = lead_rows(x), IC = (int64_t)ag_cols(x), OC = w->shape[0];
    void *dx = x->requires_grad ? x->grad : NULL, *dw = w->requires_grad ? w->grad : NULL;
    if (y->dtype == AG_F32)
        linear_backward_f32(x->data, w->data, y->grad, dx, dw, R, IC, OC, n->assign & 1u);
    else
        linear_backward_f64(x->data, w->data, y->grad, dx, dw, R, IC, OC, n->assign & 1u);
}
