/* test_crope_model.c — CRoPE attention in the GPT: parameter names and counts (4d² standard, 2d²
 * complex output, 2.5d² real output), planes quantized each on its own under fake quantization,
 * and a CRoPE model that learns (one batch overfits). */
#include "qttest.h"

#include "data/data.h"
#include "optim/opt.h"
#include "train/model/gpt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double normal_cb(void *rng) { return data_rng_normal(rng); }

static qt_model *crope_model(qt_config *c, qt_crope_output out) {
    assert_int_equal(qt_config_defaults(c), 0);
    c->model.n_layer = 2;
    c->model.n_head = 2;
    c->model.d_model = 64;
    c->model.d_ff = 64;
    c->model.seq_len = 8;
    c->model.attention = QT_ATTN_CROPE;
    c->model.crope_output = out;
    char err[256];
    assert_int_equal(qt_config_validate(c, err, sizeof err), 0);
    qt_model *m = qt_model_create(c, err, sizeof err);
    assert_non_null(m);
    data_rng rng;
    data_rng_seed(&rng, 5, DATA_STREAM_INIT);
    qt_model_init(m, normal_cb, &rng);
    return m;
}

static void test_names_and_counts(void **state) {
    (void)state;
    qt_config c;
    size_t C = 64, L = 2;
    qt_model *m = crope_model(&c, QT_CROPE_OUT_COMPLEX);
    const char *names[] = {"h.0.attn.wq.re", "h.0.attn.wq.im", "h.0.attn.wk.re", "h.0.attn.wk.im",
                           "h.0.attn.wv.re", "h.0.attn.wv.im", "h.0.attn.wo.re", "h.0.attn.wo.im"};
    for (int i = 0; i < 8; i++) {
        qt_param *p = qt_model_find(m, names[i]);
        assert_non_null(p);
        assert_int_equal(p->t.shape[0], C / 2);
        assert_int_equal(p->t.shape[1], C / 2);
        assert_true(p->decay);
    }
    assert_null(qt_model_find(m, "h.0.attn.wq"));
    assert_int_equal(qt_model_attn_param_count(m), L * 2 * C * C);
    qt_model_free(m);
    qt_config_free(&c);

    m = crope_model(&c, QT_CROPE_OUT_REAL);
    qt_param *wo = qt_model_find(m, "h.1.attn.wo");
    assert_non_null(wo);
    assert_int_equal(wo->t.shape[0], C);
    assert_null(qt_model_find(m, "h.1.attn.wo.re"));
    assert_null(m->blocks[1].wo_im);
    assert_int_equal(qt_model_attn_param_count(m), L * (2 * C * C + C * C / 2));
    qt_model_free(m);
    qt_config_free(&c);
}

static double loss_of(qt_model *m, const int32_t *x, const int32_t *y) {
    ag_tape *t = ag_tape_create(1 << 20, 0, 1024);
    ag_tape_set_recording(t, false);
    ag_tensor *l = qt_model_loss(m, t, x, y, 2, 8);
    assert_non_null(l);
    double v = *(float *)l->data;
    ag_tape_free(t);
    return v;
}

static void batch(int32_t *x, int32_t *y) {
    const char *text = "complex numbers rotate!";
    for (int i = 0; i < 16; i++) {
        x[i] = (unsigned char)text[i % 8 + (i / 8)];
        y[i] = (unsigned char)text[i % 8 + (i / 8) + 1];
    }
}

/* Quantizing changes the function; setting every plane (and the MLP) to its mxint4 values by hand
 * (weights_ready) gives bit for bit the loss of quantizing on the fly: the planes are quantized
 * each on its own, blocks along their input axis. */
static void test_planes_are_quantized(void **state) {
    (void)state;
    qt_config c;
    qt_model *m = crope_model(&c, QT_CROPE_OUT_COMPLEX);
    int32_t x[16], y[16];
    batch(x, y);
    double l32 = loss_of(m, x, y);
    qt_quant q = {.format = MX_INT4, .rounding = MX_ROUND_EVEN};
    qt_model_set_quant(m, &q);
    double l4 = loss_of(m, x, y);
    q.format = MX_INT2;
    qt_model_set_quant(m, &q);
    double l2 = loss_of(m, x, y);
    assert_true(l4 != l32 && l2 != l4 && l2 != l32);
    for (int b = 0; b < m->L; b++) {
        qt_block *k = &m->blocks[b];
        ag_tensor *ts[10] = {k->wq,    k->wq_im, k->wk,    k->wk_im, k->wv,
                             k->wv_im, k->wo,    k->wo_im, k->up,    k->down};
        for (int j = 0; j < 10; j++)
            mx_fake_quant(ts[j]->data, ts[j]->data, (size_t)ts[j]->shape[0],
                          (size_t)ts[j]->shape[1], MX_INT4, MX_ROUND_EVEN);
    }
    q = (qt_quant){.format = MX_INT4, .rounding = MX_ROUND_EVEN, .weights_ready = true};
    qt_model_set_quant(m, &q);
    assert_true(loss_of(m, x, y) == l4);
    qt_model_free(m);
    qt_config_free(&c);
}

static void test_crope_learns(void **state) {
    (void)state;
    qt_config c;
    qt_model *m = crope_model(&c, QT_CROPE_OUT_COMPLEX);
    int32_t x[16], y[16];
    batch(x, y);
    opt_param *ps = calloc(m->n_params, sizeof *ps);
    for (size_t i = 0; i < m->n_params; i++)
        ps[i] = (opt_param){m->params[i].name, m->params[i].t.data, m->params[i].t.grad,
                            m->params[i].t.numel, m->params[i].decay};
    opt_config oc = opt_config_defaults(OPT_ADAMW);
    char err[256];
    opt_optimizer *o = opt_create(&oc, ps, m->n_params, err, sizeof err);
    assert_non_null(o);
    ag_tape *t = ag_tape_create(1 << 20, 0, 1024);
    double l0 = 0, l = 0;
    for (int s = 0; s < 30; s++) {
        ag_tape_reset(t);
        ag_tensor *loss = qt_model_loss(m, t, x, y, 2, 8);
        assert_non_null(loss);
        l = *(float *)loss->data;
        if (s == 0)
            l0 = l;
        qt_model_zero_grad(m);
        assert_int_equal(ag_backward(t, loss, NULL), 0);
        opt_step(o, 1e-2);
    }
    assert_close(l0, log(256.0), 0.15, 0);
    assert_true(l < 0.5 * l0);
    ag_tape_free(t);
    opt_free(o);
    free(ps);
    qt_model_free(m);
    qt_config_free(&c);
}

int qtt_run_crope_model(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_counts),
        cmocka_unit_test(test_planes_are_quantized),
        cmocka_unit_test(test_crope_learns),
    };
    return cmocka_run_group_tests_name("crope_model", tests, NULL, NULL);
}
