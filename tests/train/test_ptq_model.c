/* test_ptq_model.c — the model side of post-training quantization: SmoothQuant's fold leaves the
 * fp32 function unchanged (LayerNorm and RMSNorm) while really changing the weights, and the
 * calibration hook sees every quantized linear layer with the input it multiplies. */
#include "qttest.h"

#include "data/data.h"
#include "train/model/gpt.h"
#include "train/run/ptq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double normal_cb(void *rng) { return data_rng_normal(rng); }

static qt_model *small_model(qt_config *c, qt_norm norm) {
    assert_int_equal(qt_config_defaults(c), 0);
    c->model.n_layer = 2;
    c->model.n_head = 2;
    c->model.d_model = 64;
    c->model.d_ff = 96;
    c->model.seq_len = 8;
    c->model.norm = norm;
    char err[256];
    qt_model *m = qt_model_create(c, err, sizeof err);
    assert_non_null(m);
    data_rng rng;
    data_rng_seed(&rng, 3, DATA_STREAM_INIT);
    qt_model_init(m, normal_cb, &rng);
    /* Norm weights and biases away from 1 and 0, so the fold has something to scale. */
    for (int i = 0; i < m->L; i++) {
        qt_block *k = &m->blocks[i];
        ag_tensor *ts[4] = {k->ln1_w, k->ln1_b, k->ln2_w, k->ln2_b};
        for (int j = 0; j < 4; j++)
            for (size_t e = 0; ts[j] && e < ts[j]->numel; e++)
                ((float *)ts[j]->data)[e] += 0.3f * (float)data_rng_normal(&rng);
    }
    return m;
}

static float *logits(qt_model *m, const int32_t *x) {
    ag_tape *t = ag_tape_create(1 << 20, 0, 1024);
    ag_tape_set_recording(t, false);
    ag_tensor *y = qt_model_logits(m, t, x, 2, 8);
    assert_non_null(y);
    float *out = malloc(y->numel * sizeof *out);
    memcpy(out, y->data, y->numel * sizeof *out);
    ag_tape_free(t);
    return out;
}

static void check_smoothing_keeps_fp32(qt_norm norm) {
    qt_config c;
    qt_model *m = small_model(&c, norm);
    int32_t x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (int32_t)((i * 37 + 11) % 256);
    float *before = logits(m, x);
    float wq0 = ((float *)m->blocks[0].wq->data)[5];
    /* Activation maxima spanning three orders of magnitude: large smoothing scales both ways. */
    float *amax = malloc((size_t)m->C * sizeof *amax);
    uint64_t s = 9;
    for (int j = 0; j < m->C; j++)
        amax[j] = (float)pow(10.0, tu_uniform(&s, -1.5, 1.5));
    for (int b = 0; b < m->L; b++)
        assert_int_equal(qt_ptq_smooth_block(m, b, amax, amax, 0.5), 0);
    assert_true(fabsf(((float *)m->blocks[0].wq->data)[5] - wq0) > 1e-4f * fabsf(wq0));
    float *after = logits(m, x);
    size_t n = (size_t)2 * 8 * (size_t)m->V;
    for (size_t i = 0; i < n; i++)
        assert_close(after[i], before[i], 2e-4, 2e-4);
    assert_int_equal(qt_ptq_smooth_block(m, m->L, amax, amax, 0.5), -1);
    assert_int_equal(qt_ptq_smooth_block(m, 0, amax, amax, 1.5), -1);
    free(amax);
    free(before);
    free(after);
    qt_model_free(m);
    qt_config_free(&c);
}

static void test_smoothing_keeps_fp32_layernorm(void **state) {
    (void)state;
    check_smoothing_keeps_fp32(QT_NORM_LAYERNORM);
}

static void test_smoothing_keeps_fp32_rmsnorm(void **state) {
    (void)state;
    check_smoothing_keeps_fp32(QT_NORM_RMSNORM);
}

typedef struct seen {
    const ag_tensor *w[16];
    int64_t rows[16], cols[16];
    int n;
} seen;

static void observe(void *ctx, const ag_tensor *w, const ag_tensor *x) {
    seen *s = ctx;
    if (s->n < 16) {
        s->w[s->n] = w;
        s->rows[s->n] = (int64_t)ag_rows(x);
        s->cols[s->n] = (int64_t)ag_cols(x);
    }
    s->n++;
}

static void test_observer_sees_every_linear(void **state) {
    (void)state;
    qt_config c;
    qt_model *m = small_model(&c, QT_NORM_LAYERNORM);
    seen s = {0};
    m->observe = observe;
    m->observe_ctx = &s;
    int32_t x[16] = {0};
    free(logits(m, x));
    /* Per block, in forward order: wq, wk, wv, wo, up, down; the fp32 head is not observed. */
    assert_int_equal(s.n, 6 * m->L);
    for (int b = 0; b < m->L; b++) {
        const qt_block *k = &m->blocks[b];
        const ag_tensor *want[6] = {k->wq, k->wk, k->wv, k->wo, k->up, k->down};
        for (int j = 0; j < 6; j++) {
            assert_ptr_equal(s.w[6 * b + j], want[j]);
            assert_int_equal(s.rows[6 * b + j], 16);
            assert_int_equal(s.cols[6 * b + j], want[j]->shape[1]);
        }
    }
    /* With the head quantized it is observed too, last. */
    s.n = 0;
    qt_quant q = {.format = MX_INT8, .weights_ready = true, .activations = true, .head = true};
    qt_model_set_quant(m, &q);
    free(logits(m, x));
    assert_int_equal(s.n, 6 * m->L + 1);
    assert_ptr_equal(s.w[6 * m->L], m->wte);
    qt_model_free(m);
    qt_config_free(&c);
}

int qtt_run_ptq_model(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smoothing_keeps_fp32_layernorm),
        cmocka_unit_test(test_smoothing_keeps_fp32_rmsnorm),
        cmocka_unit_test(test_observer_sees_every_linear),
    };
    return cmocka_run_group_tests_name("ptq_model", tests, NULL, NULL);
}
