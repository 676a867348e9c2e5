/* attention.c — fused causal multi-head self-attention: per (batch, head),
 * out_h = softmax(q_h k_hᵀ/√HS, masked to j ≤ i) v_h. Forward saves the probabilities P
 * (B,NH,T,T) for backward, which recomputes nothing but dP and dS, one row block at a time in a
 * per-thread scratch that forward also reserves (backward must not allocate).
 * q, k, v are three tensors (ag_attention) or the slices of one packed [B,T,3C] projection
 * (ag_attention_packed: the model's fused q/k/v GEMM), read in place through the row stride. */
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

/* Records and runs attention over q, k, v (pointers into the data of in[0..n_in)) of row stride
 * ld; y (B,T,C). */
static ag_tensor *attention(ag_tape *t, ag_tensor **in, int n_in, const char *q, size_t ld,
                            const int64_t *shape, int n_head) {
    if (n_head < 1)
        return NULL;
    size_t B = (size_t)shape[0], T = (size_t)shape[1], C = (size_t)shape[2];
    size_t NH = (size_t)n_head, HS = C / NH;
    if (C % NH != 0 || HS == 0 || T > INT_MAX || ld > INT_MAX)
        return NULL;
    ag_dtype d = in[0]->dtype;
    ag_tensor *y = ag_op_output(t, d, 3, shape, in, n_in);
    if (!y)
        return NULL;
    size_t es = ag_dtype_size(d), BK = T < AG_ATTN_BLOCK ? T : AG_ATTN_BLOCK;
    int nt = omp_get_max_threads();
    bool save = ag_tape_recording(t) && y->requires_grad;
    /* scratch: forward's S/P block when P is not kept, backward's dP/dS block when it is. */
    attn_ctx *cx = save ? ag_tape_alloc(t, sizeof *cx) : NULL;
    void *scratch = ag_tape_alloc(t, (size_t)nt * BK * T * es);
    void *P = save ? ag_tape_alloc(t, B * NH * T * T * es) : NULL;
    if (!scratch || (save && (!cx || !P)))
        return NULL;
    const char *k = q + C * es, *v = q + 2 * C * es; /* packed layout: [q | k | v] */
    if (n_in == 3)
        k = in[1]->data, v = in[2]->data;
    if (d == AG_F32)
        attn_fwd_f32((const float *)q, (const float *)k, (const float *)v, y->data, P, scratch, B,
                     T, NH, HS, ld, nt);
    else
        attn_fwd_f64((const double *)q, (const double *)k, (const double *)v, y->data, P, scratch,
                     B, T, NH, HS, ld, nt);
    if (save) {
        ag_node *n = ag_record(t, AG_OP_ATTENTION, y, in, n_in);
        if (!n)
            return NULL; /* tape full: ag_tape_error says so */
        *cx = (attn_ctx){.P = P, .scratch = scratch, .nt = nt, .n_head = n_head};
        n->ctx = cx;
    }
    return y;
}

ag_tensor *ag_attention(ag_tape *t, ag_tensor *q, ag_tensor *k, ag_tensor *v, int n_head) {
    ag_tensor *in[3] = {q, k, v};
    if (!q || !k || !v || q->ndim != 3 || !ag_same_shape(q, k) || !ag_same_shape(q, v) ||
        !ag_dtypes_match(q, in + 1, 2) || q->shape[2] > INT_MAX)
        return NULL;
    return attention(t, in, 3, q->data, (size_t)q->shape[2], q->shape, n_head);
}

ag_tensor *ag_attention_packed(ag_tape *t, ag_tensor *qkv, int n_head) {
    ag_tensor *in[1] = {qkv};
    if (!qkv || qkv->ndim != 3 || qkv->shape[2] % 3 != 0)
        return NULL;
    int64_t shape[3] = {qkv->shape[0], qkv->shape[1], qkv->shape[2] / 3};
    return attention(t, in, 1, qkv->data, (size_t)qkv->shape[2], shape, n_head);
}

/* Gradient pointers of the node's q, k, v (NULL where not wanted) and bits 1, 2, 4 of which the
 * planner lets backward assign: three inputs, or one packed [q | k | v] whose slices share its
 * buffer and its single assign bit. */
static void grads(const ag_node *n, size_t C, char *g[3], unsigned *assign) {
    if (n->n_in == 1) {
        ag_tensor *x = n->in[0];
        char *d = x->requires_grad ? x->grad : NULL;
        size_t es = ag_dtype_size(x->dtype);
        for (int j = 0; j < 3; j++)
            g[j] = d ? d + (size_t)j * C * es : NULL;
        *assign = (n->assign & 1u) ? 7u : 0u;
        return;
    }
    for (int j = 0; j < 3; j++)
        g[j] = n->in[j]->requires_grad ? n->in[j]->grad : NULL;
    *assign = n->assign & 7u;
}

void ag_attention_backward(ag_node *n) {
    ag_tensor *y = n->out;
    const attn_ctx *cx = n->ctx;
    size_t B = (size_t)y->shape[0], T = (size_t)y->shape[1], C = (size_t)y->shape[2];
    size_t NH = (size_t)cx->n_head, HS = C / NH, ld = ag_cols(n->in[0]);
    size_t es = ag_dtype_size(y->dtype);
    const char *q = n->in[0]->data, *k = q + C * es, *v = q + 2 * C * es;
    if (n->n_in == 3)
        k = n->in[1]->data, v = n->in[2]->data;
    char *g[3];
    unsigned assign;
    grads(n, C, g, &assign);
    if (y->dtype == AG_F32)
        attn_bwd_f32((const float *)q, (const float *)k, (const float *)v, y->grad, cx->P,
                     cx->scratch, (float *)g[0], (float *)g[1], (float *)g[2], B, T, NH, HS, ld,
                     assign, cx->nt);
    else
        attn_bwd_f64((const double *)q, (const double *)k, (const double *)v, y->grad, cx->P,
                     cx->scratch, (double *)g[0], (double *)g[1], (double *)g[2], B, T, NH, HS, ld,
                     assign, cx->nt);
}
