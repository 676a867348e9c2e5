/* lora_linear.c — QLoRA's layer in one node: y = x·Wᵀ + s·(drop(x)·Aᵀ)·Bᵀ, W frozen and packed
 * (the product of frozen_linear.c, through its engine ag_frz_*), A (r, IC) and B (OC, r) the
 * trainable adapter, drop the mask of ag_dropout (through ag_drop_apply_*).
 *
 * Why one node: composed from ag_frozen_linear, ag_dropout, two ag_linear, ag_scale and ag_add,
 * the layer keeps up to five (R, OC) or (R, IC) tensors in the step arena, backward adds a gradient
 * buffer for each, so QLoRA of a small model used more memory than full fine-tuning. This node
 * keeps y (R, OC) and u = drop(x)·Aᵀ (R, r) only. drop(x) is regenerated from (p, seed) whenever
 * it is needed, and the (R, IC) temporaries — drop(x) in forward and for dA, du·A before its
 * mask for dx — and du (R, r) live in the tape's shared scratch, in the same region as W's tiles
 * (the frozen product and the adapter run one after the other, never together).
 *
 * Forward: y = x·Wᵀ (ag_frz_forward, so bit for bit ag_frozen_linear's y), then per block of
 * rows of x: drop(x) into the scratch, u = drop(x)·Aᵀ, y += s·u·Bᵀ (gemm with beta = 1).
 * Backward, given dy: per block of rows, du = s·dy·B and dx += m ⊙ (du·A)/q (straight into dx
 * with beta = 1 when there is no dropout); then per chunk of columns of A, drop(x) again and
 * dA += duᵀ·drop(x); per chunk of rows of B, dB += s·dyᵀ·u; then dx += dy·W (ag_frz_backward),
 * the order in which the composed ops would add their terms. Every partition depends on the
 * shapes only and every item is single-threaded BLAS plus the mask kernel on memory of its own,
 * so results are bit-identical for any thread count (frozen_linear.c explains why OpenBLAS's
 * own threading is avoided). Sums over R (dA, dB) are cut along the output, not along R, so
 * they need no partial sums. Not done: folding the adapter into the frozen pass's tile steps.
 * The adapter has r·(in + out)/(in·out) of the base's flops but its own passes over y and dy:
 * at R = 2048, in = 256, out = 1024, r = 8 (2 threads) it measured ~9 ms on top of the frozen
 * product's ~35 ms fwd+bwd, some of which folding would save, at the price of coupling the two
 * kernels' partitions. */
#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <string.h>

#include "autograd/ops/ops.h"

/* Partitions (as in frozen_linear.c): a pass of at most AG_LORA_SERIAL multiply-adds (counted as
 * backward's 2·R·r·(IC + OC) for both passes) runs as direct calls on the calling thread, each
 * below OpenBLAS's own threading threshold; otherwise rows of x in blocks of max(AG_LORA_MIN_ROWS,
 * ⌈R/AG_LORA_MAX_PARTS⌉) rows, and the columns of dA and the rows of dB in chunks of
 * max(AG_LORA_MIN_COLS, ⌈n/AG_LORA_MAX_PARTS⌉). */
#define AG_LORA_SERIAL 65536.0
#define AG_LORA_MIN_ROWS 64
#define AG_LORA_MIN_COLS 64
#define AG_LORA_MAX_PARTS 8
/* Phases of a pass, separated by barriers: 0 row blocks (forward; backward du and dx), 1 the
 * chunks of dA and dB (they need all of du), 2 those of dB when dB is dA's buffer (a is b). */
#define LORA_PHASES 3

/* What a recorded node keeps (arena). */
typedef struct lora_ctx {
    ag_frz *frz;    /* the base product: descriptor copy and tile plan */
    ag_tape *tape;  /* whose shared scratch holds the temporaries */
    void *u;        /* (R, r) = drop(x)·Aᵀ */
    size_t off_buf; /* (R, IC) temporary in the shared scratch (with dropout only) */
    size_t off_du;  /* (R, r) du in the shared scratch */
    ag_drop_mask mask;
    bool drop;
    double s;
} lora_ctx;

/* One pass of the adapter. Pointers of the tensors' dtype. */
typedef struct lora_pass {
    const void *x, *a, *b;    /* x (R, IC), A (r, IC), B (OC, r) */
    void *u;                  /* (R, r): forward writes it, backward reads it */
    void *buf;                /* (R, IC) scratch; NULL without dropout */
    const ag_drop_mask *mask; /* NULL: no dropout */
    void *y;                  /* forward: (R, OC), accumulated */
    const void *dy;           /* backward: (R, OC) */
    void *du;                 /* backward: (R, r) scratch; NULL when neither dx nor dA is wanted */
    void *dx, *da, *db;       /* backward: accumulated; NULL when not wanted */
    int64_t R, IC, OC, r;
    double s;
    bool backward;
} lora_pass;

/* Blocks of a pass: rows of x, columns of dA, rows of dB (size, count). */
typedef struct lora_plan {
    int64_t mb, nbm, ic, nbi, oc, nbo;
} lora_plan;

static inline int64_t lora_min(int64_t a, int64_t b) { return a < b ? a : b; }

/* n cut into parts of max(least, ⌈n/AG_LORA_MAX_PARTS⌉), at most n: the size; *count gets the
 * number of parts. */
static int64_t lora_cut(int64_t n, int64_t least, int64_t *count) {
    int64_t size = (n + AG_LORA_MAX_PARTS - 1) / AG_LORA_MAX_PARTS;
    size = lora_min(size < least ? least : size, n);
    *count = size ? (n + size - 1) / size : 0;
    return size;
}

static lora_plan lora_plan_of(const lora_pass *p) {
    lora_plan pl;
    pl.mb = lora_cut(p->R, AG_LORA_MIN_ROWS, &pl.nbm);
    pl.ic = lora_cut(p->IC, AG_LORA_MIN_COLS, &pl.nbi);
    pl.oc = lora_cut(p->OC, AG_LORA_MIN_COLS, &pl.nbo);
    return pl;
}

/* Items of phase ph (see LORA_PHASES). */
static int64_t lora_items(const lora_pass *p, const lora_plan *pl, int ph) {
    if (!p->backward)
        return ph == 0 ? pl->nbm : 0;
    bool split = p->db && p->db == p->da; /* dA and dB items would write the same buffer */
    switch (ph) {
    case 0:
        return p->du ? pl->nbm : 0;
    case 1:
        return (p->da ? pl->nbi : 0) + (p->db && !split ? pl->nbo : 0);
    default:
        return split ? pl->nbo : 0;
    }
}

/* The kernels, once per precision (the include order matters, so no sorting). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/lora_linear.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/lora_linear.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

/* Run a pass: on the calling thread when it is small (or only one thread is allowed), otherwise
 * in a parallel region of at least 2 threads (inside an active region OpenBLAS does not thread,
 * and a region of one thread would let it). */
static void lora_run(const lora_pass *p, ag_dtype dt) {
    if (p->R == 0)
        return;
    lora_plan pl = lora_plan_of(p);
    int nt = omp_get_max_threads();
    double work = 2.0 * (double)p->R * (double)p->r * (double)(p->IC + p->OC);
    if (nt <= 1 || work <= AG_LORA_SERIAL) {
        if (dt == AG_F32)
            lora_steps_f32(p, &pl);
        else
            lora_steps_f64(p, &pl);
        return;
    }
    int64_t most = 0; /* the widest phase: more threads than that would only wait */
    for (int ph = 0; ph < LORA_PHASES; ph++)
        most = lora_items(p, &pl, ph) > most ? lora_items(p, &pl, ph) : most;
    if (nt > most)
        nt = most < 2 ? 2 : (int)most;
#pragma omp parallel num_threads(nt)
    {
        if (dt == AG_F32)
            lora_steps_f32(p, &pl);
        else
            lora_steps_f64(p, &pl);
    }
}

/* Rows of x as a matrix: the product of its leading dims (not numel/cols). */
static int64_t lead_rows(const ag_tensor *x) {
    int64_t r = 1;
    for (int d = 0; d + 1 < x->ndim; d++)
        r *= x->shape[d];
    return r;
}

static size_t align64(size_t n) { return (n + 63) / 64 * 64; }

ag_tensor *ag_lora_linear(ag_tape *t, ag_tensor *x, const ag_frozen *w, ag_tensor *a, ag_tensor *b,
                          double s, double p, uint64_t seed) {
    ag_tensor *in[3] = {x, a, b};
    if (!t || !x || !w || !a || !b || !(p >= 0.0 && p < 1.0)) /* also rejects NaN */
        return NULL;
    if (x->ndim < 1 || a->ndim != 2 || b->ndim != 2 || !ag_dtypes_match(x, in + 1, 2))
        return NULL;
    /* x (R, IC), W (OC, IC), A (r, IC), B (OC, r), y (R, OC) */
    int64_t R = lead_rows(x), IC = (int64_t)ag_cols(x), OC = w->rows, r = a->shape[0];
    if (r < 1 || r > INT_MAX || a->shape[1] != IC || b->shape[0] != OC || b->shape[1] != r)
        return NULL;
    ag_frz *frz = ag_frz_new(t, x, w); /* checks w, and x against it */
    if (!frz)
        return NULL;
    int64_t shape[AG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = OC;
    ag_tensor *y = ag_op_output(t, x->dtype, x->ndim, shape, in, 3);
    if (!y)
        return NULL;
    /* y needs a gradient exactly when a node will be recorded: only then is u kept in the arena
     * (otherwise it is a temporary in the scratch, where backward's du would go). */
    bool keep = y->requires_grad, drop = p > 0.0 && ag_tape_recording(t);
    size_t es = ag_dtype_size(x->dtype);
    size_t ubytes = (size_t)R * (size_t)r * es;
    size_t off_buf = 0, off_du = drop ? align64((size_t)R * (size_t)IC * es) : 0;
    size_t need = off_du + ubytes;
    if (need < ag_frz_scratch(frz))
        need = ag_frz_scratch(frz);
    lora_ctx *c = NULL;
    void *u = NULL;
    if (keep) {
        c = ag_tape_alloc(t, sizeof *c);
        u = ag_tape_alloc(t, ubytes);
        if (!c || !u)
            return NULL;
    }
    char *base = ag_tape_shared(t, need); /* > 0: W's tiles at least */
    if (!base)
        return NULL;
    ag_drop_mask mask = ag_drop_mask_of(p, seed);
    ag_frz_forward(frz, x, y->data); /* binds its tiles to the (now sized) scratch */
    lora_pass lp = {.x = x->data,
                    .a = a->data,
                    .b = b->data,
                    .u = keep ? u : base + off_du,
                    .buf = drop ? base + off_buf : NULL,
                    .mask = drop ? &mask : NULL,
                    .y = y->data,
                    .R = R,
                    .IC = IC,
                    .OC = OC,
                    .r = r,
                    .s = s};
    lora_run(&lp, x->dtype);
    if (!keep)
        return y;
    ag_node *n = ag_record(t, AG_OP_LORA_LINEAR, y, in, 3);
    if (!n)
        return NULL; /* tape full: ag_tape_error says so */
    *c = (lora_ctx){.frz = frz,
                    .tape = t,
                    .u = u,
                    .off_buf = off_buf,
                    .off_du = off_du,
                    .mask = mask,
                    .drop = drop,
                    .s = s};
    n->ctx = c;
    n->f[0] = s;
    n->f[1] = drop ? p : 0.0;
    memcpy(&n->i[0], &seed, sizeof seed); /* for inspection: backward reads the ctx */
    return y;
}

void ag_lora_linear_backward(ag_node *n) {
    ag_tensor *x = n->in[0], *a = n->in[1], *b = n->in[2], *y = n->out;
    const lora_ctx *c = n->ctx;
    /* The scratch may have moved since forward (a later op grew it): re-bind by offsets. */
    char *base = ag_tape_shared(c->tape, 0);
    bool gx = x->requires_grad, ga = a->requires_grad, gb = b->requires_grad;
    lora_pass lp = {.x = x->data,
                    .a = a->data,
                    .b = b->data,
                    .u = c->u,
                    .buf = c->drop ? base + c->off_buf : NULL,
                    .mask = c->drop ? &c->mask : NULL,
                    .dy = y->grad,
                    .du = gx || ga ? base + c->off_du : NULL,
                    .dx = gx ? x->grad : NULL,
                    .da = ga ? a->grad : NULL,
                    .db = gb ? b->grad : NULL,
                    .R = lead_rows(x),
                    .IC = (int64_t)ag_cols(x),
                    .OC = (int64_t)ag_cols(y),
                    .r = a->shape[0],
                    .s = c->s,
                    .backward = true};
    lora_run(&lp, y->dtype);
    if (gx)
        ag_frz_backward(c->frz, x, y->grad, x->grad);
}
