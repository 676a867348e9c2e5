/* test_ops_nn.c — layernorm and rmsnorm (rope and attention: test_attention.c): hand-computed
 * forwards, normalised rows, many row blocks, thread-count invariance, double-precision gradient
 * checks; and, for every op of the model's block, the float path: accumulation, determinism and
 * agreement with double. */
#include "agtest.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static ag_tape *new_tape(void) { return ag_tape_create(1 << 20, 0, 64); }

/* ---- layernorm --------------------------------------------------------------------------------
 */

static void test_layernorm_hand_case(void **state) {
    (void)state;
    /* Row 0: mean 2.5, var 1.25; row 1: mean 0, var 0.5 (eps 0 keeps the numbers exact). */
    int64_t sx[2] = {2, 4}, sc[1] = {4};
    ag_tensor *x = agt_from_vals(2, sx, (double[]){1, 2, 3, 4, -1, 0, 0, 1});
    ag_tensor *w = agt_from_vals(1, sc, (double[]){1, 2, 0.5, -1});
    ag_tensor *b = agt_from_vals(1, sc, (double[]){0.5, 0, 0, 1});
    const double a = 1.5 / sqrt(1.25), c = 0.5 / sqrt(1.25), r2 = sqrt(2.0);
    const double want[8] = {-a + 0.5, -2 * c, 0.5 * c, -a + 1, -r2 + 0.5, 0, 0, -r2 + 1};
    for (int f32 = 0; f32 < 2; f32++) {
        ag_tensor *xs = f32 ? agt_to_f32(x) : x, *ws = f32 ? agt_to_f32(w) : w,
                  *bs = f32 ? agt_to_f32(b) : b;
        ag_tape *t = new_tape();
        ag_tensor *y = ag_layernorm(t, xs, ws, bs, 0.0);
        assert_non_null(y);
        assert_int_equal(y->ndim, 2);
        for (int i = 0; i < 8; i++)
            assert_close(agt_at(y, (size_t)i), want[i], f32 ? 1e-6 : 1e-15, f32 ? 1e-6 : 1e-14);
        ag_tape_free(t);
        if (f32) {
            agt_free_f32(xs);
            agt_free_f32(ws);
            agt_free_f32(bs);
        }
    }
    agt_free(x);
    agt_free(w);
    agt_free(b);
}

/* With w = 1, b = 0 every row has mean 0 and variance var/(var + eps) — 1 for eps = 0 — even
 * when the rows sit far from 0 (two-pass variance). */
static void test_layernorm_normalises_rows(void **state) {
    (void)state;
    int64_t sx[3] = {3, 5, 37}, sc[1] = {37};
    ag_tensor *x = agt_rand(3, sx, 40, 46, 11, false);
    ag_tensor *w = agt_rand(1, sc, 1, 1, 0, false), *b = agt_rand(1, sc, 0, 0, 0, false);
    for (int f32 = 0; f32 < 2; f32++) {
        ag_tensor *xs = f32 ? agt_to_f32(x) : x, *ws = f32 ? agt_to_f32(w) : w,
                  *bs = f32 ? agt_to_f32(b) : b;
        ag_tape *t = new_tape();
        ag_tensor *y = ag_layernorm(t, xs, ws, bs, 0.0);
        assert_non_null(y);
        for (size_t r = 0; r < 15; r++) {
            double m = 0, v = 0;
            for (size_t c = 0; c < 37; c++)
                m += agt_at(y, r * 37 + c) / 37;
            for (size_t c = 0; c < 37; c++)
                v += (agt_at(y, r * 37 + c) - m) * (agt_at(y, r * 37 + c) - m) / 37;
            assert_close(m, 0, f32 ? 1e-5 : 1e-13, 0);
            assert_close(v, 1, f32 ? 1e-4 : 1e-12, 0);
        }
        ag_tape_free(t);
        if (f32) {
            agt_free_f32(xs);
            agt_free_f32(ws);
            agt_free_f32(bs);
        }
    }
    agt_free(x);
    agt_free(w);
    agt_free(b);
}

static ag_tensor *build_layernorm(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_layernorm(t, in[0], in[1], in[2], 1e-5);
}

static void test_layernorm_gradcheck(void **state) {
    (void)state;
    int64_t sx[3] = {2, 3, 7}, sc[1] = {7};
    ag_tensor *x = agt_rand(3, sx, -2, 2, 21, true);
    ag_tensor *w = agt_rand(1, sc, 0.5, 1.5, 22, true), *b = agt_rand(1, sc, -1, 1, 23, true);
    ag_tensor *in[3] = {x, w, b};
    agt_gradcheck("layernorm x,w,b", build_layernorm, NULL, in, 3);
    /* Only some inputs need grads: the others must be left alone (they have no buffer). */
    x->requires_grad = false;
    agt_gradcheck("layernorm w,b", build_layernorm, NULL, in, 3);
    x->requires_grad = true;
    w->requires_grad = b->requires_grad = false;
    agt_gradcheck("layernorm x", build_layernorm, NULL, in, 3);
    agt_free(x);
    agt_free(w);
    agt_free(b);
}

static void test_layernorm_rejects_bad_shapes(void **state) {
    (void)state;
    int64_t sx[2] = {2, 5}, s4[1] = {4}, s5[1] = {5};
    ag_tensor *x = agt_rand(2, sx, -1, 1, 1, false), *w4 = agt_rand(1, s4, -1, 1, 2, false);
    ag_tensor *w5 = agt_rand(1, s5, -1, 1, 3, false);
    ag_tensor *w5f = agt_to_f32(w5);
    ag_tape *t = new_tape();
    assert_null(ag_layernorm(t, x, w4, w5, 1e-5));
    assert_null(ag_layernorm(t, x, w5, w4, 1e-5));
    assert_null(ag_layernorm(t, x, w5, w5f, 1e-5));
    assert_null(ag_layernorm(t, x, w5, NULL, 1e-5));
    assert_null(ag_layernorm(t, NULL, w5, w5, 1e-5));
    assert_null(ag_rmsnorm(t, x, w4, 1e-5));
    assert_null(ag_rmsnorm(t, x, w5f, 1e-5));
    assert_null(ag_rmsnorm(t, x, NULL, 1e-5));
    assert_non_null(ag_layernorm(t, x, w5, w5, 1e-5));
    ag_tape_free(t);
    agt_free(x);
    agt_free(w4);
    agt_free(w5);
    agt_free_f32(w5f);
}

/* ---- rmsnorm ----------------------------------------------------------------------------------
 */

static void test_rmsnorm_hand_case(void **state) {
    (void)state;
    /* mean(x²) = 30/4 = 7.5 */
    int64_t sx[2] = {1, 4}, sc[1] = {4};
    ag_tensor *x = agt_from_vals(2, sx, (double[]){1, 2, 3, 4});
    ag_tensor *w = agt_from_vals(1, sc, (double[]){1, -1, 2, 0.5});
    const double r = sqrt(7.5), want[4] = {1 / r, -2 / r, 6 / r, 2 / r};
    for (int f32 = 0; f32 < 2; f32++) {
        ag_tensor *xs = f32 ? agt_to_f32(x) : x, *ws = f32 ? agt_to_f32(w) : w;
        ag_tape *t = new_tape();
        ag_tensor *y = ag_rmsnorm(t, xs, ws, 0.0);
        assert_non_null(y);
        for (int i = 0; i < 4; i++)
            assert_close(agt_at(y, (size_t)i), want[i], f32 ? 1e-6 : 1e-15, f32 ? 1e-6 : 1e-14);
        ag_tape_free(t);
        if (f32) {
            agt_free_f32(xs);
            agt_free_f32(ws);
        }
    }
    agt_free(x);
    agt_free(w);
}

static ag_tensor *build_rmsnorm(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_rmsnorm(t, in[0], in[1], 1e-5);
}

static void test_rmsnorm_gradcheck(void **state) {
    (void)state;
    int64_t sx[3] = {3, 5, 11}, sc[1] = {11};
    ag_tensor *x = agt_rand(3, sx, -2, 2, 31, true), *w = agt_rand(1, sc, -1.5, 1.5, 32, true);
    ag_tensor *in[2] = {x, w};
    agt_gradcheck("rmsnorm x,w", build_rmsnorm, NULL, in, 2);
    x->requires_grad = false;
    agt_gradcheck("rmsnorm w", build_rmsnorm, NULL, in, 2);
    agt_free(x);
    agt_free(w);
}

/* The norms' backward sums dw/db over blocks of 64 rows and adds the blocks in order: check with
 * several blocks, the last one partial (150 rows), and every subset of inputs needing grads. */
static void test_norms_gradcheck_many_row_blocks(void **state) {
    (void)state;
    int64_t sx[3] = {3, 50, 5}, sc[1] = {5};
    ag_tensor *x = agt_rand(3, sx, -2, 2, 41, true);
    ag_tensor *w = agt_rand(1, sc, 0.5, 1.5, 42, true), *b = agt_rand(1, sc, -1, 1, 43, true);
    ag_tensor *in[3] = {x, w, b};
    agt_gradcheck("layernorm 150 rows x,w,b", build_layernorm, NULL, in, 3);
    x->requires_grad = false;
    agt_gradcheck("layernorm 150 rows w,b", build_layernorm, NULL, in, 3);
    b->requires_grad = false;
    agt_gradcheck("layernorm 150 rows w", build_layernorm, NULL, in, 3);
    x->requires_grad = true;
    w->requires_grad = false;
    agt_gradcheck("layernorm 150 rows x", build_layernorm, NULL, in, 3);
    w->requires_grad = true;
    agt_gradcheck("rmsnorm 150 rows x,w", build_rmsnorm, NULL, in, 2);
    w->requires_grad = false;
    agt_gradcheck("rmsnorm 150 rows x", build_rmsnorm, NULL, in, 2);
    x->requires_grad = false;
    w->requires_grad = true;
    agt_gradcheck("rmsnorm 150 rows w", build_rmsnorm, NULL, in, 2);
    agt_free(x);
    agt_free(w);
    agt_free(b);
}

/* Float forward and backward of a norm at 1 and at 2 threads (sizes above the kernels' parallel
 * threshold): outputs and every gradient must be bit-identical. */
static void check_norm_threads(const char *what, bool layer, ag_tensor **ind, int n_in) {
    float *ref[4] = {0};
    size_t bytes[4] = {0};
    int saved_threads = omp_get_max_threads();
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run + 1);
        ag_tensor *inf[3];
        for (int i = 0; i < n_in; i++)
            inf[i] = agt_to_f32(ind[i]);
        ag_tape *t = ag_tape_create(1 << 22, 0, 16);
        ag_tensor *y = layer ? ag_layernorm(t, inf[0], inf[1], inf[2], 1e-5)
                             : ag_rmsnorm(t, inf[0], inf[1], 1e-5);
        assert_non_null(y);
        ag_tensor *seedd = agt_rand(y->ndim, y->shape, -1, 1, 9, false), *seedf = agt_to_f32(seedd);
        assert_int_equal(ag_backward(t, y, seedf->data), 0);
        const void *got[4] = {y->data, inf[0]->grad, inf[1]->grad, n_in > 2 ? inf[2]->grad : NULL};
        size_t nb[4] = {y->numel, inf[0]->numel, inf[1]->numel, n_in > 2 ? inf[2]->numel : 0};
        for (int k = 0; k < 4; k++) {
            if (!got[k])
                continue;
            if (run == 0) {
                bytes[k] = nb[k] * sizeof(float);
                ref[k] = malloc(bytes[k]);
                memcpy(ref[k], got[k], bytes[k]);
            } else if (memcmp(ref[k], got[k], bytes[k]) != 0) {
                static const char *const names[4] = {"output", "dx", "dw", "db"};
                print_error("%s: %s differs between 1 and 2 threads\n", what, names[k]);
                fail();
            }
        }
        agt_free_f32(seedf);
        agt_free(seedd);
        for (int i = 0; i < n_in; i++)
            agt_free_f32(inf[i]);
        ag_tape_free(t);
    }
    omp_set_num_threads(saved_threads);
    for (int k = 0; k < 4; k++)
        free(ref[k]);
}

static void test_norms_thread_count_invariant(void **state) {
    (void)state;
    int64_t sx[2] = {600, 64}, sc[1] = {64}; /* 9 full row blocks and a partial one */
    ag_tensor *x = agt_rand(2, sx, -2, 2, 51, true);
    ag_tensor *w = agt_rand(1, sc, 0.5, 1.5, 52, true), *b = agt_rand(1, sc, -1, 1, 53, true);
    check_norm_threads("layernorm", true, (ag_tensor *[]){x, w, b}, 3);
    check_norm_threads("rmsnorm", false, (ag_tensor *[]){x, w}, 2);
    agt_free(x);
    agt_free(w);
    agt_free(b);
}

/* ---- all ops: float path, accumulation, determinism ------------------------------------------ */

/* Float forward+backward of one op, backward twice on the same tape: the second backward must add
 * the first one's gradients again (accumulate, saved state untouched), and a second run from
 * scratch must reproduce every bit. Float results must also agree with the double ones. */
typedef ag_tensor *(*one_op_fn)(ag_tape *t, ag_tensor **in);

static ag_tensor *op_layernorm(ag_tape *t, ag_tensor **in) {
    return ag_layernorm(t, in[0], in[1], in[2], 1e-5);
}
static ag_tensor *op_rmsnorm(ag_tape *t, ag_tensor **in) {
    return ag_rmsnorm(t, in[0], in[1], 1e-5);
}
static ag_tensor *op_rope(ag_tape *t, ag_tensor **in) { return ag_rope(t, in[0], 3, 2, 10000.0); }
static ag_tensor *op_attention(ag_tape *t, ag_tensor **in) {
    return ag_attention(t, in[0], in[1], in[2], 3);
}

static void run_float_twice(const char *what, one_op_fn op, ag_tensor **ind, int n_in) {
    ag_tensor *inf[3], *seedt = NULL;
    float *g1[3] = {0}, *g2[3] = {0};
    for (int run = 0; run < 2; run++) {
        for (int i = 0; i < n_in; i++)
            inf[i] = agt_to_f32(ind[i]);
        ag_tape *t = ag_tape_create(1 << 22, 0, 16), *td = ag_tape_create(1 << 22, 0, 16);
        ag_tensor *y = op(t, inf);
        assert_non_null(y);
        if (!seedt)
            seedt = agt_rand(y->ndim, y->shape, -1, 1, 7, false);
        ag_tensor *seedf = agt_to_f32(seedt);
        assert_int_equal(ag_backward(t, y, seedf->data), 0);
        for (int i = 0; i < n_in; i++) {
            float *g = run ? (g2[i] = malloc(inf[i]->numel * sizeof *g))
                           : (g1[i] = malloc(inf[i]->numel * sizeof *g));
            memcpy(g, inf[i]->grad, inf[i]->numel * sizeof *g);
        }
        /* Not bit-exact: dk, dv of attention gather row blocks one GEMM at a time. */
        assert_int_equal(ag_backward(t, y, seedf->data), 0);
        for (int i = 0; i < n_in; i++) {
            const float *g = run ? g2[i] : g1[i];
            for (size_t j = 0; j < inf[i]->numel; j++)
                assert_close(agt_grad_at(inf[i], j), 2.0 * g[j], 1e-6, 1e-5);
        }
        /* Float vs double gradients. */
        for (int i = 0; i < n_in; i++)
            ind[i]->grad = calloc(ind[i]->numel, sizeof(double));
        ag_tensor *yd = op(td, ind);
        assert_non_null(yd);
        agt_assert_all_close(y, yd, 1e-5, 1e-4);
        assert_int_equal(ag_backward(td, yd, seedt->data), 0);
        for (int i = 0; i < n_in; i++) {
            for (size_t j = 0; j < ind[i]->numel; j++)
                assert_close(g1[i][j], agt_grad_at(ind[i], j), 1e-4, 1e-4);
            free(ind[i]->grad);
            ind[i]->grad = NULL;
        }
        agt_free_f32(seedf);
        ag_tape_free(t);
        ag_tape_free(td);
        for (int i = 0; i < n_in; i++)
            agt_free_f32(inf[i]);
    }
    for (int i = 0; i < n_in; i++) {
        if (memcmp(g1[i], g2[i], ind[i]->numel * sizeof(float)) != 0) {
            print_error("%s: input %d gradient differs between two identical runs\n", what, i);
            fail();
        }
        free(g1[i]);
        free(g2[i]);
    }
    agt_free(seedt);
}

static void test_float_accumulates_and_is_deterministic(void **state) {
    (void)state;
    int64_t sx[3] = {4, 70, 48}, sc[1] = {48};
    ag_tensor *x = agt_rand(3, sx, -2, 2, 131, true), *y = agt_rand(3, sx, -2, 2, 132, true);
    ag_tensor *z = agt_rand(3, sx, -1, 1, 133, true);
    ag_tensor *w = agt_rand(1, sc, 0.5, 1.5, 134, true), *b = agt_rand(1, sc, -1, 1, 135, true);
    run_float_twice("layernorm", op_layernorm, (ag_tensor *[]){x, w, b}, 3);
    run_float_twice("rmsnorm", op_rmsnorm, (ag_tensor *[]){x, w}, 2);
    run_float_twice("rope", op_rope, (ag_tensor *[]){x}, 1);
    run_float_twice("attention", op_attention, (ag_tensor *[]){x, y, z}, 3);
    agt_free(x);
    agt_free(y);
    agt_free(z);
    agt_free(w);
    agt_free(b);
}

int agt_run_ops_nn(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm_hand_case),
        cmocka_unit_test(test_layernorm_normalises_rows),
        cmocka_unit_test(test_layernorm_gradcheck),
        cmocka_unit_test(test_layernorm_rejects_bad_shapes),
        cmocka_unit_test(test_rmsnorm_hand_case),
        cmocka_unit_test(test_rmsnorm_gradcheck),
        cmocka_unit_test(test_norms_gradcheck_many_row_blocks),
        cmocka_unit_test(test_norms_thread_count_invariant),
        cmocka_unit_test(test_float_accumulates_and_is_deterministic),
    };
    return cmocka_run_group_tests_name("autograd_ops_nn", tests, NULL, NULL);
}
