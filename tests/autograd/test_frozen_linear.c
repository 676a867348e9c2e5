/* test_frozen_linear.c — ag_frozen_linear, QLoRA's base layer over a packed frozen weight.
 *
 * The weight lives in a fake packed format (int8 codes and one float scale per row; a row
 * dequantizes to code·scale), so the op really sees packed data through its callback, and the
 * same floats can be materialised as an ordinary tensor for ag_linear. Checked: agreement with
 * ag_linear in float and double (forward and dx) across shapes (out not a multiple of the tile,
 * R = 1, leading dims, the serial and the parallel paths); that W never gets a gradient and a
 * frozen input records nothing; double-precision gradient checks of the op and of a LoRA layer
 * built on it; callback ranges, rows dequantized per pass, and arena use O(tile·in); bit-identical
 * results at 1 and 2 threads; bad inputs, a full arena and a full tape. */
#include "agtest.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* W as an ordinary heap tensor of dtype dt (the floats the callback produces, widened for
 * AG_F64), no grad: the reference ag_linear multiplies by the very same numbers. */
static ag_tensor *fake_dense(const fake_q *q, ag_dtype dt) {
    ag_tensor *w = malloc(sizeof *w);
    int64_t shape[2] = {q->rows, q->cols};
    ag_tensor_wrap(w, dt, NULL, NULL, 2, shape);
    w->data = malloc(w->numel * ag_dtype_size(dt));
    for (size_t i = 0; i < w->numel; i++) {
        float v = (float)q->codes[i] * q->scale[i / (size_t)q->cols];
        if (dt == AG_F32)
            ((float *)w->data)[i] = v;
        else
            ((double *)w->data)[i] = v;
    }
    return w;
}

/* ---- helpers ----------------------------------------------------------------------------------
 */

/* Heap tensor of dtype dt, values uniform in [-1, 1) from seed (each exact in float), with a grad
 * buffer of its own holding small non-zero values when rg (the op must add to it). */
static ag_tensor *new_x(ag_dtype dt, int ndim, const int64_t *shape, uint64_t seed, bool rg) {
    ag_tensor *t = malloc(sizeof *t);
    ag_tensor_wrap(t, dt, NULL, NULL, ndim, shape);
    size_t n = t->numel ? t->numel : 1, es = ag_dtype_size(dt);
    t->data = malloc(n * es);
    t->grad = rg ? malloc(n * es) : NULL;
    for (size_t i = 0; i < t->numel; i++) {
        float v = (float)tu_uniform(&seed, -1, 1), g = (float)tu_uniform(&seed, -0.1, 0.1);
        if (dt == AG_F32) {
            ((float *)t->data)[i] = v;
            if (rg)
                ((float *)t->grad)[i] = g;
        } else {
            ((double *)t->data)[i] = v;
            if (rg)
                ((double *)t->grad)[i] = g;
        }
    }
    t->requires_grad = rg;
    return t;
}

static ag_tensor *clone_t(const ag_tensor *s) {
    ag_tensor *t = malloc(sizeof *t);
    *t = *s;
    size_t bytes = (s->numel ? s->numel : 1) * ag_dtype_size(s->dtype);
    t->data = malloc(bytes);
    memcpy(t->data, s->data, bytes);
    if (s->grad) {
        t->grad = malloc(bytes);
        memcpy(t->grad, s->grad, bytes);
    }
    return t;
}

static void free_t(ag_tensor *t) {
    if (!t)
        return;
    free(t->data);
    free(t->grad);
    free(t);
}

static double get(const ag_tensor *t, const void *buf, size_t i) {
    return t->dtype == AG_F32 ? (double)((const float *)buf)[i] : ((const double *)buf)[i];
}

/* Seed buffer of dtype dt for n elements, uniform in [-1, 1) from seed; the caller frees it. */
static void *rand_seed(ag_dtype dt, size_t n, uint64_t seed) {
    void *s = malloc((n ? n : 1) * ag_dtype_size(dt));
    for (size_t i = 0; i < n; i++) {
        float v = (float)tu_uniform(&seed, -1, 1);
        if (dt == AG_F32)
            ((float *)s)[i] = v;
        else
            ((double *)s)[i] = v;
    }
    return s;
}

static int64_t lead(const ag_tensor *x) { return x->numel ? (int64_t)ag_rows(x) : 0; }

/* ---- agreement with ag_linear ------------------------------------------------------------------
 */

/* Forward and backward of ag_frozen_linear against ag_linear with the dequantized W as a tensor,
 * both from the same x and the same starting grad. Different gemm partitions may round
 * differently, so each element is compared to within tol times the sum of the magnitudes of its
 * terms (a dot product's own error scale): y_ro against Σ_k |x_rk·w_ok|, dx_rk against
 * |dx0_rk| + Σ_o |dy_ro·w_ok|. */
static void check_vs_linear(ag_dtype dt, int ndim, const int64_t *sx, int64_t out, uint64_t seed) {
    double tol = dt == AG_F32 ? 1e-6 : 1e-12;
    int64_t in = sx[ndim - 1];
    fake_q *q = fake_new(out, in, seed);
    ag_frozen fw = fake_desc(q);
    ag_tensor *w = fake_dense(q, dt);
    ag_tensor *x = new_x(dt, ndim, sx, seed + 1, true), *xr = clone_t(x);
    int64_t R = lead(x);
    void *dy = rand_seed(dt, (size_t)(R * out), seed + 2);
    ag_tape *t = ag_tape_create(1 << 20, 0, 16), *tr = ag_tape_create(1 << 20, 0, 16);
    ag_tensor *y = ag_frozen_linear(t, x, &fw), *yr = ag_linear(tr, xr, w);
    assert_non_null(y);
    assert_non_null(yr);
    assert_int_equal(y->ndim, ndim);
    for (int d = 0; d + 1 < ndim; d++)
        assert_int_equal(y->shape[d], sx[d]);
    assert_int_equal(y->shape[ndim - 1], out);
    assert_int_equal(y->dtype, dt);
    assert_int_equal(ag_backward(t, y, dy), 0);
    assert_int_equal(ag_backward(tr, yr, dy), 0);
    assert_null(w->grad); /* W: no gradient through either op */
    double *wv = malloc((size_t)(out * in) * sizeof *wv);
    for (int64_t i = 0; i < out * in; i++)
        wv[i] = get(w, w->data, (size_t)i);
    for (int64_t r = 0; r < R; r++) {
        for (int64_t o = 0; o < out; o++) {
            double mag = 0;
            for (int64_t k = 0; k < in; k++)
                mag += fabs(get(x, x->data, (size_t)(r * in + k)) * wv[o * in + k]);
            size_t i = (size_t)(r * out + o);
            assert_close(get(y, y->data, i), get(yr, yr->data, i), tol * mag + 1e-300, 0);
        }
        for (int64_t k = 0; k < in; k++) {
            size_t i = (size_t)(r * in + k);
            double mag = fabs(get(xr, xr->grad, i));
            for (int64_t o = 0; o < out; o++)
                mag += fabs(get(y, dy, (size_t)(r * out + o)) * wv[o * in + k]);
            assert_close(get(x, x->grad, i), get(xr, xr->grad, i), tol * mag + 1e-300, 0);
        }
    }
    /* Each pass dequantized every row exactly once, in ranges inside [0, out). */
    assert_int_equal(atomic_load(&q->bad_ranges), 0);
    assert_int_equal(atomic_load(&q->rows_done), R ? 2 * out : 0);
    free(wv);
    ag_tape_free(t);
    ag_tape_free(tr);
    free(dy);
    free_t(x);
    free_t(xr);
    free_t(w);
    fake_free(q);
}

static void test_frozen_matches_linear(void **state) {
    (void)state;
    for (int f32 = 0; f32 < 2; f32++) {
        ag_dtype dt = f32 ? AG_F32 : AG_F64;
        check_vs_linear(dt, 2, (int64_t[]){1, 64}, 48, 11);       /* R = 1 */
        check_vs_linear(dt, 3, (int64_t[]){2, 3, 20}, 7, 21);     /* leading dims [2,3,in] */
        check_vs_linear(dt, 1, (int64_t[]){9}, 5, 31);            /* 1-D x */
        check_vs_linear(dt, 2, (int64_t[]){5, 33}, 600, 41);      /* 3 tiles, last partial */
        check_vs_linear(dt, 3, (int64_t[]){2, 150, 96}, 600, 51); /* parallel path, 3 tiles */
        check_vs_linear(dt, 2, (int64_t[]){4, 1024}, 300, 61);    /* small R, column chunks */
        check_vs_linear(dt, 2, (int64_t[]){1100, 40}, 257, 71);   /* 8 row blocks, 2 tiles */
    }
}

/* ---- gradients and modes ----------------------------------------------------------------------
 */

/* The node's only input is x: there is no W tensor to receive a gradient. x without
 * requires_grad, or a tape that is not recording, gives the same output bits and records
 * nothing. */
static void test_frozen_records_only_x(void **state) {
    (void)state;
    int64_t sx[2] = {3, 16};
    fake_q *q = fake_new(10, 16, 101);
    ag_frozen fw = fake_desc(q);
    for (int f32 = 0; f32 < 2; f32++) {
        ag_dtype dt = f32 ? AG_F32 : AG_F64;
        size_t ybytes = 30 * ag_dtype_size(dt);
        ag_tensor *x = new_x(dt, 2, sx, 102, true), *xc = new_x(dt, 2, sx, 102, false);
        ag_tape *t = ag_tape_create(1 << 20, 0, 16);
        ag_tensor *y = ag_frozen_linear(t, x, &fw);
        assert_non_null(y);
        assert_true(y->requires_grad);
        assert_int_equal(ag_tape_size(t), 1);
        const ag_node *n = ag_tape_node(t, 0);
        assert_int_equal(n->op, AG_OP_FROZEN_LINEAR);
        assert_int_equal(n->n_in, 1);
        assert_ptr_equal(n->in[0], x);
        ag_tensor *yc = ag_frozen_linear(t, xc, &fw); /* frozen input: no node */
        assert_non_null(yc);
        assert_false(yc->requires_grad);
        assert_int_equal(ag_tape_size(t), 1);
        assert_memory_equal(yc->data, y->data, ybytes);
        ag_tape_set_recording(t, false);
        ag_tensor *yi = ag_frozen_linear(t, x, &fw); /* inference: no node */
        assert_non_null(yi);
        assert_false(yi->requires_grad);
        assert_int_equal(ag_tape_size(t), 1);
        assert_memory_equal(yi->data, y->data, ybytes);
        ag_tape_free(t);
        free_t(x);
        free_t(xc);
    }
    fake_free(q);
}

/* The descriptor is copied at forward: the caller's struct may change or die before backward
 * (only the packed data it points to must live on). */
static void test_frozen_descriptor_is_copied(void **state) {
    (void)state;
    int64_t sx[2] = {4, 24};
    fake_q *q = fake_new(40, 24, 111);
    ag_tensor *x = new_x(AG_F64, 2, sx, 112, true), *xr = clone_t(x);
    void *dy = rand_seed(AG_F64, 4 * 40, 113);
    ag_tape *t = ag_tape_create(1 << 20, 0, 16), *tr = ag_tape_create(1 << 20, 0, 16);
    ag_frozen fw = fake_desc(q);
    ag_tensor *y = ag_frozen_linear(t, x, &fw);
    ag_tensor *yr = ag_frozen_linear(tr, xr, &fw);
    assert_non_null(y);
    assert_non_null(yr);
    memset(&fw, 0, sizeof fw); /* the caller's descriptor is gone */
    assert_int_equal(ag_backward(t, y, dy), 0);
    fw = fake_desc(q);
    assert_int_equal(ag_backward(tr, yr, dy), 0);
    assert_memory_equal(x->grad, xr->grad, x->numel * sizeof(double));
    ag_tape_free(t);
    ag_tape_free(tr);
    free(dy);
    free_t(x);
    free_t(xr);
    fake_free(q);
}

typedef struct gc_ctx {
    ag_frozen w;
    double s; /* LoRA scale α/r */
} gc_ctx;

static ag_tensor *build_frozen(ag_tape *t, ag_tensor **in, void *ctx) {
    return ag_frozen_linear(t, in[0], &((gc_ctx *)ctx)->w);
}

/* A QLoRA layer: y = frozen(x) + s·(x·Aᵀ)·Bᵀ with A [r, in], B [out, r]. */
static ag_tensor *build_lora(ag_tape *t, ag_tensor **in, void *ctx) {
    gc_ctx *c = ctx;
    ag_tensor *base = ag_frozen_linear(t, in[0], &c->w);
    ag_tensor *adapter = ag_scale(t, ag_linear(t, ag_linear(t, in[0], in[1]), in[2]), c->s);
    return ag_add(t, base, adapter);
}

static void gradcheck_frozen(const char *what, int ndim, const int64_t *sx, int64_t out,
                             uint64_t seed) {
    fake_q *q = fake_new(out, sx[ndim - 1], seed);
    gc_ctx c = {.w = fake_desc(q)};
    ag_tensor *x = agt_rand(ndim, sx, -1, 1, seed + 1, true);
    agt_gradcheck(what, build_frozen, &c, &x, 1);
    assert_int_equal(atomic_load(&q->bad_ranges), 0);
    agt_free(x);
    fake_free(q);
}

static void test_frozen_gradcheck(void **state) {
    (void)state;
    gradcheck_frozen("frozen_linear [2,3,5]->[2,3,300] (2 tiles)", 3, (int64_t[]){2, 3, 5}, 300,
                     201);
    gradcheck_frozen("frozen_linear [1,7]->[1,4]", 2, (int64_t[]){1, 7}, 4, 211);
    gradcheck_frozen("frozen_linear [6]->[3]", 1, (int64_t[]){6}, 3, 221);
}

static void test_frozen_lora_gradcheck(void **state) {
    (void)state;
    enum { IN = 12, OUT = 10, RANK = 3 };
    fake_q *q = fake_new(OUT, IN, 301);
    gc_ctx c = {.w = fake_desc(q), .s = 16.0 / RANK};
    ag_tensor *in[3] = {
        agt_rand(3, (int64_t[]){2, 3, IN}, -1, 1, 302, true),
        agt_rand(2, (int64_t[]){RANK, IN}, -0.5, 0.5, 303, true),
        agt_rand(2, (int64_t[]){OUT, RANK}, -0.5, 0.5, 304, true),
    };
    agt_gradcheck("qlora layer: frozen(x) + s*linear(linear(x, A), B)", build_lora, &c, in, 3);
    in[0]->requires_grad = false; /* the first layer of a frozen network: adapters only */
    agt_gradcheck("qlora layer, x frozen", build_lora, &c, in, 3);
    for (int k = 0; k < 3; k++)
        agt_free(in[k]);
    fake_free(q);
}

/* ---- memory, callback, threads ----------------------------------------------------------------
 */

/* A large W (out 8192, in 1024: 32 MiB as floats): forward takes O(tile·in) of arena besides y,
 * backward takes nothing but y's gradient buffer, and each pass dequantizes every row once in
 * ranges inside [0, rows). */
static void test_frozen_memory_and_ranges(void **state) {
    (void)state;
    enum { OUT = 8192, IN = 1024, R = 2 };
    fake_q *q = fake_new(OUT, IN, 401);
    ag_frozen fw = fake_desc(q);
    int64_t sx[2] = {R, IN};
    ag_tensor *x = new_x(AG_F32, 2, sx, 402, true);
    ag_tape *t = ag_tape_create(8 << 20, 0, 16);
    ag_arena *a = ag_tape_arena(t);
    size_t u0 = ag_arena_used(a);
    ag_tensor *y = ag_frozen_linear(t, x, &fw);
    assert_non_null(y);
    size_t u1 = ag_arena_used(a), ybytes = (size_t)R * OUT * sizeof(float);
    size_t w_bytes = (size_t)OUT * IN * sizeof(float);
    /* y, the tensor struct and the saved context: the tiles live in the tape's shared scratch */
    assert_true(u1 - u0 <= ybytes + 1024);
    assert_true(u1 - u0 < w_bytes / 8);
    assert_int_equal(atomic_load(&q->rows_done), OUT);
    assert_int_equal(ag_backward(t, y, NULL), 0);
    size_t u2 = ag_arena_used(a);
    assert_int_equal(u2 - u1, (ybytes + 63) & ~(size_t)63); /* y's gradient, nothing else */
    assert_int_equal(atomic_load(&q->rows_done), 2 * OUT);
    assert_int_equal(atomic_load(&q->bad_ranges), 0);
    assert_true(atomic_load(&q->calls) >= 2 * OUT / 256); /* really tile by tile */
    ag_tape_free(t);
    free_t(x);
    fake_free(q);
}

/* y and dx in float at nt threads (copied out; the caller frees). */
static void run_threads(int nt, const fake_q *q, int64_t R, uint64_t seed, void *out[2]) {
    int saved = omp_get_max_threads();
    omp_set_num_threads(nt);
    ag_frozen fw = fake_desc(q);
    int64_t sx[2] = {R, q->cols};
    ag_tensor *x = new_x(AG_F32, 2, sx, seed, true);
    void *dy = rand_seed(AG_F32, (size_t)(R * q->rows), seed + 1);
    ag_tape *t = ag_tape_create(1 << 22, 0, 16);
    ag_tensor *y = ag_frozen_linear(t, x, &fw);
    assert_non_null(y);
    assert_int_equal(ag_backward(t, y, dy), 0);
    out[0] = malloc(y->numel * sizeof(float));
    memcpy(out[0], y->data, y->numel * sizeof(float));
    out[1] = malloc(x->numel * sizeof(float));
    memcpy(out[1], x->grad, x->numel * sizeof(float));
    ag_tape_free(t);
    free(dy);
    free_t(x);
    omp_set_num_threads(saved);
}

static void test_frozen_threads(void **state) {
    (void)state;
    /* R = 300: 3 row blocks (forward adds column chunks), out = 600: 3 tiles, the last partial;
     * R = 4: decoding, column chunks only. */
    const int64_t shapes[3][3] = {{300, 96, 600}, {4, 1024, 300}, {1100, 40, 257}};
    for (int s = 0; s < 3; s++) {
        fake_q *q = fake_new(shapes[s][2], shapes[s][1], 501 + (uint64_t)s);
        void *r1[2], *r2[2];
        run_threads(1, q, shapes[s][0], 511, r1);
        run_threads(2, q, shapes[s][0], 511, r2);
        size_t n[2] = {(size_t)(shapes[s][0] * shapes[s][2]),
                       (size_t)(shapes[s][0] * shapes[s][1])};
        static const char *const names[2] = {"y", "dx"};
        for (int k = 0; k < 2; k++) {
            if (memcmp(r1[k], r2[k], n[k] * sizeof(float)) != 0) {
                print_error("frozen_linear f32 %s differs between 1 and 2 threads (shape %d)\n",
                            names[k], s);
                fail();
            }
            free(r1[k]);
            free(r2[k]);
        }
        fake_free(q);
    }
}

/* ---- edges and errors -------------------------------------------------------------------------
 */

/* R = 0: an empty output, backward runs, the callback is never needed. */
static void test_frozen_empty_rows(void **state) {
    (void)state;
    fake_q *q = fake_new(5, 8, 601);
    ag_frozen fw = fake_desc(q);
    ag_tensor *x = new_x(AG_F32, 2, (int64_t[]){0, 8}, 602, true);
    ag_tape *t = ag_tape_create(1 << 20, 0, 16);
    ag_tensor *y = ag_frozen_linear(t, x, &fw);
    assert_non_null(y);
    assert_int_equal(y->numel, 0);
    assert_int_equal(y->shape[1], 5);
    assert_int_equal(ag_backward(t, y, NULL), 0);
    assert_int_equal(atomic_load(&q->calls), 0);
    ag_tape_free(t);
    free_t(x);
    fake_free(q);
}

static void test_frozen_rejects_bad_inputs(void **state) {
    (void)state;
    fake_q *q = fake_new(6, 8, 701);
    ag_tensor *x = new_x(AG_F64, 2, (int64_t[]){3, 8}, 702, false);
    ag_tensor *x7 = new_x(AG_F64, 2, (int64_t[]){3, 7}, 703, false);
    ag_tensor *x0 = new_x(AG_F64, 0, NULL, 704, false); /* a scalar has no last dim */
    ag_tape *t = ag_tape_create(1 << 20, 0, 16);
    ag_frozen fw = fake_desc(q), bad;
    assert_null(ag_frozen_linear(t, x7, &fw)); /* x's last dim ≠ cols */
    assert_null(ag_frozen_linear(t, x0, &fw));
    bad = fw;
    bad.dequant_rows = NULL;
    assert_null(ag_frozen_linear(t, x, &bad));
    bad = fw;
    bad.rows = 0;
    assert_null(ag_frozen_linear(t, x, &bad));
    bad.rows = -6;
    assert_null(ag_frozen_linear(t, x, &bad));
    bad = fw;
    bad.cols = 0;
    assert_null(ag_frozen_linear(t, x, &bad));
    bad.cols = -8;
    assert_null(ag_frozen_linear(t, x, &bad));
    assert_null(ag_frozen_linear(t, NULL, &fw));
    assert_null(ag_frozen_linear(t, x, NULL));
    assert_int_equal(atomic_load(&q->calls), 0);
    assert_non_null(ag_frozen_linear(t, x, &fw));
    ag_tape_free(t);
    free_t(x);
    free_t(x7);
    free_t(x0);
    fake_free(q);
}

/* A full arena (room for y but not for the tiles) and a full tape both give NULL and say why. */
static void test_frozen_reports_full_arena_and_tape(void **state) {
    (void)state;
    fake_q *q = fake_new(64, 64, 801);
    ag_frozen fw = fake_desc(q);
    ag_tensor *x = new_x(AG_F64, 2, (int64_t[]){1, 64}, 802, true);
    ag_tape *t = ag_tape_create(256, 256, 16); /* y alone needs 512 bytes */
    assert_null(ag_frozen_linear(t, x, &fw));
    assert_non_null(strstr(ag_tape_error(t), "arena full"));
    ag_tape_free(t);
    /* The tiles are not in the arena: 1 KiB of it holds y, the context and the node's tensor. */
    t = ag_tape_create(2048, 2048, 16);
    assert_non_null(ag_frozen_linear(t, x, &fw));
    ag_tape_free(t);
    t = ag_tape_create(1 << 20, 0, 0); /* no room for the node */
    assert_null(ag_frozen_linear(t, x, &fw));
    assert_non_null(strstr(ag_tape_error(t), "tape full"));
    ag_tape_free(t);
    free_t(x);
    fake_free(q);
}

/* Two frozen layers on one tape share one scratch: the second (a larger tile) grows and moves
 * it, and the first one's backward still finds its tiles. Both dx match ag_linear's. */
static void test_frozen_shared_scratch_moves(void **state) {
    (void)state;
    fake_q *q1 = fake_new(300, 64, 901), *q2 = fake_new(300, 1024, 902);
    ag_frozen f1 = fake_desc(q1), f2 = fake_desc(q2);
    ag_tensor *x1 = new_x(AG_F64, 2, (int64_t[]){3, 64}, 903, true);
    ag_tensor *x2 = new_x(AG_F64, 2, (int64_t[]){3, 1024}, 904, true);
    ag_tensor *r1 = clone_t(x1), *r2 = clone_t(x2);
    ag_tensor *w1 = fake_dense(q1, AG_F64), *w2 = fake_dense(q2, AG_F64);
    ag_tape *t = ag_tape_create(1 << 20, 0, 16);
    ag_tensor *z = ag_add(t, ag_frozen_linear(t, x1, &f1), ag_frozen_linear(t, x2, &f2));
    assert_non_null(z);
    assert_int_equal(ag_backward(t, z, NULL), 0);
    ag_tape *u = ag_tape_create(1 << 20, 0, 16);
    ag_tensor *zr = ag_add(u, ag_linear(u, r1, w1), ag_linear(u, r2, w2));
    assert_int_equal(ag_backward(u, zr, NULL), 0);
    for (size_t i = 0; i < x1->numel; i++)
        assert_close(get(x1, x1->grad, i), get(r1, r1->grad, i), 1e-12, 1e-12);
    for (size_t i = 0; i < x2->numel; i++)
        assert_close(get(x2, x2->grad, i), get(r2, r2->grad, i), 1e-12, 1e-12);
    ag_tape_free(t);
    ag_tape_free(u);
    free_t(x1);
    free_t(x2);
    free_t(r1);
    free_t(r2);
    free_t(w1);
    free_t(w2);
    fake_free(q1);
    fake_free(q2);
}

int agt_run_frozen_linear(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frozen_matches_linear),
        cmocka_unit_test(test_frozen_records_only_x),
        cmocka_unit_test(test_frozen_descriptor_is_copied),
        cmocka_unit_test(test_frozen_gradcheck),
        cmocka_unit_test(test_frozen_lora_gradcheck),
        cmocka_unit_test(test_frozen_memory_and_ranges),
        cmocka_unit_test(test_frozen_threads),
        cmocka_unit_test(test_frozen_empty_rows),
        cmocka_unit_test(test_frozen_rejects_bad_inputs),
        cmocka_unit_test(test_frozen_reports_full_arena_and_tape),
        cmocka_unit_test(test_frozen_shared_scratch_moves),
    };
    return cmocka_run_group_tests_name("autograd_frozen_linear", tests, NULL, NULL);
}
