/* test_dropout.c — ag_dropout, inverted dropout with a stateless (seed, index) mask.
 *
 * Checked: the identity cases (p = 0, a tape that is not recording) return x itself; the kept
 * fraction over 10⁶ elements is within 4σ of 1 − p, and neighbouring elements (which share one
 * hash) are independent; kept values are exactly x/(1 − p) in the tensor's precision, dropped
 * ones exactly +0; the mask is a function of (seed, index) only (same seed same mask, other seeds
 * unrelated masks, 1 vs 2 threads, a prefix or a reshape of the tensor, float vs double);
 * backward dx += dy ⊙ m/(1 − p) exactly; double-precision gradient checks of the op and of a LoRA
 * adapter path through it; bad p. */
#include "agtest.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { BIG = 1000000 };

/* ---- helpers ----------------------------------------------------------------------------------
 */

/* Heap tensor of dtype dt with n elements (shape given), values ±[0.5, 1.5) from seed — never 0,
 * so a zero in the output means a dropped element. Grad buffer of its own when rg, holding
 * g-values in ±[0.1, 0.2) (never 0). */
static ag_tensor *new_x(ag_dtype dt, int ndim, const int64_t *shape, uint64_t seed, bool rg) {
    ag_tensor *t = malloc(sizeof *t);
    ag_tensor_wrap(t, dt, NULL, NULL, ndim, shape);
    size_t es = ag_dtype_size(dt), n = t->numel;
    t->data = malloc(n * es);
    t->grad = rg ? malloc(n * es) : NULL;
    for (size_t i = 0; i < n; i++) {
        double sgn = tu_uniform(&seed, 0, 1) < 0.5 ? -1 : 1;
        float v = (float)(sgn * tu_uniform(&seed, 0.5, 1.5));
        float g = (float)(-sgn * tu_uniform(&seed, 0.1, 0.2));
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

static void free_t(ag_tensor *t) {
    if (!t)
        return;
    free(t->data);
    free(t->grad);
    free(t);
}

static ag_tape *big_tape(void) { return ag_tape_create(32 << 20, 0, 16); }

/* The mask of a dropout output whose input had no zeros (malloc'ed, n bytes of 0/1). */
static unsigned char *mask_of(const ag_tensor *y) {
    unsigned char *m = malloc(y->numel);
    for (size_t i = 0; i < y->numel; i++)
        m[i] = y->dtype == AG_F32 ? ((const float *)y->data)[i] != 0.0f
                                  : ((const double *)y->data)[i] != 0.0;
    return m;
}

/* Dropout of a fresh float tensor [BIG] from x-seed 7 at nt threads: the mask. */
static unsigned char *mask_run(double p, uint64_t seed, int nt, ag_dtype dt) {
    int saved = omp_get_max_threads();
    omp_set_num_threads(nt);
    ag_tensor *x = new_x(dt, 1, (int64_t[]){BIG}, 7, false);
    ag_tape *t = big_tape();
    ag_tensor *y = ag_dropout(t, x, p, seed);
    assert_non_null(y);
    unsigned char *m = mask_of(y);
    ag_tape_free(t);
    free_t(x);
    omp_set_num_threads(saved);
    return m;
}

static size_t count_equal(const unsigned char *a, const unsigned char *b, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += a[i] == b[i];
    return c;
}

/* |got/n − want| within 4 standard deviations of a binomial proportion. */
static void assert_fraction(const char *what, size_t got, size_t n, double want) {
    double f = (double)got / (double)n, sd = sqrt(want * (1 - want) / (double)n);
    if (fabs(f - want) > 4 * sd) {
        print_error("%s: fraction %.6f, expected %.6f ± 4·%.2g\n", what, f, want, sd);
        fail();
    }
}

/* ---- values ------------------------------------------------------------------------------------
 */

static void test_dropout_identity_cases(void **state) {
    (void)state;
    ag_tensor *x = new_x(AG_F32, 2, (int64_t[]){3, 5}, 1, true);
    ag_tape *t = ag_tape_create(1 << 16, 0, 16);
    size_t used = ag_arena_used(ag_tape_arena(t));
    assert_ptr_equal(ag_dropout(t, x, 0.0, 42), x); /* p = 0: x itself */
    ag_tape_set_recording(t, false);
    assert_ptr_equal(ag_dropout(t, x, 0.5, 42), x); /* inference: x itself */
    assert_int_equal(ag_tape_size(t), 0);
    assert_int_equal(ag_arena_used(ag_tape_arena(t)), used);
    ag_tape_free(t);
    free_t(x);
}

/* Over 10⁶ elements: kept fraction, pair independence, exact kept and dropped values. */
static void test_dropout_values_and_statistics(void **state) {
    (void)state;
    const double ps[3] = {0.1, 0.5, 0.9};
    ag_tensor *x = new_x(AG_F32, 2, (int64_t[]){1000, BIG / 1000}, 11, false);
    const float *xv = x->data;
    for (int k = 0; k < 3; k++) {
        double p = ps[k];
        float q = (float)(1.0 - p);
        ag_tape *t = big_tape();
        ag_tensor *y = ag_dropout(t, x, p, 1234 + (uint64_t)k);
        assert_non_null(y);
        assert_true(y != x);
        assert_int_equal(ag_tape_size(t), 0); /* x needs no grad: nothing to record */
        const float *yv = y->data;
        size_t kept = 0, both = 0;
        for (size_t i = 0; i < BIG; i++) {
            uint32_t bits;
            memcpy(&bits, &yv[i], sizeof bits);
            if (bits == 0)
                continue; /* dropped: exactly +0, also where x < 0 */
            kept++;
            if (yv[i] != xv[i] / q) {
                print_error("p=%g: y[%zu] = %.9g, expected x/(1-p) = %.9g\n", p, i, yv[i],
                            xv[i] / q);
                fail();
            }
            both += i % 2 == 1 && yv[i - 1] != 0.0f;
        }
        char what[64];
        snprintf(what, sizeof what, "kept fraction at p=%g", p);
        assert_fraction(what, kept, BIG, 1 - p);
        /* elements 2j and 2j+1 take the two halves of one hash: they must be independent */
        snprintf(what, sizeof what, "both of a pair kept at p=%g", p);
        assert_fraction(what, both, BIG / 2, (1 - p) * (1 - p));
        ag_tape_free(t);
    }
    free_t(x);
}

/* ---- the mask is a function of (seed, index) ------------------------------------------------- */

static void test_dropout_mask_reproducible(void **state) {
    (void)state;
    const double p = 0.5;
    unsigned char *m = mask_run(p, 99, 2, AG_F32);
    unsigned char *same = mask_run(p, 99, 2, AG_F32);
    assert_memory_equal(m, same, BIG);
    unsigned char *one = mask_run(p, 99, 1, AG_F32); /* thread count */
    assert_memory_equal(m, one, BIG);
    unsigned char *dbl = mask_run(p, 99, 2, AG_F64); /* dtype */
    assert_memory_equal(m, dbl, BIG);
    /* Other seeds (neighbouring, or one high bit away) give unrelated masks: at p = 1/2 two
     * independent masks agree on half the elements. */
    const uint64_t others[3] = {100, 98, 99 ^ (1ull << 63)};
    for (int k = 0; k < 3; k++) {
        unsigned char *o = mask_run(p, others[k], 2, AG_F32);
        assert_fraction("agreement of masks with different seeds", count_equal(m, o, BIG), BIG,
                        0.5);
        free(o);
    }
    free(m);
    free(same);
    free(one);
    free(dbl);
}

/* The same values dropped as a prefix of odd length (a shorter tensor, split mid-pair), or as a
 * reshaped tensor, keep the mask of their index: nothing depends on the tensor's size or shape. */
static void test_dropout_mask_ignores_size_and_shape(void **state) {
    (void)state;
    const double p = 0.3;
    const int64_t n_short = 100001;
    ag_tensor *x = new_x(AG_F32, 1, (int64_t[]){BIG}, 21, false);
    ag_tensor xs, xr; /* views of x's data: a prefix, and [1000, 1000] */
    ag_tensor_wrap(&xs, AG_F32, x->data, NULL, 1, (int64_t[]){n_short});
    ag_tensor_wrap(&xr, AG_F32, x->data, NULL, 2, (int64_t[]){1000, BIG / 1000});
    ag_tape *t = big_tape();
    ag_tensor *y = ag_dropout(t, x, p, 5), *ys = ag_dropout(t, &xs, p, 5);
    ag_tensor *yr = ag_dropout(t, &xr, p, 5);
    assert_non_null(y);
    assert_non_null(ys);
    assert_non_null(yr);
    assert_memory_equal(ys->data, y->data, (size_t)n_short * sizeof(float));
    assert_memory_equal(yr->data, y->data, (size_t)BIG * sizeof(float));
    /* a tensor of 1 and of 3 elements */
    ag_tensor x1, x3;
    ag_tensor_wrap(&x1, AG_F32, x->data, NULL, 1, (int64_t[]){1});
    ag_tensor_wrap(&x3, AG_F32, x->data, NULL, 1, (int64_t[]){3});
    ag_tensor *y1 = ag_dropout(t, &x1, p, 5), *y3 = ag_dropout(t, &x3, p, 5);
    assert_non_null(y1);
    assert_non_null(y3);
    assert_memory_equal(y1->data, y->data, sizeof(float));
    assert_memory_equal(y3->data, y->data, 3 * sizeof(float));
    ag_tape_free(t);
    free_t(x);
}

/* ---- backward ---------------------------------------------------------------------------------
 */

/* dx = dx0 + dy ⊙ m/(1 − p), exactly, in float and double; an odd small tensor (serial) and a
 * large one (parallel). The mask is read off y (x has no zeros). */
static void check_backward(ag_dtype dt, int64_t rows, int64_t cols, double p, uint64_t seed) {
    ag_tensor *x = new_x(dt, 2, (int64_t[]){rows, cols}, seed, true);
    ag_tensor *dy = new_x(dt, 2, (int64_t[]){rows, cols}, seed + 1, false);
    size_t n = x->numel, es = ag_dtype_size(dt);
    void *g0 = malloc(n * es);
    memcpy(g0, x->grad, n * es);
    ag_tape *t = big_tape();
    ag_tensor *y = ag_dropout(t, x, p, seed + 2);
    assert_non_null(y);
    assert_int_equal(ag_tape_size(t), 1);
    assert_int_equal(ag_tape_node(t, 0)->op, AG_OP_DROPOUT);
    unsigned char *m = mask_of(y);
    assert_int_equal(ag_backward(t, y, dy->data), 0);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (dt == AG_F32) {
            float q = (float)(1.0 - p), d = ((const float *)dy->data)[i];
            float want = m[i] ? ((const float *)g0)[i] + d / q : ((const float *)g0)[i];
            bad += ((const float *)x->grad)[i] != want;
        } else {
            double q = 1.0 - p, d = ((const double *)dy->data)[i];
            double want = m[i] ? ((const double *)g0)[i] + d / q : ((const double *)g0)[i];
            bad += ((const double *)x->grad)[i] != want;
        }
    }
    if (bad) {
        print_error("dropout backward (%s, %lldx%lld, p=%g): %zu elements differ\n",
                    dt == AG_F32 ? "f32" : "f64", (long long)rows, (long long)cols, p, bad);
        fail();
    }
    free(m);
    free(g0);
    ag_tape_free(t);
    free_t(x);
    free_t(dy);
}

static void test_dropout_backward_exact(void **state) {
    (void)state;
    check_backward(AG_F32, 37, 29, 0.1, 301);
    check_backward(AG_F64, 37, 29, 0.7, 311);
    check_backward(AG_F32, 1000, 333, 0.25, 321);
    check_backward(AG_F64, 1000, 333, 0.5, 331);
}

/* ---- gradient checks --------------------------------------------------------------------------
 */

typedef struct drop_case {
    double p, s; /* dropout rate; LoRA scale */
    uint64_t seed;
} drop_case;

/* ag_gradcheck evaluates its finite differences with recording off, where dropout is the
 * identity; switching recording on inside the build makes both sides differentiate the same
 * (training-mode) function. */
static ag_tensor *build_dropout(ag_tape *t, ag_tensor **in, void *ctx) {
    const drop_case *c = ctx;
    bool rec = ag_tape_recording(t);
    ag_tape_set_recording(t, true);
    ag_tensor *y = ag_dropout(t, in[0], c->p, c->seed);
    ag_tape_set_recording(t, rec);
    return y;
}

/* A LoRA layer with dropout on the adapter input: y = x·W0ᵀ + s·(dropout(x)·Aᵀ)·Bᵀ. */
static ag_tensor *build_lora_dropout(ag_tape *t, ag_tensor **in, void *ctx) {
    const drop_case *c = ctx;
    bool rec = ag_tape_recording(t);
    ag_tape_set_recording(t, true);
    ag_tensor *xd = ag_dropout(t, in[0], c->p, c->seed);
    ag_tensor *adapter = ag_scale(t, ag_linear(t, ag_linear(t, xd, in[2]), in[3]), c->s);
    ag_tensor *y = ag_add(t, ag_linear(t, in[0], in[1]), adapter);
    ag_tape_set_recording(t, rec);
    return y;
}

static void test_dropout_gradcheck(void **state) {
    (void)state;
    drop_case c1 = {.p = 0.3, .seed = 401}, c2 = {.p = 0.5, .seed = 402};
    ag_tensor *x1 = agt_rand(2, (int64_t[]){3, 7}, -1, 1, 403, true);
    ag_tensor *x2 = agt_rand(3, (int64_t[]){2, 2, 5}, -1, 1, 404, true);
    agt_gradcheck("dropout [3,7] p=0.3", build_dropout, &c1, &x1, 1);
    agt_gradcheck("dropout [2,2,5] p=0.5", build_dropout, &c2, &x2, 1);
    agt_free(x1);
    agt_free(x2);
}

static void test_dropout_lora_gradcheck(void **state) {
    (void)state;
    enum { IN = 9, OUT = 6, RANK = 2 };
    drop_case c = {.p = 0.4, .s = 8.0 / RANK, .seed = 501};
    ag_tensor *in[4] = {
        agt_rand(3, (int64_t[]){2, 3, IN}, -1, 1, 502, true),
        agt_rand(2, (int64_t[]){OUT, IN}, -0.5, 0.5, 503, false), /* frozen base */
        agt_rand(2, (int64_t[]){RANK, IN}, -0.5, 0.5, 504, true),
        agt_rand(2, (int64_t[]){OUT, RANK}, -0.5, 0.5, 505, true),
    };
    agt_gradcheck("lora with dropout: x*W0^T + s*linear(linear(dropout(x), A), B)",
                  build_lora_dropout, &c, in, 4);
    for (int k = 0; k < 4; k++)
        agt_free(in[k]);
}

/* ---- errors -----------------------------------------------------------------------------------
 */

static void test_dropout_rejects_bad_p(void **state) {
    (void)state;
    ag_tensor *x = new_x(AG_F64, 1, (int64_t[]){4}, 601, false);
    ag_tape *t = ag_tape_create(1 << 16, 0, 16);
    assert_null(ag_dropout(t, x, -0.1, 1));
    assert_null(ag_dropout(t, x, 1.0, 1));
    assert_null(ag_dropout(t, x, 1.5, 1));
    assert_null(ag_dropout(t, x, NAN, 1));
    assert_null(ag_dropout(t, x, -INFINITY, 1));
    assert_null(ag_dropout(t, NULL, 0.5, 1));
    ag_tape_set_recording(t, false); /* bad p is bad in inference too */
    assert_null(ag_dropout(t, x, 1.0, 1));
    ag_tape_set_recording(t, true);
    ag_tensor *y = ag_dropout(t, x, 0.999, 1);
    assert_non_null(y);
    ag_tape_free(t);
    free_t(x);
}

int agt_run_dropout(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dropout_identity_cases),
        cmocka_unit_test(test_dropout_values_and_statistics),
        cmocka_unit_test(test_dropout_mask_reproducible),
        cmocka_unit_test(test_dropout_mask_ignores_size_and_shape),
        cmocka_unit_test(test_dropout_backward_exact),
        cmocka_unit_test(test_dropout_gradcheck),
        cmocka_unit_test(test_dropout_lora_gradcheck),
        cmocka_unit_test(test_dropout_rejects_bad_p),
    };
    return cmocka_run_group_tests_name("autograd_dropout", tests, NULL, NULL);
}
