/* test_ops_lm.c — embedding and cross-entropy, the two ends of a language model, then every basic
 * op composed: a tiny tied-embedding LM, no-record mode, and the thread-count invariance of the
 * non-BLAS kernels (add, mul and gelu from test_ops_elementwise.c included).
 *
 * Embedding and cross-entropy get: hand-computed forward and backward values (including that the
 * op keeps its own copy of ids / targets); a double-precision gradient check; a float-vs-double
 * comparison of forward and backward; validation of ids, targets and shapes. Kernels that promise
 * thread-count independence are checked bit-for-bit at 1 and 2 threads. */
#include "agtest.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define LN2 0.69314718055994530942
#define LN3 1.09861228866810969140

/* Runs build in float at 1 and at 2 threads and requires bit-identical outputs and gradients
 * (for kernels that do not go through BLAS, whose results may depend on the thread count). */
static void check_thread_count_invariant(const char *what, ag_gc_build_fn build, void *ctx,
                                         ag_tensor **in64, int n) {
    void *ref_out = NULL, *ref_grad[AG_MAX_INPUTS + 2] = {0};
    size_t out_bytes = 0;
    int saved_threads = omp_get_max_threads();
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run + 1);
        ag_tensor *in32[AG_MAX_INPUTS + 2];
        ag_tape *tape = ag_tape_create(1 << 22, 0, 64);
        for (int k = 0; k < n; k++) {
            in32[k] = agt_to_f32_nograd(in64[k]);
            if (in32[k]->requires_grad)
                agt_give_grad(in32[k]);
        }
        ag_tensor *out = build(tape, in32, ctx);
        assert_non_null(out);
        agt_backward_ones(tape, out);
        out_bytes = out->numel * sizeof(float);
        if (run == 0) {
            ref_out = malloc(out_bytes);
            memcpy(ref_out, out->data, out_bytes);
        } else if (memcmp(ref_out, out->data, out_bytes) != 0) {
            print_error("%s: output differs between 1 and 2 threads\n", what);
            fail();
        }
        for (int k = 0; k < n; k++) {
            if (!in32[k]->requires_grad)
                continue;
            size_t gb = in32[k]->numel * sizeof(float);
            if (run == 0) {
                ref_grad[k] = in32[k]->grad;
                in32[k]->grad = NULL;
            } else if (memcmp(ref_grad[k], in32[k]->grad, gb) != 0) {
                print_error("%s: grad of input %d differs between 1 and 2 threads\n", what, k);
                fail();
            }
            agt_free_grad(in32[k]);
        }
        for (int k = 0; k < n; k++)
            agt_free(in32[k]);
        ag_tape_free(tape);
    }
    omp_set_num_threads(saved_threads);
    free(ref_out);
    for (int k = 0; k < n; k++)
        free(ref_grad[k]);
}

/* ---- embedding ------------------------------------------------------------------------------- */

typedef struct {
    const int32_t *ids;
    int64_t B, T;
} emb_args;

static ag_tensor *build_embedding(ag_tape *t, ag_tensor **in, void *ctx) {
    emb_args *e = ctx;
    return ag_embedding(t, in[0], e->ids, e->B, e->T);
}

/* table [4,2] with row v = [v, 10v]; ids [3,0,3] (B=1, T=3); ids are overwritten before
 * backward to check that the op kept its own copy. */
static void test_embedding_values(void **state) {
    (void)state;
    const double Tab[8] = {0, 0, 1, 10, 2, 20, 3, 30};
    const double Y[6] = {3, 30, 0, 0, 3, 30}, dT[8] = {1, 1, 0, 0, 0, 0, 2, 2};
    for (int d = 0; d < 2; d++) {
        ag_dtype dt = d ? AG_F64 : AG_F32;
        ag_tensor *tab = agt_from_vals_as(dt, 2, (int64_t[2]){4, 2}, Tab, true);
        agt_give_grad(tab);
        int32_t ids[3] = {3, 0, 3};
        ag_tape *t = ag_tape_create(1 << 16, 0, 8);
        ag_tensor *y = ag_embedding(t, tab, ids, 1, 3);
        assert_non_null(y);
        assert_int_equal(y->ndim, 3);
        assert_int_equal(y->shape[0], 1);
        assert_int_equal(y->shape[1], 3);
        assert_int_equal(y->shape[2], 2);
        agt_assert_data(y, Y, 0);
        ids[0] = ids[1] = ids[2] = 1;
        agt_backward_ones(t, y);
        agt_assert_grad(tab, dT, 0);
        agt_free_grad(tab);
        agt_free(tab);
        ag_tape_free(t);
    }
}

static void test_embedding_rejects_bad_ids(void **state) {
    (void)state;
    ag_tape *t = ag_tape_create(1 << 16, 0, 8);
    ag_tensor *tab = agt_rand(2, (int64_t[2]){4, 2}, -1, 1, 1, true);
    ag_tensor *t3 = agt_rand(3, (int64_t[3]){1, 4, 2}, -1, 1, 2, true);
    assert_null(ag_embedding(t, tab, (int32_t[2]){0, 4}, 1, 2)); /* id == V */
    assert_null(ag_embedding(t, tab, (int32_t[2]){-1, 0}, 2, 1));
    assert_null(ag_embedding(t, tab, NULL, 1, 2));
    assert_null(ag_embedding(t, tab, (int32_t[2]){0, 1}, -1, 2));
    assert_null(ag_embedding(t, t3, (int32_t[2]){0, 1}, 1, 2)); /* table not 2-D */
    assert_null(ag_embedding(t, NULL, (int32_t[2]){0, 1}, 1, 2));
    assert_int_equal(ag_tape_size(t), 0);
    agt_free(tab);
    agt_free(t3);
    ag_tape_free(t);
}

static void test_embedding_gradcheck(void **state) {
    (void)state;
    ag_tensor *tab = agt_rand(2, (int64_t[2]){5, 3}, -1, 1, 80, true);
    const int32_t ids[6] = {4, 1, 4, 0, 1, 4}; /* repeats accumulate; rows 2, 3 get none */
    emb_args e = {ids, 2, 3};
    agt_gradcheck("embedding", build_embedding, &e, &tab, 1);
    agt_check_f32_matches_f64("embedding", build_embedding, &e, &tab, 1, 1e-6);
    agt_free(tab);
}

/* ---- cross-entropy --------------------------------------------------------------------------- */

typedef struct {
    const int32_t *targets;
} ce_args;

static ag_tensor *build_ce(ag_tape *t, ag_tensor **in, void *ctx) {
    ce_args *c = ctx;
    return ag_cross_entropy(t, in[0], c->targets);
}

/* Rows [0, ln2, ln3] → softmax [1/6, 2/6, 3/6], target 2: loss ln 2; [5,5,5], target 0: ln 3;
 * a third row with huge logits is ignored (target -1). Mean over 2 valid rows. */
static void test_cross_entropy_values(void **state) {
    (void)state;
    const double X[9] = {0, LN2, LN3, 5, 5, 5, 1e30, -1e30, 7};
    const double dX[9] = {1.0 / 12, 2.0 / 12, 3.0 / 12 - 0.5, 1.0 / 6 - 0.5, 1.0 / 6, 1.0 / 6, 0,
                          0,        0};
    int32_t tg[3] = {2, 0, -1};
    for (int d = 0; d < 2; d++) {
        ag_dtype dt = d ? AG_F64 : AG_F32;
        ag_tensor *x = agt_from_vals_as(dt, 2, (int64_t[2]){3, 3}, X, true);
        agt_give_grad(x);
        ag_tape *t = ag_tape_create(1 << 16, 0, 8);
        ag_tensor *loss = ag_cross_entropy(t, x, tg);
        assert_non_null(loss);
        assert_int_equal(loss->ndim, 0);
        assert_int_equal(loss->numel, 1);
        assert_close(agt_at(loss, 0), (LN2 + LN3) / 2, 0, d ? 1e-15 : 3e-7);
        tg[0] = tg[1] = tg[2] = 1; /* the op must have copied the targets */
        assert_int_equal(ag_backward(t, loss, NULL), 0);
        tg[0] = 2, tg[1] = 0, tg[2] = -1;
        agt_assert_grad(x, dX, d ? 1e-15 : 1e-7);
        agt_free_grad(x);
        agt_free(x);
        ag_tape_free(t);
    }
}

static void test_cross_entropy_all_ignored(void **state) {
    (void)state;
    ag_tensor *x = agt_rand(2, (int64_t[2]){2, 3}, -1, 1, 1, true);
    agt_give_grad(x);
    ag_tape *t = ag_tape_create(1 << 16, 0, 8);
    ag_tensor *loss = ag_cross_entropy(t, x, (int32_t[2]){-1, -5});
    assert_non_null(loss);
    assert_close(((double *)loss->data)[0], 0, 0, 0);
    assert_int_equal(ag_backward(t, loss, NULL), 0);
    const double zero[6] = {0};
    agt_assert_grad(x, zero, 0);
    agt_free_grad(x);
    agt_free(x);
    ag_tape_free(t);
}

/* Logits around 1e4 (float spacing ~1e-3) and ±1e30: the max shift keeps everything finite, and
 * the float loss equals the shift-invariant double value. */
static void test_cross_entropy_large_logits(void **state) {
    (void)state;
    const double X[6] = {1e4, 1e4 + 1, 1e4 - 2, 1e30, 0, -1e30};
    const double want0 = log(exp(-1) + 1 + exp(-3)); /* row 0, target 1 */
    for (int d = 0; d < 2; d++) {
        ag_dtype dt = d ? AG_F64 : AG_F32;
        ag_tensor *x = agt_from_vals_as(dt, 2, (int64_t[2]){2, 3}, X, true);
        agt_give_grad(x);
        ag_tape *t = ag_tape_create(1 << 16, 0, 8);
        ag_tensor *loss = ag_cross_entropy(t, x, (int32_t[2]){1, 0});
        assert_non_null(loss);
        assert_close(agt_at(loss, 0), want0 / 2, 0, 1e-6); /* row 1 contributes 0 */
        assert_int_equal(ag_backward(t, loss, NULL), 0);
        double p1 = 1 / (exp(-1) + 1 + exp(-3));
        assert_close(agt_grad_at(x, 1), (p1 - 1) / 2, 1e-7, 0);
        assert_close(agt_grad_at(x, 0), p1 * exp(-1) / 2, 1e-7, 0);
        for (size_t i = 3; i < 6; i++)
            assert_close(agt_grad_at(x, i), 0, 1e-7, 0);
        agt_free_grad(x);
        agt_free(x);
        ag_tape_free(t);
    }
}

static void test_cross_entropy_rejects_bad_input(void **state) {
    (void)state;
    ag_tape *t = ag_tape_create(1 << 16, 0, 8);
    ag_tensor *x = agt_rand(2, (int64_t[2]){2, 3}, -1, 1, 1, true);
    assert_null(ag_cross_entropy(t, x, (int32_t[2]){0, 3})); /* target == V */
    assert_null(ag_cross_entropy(t, x, NULL));
    assert_null(ag_cross_entropy(t, NULL, (int32_t[2]){0, 1}));
    assert_int_equal(ag_tape_size(t), 0);
    ag_tape_free(t);
    /* A full arena makes the op return NULL (its scratch and saved state come from it). */
    t = ag_tape_create(256, 320, 8);
    assert_null(ag_cross_entropy(t, x, (int32_t[2]){0, 1}));
    assert_non_null(strstr(ag_tape_error(t), "arena full"));
    ag_tape_free(t);
    agt_free(x);
}

static void test_cross_entropy_gradcheck(void **state) {
    (void)state;
    ag_tensor *x = agt_rand(2, (int64_t[2]){4, 5}, -3, 3, 90, true);
    ce_args c = {(const int32_t[4]){2, -1, 0, 4}};
    agt_gradcheck("cross_entropy [N,V]", build_ce, &c, &x, 1);
    agt_check_f32_matches_f64("cross_entropy [N,V]", build_ce, &c, &x, 1, 1e-6);
    agt_free(x);
    x = agt_rand(3, (int64_t[3]){2, 3, 7}, -3, 3, 91, true);
    c.targets = (const int32_t[6]){6, 0, -1, 3, -1, 1};
    agt_gradcheck("cross_entropy [B,T,V]", build_ce, &c, &x, 1);
    agt_check_f32_matches_f64("cross_entropy [B,T,V]", build_ce, &c, &x, 1, 1e-6);
    agt_free(x);
}

/* ---- composition, modes, determinism --------------------------------------------------------- */

typedef struct {
    const int32_t *ids, *targets;
    int64_t B, T;
} lm_args;

/* A tiny tied-embedding LM: wte is used twice (lookup and output head), w1 feeds a matmul
 * (w1·w1ᵀ as a weight) and a linear, x feeds both the residual and a product, so gradients
 * accumulate from several paths. in: wte [V,C], wpe [T,C], w1 [C,C], bias [C]. */
static ag_tensor *build_tiny_lm(ag_tape *t, ag_tensor **in, void *ctx) {
    lm_args *a = ctx;
    ag_tensor *x = ag_add(t, ag_embedding(t, in[0], a->ids, a->B, a->T), in[1]); /* (B,T,C) */
    ag_tensor *h = ag_add(t, ag_linear(t, x, in[2]), in[3]);                     /* (B,T,C) */
    h = ag_mul(t, ag_gelu(t, h), x);
    ag_tensor *w2 = ag_matmul(t, in[2], in[2], false, true); /* (C,C) */
    h = ag_add(t, ag_linear(t, h, w2), x);
    ag_tensor *logits = ag_linear(t, h, in[0]); /* (B,T,V) */
    return ag_cross_entropy(t, logits, a->targets);
}

static void test_tiny_lm_gradcheck(void **state) {
    (void)state;
    const int64_t V = 6, C = 4;
    const int32_t ids[6] = {1, 5, 1, 0, 3, 3}, tg[6] = {5, 1, -1, 3, 2, 0};
    lm_args a = {ids, tg, 2, 3};
    ag_tensor *wte = agt_rand(2, (int64_t[2]){V, C}, -1, 1, 100, true);
    ag_tensor *wpe = agt_rand(2, (int64_t[2]){3, C}, -0.5, 0.5, 101, true);
    ag_tensor *w1 = agt_rand(2, (int64_t[2]){C, C}, -1, 1, 102, true);
    ag_tensor *bias = agt_rand(1, (int64_t[1]){C}, -0.5, 0.5, 103, true);
    ag_tensor *in[4] = {wte, wpe, w1, bias};
    agt_gradcheck("tiny lm", build_tiny_lm, &a, in, 4);
    agt_check_f32_matches_f64("tiny lm", build_tiny_lm, &a, in, 4, 1e-5);
    for (int k = 0; k < 4; k++)
        agt_free(in[k]);
}

/* With recording off, every op still computes its output but records and keeps nothing. */
static void test_no_record_mode(void **state) {
    (void)state;
    const int32_t ids[6] = {1, 5, 1, 0, 3, 3}, tg[6] = {5, 1, -1, 3, 2, 0};
    lm_args a = {ids, tg, 2, 3};
    ag_tensor *in[4] = {agt_rand(2, (int64_t[2]){6, 4}, -1, 1, 100, true),
                        agt_rand(2, (int64_t[2]){3, 4}, -1, 1, 101, true),
                        agt_rand(2, (int64_t[2]){4, 4}, -1, 1, 102, true),
                        agt_rand(1, (int64_t[1]){4}, -1, 1, 103, true)};
    ag_tape *t = ag_tape_create(1 << 16, 0, 64);
    ag_tensor *on = build_tiny_lm(t, in, &a);
    assert_non_null(on);
    double loss_on = ((double *)on->data)[0];
    assert_int_equal(ag_tape_size(t), 11);
    ag_tape_reset(t);
    ag_tape_set_recording(t, false);
    ag_tensor *off = build_tiny_lm(t, in, &a);
    assert_non_null(off);
    assert_false(off->requires_grad);
    assert_int_equal(ag_tape_size(t), 0);
    assert_close(((double *)off->data)[0], loss_on, 0, 0);
    ag_tape_free(t);
    for (int k = 0; k < 4; k++)
        agt_free(in[k]);
}

/* The non-BLAS kernels partition work so that each output is summed in a fixed order: results
 * must not change with the thread count. Sizes exceed the kernels' parallel thresholds. */
static void test_kernels_thread_count_invariant(void **state) {
    (void)state;
    enum { B = 8, T = 64, C = 96, V = 300 };
    ag_tensor *x = agt_rand(3, (int64_t[3]){B, T, C}, -3, 3, 1, true);
    ag_tensor *y = agt_rand(3, (int64_t[3]){B, T, C}, -3, 3, 2, true);
    ag_tensor *pos = agt_rand(2, (int64_t[2]){T, C}, -1, 1, 3, true);
    ag_tensor *bias = agt_rand(1, (int64_t[1]){C}, -1, 1, 4, true);
    ag_tensor *in2[2] = {x, pos};
    check_thread_count_invariant("add positions", agt_build_add, NULL, in2, 2);
    in2[1] = bias;
    check_thread_count_invariant("add bias", agt_build_add, NULL, in2, 2);
    in2[1] = y;
    check_thread_count_invariant("mul", agt_build_mul, NULL, in2, 2);
    check_thread_count_invariant("gelu", agt_build_gelu, NULL, &x, 1);

    int32_t *ids = malloc(B * T * sizeof *ids), *tg = malloc(B * T * sizeof *tg);
    uint64_t s = 5;
    for (int i = 0; i < B * T; i++) {
        ids[i] = (int32_t)tu_uniform(&s, 0, 7); /* few distinct ids: many collisions */
        tg[i] = i % 5 == 0 ? -1 : (int32_t)tu_uniform(&s, 0, V);
    }
    ag_tensor *tab = agt_rand(2, (int64_t[2]){V, C}, -1, 1, 6, true);
    emb_args e = {ids, B, T};
    check_thread_count_invariant("embedding", build_embedding, &e, &tab, 1);
    ag_tensor *logits = agt_rand(3, (int64_t[3]){B, T, V}, -20, 20, 7, true);
    ce_args c = {tg};
    check_thread_count_invariant("cross_entropy", build_ce, &c, &logits, 1);
    free(ids);
    free(tg);
    agt_free(x);
    agt_free(y);
    agt_free(pos);
    agt_free(bias);
    agt_free(tab);
    agt_free(logits);
}

int agt_run_ops_lm(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedding_values),
        cmocka_unit_test(test_embedding_rejects_bad_ids),
        cmocka_unit_test(test_embedding_gradcheck),
        cmocka_unit_test(test_cross_entropy_values),
        cmocka_unit_test(test_cross_entropy_all_ignored),
        cmocka_unit_test(test_cross_entropy_large_logits),
        cmocka_unit_test(test_cross_entropy_rejects_bad_input),
        cmocka_unit_test(test_cross_entropy_gradcheck),
        cmocka_unit_test(test_tiny_lm_gradcheck),
        cmocka_unit_test(test_no_record_mode),
        cmocka_unit_test(test_kernels_thread_count_invariant),
    };
    return cmocka_run_group_tests_name("autograd_ops_lm", tests, NULL, NULL);
}
