/* frozen_linear.c — y[..., out] = x[..., in]·Wᵀ with W frozen and kept packed (QLoRA's base
 * layer). autograd never learns the format: it gets rows of W as floats from the descriptor's
 * dequant_rows callback, a tile of rows at a time, into the tape's shared scratch.
 *
 * How: W's rows are cut into tiles of tr rows. A pass (forward y = x·Wᵀ, or backward dx += dy·W)
 * walks the tiles in order with two tile buffers: step k dequantizes tile k into one buffer while
 * the gemms of tile k − 1 read the other, so each step has one barrier and dequantization
 * overlaps the multiplications. A tile's gemm is cut into fixed items (blocks of rows of x or dy,
 * and column chunks when there are few row blocks); forward writes the tile's columns of y,
 * backward adds the tile's contribution to dx, tile after tile in order. Every partition depends
 * on the shapes only and every item is one single-threaded BLAS call, so results are
 * bit-identical for any thread count (OpenBLAS's own threading is not: see clinear.inc).
 * What is deliberately not done: parallelising forward over tiles with a scratch tile per thread
 * (scratch then grows with the thread count, and with one or two tiles — in=1024, out=256 — one
 * thread would do all the work), or backward over row blocks of dy each dequantizing every tile
 * itself (the dequantization then runs once per thread). Memory: two tiles of
 * min(out, AG_FRZ_TILE_ROWS) rows (one when a single tile holds W), plus a float staging tile for
 * AG_F64, reserved by forward and reused by backward, which never allocates; independent of the
 * thread count, and of out once out passes one tile. The engine (ag_frz_*, ops.h) also serves
 * lora_linear.c, whose fused QLoRA node contains this very product. */
#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <string.h>

#include "autograd/ops/ops.h"

/* Tile height: AG_FRZ_TILE_ROWS rows of W per tile, fewer only when a float tile would pass
 * AG_FRZ_TILE_BYTES (in > 4096). Chosen by the depth of the backward gemms rather than by cache
 * size: the tile height is their inner dimension and every tile costs one more pass over dx, so a
 * shallow tile loses to ag_linear's single deep gemm, while the tile itself sits in the 32 MiB L3
 * whatever its size (OpenBLAS packs its own L2 blocks from it). Measured fwd+bwd at R = 2048,
 * 2 threads, NF4-style dequantizer, on cores shared with a training run (so ±10% noise), time
 * relative to ag_linear with a float W: tile rows 64 / 128 / 256 / 512 gave
 * 1.30 / 1.28–1.42 / 1.04–1.07 / 0.98–1.06 at in=256, out=1024; at in=2048, out=512 and
 * in=4096, out=256, a 1 MiB cap (128 and 64 rows) gave 1.10–1.21, 256 rows 0.99–1.05. 512 rows
 * measured no better than 256 but doubles the scratch. */
#define AG_FRZ_TILE_ROWS 256
#define AG_FRZ_TILE_BYTES ((int64_t)4 << 20)
#define AG_FRZ_MIN_TILE_ROWS 16
/* A tile is dequantized in this many pieces, so that all threads share that work. */
#define AG_FRZ_PIECES 8
/* gemm partition (as in clinear.c): one direct call up to AG_FRZ_SERIAL multiply-adds in the
 * whole pass, otherwise row blocks of max(AG_FRZ_MIN_ROWS, ⌈R/AG_FRZ_MAX_BLOCKS⌉) rows, and when
 * that gives fewer than AG_FRZ_MIN_ITEMS blocks (small R: decoding) column chunks of at least
 * AG_FRZ_MIN_COLS as well. */
#define AG_FRZ_SERIAL 65536.0
#define AG_FRZ_MIN_ROWS 128
#define AG_FRZ_MAX_BLOCKS 8
#define AG_FRZ_MIN_ITEMS 4
#define AG_FRZ_MIN_COLS 64

/* What one call keeps (arena): forward fills it, backward reuses it (ag_frz in ops.h). */
typedef struct ag_frz {
    ag_frozen w;   /* the caller's descriptor, copied (w.ctx still points at the caller's data) */
    void *buf[2];  /* two tiles (tr, IC) of the tensor's dtype, in the tape's shared scratch */
    float *stage;  /* AG_F64: one float tile (tr, IC) for the callback to write; NULL for AG_F32 */
    ag_tape *tape; /* whose shared scratch holds the tiles (set again before each pass) */
    size_t off[3], bytes; /* offsets of buf[0], buf[1], stage in it; bytes needed */
    bool two, f64;        /* a second tile buffer; a float staging tile */
    int64_t tr;           /* rows of W per tile */
} frz_ctx;

/* One pass over the tiles. */
typedef struct frz_pass {
    const frz_ctx *c;
    const void *in; /* forward: x (R,IC); backward: dy (R,OC) */
    void *out;      /* forward: y (R,OC), overwritten; backward: dx (R,IC), accumulated */
    int64_t R, IC, OC;
    bool backward;
} frz_pass;

/* gemm items of an M×N product: nbm row blocks of mb rows × nbn column chunks of nc columns. */
typedef struct frz_split {
    int64_t mb, nbm, nc, nbn;
} frz_split;

static inline int64_t frz_min(int64_t a, int64_t b) { return a < b ? a : b; }

/* Point the tile buffers into the tape's shared scratch, which may have moved since forward. */
static void frz_bind(frz_ctx *c) {
    char *base = ag_tape_shared(c->tape, 0);
    c->buf[0] = base + c->off[0];
    c->buf[1] = c->two ? base + c->off[1] : NULL;
    c->stage = c->f64 ? (float *)(base + c->off[2]) : NULL;
}

static int64_t frz_tile_rows(int64_t OC, int64_t IC) {
    int64_t tr = AG_FRZ_TILE_BYTES / (IC * (int64_t)sizeof(float));
    tr = frz_min(tr, AG_FRZ_TILE_ROWS) & ~(int64_t)15; /* whole 16-row kernel panels */
    if (tr < AG_FRZ_MIN_TILE_ROWS)
        tr = AG_FRZ_MIN_TILE_ROWS;
    return frz_min(tr, OC);
}

static inline int64_t frz_ntiles(const frz_pass *p) { return (p->OC + p->c->tr - 1) / p->c->tr; }

static inline int64_t frz_piece_rows(int64_t tr) {
    return (tr + AG_FRZ_PIECES - 1) / AG_FRZ_PIECES;
}

static frz_split frz_split_of(int64_t M, int64_t N) {
    frz_split s;
    s.mb = (M + AG_FRZ_MAX_BLOCKS - 1) / AG_FRZ_MAX_BLOCKS;
    if (s.mb < AG_FRZ_MIN_ROWS)
        s.mb = AG_FRZ_MIN_ROWS;
    s.mb = frz_min(s.mb, M);
    s.nbm = (M + s.mb - 1) / s.mb;
    s.nbn = 1;
    if (s.nbm < AG_FRZ_MIN_ITEMS)
        s.nbn = frz_min((AG_FRZ_MIN_ITEMS + s.nbm - 1) / s.nbm, N / AG_FRZ_MIN_COLS);
    if (s.nbn < 1)
        s.nbn = 1;
    s.nc = (N + s.nbn - 1) / s.nbn;
    s.nbn = (N + s.nc - 1) / s.nc;
    return s;
}

/* Items of step k: the dequantization pieces of tile k (k < ntiles), then the gemm items of
 * tile k − 1 (k ≥ 1). */
static int64_t frz_items(const frz_pass *p, int64_t k) {
    int64_t tr = p->c->tr, n = 0;
    if (k < frz_ntiles(p)) {
        int64_t tn = frz_min(tr, p->OC - k * tr), pr = frz_piece_rows(tr);
        n += (tn + pr - 1) / pr;
    }
    if (k >= 1) {
        int64_t tn = frz_min(tr, p->OC - (k - 1) * tr);
        frz_split s = frz_split_of(p->R, p->backward ? p->IC : tn);
        n += s.nbm * s.nbn;
    }
    return n;
}

/* The kernels, once per precision (the include order matters, so no sorting). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/frozen_linear.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/frozen_linear.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

/* Run a pass: on the calling thread when it is small (or only one thread is allowed), otherwise
 * in a parallel region of at least 2 threads (OpenBLAS runs single-threaded only inside an active
 * region: a region of one thread would let it thread, and change the bits). */
static void frz_run(const frz_pass *p, ag_dtype dt) {
    if (p->R == 0)
        return;
    int nt = omp_get_max_threads();
    if (nt <= 1 || (double)p->R * (double)p->OC * (double)p->IC <= AG_FRZ_SERIAL) {
        if (dt == AG_F32)
            frz_steps_f32(p);
        else
            frz_steps_f64(p);
        return;
    }
    int64_t most = 0; /* the widest step: more threads than that would only wait */
    for (int64_t k = 0; k <= frz_ntiles(p); k++)
        most = frz_items(p, k) > most ? frz_items(p, k) : most;
    if (nt > most)
        nt = most < 2 ? 2 : (int)most;
#pragma omp parallel num_threads(nt)
    {
        if (dt == AG_F32)
            frz_steps_f32(p);
        else
            frz_steps_f64(p);
    }
}

/* Rows of x as a matrix: the product of its leading dims (not numel/cols). */
static int64_t lead_rows(const ag_tensor *x) {
    int64_t r = 1;
    for (int d = 0; d + 1 < x->ndim; d++)
        r *= x->shape[d];
    return r;
}

ag_frz *ag_frz_new(ag_tape *t, const ag_tensor *x, const ag_frozen *w) {
    if (!x || !w || !w->dequant_rows || w->rows < 1 || w->cols < 1 || x->ndim < 1)
        return NULL;
    /* x is (R,IC) with R = product of leading dims, W is (OC,IC), y is (R,OC) */
    int64_t R = lead_rows(x), IC = (int64_t)ag_cols(x), OC = w->rows;
    if (IC != w->cols || R > INT_MAX || IC > INT_MAX || OC > INT_MAX) /* BLAS takes int dims */
        return NULL;
    frz_ctx *c = ag_tape_alloc(t, sizeof *c);
    if (!c)
        return NULL;
    c->w = *w;
    c->tr = frz_tile_rows(OC, IC);
    /* The tiles live in the tape's shared scratch, not the arena: every frozen layer of a step
     * reuses the same few MiB instead of each keeping its own until the tape is reset. */
    size_t tile = (size_t)c->tr * (size_t)IC, es = ag_dtype_size(x->dtype);
    size_t tb = (tile * es + 63) / 64 * 64;
    c->two = OC > c->tr; /* one tile needs no second buffer */
    c->f64 = x->dtype == AG_F64;
    c->tape = t;
    c->off[0] = 0;
    c->off[1] = tb;
    c->off[2] = c->two ? 2 * tb : tb;
    c->bytes = c->off[2] + (c->f64 ? tile * sizeof(float) : 0);
    return c;
}

size_t ag_frz_scratch(const ag_frz *c) { return c->bytes; }

void ag_frz_forward(ag_frz *c, const ag_tensor *x, void *y) {
    frz_bind(c);
    frz_pass p = {.c = c,
                  .in = x->data,
                  .out = y,
                  .R = lead_rows(x),
                  .IC = (int64_t)ag_cols(x),
                  .OC = c->w.rows};
    frz_run(&p, x->dtype);
}

void ag_frz_backward(ag_frz *c, const ag_tensor *x, const void *dy, void *dx) {
    frz_bind(c);
    frz_pass p = {.c = c,
                  .in = dy,
                  .out = dx,
                  .R = lead_rows(x),
                  .IC = (int64_t)ag_cols(x),
                  .OC = c->w.rows,
                  .backward = true};
    frz_run(&p, x->dtype);
}

ag_tensor *ag_frozen_linear(ag_tape *t, ag_tensor *x, const ag_frozen *w) {
    frz_ctx *c = ag_frz_new(t, x, w);
    if (!c)
        return NULL;
    int64_t shape[AG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = w->rows;
    ag_tensor *in[1] = {x};
    ag_tensor *y = ag_op_output(t, x->dtype, x->ndim, shape, in, 1);
    if (!y || !ag_tape_shared(t, ag_frz_scratch(c)))
        return NULL;
    ag_frz_forward(c, x, y->data);
    /* A node only when x needs a gradient (W never does); backward re-binds the tiles. */
    ag_node *n = ag_record(t, AG_OP_FROZEN_LINEAR, y, in, 1);
    if (n)
        n->ctx = c;
    else if (y->requires_grad)
        return NULL; /* tape full: ag_tape_error says so */
    return y;
}

void ag_frozen_linear_backward(ag_node *n) {
    ag_tensor *x = n->in[0], *y = n->out;
    if (!x->requires_grad)
        return;
    ag_frz_backward(n->ctx, x, y->grad, x->grad);
}
