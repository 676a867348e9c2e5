/* attention.c — fused causal multi-head self-attention: per (batch, head),
 * out_h = softmax(q_h k_hᵀ/√HS, masked to j ≤ i) v_h. Forward saves the probabilities P
 * (B,NH,T,T) for backward, which recomputes nothing but dP and dS, one row block at a time in a
 * per-thread scratch that forward also reserves (backward must not allocate). */
#include <cblas.h>
#include <limits.h>
#include <omp.h>

#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

/* Query rows per block: block [i0,i1) multiplies against keys [0,i1) only, so smaller blocks skip
 * more of the masked triangle but make more, smaller GEMM calls. Measured on configs/bench.ini
 * (T = 128, head size 64), attention forward+backward per step: 16 rows 43.6–48.5 ms, 32 rows
 * 40.1–45.4 ms, 64 rows 46.0–46.3 ms, 128 rows 52.9–54.1 ms. */
#ifndef AG_ATTN_BLOCK
#define AG_ATTN_BLOCK 32
#endif
/* Independent partial results per row reduction (see attention.inc). */
#define AG_ATTN_LANES 16
/* Below this many multiply-adds per GEMM pass (B·NH·T²·HS) a thread team costs more than it saves;
 * gradient checks run thousands of such tiny calls. */
#define AG_ATTN_PAR_MIN 65536

/* The kernels, once per precision (begin, kernels, end: the include order matters). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/attention.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/attention.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

/* What backward needs besides the inputs: P and the per-thread scratch. */
typedef struct {
    void *P;       /* (B,NH,T,T) */
    void *scratch; /* (nt, BK, T) */
    int nt;        /* slices in scratch: backward must not run more threads */
    int n_head;
} attn_ctx;

ag_tensor *ag_attention(ag_tape *t, ag_tensor *q, ag_tensor *k, ag_tensor *v, int n_head) {
    ag_tensor *in[3] = {q, k, v};
    if (!q || !k || !v || q->ndim != 3 || !ag_same_shape(q, k) || !ag_same_shape(q, v) ||
        !ag_dtypes_match(q, in + 1, 2) || n_head < 1)
        return NULL;
    size_t B = (size_t)q->shape[0], T = (size_t)q->shape[1], C = (size_t)q->shape[2];
    size_t NH = (size_t)n_head, HS = C / NH;
    if (C % NH != 0 || HS == 0 || T > INT_MAX || C > INT_MAX)
        return NULL;
    ag_tensor *y = ag_op_output(t, q->dtype, 3, q->shape, in, 3);
    if (!y)
        return NULL;
    size_t es = ag_dtype_size(q->dtype), BK = T < AG_ATTN_BLOCK ? T : AG_ATTN_BLOCK;
    int nt = omp_get_max_threads();
    bool save = ag_tape_recording(t) && y->requires_grad;
    /* scratch: forward's S/P block when P is not kept, backward's dP/dS block when it is. */
    attn_ctx *cx = save ? ag_tape_alloc(t, sizeof *cx) : NULL;
    void *scratch = ag_tape_alloc(t, (size_t)nt * BK * T * es);
    void *P = save ? ag_tape_alloc(t, B * NH * T * T * es) : NULL;
    if (!scratch || (save && (!cx || !P)))
        return NULL;
    if (q->dtype == AG_F32)
        attn_fwd_f32(q->data, k->data, v->data, y->data, P, scratch, B, T, NH, HS, nt);
    else
        attn_fwd_f64(q->data, k->data, v->data, y->data, P, scratch, B, T, NH, HS, nt);
    if (save) {
        ag_node *n = ag_record(t, AG_OP_ATTENTION, y, in, 3);
        if (!n)
            return NULL; /* tape full: ag_tape_error says so */
        *cx = (attn_ctx){.P = P, .scratch = scratch, .nt = nt, .n_head = n_head};
        n->ctx = cx;
    }
    return y;
}

void ag_attention_backward(ag_node *n) {
    ag_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *y = n->out;
    const attn_ctx *cx = n->ctx;
    size_t B = (size_t)q->shape[0], T = (size_t)q->shape[1], C = (size_t)q->shape[2];
    size_t NH = (size_t)cx->n_head, HS = C / NH;
    void *dq = q->requires_grad ? q->grad : NULL, *dk = k->requires_grad ? k->grad : NULL;
    void *dv = v->requires_grad ? v->grad : NULL;
    if (q->dtype == AG_F32)
        attn_bwd_f32(q->data, k->data, v->data, y->grad, cx->P, cx->scratch, dq, dk, dv, B, T, NH,
                     HS, cx->nt);
    else
        attn_bwd_f64(q->data, k->data, v->data, y->grad, cx->P, cx->scratch, dq, dk, dv, B, T, NH,
                     HS, cx->nt);
}
