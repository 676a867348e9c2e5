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

/* ---- fused q/k/v projection ---------------------------------------------------------------- */

/* gpt.c's weight and activation quantization, for the unfused reference below. */
static ag_tensor *ref_qw(const qt_model *m, ag_tape *t, ag_tensor *w) {
    const qt_quant *q = &m->quant;
    if (q->format == MX_FP32 || q->weights_ready)
        return w;
    ag_fq_spec spec = {q->format, q->rounding, q->ste, q->weights_via};
    return ag_fakequant(t, w, &spec, -1);
}

static ag_tensor *ref_qx(const qt_model *m, ag_tape *t, ag_tensor *x) {
    const qt_quant *q = &m->quant;
    if (q->format == MX_FP32 || !q->activations)
        return x;
    ag_fq_spec spec = {q->format, q->rounding, q->ste, MX_FP32};
    return ag_fakequant(t, x, &spec, -1);
}

/* qt_model_loss of a LayerNorm model (learned or rotary positions) as three separate q, k, v
 * projections, ag_rope and ag_attention: what gpt.c computed before it fused them into one
 * [3C,C] GEMM. */
static ag_tensor *unfused_loss(qt_model *m, ag_tape *t, const int32_t *x, const int32_t *y, int B,
                               int T) {
    ag_tensor *h = ag_embedding(t, m->wte, x, B, T);
    if (m->wpe) {
        ag_tensor *pos = ag_tape_alloc(t, sizeof *pos);
        int64_t ps[2] = {T, m->C};
        ag_tensor_wrap(pos, AG_F32, m->wpe->data, m->wpe->grad, 2, ps);
        pos->requires_grad = true;
        h = ag_add(t, h, pos);
    }
    for (int i = 0; i < m->L; i++) {
        qt_block *k = &m->blocks[i];
        ag_tensor *a = ref_qx(m, t, ag_layernorm(t, h, k->ln1_w, k->ln1_b, 1e-5));
        ag_tensor *q = ag_linear(t, a, ref_qw(m, t, k->wq));
        ag_tensor *kk = ag_linear(t, a, ref_qw(m, t, k->wk));
        ag_tensor *v = ag_linear(t, a, ref_qw(m, t, k->wv));
        if (!m->wpe) {
            q = ag_rope(t, q, m->NH, 0, 10000.0);
            kk = ag_rope(t, kk, m->NH, 0, 10000.0);
        }
        ag_tensor *o = ref_qx(m, t, ag_attention(t, q, kk, v, m->NH));
        h = ag_add(t, h, ag_linear(t, o, ref_qw(m, t, k->wo)));
        ag_tensor *u = ref_qx(m, t, ag_layernorm(t, h, k->ln2_w, k->ln2_b, 1e-5));
        u = ref_qx(m, t, ag_gelu(t, ag_linear(t, u, ref_qw(m, t, k->up))));
        h = ag_add(t, h, ag_linear(t, u, ref_qw(m, t, k->down)));
    }
    h = ag_layernorm(t, h, m->lnf_w, m->lnf_b, 1e-5);
    ag_tensor *head = m->lm_head ? m->lm_head : m->wte;
    ag_tensor *logits =
        m->quant.head ? ag_linear(t, ref_qx(m, t, h), ref_qw(m, t, head)) : ag_linear(t, h, head);
    return ag_cross_entropy(t, logits, y);
}

/* Loss and every gradient of the model's fused path against the unfused reference, in fp32 and
 * under MX weight+activation fake quantization (the [3C,C] view is quantized row by row, like
 * the three weights): the same up to float rounding. Also: the fused path records one linear and
 * one attention node per block, and the parameters keep their names and shapes. */
static void fused_qkv_matches_unfused(qt_positions pos) {
    qt_config c;
    small_config(&c);
    c.model.d_model = 64;
    c.model.d_ff = 128;
    c.model.positions = pos;
    char err[256];
    qt_model *m = qt_model_create(&c, err, sizeof err);
    assert_non_null(m);
    data_rng rng;
    data_rng_seed(&rng, 3, DATA_STREAM_INIT);
    qt_model_init(m, normal_cb, &rng);
    assert_int_equal(qt_model_find(m, "h.1.attn.wk")->t.shape[0], 64);
    int B = 2, T = 8;
    int32_t x[16], y[16];
    for (int i = 0; i < 16; i++) {
        x[i] = (i * 37 + 11) % 256;
        y[i] = (i * 53 + 7) % 256;
    }
    float *g = malloc(m->n_floats * sizeof *g);
    ag_tape *t = ag_tape_create(1 << 22, 0, 1024);
    for (int quant = 0; quant < 2; quant++) {
        qt_quant q = {.format = quant ? MX_FP4_E2M1 : MX_FP32,
                      .ste = AG_STE_CLIPPED,
                      .activations = quant != 0};
        qt_model_set_quant(m, &q);
        ag_tape_reset(t);
        ag_tensor *ref = unfused_loss(m, t, x, y, B, T);
        assert_non_null(ref);
        qt_model_zero_grad(m);
        assert_int_equal(ag_backward(t, ref, NULL), 0);
        double l_ref = *(float *)ref->data;
        memcpy(g, m->grad, m->n_floats * sizeof *g);
        ag_tape_reset(t);
        ag_tensor *loss = qt_model_loss(m, t, x, y, B, T);
        assert_non_null(loss);
        size_t n_attn = 0, n_lin = 0;
        for (size_t i = 0; i < ag_tape_size(t); i++) {
            n_attn += ag_tape_node(t, i)->op == AG_OP_ATTENTION;
            n_lin += ag_tape_node(t, i)->op == AG_OP_LINEAR;
        }
        assert_int_equal(n_attn, 2);
        assert_int_equal(n_lin, 2 * 4 + 1); /* qkv, wo, up, down per block; the head */
        qt_model_zero_grad(m);
        assert_int_equal(ag_backward(t, loss, NULL), 0);
        assert_close(*(float *)loss->data, l_ref, 0, 1e-6);
        for (size_t p = 0; p < m->n_params; p++) {
            const ag_tensor *pt = &m->params[p].t;
            const float *a = pt->grad, *r = g + (a - m->grad);
            double scale = 0;
            for (size_t i = 0; i < pt->numel; i++)
                scale = fmax(scale, fabs(r[i]));
            assert_true(scale > 0);
            for (size_t i = 0; i < pt->numel; i++)
                if (fabs(a[i] - r[i]) > 1e-4 * scale)
                    fail_msg("%s grad[%zu]: fused %.9g, unfused %.9g (quant %d)", m->params[p].name,
                             i, a[i], r[i], quant);
        }
    }
    ag_tape_free(t);
    free(g);
    qt_model_free(m);
    qt_config_free(&c);
}

static void test_fused_qkv_matches_unfused(void **state) {
    (void)state;
    fused_qkv_matches_unfused(QT_POS_LEARNED);
    fused_qkv_matches_unfused(QT_POS_ROPE);
}

int qtt_run_model(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_param_table_matches_design),
        cmocka_unit_test(test_rmsnorm_tied_has_no_bias_or_head),
        cmocka_unit_test(test_initial_loss_and_overfit),
        cmocka_unit_test(test_fused_qkv_matches_unfused),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
