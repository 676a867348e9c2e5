/* test_lora_linear.c — ag_lora_linear, the fused QLoRA layer y = x·Wᵀ + s·(drop(x)·Aᵀ)·Bᵀ.
 *
 * W lives in the fake packed format of test_frozen_linear.c (int8 codes, one float scale per
 * row). Checked: agreement with the composition ag_frozen_linear + ag_dropout + ag_linear +
 * ag_linear + ag_scale + ag_add (y and every gradient, accumulated onto non-zero grads) in float
 * and double, p = 0 and p > 0, across shapes and requires-grad subsets, each element to within
 * tol times the sum of the magnitudes of its terms (the composition run on absolute values);
 * B = 0 gives ag_frozen_linear's y and dx bit for bit; the node's inputs; double-precision
 * gradient checks with and without dropout; forward arena use of y + u + a constant against the
 * composition's; bit-identical results at 1 and 2 threads; a non-recording tape (no node, no
 * dropout); two layers sharing a scratch that moves; bad inputs, a full arena and a full tape. */
#include "agtest.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- tensors ----------------------------------------------------------------------------------
 */

/* Heap tensor of dtype dt, values uniform in ±amp (each exact in float), with a grad buffer of
 * its own holding small non-zero values when rg (the op must add to it). */
static ag_tensor *new_t(ag_dtype dt, int ndim, const int64_t *shape, double amp, uint64_t seed,
                        bool rg) {
    ag_tensor *t = malloc(sizeof *t);
    ag_tensor_wrap(t, dt, NULL, NULL, ndim, shape);
    size_t n = t->numel ? t->numel : 1, es = ag_dtype_size(dt);
    t->data = malloc(n * es);
    t->grad = malloc(n * es); /* always there (so clones can flip requires_grad); used when rg */
    for (size_t i = 0; i < t->numel; i++) {
        float v = (float)tu_uniform(&seed, -amp, amp), g = (float)tu_uniform(&seed, -0.1, 0.1);
        if (dt == AG_F32) {
            ((float *)t->data)[i] = v;
            ((float *)t->grad)[i] = g;
        } else {
            ((double *)t->data)[i] = v;
            ((double *)t->grad)[i] = g;
        }
    }
    t->requires_grad = rg;
    return t;
}

/* A copy of s in dtype dt (values and grads converted), |·| of both when absolute. */
static ag_tensor *copy_t(const ag_tensor *s, ag_dtype dt, bool absolute) {
    ag_tensor *t = malloc(sizeof *t);
    ag_tensor_wrap(t, dt, NULL, NULL, s->ndim, s->shape);
    size_t n = s->numel ? s->numel : 1, es = ag_dtype_size(dt);
    t->data = malloc(n * es);
    t->grad = malloc(n * es);
    for (size_t i = 0; i < s->numel; i++) {
        double v = s->dtype == AG_F32 ? ((const float *)s->data)[i] : ((const double *)s->data)[i];
        double g = s->dtype == AG_F32 ? ((const float *)s->grad)[i] : ((const double *)s->grad)[i];
        if (absolute) {
            v = fabs(v);
            g = fabs(g);
        }
        if (dt == AG_F32) {
            ((float *)t->data)[i] = (float)v;
            ((float *)t->grad)[i] = (float)g;
        } else {
            ((double *)t->data)[i] = v;
            ((double *)t->grad)[i] = g;
        }
    }
    t->requires_grad = s->requires_grad;
    return t;
}

static void free_t(ag_tensor *t) {
    if (!t)
        return;
    free(t->data);
    free(t->grad);
    free(t);
}

static double get(ag_dtype dt, const void *buf, size_t i) {
    return dt == AG_F32 ? (double)((const float *)buf)[i] : ((const double *)buf)[i];
}

/* ---- one layer, fused or composed --------------------------------------------------------------
 */

/* The inputs of a layer: x (.., in), A (r, in), B (out, r), dy (.., out), all one dtype. */
typedef struct layer_in {
    ag_tensor *x, *a, *b, *dy;
    double s, p;
    uint64_t seed;
} layer_in;

/* What one run produced, as doubles (malloc'ed; grads NULL for inputs without requires_grad). */
typedef struct layer_out {
    double *y, *dx, *da, *db;
    size_t arena_fwd, arena_bwd; /* arena bytes taken by the forward and the backward pass */
    size_t nodes;
} layer_out;

static double *to_doubles(ag_dtype dt, const void *buf, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++)
        d[i] = get(dt, buf, i);
    return d;
}

static ag_tensor *composed(ag_tape *t, ag_tensor *x, const ag_frozen *w, ag_tensor *a, ag_tensor *b,
                           double s, double p, uint64_t seed) {
    ag_tensor *xd = ag_dropout(t, x, p, seed);
    ag_tensor *v = ag_linear(t, ag_linear(t, xd, a), b);
    return ag_add(t, ag_frozen_linear(t, x, w), ag_scale(t, v, s));
}

/* Run the layer on copies of in's tensors (so grads start from in's values every time) in dtype
 * dt, |·| of everything when absolute (then s too): fused, or composed. */
static void run_layer(bool fused, ag_dtype dt, bool absolute, const fake_q *q, const layer_in *in,
                      layer_out *o) {
    ag_frozen fw = fake_desc(q);
    ag_tensor *x = copy_t(in->x, dt, absolute), *a = copy_t(in->a, dt, absolute);
    ag_tensor *b = copy_t(in->b, dt, absolute), *dy = copy_t(in->dy, dt, absolute);
    double s = absolute ? fabs(in->s) : in->s;
    ag_tape *t = ag_tape_create(1 << 20, 0, 64);
    ag_arena *ar = ag_tape_arena(t);
    size_t u0 = ag_arena_used(ar);
    ag_tensor *y = fused ? ag_lora_linear(t, x, &fw, a, b, s, in->p, in->seed)
                         : composed(t, x, &fw, a, b, s, in->p, in->seed);
    assert_non_null(y);
    size_t u1 = ag_arena_used(ar);
    o->nodes = ag_tape_size(t);
    o->y = to_doubles(dt, y->data, y->numel);
    if (y->requires_grad)
        assert_int_equal(ag_backward(t, y, dy->data), 0);
    o->arena_fwd = u1 - u0;
    o->arena_bwd = ag_arena_used(ar) - u1;
    o->dx = x->requires_grad ? to_doubles(dt, x->grad, x->numel) : NULL;
    o->da = a->requires_grad ? to_doubles(dt, a->grad, a->numel) : NULL;
    o->db = b->requires_grad ? to_doubles(dt, b->grad, b->numel) : NULL;
    ag_tape_free(t);
    free_t(x);
    free_t(a);
    free_t(b);
    free_t(dy);
}

static void free_out(layer_out *o) {
    free(o->y);
    free(o->dx);
    free(o->da);
    free(o->db);
}

static void compare(const char *what, const char *name, const double *got, const double *want,
                    const double *mag, size_t n, double tol) {
    assert_true((got == NULL) == (want == NULL));
    for (size_t i = 0; got && i < n; i++)
        if (!(fabs(got[i] - want[i]) <= tol * mag[i] + 1e-300)) {
            print_error("%s: %s[%zu] = %.17g, composition %.17g (tol %.3g)\n", what, name, i,
                        got[i], want[i], tol * mag[i]);
            fail();
        }
}

static void compare_bits(const char *what, const char *name, const double *a, const double *b,
                         size_t n) {
    assert_true((a == NULL) == (b == NULL));
    if (a && memcmp(a, b, n * sizeof *a) != 0) {
        print_error("%s: %s differs\n", what, name);
        fail();
    }
}

/* ---- agreement with the composition -------------------------------------------------------------
 */

/* Fused against composed for x (sx), out, r, p, with the requires-grad subset rg (bits x, a, b),
 * in dtype dt. Each element within tol × (the same quantity computed on absolute values in
 * double), the error scale of its sums. */
static void check_vs_composition(ag_dtype dt, int ndim, const int64_t *sx, int64_t out, int64_t r,
                                 double p, unsigned rg, uint64_t seed) {
    double tol = dt == AG_F32 ? 1e-6 : 1e-12;
    int64_t in_dim = sx[ndim - 1], sy[AG_MAX_DIMS];
    memcpy(sy, sx, (size_t)ndim * sizeof *sy);
    sy[ndim - 1] = out;
    fake_q *q = fake_new_abs(out, in_dim, seed, false), *qa = fake_new_abs(out, in_dim, seed, true);
    layer_in li = {.x = new_t(AG_F64, ndim, sx, 1, seed + 1, rg & 1),
                   .a = new_t(AG_F64, 2, (int64_t[]){r, in_dim}, 0.5, seed + 2, rg & 2),
                   .b = new_t(AG_F64, 2, (int64_t[]){out, r}, 0.5, seed + 3, rg & 4),
                   .dy = new_t(AG_F64, ndim, sy, 1, seed + 4, false),
                   .s = 16.0 / (double)r,
                   .p = p,
                   .seed = seed + 5};
    layer_out f, c, m;
    run_layer(true, dt, false, q, &li, &f);
    run_layer(false, dt, false, q, &li, &c);
    run_layer(false, AG_F64, true, qa, &li, &m);
    char what[128];
    snprintf(what, sizeof what, "lora %s R=%zu in=%lld out=%lld r=%lld p=%g grads=%u",
             dt == AG_F32 ? "f32" : "f64", li.x->numel / (size_t)in_dim, (long long)in_dim,
             (long long)out, (long long)r, p, rg);
    assert_int_equal(f.nodes, rg ? 1 : 0);
    compare(what, "y", f.y, c.y, m.y, li.dy->numel, tol);
    compare(what, "dx", f.dx, c.dx, m.dx, li.x->numel, tol);
    compare(what, "dA", f.da, c.da, m.da, li.a->numel, tol);
    compare(what, "dB", f.db, c.db, m.db, li.b->numel, tol);
    assert_int_equal(atomic_load(&q->bad_ranges), 0);
    free_out(&f);
    free_out(&c);
    free_out(&m);
    free_t(li.x);
    free_t(li.a);
    free_t(li.b);
    free_t(li.dy);
    fake_free(q);
    fake_free(qa);
}

static void test_lora_matches_composition(void **state) {
    (void)state;
    const double ps[2] = {0.0, 0.3};
    for (int f32 = 0; f32 < 2; f32++) {
        ag_dtype dt = f32 ? AG_F32 : AG_F64;
        for (int k = 0; k < 2; k++) {
            double p = ps[k];
            uint64_t sd = 1000 * (uint64_t)(2 * f32 + k);
            check_vs_composition(dt, 2, (int64_t[]){1, 64}, 48, 8, p, 7, sd + 11); /* R = 1 */
            /* leading dims [2,3,in], r = 1 */
            check_vs_composition(dt, 3, (int64_t[]){2, 3, 20}, 7, 1, p, 7, sd + 21);
            /* out spanning 3 tiles (the last partial), odd in: mask pairs straddle rows */
            check_vs_composition(dt, 2, (int64_t[]){5, 33}, 600, 8, p, 7, sd + 31);
            /* the parallel path: 5 row blocks, 3 tiles */
            check_vs_composition(dt, 3, (int64_t[]){2, 150, 96}, 600, 8, p, 7, sd + 41);
            /* odd in cut into column chunks of dA (starts at odd flat indices), 8 chunks of dB */
            check_vs_composition(dt, 2, (int64_t[]){200, 131}, 520, 8, p, 7, sd + 51);
            /* small R, wide in (decoding) */
            check_vs_composition(dt, 2, (int64_t[]){4, 1024}, 300, 8, p, 7, sd + 61);
            /* requires-grad subsets: adapters only (x frozen: the first layer), x only, A or B
             * frozen, A or B only, nothing (no node); in float with dropout and in double
             * without (the paths differ by dropout, not by dtype) */
            static const unsigned subsets[7] = {6, 1, 5, 3, 2, 4, 0};
            for (int s = 0; s < 7 && (dt == AG_F32) == (p > 0); s++)
                check_vs_composition(dt, 2, (int64_t[]){70, 130}, 300, 8, p, subsets[s],
                                     sd + 71 + (uint64_t)s);
        }
    }
}

/* B = 0 (LoRA's initialisation): y and dx are ag_frozen_linear's, bit for bit (the adapter adds
 * exact zeros); dB is not zero. */
static void test_lora_zero_b_is_frozen_linear(void **state) {
    (void)state;
    enum { R = 300, IN = 96, OUT = 600, RANK = 8 };
    fake_q *q = fake_new_abs(OUT, IN, 121, false);
    ag_frozen fw = fake_desc(q);
    for (int k = 0; k < 2; k++) {
        double p = k ? 0.3 : 0.0;
        ag_tensor *x = new_t(AG_F32, 2, (int64_t[]){R, IN}, 1, 122, true);
        ag_tensor *xr = copy_t(x, AG_F32, false);
        ag_tensor *a = new_t(AG_F32, 2, (int64_t[]){RANK, IN}, 0.5, 123, true);
        ag_tensor *b = new_t(AG_F32, 2, (int64_t[]){OUT, RANK}, 0.5, 124, true);
        memset(b->data, 0, b->numel * sizeof(float));
        memset(b->grad, 0, b->numel * sizeof(float));
        ag_tensor *dy = new_t(AG_F32, 2, (int64_t[]){R, OUT}, 1, 125, false);
        ag_tape *t = ag_tape_create(1 << 22, 0, 16), *tr = ag_tape_create(1 << 22, 0, 16);
        ag_tensor *y = ag_lora_linear(t, x, &fw, a, b, 2.0, p, 126);
        ag_tensor *yr = ag_frozen_linear(tr, xr, &fw);
        assert_non_null(y);
        assert_non_null(yr);
        assert_memory_equal(y->data, yr->data, y->numel * sizeof(float));
        assert_int_equal(ag_backward(t, y, dy->data), 0);
        assert_int_equal(ag_backward(tr, yr, dy->data), 0);
        assert_memory_equal(x->grad, xr->grad, x->numel * sizeof(float));
        double db2 = 0;
        for (size_t i = 0; i < b->numel; i++)
            db2 += ((float *)b->grad)[i] * (double)((float *)b->grad)[i];
        assert_true(db2 > 0);
        ag_tape_free(t);
        ag_tape_free(tr);
        free_t(x);
        free_t(xr);
        free_t(a);
        free_t(b);
        free_t(dy);
    }
    fake_free(q);
}

/* One node with inputs x, A, B; none when nothing requires grad. */
static void test_lora_node(void **state) {
    (void)state;
    fake_q *q = fake_new_abs(10, 16, 131, false);
    ag_frozen fw = fake_desc(q);
    ag_tensor *x = new_t(AG_F64, 2, (int64_t[]){3, 16}, 1, 132, true);
    ag_tensor *a = new_t(AG_F64, 2, (int64_t[]){2, 16}, 0.5, 133, true);
    ag_tensor *b = new_t(AG_F64, 2, (int64_t[]){10, 2}, 0.5, 134, true);
    ag_tape *t = ag_tape_create(1 << 20, 0, 16);
    ag_tensor *y = ag_lora_linear(t, x, &fw, a, b, 4.0, 0.1, 135);
    assert_non_null(y);
    assert_true(y->requires_grad);
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[0], 3);
    assert_int_equal(y->shape[1], 10);
    assert_int_equal(ag_tape_size(t), 1);
    const ag_node *n = ag_tape_node(t, 0);
    assert_int_equal(n->op, AG_OP_LORA_LINEAR);
    assert_string_equal(ag_op_name(n->op), "lora_linear");
    assert_int_equal(n->n_in, 3);
    assert_ptr_equal(n->in[0], x);
    assert_ptr_equal(n->in[1], a);
    assert_ptr_equal(n->in[2], b);
    x->requires_grad = a->requires_grad = b->requires_grad = false;
    ag_tensor *y2 = ag_lora_linear(t, x, &fw, a, b, 4.0, 0.1, 135);
    assert_non_null(y2);
    assert_false(y2->requires_grad);
    assert_int_equal(ag_tape_size(t), 1);
    /* recording, so dropout applies even without a node: the same bits as the recorded call */
    assert_memory_equal(y2->data, y->data, y->numel * sizeof(double));
    ag_tape_free(t);
    free_t(x);
    free_t(a);
    free_t(b);
    fake_free(q);
}

/* ---- gradient checks --------------------------------------------------------------------------
 */

typedef struct gc_ctx {
    ag_frozen w;
    double s, p;
    uint64_t seed;
} gc_ctx;

/* ag_gradcheck evaluates its finite differences with recording off, where dropout is off;
 * switching recording on inside the build makes both sides differentiate the same function. */
static ag_tensor *build_lora(ag_tape *t, ag_tensor **in, void *ctx) {
    const gc_ctx *c = ctx;
    bool rec = ag_tape_recording(t);
    ag_tape_set_recording(t, true);
    ag_tensor *y = ag_lora_linear(t, in[0], &c->w, in[1], in[2], c->s, c->p, c->seed);
    ag_tape_set_recording(t, rec);
    return y;
}

static void gradcheck_lora(const char *what, int ndim, const int64_t *sx, int64_t out, int64_t r,
                           double p, bool x_grad, uint64_t seed) {
    int64_t in_dim = sx[ndim - 1];
    fake_q *q = fake_new_abs(out, in_dim, seed, false);
    gc_ctx c = {.w = fake_desc(q), .s = 8.0 / (double)r, .p = p, .seed = seed + 1};
    ag_tensor *in[3] = {
        agt_rand(ndim, sx, -1, 1, seed + 2, x_grad),
        agt_rand(2, (int64_t[]){r, in_dim}, -0.5, 0.5, seed + 3, true),
        agt_rand(2, (int64_t[]){out, r}, -0.5, 0.5, seed + 4, true),
    };
    agt_gradcheck(what, build_lora, &c, in, 3);
    assert_int_equal(atomic_load(&q->bad_ranges), 0);
    for (int k = 0; k < 3; k++)
        agt_free(in[k]);
    fake_free(q);
}

/* A and B the same tensor (in = out = r): dA and dB land in one buffer. */
static ag_tensor *build_lora_shared_ab(ag_tape *t, ag_tensor **in, void *ctx) {
    const gc_ctx *c = ctx;
    bool rec = ag_tape_recording(t);
    ag_tape_set_recording(t, true);
    ag_tensor *y = ag_lora_linear(t, in[0], &c->w, in[1], in[1], c->s, c->p, c->seed);
    ag_tape_set_recording(t, rec);
    return y;
}

static void test_lora_gradcheck(void **state) {
    (void)state;
    gradcheck_lora("lora_linear [2,3,12]->[2,3,10] r=3 p=0", 3, (int64_t[]){2, 3, 12}, 10, 3, 0.0,
                   true, 201);
    gradcheck_lora("lora_linear [2,3,12]->[2,3,10] r=3 p=0.4", 3, (int64_t[]){2, 3, 12}, 10, 3, 0.4,
                   true, 211);
    gradcheck_lora("lora_linear [3,5]->[3,300] r=2 p=0.3 (2 tiles)", 2, (int64_t[]){3, 5}, 300, 2,
                   0.3, true, 221);
    gradcheck_lora("lora_linear [7]->[4] r=1 p=0.5", 1, (int64_t[]){7}, 4, 1, 0.5, true, 231);
    gradcheck_lora("lora_linear x frozen, p=0.3", 2, (int64_t[]){4, 9}, 6, 2, 0.3, false, 241);
    fake_q *q = fake_new_abs(3, 3, 251, false);
    gc_ctx c = {.w = fake_desc(q), .s = 1.5, .p = 0.3, .seed = 252};
    ag_tensor *in[2] = {agt_rand(2, (int64_t[]){4, 3}, -1, 1, 253, true),
                        agt_rand(2, (int64_t[]){3, 3}, -0.5, 0.5, 254, true)};
    agt_gradcheck("lora_linear with A = B", build_lora_shared_ab, &c, in, 2);
    agt_free(in[0]);
    agt_free(in[1]);
    fake_free(q);
}

/* ---- memory -----------------------------------------------------------------------------------
 */

/* R = 512, in = 256, out = 1024, r = 8, p = 0.3: forward keeps y, u and a few hundred bytes of
 * structs; backward takes y's gradient only. The composition keeps far more (the fused op's
 * arena does not depend on p; the composition's grows with p > 0 by drop(x) and its gradient). */
static void test_lora_memory(void **state) {
    (void)state;
    enum { R = 512, IN = 256, OUT = 1024, RANK = 8 };
    fake_q *q = fake_new_abs(OUT, IN, 301, false);
    layer_in li = {.x = new_t(AG_F32, 2, (int64_t[]){R, IN}, 1, 302, true),
                   .a = new_t(AG_F32, 2, (int64_t[]){RANK, IN}, 0.5, 303, true),
                   .b = new_t(AG_F32, 2, (int64_t[]){OUT, RANK}, 0.5, 304, true),
                   .dy = new_t(AG_F32, 2, (int64_t[]){R, OUT}, 1, 305, false),
                   .s = 2.0,
                   .p = 0.3,
                   .seed = 306};
    layer_out f, c;
    run_layer(true, AG_F32, false, q, &li, &f);
    run_layer(false, AG_F32, false, q, &li, &c);
    size_t ybytes = (size_t)R * OUT * sizeof(float), ubytes = (size_t)R * RANK * sizeof(float);
    print_message(
        "    lora_linear R=%d in=%d out=%d r=%d p=%g: arena fwd %zu + bwd %zu bytes fused, "
        "%zu + %zu composed\n",
        R, IN, OUT, RANK, li.p, f.arena_fwd, f.arena_bwd, c.arena_fwd, c.arena_bwd);
    assert_true(f.arena_fwd <= ybytes + ubytes + 1024);
    assert_int_equal(f.arena_bwd, ybytes); /* y's gradient, nothing else */
    assert_true((double)f.arena_fwd <= 0.4 * (double)c.arena_fwd);
    assert_true((double)(f.arena_fwd + f.arena_bwd) <= 0.4 * (double)(c.arena_fwd + c.arena_bwd));
    free_out(&f);
    free_out(&c);
    free_t(li.x);
    free_t(li.a);
    free_t(li.b);
    free_t(li.dy);
    fake_free(q);
}

/* ---- threads ----------------------------------------------------------------------------------
 */

static void test_lora_threads(void **state) {
    (void)state;
    /* {R, in, out, r}: row blocks and 3 tiles; decoding; r = 1 and many rows; odd in with
     * column chunks */
    const int64_t shapes[4][4] = {
        {300, 96, 600, 8}, {4, 1024, 300, 8}, {1100, 40, 257, 1}, {512, 131, 200, 8}};
    const double ps[4] = {0.3, 0.3, 0.0, 0.2};
    int saved = omp_get_max_threads();
    for (int s = 0; s < 4; s++) {
        int64_t R = shapes[s][0], IN = shapes[s][1], OUT = shapes[s][2], RANK = shapes[s][3];
        fake_q *q = fake_new_abs(OUT, IN, 401 + (uint64_t)s, false);
        layer_in li = {.x = new_t(AG_F32, 2, (int64_t[]){R, IN}, 1, 402, true),
                       .a = new_t(AG_F32, 2, (int64_t[]){RANK, IN}, 0.5, 403, true),
                       .b = new_t(AG_F32, 2, (int64_t[]){OUT, RANK}, 0.5, 404, true),
                       .dy = new_t(AG_F32, 2, (int64_t[]){R, OUT}, 1, 405, false),
                       .s = 2.0,
                       .p = ps[s],
                       .seed = 406};
        layer_out o1, o2;
        omp_set_num_threads(1);
        run_layer(true, AG_F32, false, q, &li, &o1);
        omp_set_num_threads(2);
        run_layer(true, AG_F32, false, q, &li, &o2);
        omp_set_num_threads(saved);
        char what[64];
        snprintf(what, sizeof what, "lora_linear 1 vs 2 threads, shape %d", s);
        compare_bits(what, "y", o1.y, o2.y, (size_t)(R * OUT));
        compare_bits(what, "dx", o1.dx, o2.dx, (size_t)(R * IN));
        compare_bits(what, "dA", o1.da, o2.da, (size_t)(RANK * IN));
        compare_bits(what, "dB", o1.db, o2.db, (size_t)(OUT * RANK));
        free_out(&o1);
        free_out(&o2);
        free_t(li.x);
        free_t(li.a);
        free_t(li.b);
        free_t(li.dy);
        fake_free(q);
    }
}

/* ---- modes, edges and errors -------------------------------------------------------------------
 */

/* A tape that is not recording: no node, no dropout (y is p = 0's, bit for bit), and nothing in
 * the arena but y and the frozen product's plan (u is a scratch temporary then). */
static void test_lora_not_recording(void **state) {
    (void)state;
    enum { R = 200, IN = 96, OUT = 300, RANK = 8 };
    fake_q *q = fake_new_abs(OUT, IN, 501, false);
    ag_frozen fw = fake_desc(q);
    ag_tensor *x = new_t(AG_F32, 2, (int64_t[]){R, IN}, 1, 502, true);
    ag_tensor *a = new_t(AG_F32, 2, (int64_t[]){RANK, IN}, 0.5, 503, true);
    ag_tensor *b = new_t(AG_F32, 2, (int64_t[]){OUT, RANK}, 0.5, 504, true);
    ag_tape *t = ag_tape_create(1 << 22, 0, 16);
    ag_tensor *y0 = ag_lora_linear(t, x, &fw, a, b, 2.0, 0.0, 505); /* recording, p = 0 */
    ag_tensor *yd = ag_lora_linear(t, x, &fw, a, b, 2.0, 0.3, 505); /* recording, p = 0.3 */
    assert_non_null(y0);
    assert_non_null(yd);
    assert_int_equal(ag_tape_size(t), 2);
    size_t ybytes = (size_t)R * OUT * sizeof(float);
    assert_memory_not_equal(y0->data, yd->data, ybytes);
    ag_tape_set_recording(t, false);
    size_t u0 = ag_arena_used(ag_tape_arena(t));
    ag_tensor *yi = ag_lora_linear(t, x, &fw, a, b, 2.0, 0.3, 505);
    assert_non_null(yi);
    assert_false(yi->requires_grad);
    assert_int_equal(ag_tape_size(t), 2);
    assert_memory_equal(yi->data, y0->data, ybytes);
    assert_true(ag_arena_used(ag_tape_arena(t)) - u0 <= ybytes + 512);
    assert_null(ag_lora_linear(t, x, &fw, a, b, 2.0, 1.0, 505)); /* bad p is bad here too */
    ag_tape_free(t);
    free_t(x);
    free_t(a);
    free_t(b);
    fake_free(q);
}

/* R = 0: an empty output; backward runs; the callback is never needed. */
static void test_lora_empty_rows(void **state) {
    (void)state;
    fake_q *q = fake_new_abs(5, 8, 551, false);
    ag_frozen fw = fake_desc(q);
    ag_tensor *x = new_t(AG_F32, 2, (int64_t[]){0, 8}, 1, 552, true);
    ag_tensor *a = new_t(AG_F32, 2, (int64_t[]){2, 8}, 0.5, 553, true);
    ag_tensor *b = new_t(AG_F32, 2, (int64_t[]){5, 2}, 0.5, 554, true);
    ag_tensor *b0 = copy_t(b, AG_F32, false);
    ag_tape *t = ag_tape_create(1 << 20, 0, 16);
    ag_tensor *y = ag_lora_linear(t, x, &fw, a, b, 2.0, 0.3, 555);
    assert_non_null(y);
    assert_int_equal(y->numel, 0);
    assert_int_equal(ag_backward(t, y, NULL), 0);
    assert_memory_equal(b->grad, b0->grad, b->numel * sizeof(float)); /* nothing added */
    assert_int_equal(atomic_load(&q->calls), 0);
    ag_tape_free(t);
    free_t(x);
    free_t(a);
    free_t(b);
    free_t(b0);
    fake_free(q);
}

/* Two layers on one tape share one scratch: the second (wider) grows and moves it, and the first
 * one's backward still finds its temporaries. Every gradient matches the composition's. */
static void test_lora_shared_scratch_moves(void **state) {
    (void)state;
    enum { R = 30, OUT = 200 };
    fake_q *q1 = fake_new_abs(OUT, 64, 601, false), *q2 = fake_new_abs(OUT, 1024, 602, false);
    ag_frozen f1 = fake_desc(q1), f2 = fake_desc(q2);
    ag_tensor *mine[6] = {
        new_t(AG_F64, 2, (int64_t[]){R, 64}, 1, 603, true),
        new_t(AG_F64, 2, (int64_t[]){4, 64}, 0.5, 604, true),
        new_t(AG_F64, 2, (int64_t[]){OUT, 4}, 0.5, 605, true),
        new_t(AG_F64, 2, (int64_t[]){R, 1024}, 1, 606, true),
        new_t(AG_F64, 2, (int64_t[]){4, 1024}, 0.5, 607, true),
        new_t(AG_F64, 2, (int64_t[]){OUT, 4}, 0.5, 608, true),
    };
    ag_tensor *ref[6];
    for (int k = 0; k < 6; k++)
        ref[k] = copy_t(mine[k], AG_F64, false);
    ag_tensor *dy = new_t(AG_F64, 2, (int64_t[]){R, OUT}, 1, 609, false);
    ag_tape *t = ag_tape_create(1 << 20, 0, 16), *u = ag_tape_create(1 << 20, 0, 64);
    ag_tensor *z = ag_add(t, ag_lora_linear(t, mine[0], &f1, mine[1], mine[2], 2.0, 0.2, 610),
                          ag_lora_linear(t, mine[3], &f2, mine[4], mine[5], 3.0, 0.4, 611));
    ag_tensor *zr = ag_add(u, composed(u, ref[0], &f1, ref[1], ref[2], 2.0, 0.2, 610),
                           composed(u, ref[3], &f2, ref[4], ref[5], 3.0, 0.4, 611));
    assert_non_null(z);
    assert_non_null(zr);
    assert_int_equal(ag_backward(t, z, dy->data), 0);
    assert_int_equal(ag_backward(u, zr, dy->data), 0);
    for (size_t i = 0; i < z->numel; i++)
        assert_close(get(AG_F64, z->data, i), get(AG_F64, zr->data, i), 1e-12, 1e-12);
    for (int k = 0; k < 6; k++)
        for (size_t i = 0; i < mine[k]->numel; i++)
            assert_close(get(AG_F64, mine[k]->grad, i), get(AG_F64, ref[k]->grad, i), 1e-12, 1e-12);
    ag_tape_free(t);
    ag_tape_free(u);
    for (int k = 0; k < 6; k++) {
        free_t(mine[k]);
        free_t(ref[k]);
    }
    free_t(dy);
    fake_free(q1);
    fake_free(q2);
}

static void test_lora_rejects_bad_inputs(void **state) {
    (void)state;
    fake_q *q = fake_new_abs(6, 8, 701, false);
    ag_frozen fw = fake_desc(q), bad;
    ag_tensor *x = new_t(AG_F64, 2, (int64_t[]){3, 8}, 1, 702, false);
    ag_tensor *x7 = new_t(AG_F64, 2, (int64_t[]){3, 7}, 1, 703, false);
    ag_tensor *x0 = new_t(AG_F64, 0, NULL, 1, 704, false);
    ag_tensor *xf = new_t(AG_F32, 2, (int64_t[]){3, 8}, 1, 705, false);
    ag_tensor *a = new_t(AG_F64, 2, (int64_t[]){2, 8}, 1, 706, false);
    ag_tensor *b = new_t(AG_F64, 2, (int64_t[]){6, 2}, 1, 707, false);
    ag_tensor *a7 = new_t(AG_F64, 2, (int64_t[]){2, 7}, 1, 708, false); /* wrong in */
    ag_tensor *a1d = new_t(AG_F64, 1, (int64_t[]){8}, 1, 709, false);   /* not 2-D */
    ag_tensor *a3d = new_t(AG_F64, 3, (int64_t[]){1, 2, 8}, 1, 710, false);
    ag_tensor *b5 = new_t(AG_F64, 2, (int64_t[]){5, 2}, 1, 711, false); /* wrong out */
    ag_tensor *b3 = new_t(AG_F64, 2, (int64_t[]){6, 3}, 1, 712, false); /* r ≠ A's */
    ag_tensor *a0 = new_t(AG_F64, 2, (int64_t[]){0, 8}, 1, 713, false); /* r = 0 */
    ag_tensor *b0 = new_t(AG_F64, 2, (int64_t[]){6, 0}, 1, 714, false);
    ag_tensor *af = new_t(AG_F32, 2, (int64_t[]){2, 8}, 1, 715, false); /* dtypes */
    ag_tensor *bf = new_t(AG_F32, 2, (int64_t[]){6, 2}, 1, 716, false);
    ag_tape *t = ag_tape_create(1 << 20, 0, 16);
    assert_null(ag_lora_linear(t, x7, &fw, a7, b, 1, 0, 1)); /* x's last dim ≠ cols */
    assert_null(ag_lora_linear(t, x0, &fw, a, b, 1, 0, 1));
    assert_null(ag_lora_linear(t, x, &fw, a7, b, 1, 0, 1));
    assert_null(ag_lora_linear(t, x, &fw, a1d, b, 1, 0, 1));
    assert_null(ag_lora_linear(t, x, &fw, a3d, b, 1, 0, 1));
    assert_null(ag_lora_linear(t, x, &fw, a, b5, 1, 0, 1));
    assert_null(ag_lora_linear(t, x, &fw, a, b3, 1, 0, 1));
    assert_null(ag_lora_linear(t, x, &fw, a0, b0, 1, 0, 1));
    assert_null(ag_lora_linear(t, x, &fw, af, b, 1, 0, 1));
    assert_null(ag_lora_linear(t, x, &fw, a, bf, 1, 0, 1));
    assert_null(ag_lora_linear(t, xf, &fw, a, b, 1, 0, 1));
    assert_null(ag_lora_linear(t, NULL, &fw, a, b, 1, 0, 1));
    assert_null(ag_lora_linear(t, x, NULL, a, b, 1, 0, 1));
    assert_null(ag_lora_linear(t, x, &fw, NULL, b, 1, 0, 1));
    assert_null(ag_lora_linear(t, x, &fw, a, NULL, 1, 0, 1));
    assert_null(ag_lora_linear(t, x, &fw, a, b, 1, -0.1, 1));
    assert_null(ag_lora_linear(t, x, &fw, a, b, 1, 1.0, 1));
    assert_null(ag_lora_linear(t, x, &fw, a, b, 1, NAN, 1));
    bad = fw;
    bad.dequant_rows = NULL;
    assert_null(ag_lora_linear(t, x, &bad, a, b, 1, 0, 1));
    bad = fw;
    bad.cols = 7;
    assert_null(ag_lora_linear(t, x, &bad, a, b, 1, 0, 1));
    assert_int_equal(atomic_load(&q->calls), 0);
    assert_int_equal(ag_arena_used(ag_tape_arena(t)), 0); /* rejected before allocating */
    assert_non_null(ag_lora_linear(t, x, &fw, a, b, 1, 0.5, 1));
    ag_tape_free(t);
    ag_tensor *all[] = {x, x7, x0, xf, a, b, a7, a1d, a3d, b5, b3, a0, b0, af, bf};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        free_t(all[k]);
    fake_free(q);
}

/* A full arena and a full tape both give NULL and say why. */
static void test_lora_reports_full_arena_and_tape(void **state) {
    (void)state;
    fake_q *q = fake_new_abs(64, 64, 801, false);
    ag_frozen fw = fake_desc(q);
    ag_tensor *x = new_t(AG_F64, 2, (int64_t[]){16, 64}, 1, 802, true);
    ag_tensor *a = new_t(AG_F64, 2, (int64_t[]){4, 64}, 0.5, 803, true);
    ag_tensor *b = new_t(AG_F64, 2, (int64_t[]){64, 4}, 0.5, 804, true);
    /* y (8 KiB) and the small structs fit, u (512 bytes) does not */
    ag_tape *t = ag_tape_create(8192 + 512, 8192 + 512, 16);
    assert_null(ag_lora_linear(t, x, &fw, a, b, 1, 0.1, 1));
    assert_non_null(strstr(ag_tape_error(t), "arena full"));
    ag_tape_free(t);
    t = ag_tape_create(1 << 20, 0, 0); /* no room for the node */
    assert_null(ag_lora_linear(t, x, &fw, a, b, 1, 0.1, 1));
    assert_non_null(strstr(ag_tape_error(t), "tape full"));
    ag_tape_free(t);
    free_t(x);
    free_t(a);
    free_t(b);
    fake_free(q);
}

int agt_run_lora_linear(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lora_matches_composition),
        cmocka_unit_test(test_lora_zero_b_is_frozen_linear),
        cmocka_unit_test(test_lora_node),
        cmocka_unit_test(test_lora_gradcheck),
        cmocka_unit_test(test_lora_memory),
        cmocka_unit_test(test_lora_threads),
        cmocka_unit_test(test_lora_not_recording),
        cmocka_unit_test(test_lora_empty_rows),
        cmocka_unit_test(test_lora_shared_scratch_moves),
        cmocka_unit_test(test_lora_rejects_bad_inputs),
        cmocka_unit_test(test_lora_reports_full_arena_and_tape),
    };
    return cmocka_run_group_tests_name("autograd_lora_linear", tests, NULL, NULL);
}
