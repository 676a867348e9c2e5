/* test_anchor_eval.c — evaluation from an anchor: every format's loss bit-identical to a model
 * whose weights were set by hand from the mx_ kernels, and to training under weights_via_anchor;
 * converted files at their own format only; the --formats list and the CSV table. Each test works
 * in its own mkdtemp directory. */
#define _POSIX_C_SOURCE 200809L

#include "qttest.h"

#include "train/io/anchor.h"
#include "train/run/evaluate.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shared fixture (main.c), under the name the tests use. */
typedef qtt_tmpdir fx;

static int setup(void **state) { return qtt_tmpdir_setup(state, "qat_anchor", "anchor.h5", false); }

/* ---- evaluation from an anchor ---- */

/* An evaluator over lent validation text: the config of c, no corpus on disk. */
static void open_evaluator(qt_evaluator *e, const qt_config *c, uint8_t *val, size_t n_val) {
    for (size_t i = 0; i < n_val; i++)
        val[i] = (uint8_t)("the quick brown fox jumps over the lazy dog. "[i % 45]);
    char *text = qt_config_to_ini(c);
    assert_non_null(text);
    qt_eval_opts o = {.config_text = text, .origin = "test", .val = val, .n_val = n_val};
    char err[512] = "";
    assert_int_equal(qt_evaluator_open(e, &o, err, sizeof err), 0);
    free(text);
}

/* e->model := dequantize(SnS(quantize_anchor(W))) at f (the anchor's own format or fp32: just
 * dequantize), computed here from the mx_ kernels alone; float tensors W. */
static void set_weights_by_hand(qt_model *dst, const qt_model *src, bool head, mx_format anchor,
                                mx_format f, mx_rounding r) {
    for (size_t i = 0; i < src->n_params; i++) {
        const qt_param *p = &src->params[i];
        float *out = dst->params[i].t.data;
        if (!qt_model_param_quantized(src, p, head)) {
            memcpy(out, p->t.data, qtt_numel(&p->t) * sizeof(float));
            continue;
        }
        size_t rows = (size_t)p->t.shape[0], cols = (size_t)p->t.shape[1], n = rows * cols;
        size_t ns = rows * mx_num_blocks(cols);
        uint8_t *c8 = malloc(n), *s8 = malloc(ns), *cl = malloc(n), *sl = malloc(ns);
        mx_quantize(p->t.data, c8, s8, rows, cols, anchor, r);
        if (f == MX_FP32 || f == anchor) {
            mx_dequantize(c8, s8, out, rows, cols, anchor);
        } else {
            mx_slice_and_scale(c8, s8, anchor, cl, sl, f, rows, cols, r);
            mx_dequantize(cl, sl, out, rows, cols, f);
        }
        free(c8);
        free(s8);
        free(cl);
        free(sl);
    }
}

static void copy_weights(qt_model *dst, const qt_model *src) {
    memcpy(dst->data, src->data, src->n_floats * sizeof(float));
}

static void assert_same_loss(double a, double b, const char *what, mx_format f) {
    if (memcmp(&a, &b, sizeof a) != 0) {
        print_error("%s at %s: %.17g vs %.17g\n", what, mx_format_name(f), a, b);
        fail();
    }
}

static void test_eval_from_anchor_is_bit_identical(void **state) {
    fx *f = *state;
    static const struct {
        mx_format anchor;
        mx_rounding r;
    } cases[] = {{MX_INT8, MX_ROUND_EVEN}, {MX_FP8_E4M3, MX_ROUND_NEAREST}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        qt_config c;
        qtt_small_config(&c, false, true);
        c.quant.rounding = (qt_rounding)cases[k].r;
        qt_model *m = qtt_make_model(&c, 20 + k);
        uint8_t val[400];
        qt_evaluator e;
        open_evaluator(&e, &c, val, sizeof val);
        assert_int_equal(e.n_batches, 3);
        qt_anchor_ckpt a, r;
        char err[512] = "";
        qtt_write_model_anchor(f->path, m, true, cases[k].anchor, cases[k].r, &a);
        assert_int_equal(qt_anchor_read(f->path, &r, err, sizeof err), 0);

        mx_format fmts[16];
        qt_eval_row rows[16], direct[16];
        int n = qt_eval_parse_formats("all", fmts, 16, err, sizeof err);
        assert_int_equal(n, 10);
        for (int i = 0; i < n; i++)
            rows[i].format = direct[i].format = fmts[i];
        assert_int_equal(
            qt_eval_anchor_rows(&e, &r, f->path, true, rows, n, NULL, "t", err, sizeof err), 0);
        /* Training under weights_via_anchor sees the same weights: direct rows with via. */
        qt_quant base = {.format = MX_FP32,
                         .rounding = cases[k].r,
                         .weights_via = cases[k].anchor,
                         .activations = true,
                         .head = true};
        copy_weights(e.model, m);
        assert_int_equal(qt_eval_direct_rows(&e, &base, direct, n, NULL, "t", err, sizeof err), 0);
        for (int i = 0; i < n; i++) {
            mx_format fm = rows[i].format;
            assert_false(isnan(rows[i].loss));
            set_weights_by_hand(e.model, m, true, cases[k].anchor, fm, cases[k].r);
            qt_quant q = {.format = fm,
                          .rounding = cases[k].r,
                          .weights_via = MX_FP32,
                          .weights_ready = true,
                          .activations = true,
                          .head = true};
            double loss = NAN;
            assert_int_equal(qt_evaluator_loss(&e, &q, &loss, err, sizeof err), 0);
            assert_same_loss(rows[i].loss, loss, "anchor row vs weights set by hand", fm);
            if (fm != MX_FP32)
                assert_same_loss(rows[i].loss, direct[i].loss, "anchor row vs weights_via", fm);
        }
        /* The rows differ from each other (the formats really were applied), and from float. */
        assert_true(rows[9].loss != rows[0].loss); /* mxint2 vs dequantized anchor */
        assert_true(direct[0].loss != rows[0].loss);

        /* A converted file evaluates at its own format only; others are skipped with a note. */
        qt_anchor_ckpt low;
        assert_int_equal(qt_anchor_convert(&r, MX_INT4, &low, err, sizeof err), 0);
        qt_eval_row two[3] = {{.format = MX_FP32}, {.format = MX_INT4}, {.format = MX_INT2}};
        assert_int_equal(
            qt_eval_anchor_rows(&e, &low, "low.h5", true, two, 3, NULL, "t", err, sizeof err), 0);
        assert_false(isnan(two[0].loss));
        assert_false(isnan(two[1].loss));
        assert_true(isnan(two[2].loss));
        assert_has(two[2].note, "already converted");
        if (cases[k].anchor == MX_INT8)
            assert_same_loss(two[1].loss, rows[7].loss, "converted mxint4 vs anchor row", MX_INT4);

        qt_anchor_free(&low);
        qt_anchor_free(&r);
        qt_anchor_free(&a);
        qt_evaluator_close(&e);
        qt_evaluator_close(&e); /* idempotent */
        qt_model_free(m);
        qt_config_free(&c);
    }
}

/* ---- formats and the table ---- */

static void test_format_lists_and_csv(void **state) {
    fx *f = *state;
    mx_format v[16];
    char err[512] = "";
    assert_int_equal(qt_eval_parse_formats("all", v, 16, err, sizeof err), 10);
    assert_int_equal(v[0], MX_FP32);
    assert_int_equal(v[9], MX_INT2);
    assert_int_equal(qt_eval_parse_formats(" mxint4 , mxfp4_e2m1", v, 16, err, sizeof err), 3);
    assert_int_equal(v[0], MX_FP32);
    assert_int_equal(v[1], MX_INT4);
    assert_int_equal(v[2], MX_FP4_E2M1);
    assert_int_equal(qt_eval_parse_formats("fp32,mxint8", v, 16, err, sizeof err), 2);
    assert_int_equal(qt_eval_parse_formats("mxint3", v, 16, err, sizeof err), -1);
    assert_has(err, "--formats: unknown format 'mxint3'");
    assert_int_equal(qt_eval_parse_formats("mxint4,fp32,mxint4", v, 16, err, sizeof err), -1);
    assert_has(err, "'mxint4' listed twice");
    assert_int_equal(qt_eval_parse_formats("mxint4,", v, 16, err, sizeof err), -1);
    assert_has(err, "unknown format ''");

    qt_eval_row rows[3] = {{.format = MX_FP32, .loss = 2.0},
                           {.format = MX_FP4_E2M1, .loss = 2.5},
                           {.format = MX_INT2, .loss = NAN, .note = "no, not this one"}};
    char path[256];
    snprintf(path, sizeof path, "%s/t.csv", f->dir);
    assert_int_equal(qt_eval_write_csv(path, rows, 3, err, sizeof err), 0);
    FILE *fp = fopen(path, "r");
    char buf[512] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    assert_string_equal(buf, "format,bits_per_element,val_loss,perplexity,delta_vs_fp32,note\n"
                             "fp32,32.00,2.000000,7.389056,0.000000,\n"
                             "mxfp4_e2m1,4.25,2.500000,12.182494,0.500000,\n"
                             "mxint2,2.25,,,,\"no, not this one\"\n");
    snprintf(path, sizeof path, "%s/missing/t.csv", f->dir);
    assert_int_equal(qt_eval_write_csv(path, rows, 3, err, sizeof err), -1);
    assert_has(err, "missing/t.csv");
}

int qtt_run_anchor_eval(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, qtt_tmpdir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_eval_from_anchor_is_bit_identical),
        T(test_format_lists_and_csv),
    };
#undef T
    return cmocka_run_group_tests_name("anchor_eval", tests, NULL, NULL);
}
