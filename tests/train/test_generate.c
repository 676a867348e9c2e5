/* test_generate.c — generation: the KV cache gives the logits of full recomputation at every
 * position (standard and CRoPE attention, learned positions, untied head, RMSNorm, a quantized
 * format, QLoRA), reads each cached row once per step (no recomputation), stops allocating after
 * its first step; greedy decoding is the argmax of full recomputation; and the sampler
 * (temperature, top-k, top-p, determinism for a seed). */
#include "qttest.h"

#include "data/data.h"
#include "train/model/gpt.h"
#include "train/run/generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEQ 24
#define TOL 1e-4

static double normal_cb(void *rng) { return data_rng_normal(rng); }

typedef enum { V_STANDARD, V_CROPE, V_LEARNED, V_UNTIED, V_RMSNORM, V_MXINT4, V_QLORA } variant;

/* A small random model (init std raised so attention is far from uniform). */
static qt_model *make_model(qt_config *c, variant v) {
    assert_int_equal(qt_config_defaults(c), 0);
    c->model.n_layer = 2;
    c->model.n_head = 2;
    c->model.d_model = 64;
    c->model.d_ff = 96;
    c->model.seq_len = SEQ;
    if (v == V_CROPE)
        c->model.attention = QT_ATTN_CROPE;
    if (v == V_LEARNED)
        c->model.positions = QT_POS_LEARNED;
    if (v == V_UNTIED)
        c->model.tie_embeddings = false;
    if (v == V_RMSNORM)
        c->model.norm = QT_NORM_RMSNORM;
    if (v == V_QLORA) {
        c->lora.enabled = true;
        c->lora.rank = 4;
        c->lora.alpha = 8;
    }
    char err[256];
    qt_model *m = qt_model_create(c, err, sizeof err);
    if (!m)
        fail_msg("model: %s", err);
    data_rng rng;
    data_rng_seed(&rng, 11 + (uint64_t)v, DATA_STREAM_INIT);
    qt_model_init(m, normal_cb, &rng);
    for (size_t i = 0; i < m->n_floats; i++) /* sharper attention and non-zero adapters */
        m->data[i] = m->data[i] * 5.0f + (m->data[i] == 0.0f ? 0.05f : 0.0f);
    for (size_t i = 0; i < m->n_slots; i++) {
        qt_lora_slot *s = &m->slots[i];
        size_t n = (size_t)(s->rows * s->cols);
        float *w = malloc(n * sizeof *w);
        assert_non_null(w);
        for (size_t j = 0; j < n; j++)
            w[j] = (float)(0.1 * data_rng_normal(&rng));
        if (qt_lora_set_base(m, s, w, err, sizeof err) != 0)
            fail_msg("lora base: %s", err);
        free(w);
    }
    if (v == V_MXINT4) {
        qt_quant q = {.format = MX_INT4,
                      .rounding = MX_ROUND_EVEN,
                      .ste = AG_STE_IDENTITY,
                      .weights_via = MX_FP32,
                      .activations = true,
                      .head = true};
        qt_model_set_quant(m, &q);
    }
    return m;
}

/* Logits of position p (the last row) by a full forward pass over x[0..p]. */
static void full_logits(qt_model *m, ag_tape *t, const int32_t *x, int p, float *out) {
    ag_tape_reset(t);
    ag_tensor *y = qt_model_logits(m, t, x, 1, p + 1);
    assert_non_null(y);
    memcpy(out, (float *)y->data + (size_t)p * m->V, (size_t)m->V * sizeof *out);
}

/* The cache and full recomputation agree to float rounding: the same operations, but the
 * attention sums run in another order (and BLAS may block a 1-row product differently from a
 * p-row one), so intermediate values differ by a few ulps (float eps 6e-8), which the layers of
 * this deliberately sharp model (weights ×5) amplify: observed up to 2.4e-5 of the logits' scale,
 * so TOL = 1e-4. A real bug (a wrong position, a missing row, a stale key) gives O(1) errors.
 * Quantized formats see the same values, so rounding to the grid agrees except when a value lands
 * within an ulp of a rounding boundary. */
static double max_rel_diff(const float *a, const float *b, int V) {
    double scale = 0, d = 0;
    for (int i = 0; i < V; i++)
        scale = fmax(scale, fabs(b[i]));
    for (int i = 0; i < V; i++)
        d = fmax(d, fabs((double)a[i] - b[i]));
    return d / fmax(scale, 1e-3);
}

static void check_variant(variant v, const char *name) {
    qt_config c;
    qt_model *m = make_model(&c, v);
    char err[256];
    qt_kv_cache *kv = qt_kv_create(m, SEQ, err, sizeof err);
    assert_non_null(kv);
    ag_tape *t = ag_tape_create(1 << 20, 0, 64);
    ag_tape_set_recording(t, false);
    int32_t x[SEQ];
    data_rng rng;
    data_rng_seed(&rng, 3, DATA_STREAM_DATA);
    for (int i = 0; i < SEQ; i++)
        x[i] = (int32_t)data_rng_below(&rng, (uint64_t)m->V);
    float *a = malloc((size_t)m->V * sizeof *a), *b = malloc((size_t)m->V * sizeof *b);
    assert_true(a && b);
    double worst = 0;
    size_t grows = 0;
    for (int p = 0; p < SEQ; p++) {
        uint64_t before = kv->rows_read;
        if (qt_kv_step(kv, &x[p], 1, a, err, sizeof err) != 0)
            fail_msg("%s: step %d: %s", name, p, err);
        /* Each layer reads the p+1 cached rows once: O(p) per token, nothing recomputed. */
        assert_int_equal(kv->rows_read - before, (uint64_t)m->L * (uint64_t)(p + 1));
        size_t g = ag_arena_grow_count(ag_tape_arena(kv->tape));
        if (p == 1)
            grows = g;
        else if (p > 1 && g != grows)
            fail_msg("%s: the KV cache's arena grew at step %d", name, p);
        full_logits(m, t, x, p, b);
        double d = max_rel_diff(a, b, m->V);
        worst = fmax(worst, d);
        if (d > TOL)
            fail_msg("%s: position %d: cache logits differ from recomputation by %.3g (relative)",
                     name, p, d);
    }
    assert_int_equal(kv->len, SEQ);
    /* Full: another token is refused. */
    assert_int_not_equal(qt_kv_step(kv, &x[0], 1, a, err, sizeof err), 0);
    assert_non_null(strstr(err, "holds 24 positions"));

    /* Prefill of the whole prefix at once gives the same last logits. */
    qt_kv_reset(kv);
    assert_int_equal(qt_kv_step(kv, x, SEQ - 4, a, err, sizeof err), 0);
    assert_int_equal(qt_kv_step(kv, &x[SEQ - 4], 1, a, err, sizeof err), 0);
    full_logits(m, t, x, SEQ - 4, b);
    if (max_rel_diff(a, b, m->V) > TOL)
        fail_msg("%s: prefill then step differs from recomputation", name);
    print_message("  %-9s max relative difference %.2g\n", name, worst);
    free(a);
    free(b);
    ag_tape_free(t);
    qt_kv_free(kv);
    qt_model_free(m);
    qt_config_free(&c);
}

static void test_cache_standard(void **s) {
    (void)s;
    check_variant(V_STANDARD, "standard");
}
static void test_cache_crope(void **s) {
    (void)s;
    check_variant(V_CROPE, "crope");
}
static void test_cache_learned(void **s) {
    (void)s;
    check_variant(V_LEARNED, "learned");
}
static void test_cache_untied(void **s) {
    (void)s;
    check_variant(V_UNTIED, "untied");
}
static void test_cache_rmsnorm(void **s) {
    (void)s;
    check_variant(V_RMSNORM, "rmsnorm");
}
static void test_cache_mxint4(void **s) {
    (void)s;
    check_variant(V_MXINT4, "mxint4");
}
static void test_cache_qlora(void **s) {
    (void)s;
    check_variant(V_QLORA, "qlora");
}

static int32_t argmax_of(const float *l, int V) {
    int32_t best = 0;
    for (int i = 1; i < V; i++)
        if (l[i] > l[best])
            best = i;
    return best;
}

/* Greedy decoding through the cache picks the argmax of full recomputation at every step, and
 * does so again on a second run. */
static void test_greedy(void **state) {
    (void)state;
    qt_config c;
    qt_model *m = make_model(&c, V_STANDARD);
    char err[256];
    qt_kv_cache *kv = qt_kv_create(m, SEQ, err, sizeof err);
    ag_tape *t = ag_tape_create(1 << 20, 0, 64);
    assert_true(kv && t);
    ag_tape_set_recording(t, false);
    qt_sampler sm;
    qt_sample_opts so = {.temperature = 0, .top_k = 0, .top_p = 1};
    assert_int_equal(qt_sampler_init(&sm, m->V, &so, err, sizeof err), 0);
    float *l = malloc((size_t)m->V * sizeof *l), *f = malloc((size_t)m->V * sizeof *f);
    assert_true(l && f);
    int32_t run[2][SEQ];
    for (int r = 0; r < 2; r++) {
        int32_t *x = run[r];
        x[0] = 'a';
        x[1] = 'b';
        x[2] = 'c';
        qt_kv_reset(kv);
        assert_int_equal(qt_kv_step(kv, x, 3, l, err, sizeof err), 0);
        for (int p = 3; p < SEQ; p++) {
            x[p] = qt_sample(&sm, l, NULL);
            full_logits(m, t, x, p - 1, f);
            assert_int_equal(x[p], argmax_of(f, m->V));
            if (p + 1 < SEQ)
                assert_int_equal(qt_kv_step(kv, &x[p], 1, l, err, sizeof err), 0);
        }
    }
    assert_memory_equal(run[0], run[1], sizeof run[0]);
    free(l);
    free(f);
    qt_sampler_free(&sm);
    ag_tape_free(t);
    qt_kv_free(kv);
    qt_model_free(m);
    qt_config_free(&c);
}

static qt_sampler sampler(double temp, int k, double p) {
    qt_sampler s;
    qt_sample_opts o = {.temperature = temp, .top_k = k, .top_p = p};
    char err[128];
    assert_int_equal(qt_sampler_init(&s, 4, &o, err, sizeof err), 0);
    return s;
}

static void test_sample_greedy(void **state) {
    (void)state;
    const float l[4] = {1, 3, 3, 2};
    qt_sampler s = sampler(0, 0, 1);
    assert_int_equal(qt_sample(&s, l, NULL), 1); /* tie: the lower id */
    qt_sampler_free(&s);
    s = sampler(1.5, 1, 1); /* top-k 1: argmax whatever the temperature, no draw */
    assert_int_equal(qt_sample(&s, l, NULL), 1);
    assert_int_equal(qt_sample_candidates(&s, l), 1);
    qt_sampler_free(&s);
}

/* Probabilities 0.5, 0.3, 0.15, 0.05 (listed out of order: ids 2, 0, 3, 1). */
static void test_sample_top_p(void **state) {
    (void)state;
    const float l[4] = {logf(0.3f), logf(0.05f), logf(0.5f), logf(0.15f)};
    qt_sampler s = sampler(1, 0, 0.75); /* 0.5 < 0.75 <= 0.8: {2, 0} */
    assert_int_equal(qt_sample_candidates(&s, l), 2);
    assert_int_equal(s.cand[0].id, 2);
    assert_int_equal(s.cand[1].id, 0);
    assert_true(fabs(s.cand[0].p - 0.625) < 1e-6 && fabs(s.cand[1].p - 0.375) < 1e-6);
    qt_sampler_free(&s);
    s = sampler(1, 0, 0.85); /* 0.8 < 0.85 <= 0.95: {2, 0, 3} */
    assert_int_equal(qt_sample_candidates(&s, l), 3);
    assert_int_equal(s.cand[2].id, 3);
    qt_sampler_free(&s);
    s = sampler(1, 0, 0.4); /* the top token alone already has 0.5 */
    assert_int_equal(qt_sample_candidates(&s, l), 1);
    qt_sampler_free(&s);
    s = sampler(1, 0, 1); /* all four, probabilities as given */
    assert_int_equal(qt_sample_candidates(&s, l), 4);
    assert_int_equal(s.cand[3].id, 1);
    assert_true(fabs(s.cand[3].p - 0.05) < 1e-6);
    qt_sampler_free(&s);
    s = sampler(1, 2, 1); /* top-k 2: {2, 0} */
    assert_int_equal(qt_sample_candidates(&s, l), 2);
    data_rng rng;
    data_rng_seed(&rng, 1, DATA_STREAM_SAMPLE);
    int seen[4] = {0};
    for (int i = 0; i < 400; i++)
        seen[qt_sample(&s, l, &rng)]++;
    assert_int_equal(seen[1] + seen[3], 0);
    assert_true(seen[0] > 100 && seen[2] > 200); /* 150 and 250 expected */
    qt_sampler_free(&s);
}

static void test_sample_seed(void **state) {
    (void)state;
    const float l[4] = {0.1f, 0.4f, 0.2f, 0.3f};
    qt_sampler s = sampler(1, 0, 1);
    int32_t a[64], b[64], d[64];
    data_rng r1, r2, r3;
    data_rng_seed(&r1, 42, DATA_STREAM_SAMPLE);
    data_rng_seed(&r2, 42, DATA_STREAM_SAMPLE);
    data_rng_seed(&r3, 43, DATA_STREAM_SAMPLE);
    for (int i = 0; i < 64; i++) {
        a[i] = qt_sample(&s, l, &r1);
        b[i] = qt_sample(&s, l, &r2);
        d[i] = qt_sample(&s, l, &r3);
    }
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, d, sizeof a);
    qt_sampler_free(&s);
    char err[128];
    qt_sample_opts bad = {.temperature = -1, .top_p = 1};
    assert_int_equal(qt_sampler_init(&s, 4, &bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "temperature"));
    bad = (qt_sample_opts){.temperature = 1, .top_p = 0};
    assert_int_equal(qt_sampler_init(&s, 4, &bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "top-p"));
}

int qtt_run_generate(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_standard), cmocka_unit_test(test_cache_crope),
        cmocka_unit_test(test_cache_learned),  cmocka_unit_test(test_cache_untied),
        cmocka_unit_test(test_cache_rmsnorm),  cmocka_unit_test(test_cache_mxint4),
        cmocka_unit_test(test_cache_qlora),    cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_sample_greedy),  cmocka_unit_test(test_sample_top_p),
        cmocka_unit_test(test_sample_seed),
    };
    return cmocka_run_group_tests_name("generate", tests, NULL, NULL);
}
