/* rope.c — rotary position embedding on x (B,T,C): each head (a contiguous HS = C/NH slice) has
 * its interleaved pairs (2j, 2j+1) at position pos0+t rotated by (pos0+t)·base^(-2j/HS).
 * The cos/sin table (T,HS/2) is built once per call in the arena; backward applies the inverse
 * rotation to dy with the same table. ag_rope_packed rotates the q and k thirds of a packed
 * [B,T,3C] projection [q | k | v] in one pass and copies v, so the fused q/k/v GEMM also serves
 * rotary models. */
#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

/* The kernels, once per precision (begin, kernels, end: the include order matters). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/rope.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/rope.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

/* Rotates the first n_rot of x's n_head heads (the rest pass through) and records the node. */
static ag_tensor *rope(ag_tape *t, ag_tensor *x, int n_head, int n_rot, int64_t pos0, double base) {
    ag_tensor *in[1] = {x};
    if (!x || x->ndim != 3 || n_head < 1 || !(base > 0))
        return NULL;
    size_t B = (size_t)x->shape[0], T = (size_t)x->shape[1], C = (size_t)x->shape[2];
    size_t NH = (size_t)n_head, NR = (size_t)n_rot, HS = C / NH;
    if (C % NH != 0 || HS == 0 || HS % 2 != 0)
        return NULL;
    size_t H2 = HS / 2, es = ag_dtype_size(x->dtype);
    ag_tensor *y = ag_op_output(t, x->dtype, 3, x->shape, in, 1);
    /* table = cos (T,H2) then sin (T,H2); needed by forward, kept for backward when recorded. */
    char *table = y ? ag_tape_alloc(t, 2 * T * H2 * es) : NULL;
    if (!table)
        return NULL;
    char *sn = table + T * H2 * es;
    if (x->dtype == AG_F32) {
        rope_table_f32((float *)table, (float *)sn, T, H2, pos0, base);
        rope_rotate_f32(x->data, y->data, (float *)table, (float *)sn, B, T, NH, NR, H2, 1.0f, 0);
    } else {
        rope_table_f64((double *)table, (double *)sn, T, H2, pos0, base);
        rope_rotate_f64(x->data, y->data, (double *)table, (double *)sn, B, T, NH, NR, H2, 1.0, 0);
    }
    if (ag_tape_recording(t) && y->requires_grad) {
        ag_node *n = ag_record(t, AG_OP_ROPE, y, in, 1);
        if (!n)
            return NULL; /* tape full: ag_tape_error says so */
        n->ctx = table;
        n->i[0] = n_head;
        n->i[1] = n_rot;
    }
    return y;
}

ag_tensor *ag_rope(ag_tape *t, ag_tensor *x, int n_head, int64_t pos0, double base) {
    return rope(t, x, n_head, n_head, pos0, base);
}

ag_tensor *ag_rope_packed(ag_tape *t, ag_tensor *qkv, int n_head, int64_t pos0, double base) {
    if (!qkv || qkv->ndim != 3 || qkv->shape[2] % 3 != 0 || n_head < 1)
        return NULL;
    return rope(t, qkv, 3 * n_head, 2 * n_head, pos0, base);
}

void ag_rope_backward(ag_node *n) {
    ag_tensor *x = n->in[0], *y = n->out;
    if (!x->requires_grad)
        return;
    size_t B = (size_t)x->shape[0], T = (size_t)x->shape[1], C = (size_t)x->shape[2];
    size_t NH = (size_t)n->i[0], NR = (size_t)n->i[1], H2 = C / NH / 2;
    char *table = n->ctx, *sn = table + T * H2 * ag_dtype_size(x->dtype);
    int acc = !(n->assign & 1u); /* assigned: the first write into an unzeroed buffer */
    if (x->dtype == AG_F32)
        rope_rotate_f32(y->grad, x->grad, (float *)table, (float *)sn, B, T, NH, NR, H2, -1.0f,
                        acc);
    else
        rope_rotate_f64(y->grad, x->grad, (double *)table, (double *)sn, B, T, NH, NR, H2, -1.0,
                        acc);
}
