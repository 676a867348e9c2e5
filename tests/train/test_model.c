/* test_model.c — GPT parameter table (names, shapes, counts) and the forward pass. */
#include "qttest.h"

#include "data/data.h"
#include "optim/opt.h"
#include "train/model/gpt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void small_config(qt_config *c) {
    assert_int_equal(qt_config_defaults(c), 0);
    c->model.n_layer = 2;
    c->model.n_head = 2;
    c->model.d_model = 16;
    c->model.d_ff = 32;
    c->model.seq_len = 8;
}

static double normal_cb(void *rng) { return data_rng_normal(rng); }

static void test_param_table_matches_design(void **state) {
    (void)state;
    qt_config c;
    small_config(&c);
    c.model.positions = QT_POS_LEARNED;
    c.model.tie_embeddings = false;
    char err[256];
    qt_model *m = qt_model_create(&c, err, sizeof err);
    assert_non_null(m);
    const char *expect[] = {"wte",          "wpe",         "h.0.ln1.weight",
                            "h.0.ln1.bias", "h.0.attn.wq", "h.0.attn.wk",
                            "h.0.attn.wv",  "h.0.attn.wo", "h.0.ln2.weight",
                            "h.0.ln2.bias", "h.0.mlp.up",  "h.0.mlp.down"};
    for (size_t i = 0; i < sizeof expect / sizeof *expect; i++)
        assert_string_equal(m->params[i].name, expect[i]);
    assert_string_equal(m->params[m->n_params - 1].name, "lm_head");
    qt_param *up = qt_model_find(m, "h.1.mlp.up");
    assert_non_null(up);
    assert_int_equal(up->t.shape[0], 32);
    assert_int_equal(up->t.shape[1], 16);
    /* V·C + T·C + L·(4C + 4C² + 2CF) + 2C + V·C */
    size_t C = 16, F = 32, V = 256, T = 8, L = 2;
    assert_int_equal(qt_model_param_count(m),
                     V * C + T * C + L * (4 * C + 4 * C * C + 2 * C * F) + 2 * C + V * C);
    assert_int_equal(qt_model_attn_param_count(m), L * 4 * C * C);
    assert_null(qt_model_find(m, "nope"));
    qt_model_free(m);
    qt_config_free(&c);
}

static void test_rmsnorm_tied_has_no_bias_or_head(void **state) {
    (void)state;
    qt_config c;
    small_config(&c);
    c.model.norm = QT_NORM_RMSNORM;
    char err[256];
    qt_model *m = qt_model_create(&c, err, sizeof err);
    assert_non_null(m);
    assert_null(qt_model_find(m, "h.0.ln1.bias"));
    assert_null(qt_model_find(m, "lm_head"));
    assert_null(qt_model_find(m, "wpe"));
    assert_null(m->lm_head);
    qt_model_free(m);
    qt_config_free(&c);
}

/* At initialisation the logits are near zero, so the loss is near ln(V); a few AdamW steps on
 * one batch must drive it well down (the whole forward/backward path is wired correctly). */
static void test_initial_loss_and_overfit(void **state) {
    (void)state;
    qt_config c;
    small_config(&c);
    char err[256];
    qt_model *m = qt_model_create(&c, err, sizeof err);
    data_rng rng;
    data_rng_seed(&rng, 1, DATA_STREAM_INIT);
    qt_model_init(m, normal_cb, &rng);
    int B = 2, T = 8;
    int32_t x[16], y[16];
    const char *text = "hello world, hello qat!";
    for (int i = 0; i < 16; i++) {
        x[i] = (unsigned char)text[i % 8 + (i / 8)];
        y[i] = (unsigned char)text[i % 8 + (i / 8) + 1];
    }
    ag_tape *t = ag_tape_create(1 << 20, 0, 1024);
    ag_tensor *loss = qt_model_loss(m, t, x, y, B, T);
    assert_non_null(loss);
    double l0 = *(float *)loss->data;
    assert_close(l0, log(256.0), 0.15, 0);

    opt_param *ps = calloc(m->n_params, sizeof *ps);
    for (size_t i = 0; i < m->n_params; i++)
        ps[i] = (opt_param){m->params[i].name, m->params[i].t.data, m->params[i].t.grad,
                            m->params[i].t.numel, m->params[i].decay};
    opt_config oc = opt_config_defaults(OPT_ADAMW);
    opt_optimizer *o = opt_create(&oc, ps, m->n_params, err, sizeof err);
    assert_non_null(o);
    double l = l0;
    for (int s = 0; s < 30; s++) {
        ag_tape_reset(t);
        loss = qt_model_loss(m, t, x, y, B, T);
        l = *(float *)loss->data;
        qt_model_zero_grad(m);
        assert_int_equal(ag_backward(t, loss, NULL), 0);
        opt_step(o, 1e-2);
    }
    assert_true(l < 0.5 * l0);
    opt_free(o);
    free(ps);
    ag_tape_free(t);
    qt_model_free(m);
    qt_config_free(&c);
}

int qtt_run_model(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_param_table_matches_design),
        cmocka_unit_test(test_rmsnorm_tied_has_no_bias_or_head),
        cmocka_unit_test(test_initial_loss_and_overfit),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
