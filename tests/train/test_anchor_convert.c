/* test_anchor_convert.c — conversions: Slice-and-Scale of an anchor to every lower MX format
 * against mx_slice_and_scale (in memory, and packed on disk), an anchor made from a training
 * checkpoint against the one made from the model it holds, and every conversion refused. Each
 * test works in its own mkdtemp directory. */
#define _POSIX_C_SOURCE 200809L

#include "qttest.h"

#include "train/io/anchor.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shared fixture (main.c), under the name the tests use. */
typedef qtt_tmpdir fx;

static int setup(void **state) { return qtt_tmpdir_setup(state, "qat_anchor", "anchor.h5", false); }

/* ---- Slice-and-Scale ---- */

/* Converting gives mx_slice_and_scale of the anchor codes for every anchor format, every MX
 * destination (8 down to 2 bits) and both roundings; converted files hold them packed
 * (mx_pack) and read back with their source. */
static void test_convert_equals_slice_and_scale(void **state) {
    fx *f = *state;
    qt_config c;
    qtt_small_config(&c, false, true);
    qt_model *m = qtt_make_model(&c, 3);
    static const mx_format anchors[3] = {MX_INT8, MX_FP8_E4M3, MX_FP8_E5M2};
    char out[256], err[512] = "";
    snprintf(out, sizeof out, "%s/low.h5", f->dir);
    for (int ai = 0; ai < 3; ai++)
        for (int ri = 0; ri < 2; ri++) {
            qt_anchor_ckpt a, low, r;
            qtt_write_model_anchor(f->path, m, true, anchors[ai], (mx_rounding)ri, &a);
            qt_anchor_ckpt src;
            assert_int_equal(qt_anchor_read(f->path, &src, err, sizeof err), 0);
            for (int d = MX_INT8; d < MX_FORMAT_COUNT; d++) {
                mx_format dst = (mx_format)d;
                assert_int_equal(qt_anchor_convert(&src, dst, &low, err, sizeof err), 0);
                assert_int_equal(low.format, dst);
                assert_int_equal(low.source, dst == src.format ? MX_FP32 : src.format);
                for (size_t i = 0; i < src.n; i++) { /* in memory: every pair, both roundings */
                    const qt_anchor_tensor *t = &src.t[i];
                    if (!t->quantized)
                        continue;
                    size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
                    size_t ns = rows * mx_num_blocks(cols);
                    uint8_t *codes = malloc(rows * cols), *scales = malloc(ns);
                    mx_slice_and_scale(t->codes, t->scales, src.format, codes, scales, dst, rows,
                                       cols, (mx_rounding)ri);
                    assert_memory_equal(low.t[i].codes, codes, rows * cols);
                    assert_memory_equal(low.t[i].scales, scales, ns);
                    free(codes);
                    free(scales);
                }
                /* On disk (each write fsyncs): every destination from E4M3, mxint4 from the
                 * others; that covers every packed width. */
                if (ri != 0 || (anchors[ai] != MX_FP8_E4M3 && dst != MX_INT4)) {
                    qt_anchor_free(&low);
                    continue;
                }
                assert_int_equal(qt_anchor_write(out, &low, err, sizeof err), 0);
                qt_ckpt ck;
                assert_int_equal(qt_ckpt_read(out, &ck, err, sizeof err), 0);
                if (dst != src.format)
                    assert_string_equal(qt_ckpt_find_attr(&ck, "", "source_format")->str,
                                        mx_format_name(src.format));
                for (size_t i = 0; i < src.n; i++) {
                    const qt_anchor_tensor *t = &src.t[i];
                    if (!t->quantized)
                        continue;
                    size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1], n = rows * cols;
                    size_t ns = rows * mx_num_blocks(cols), np = mx_packed_size(dst, n);
                    uint8_t *codes = malloc(n), *scales = malloc(ns), *packed = malloc(np);
                    mx_slice_and_scale(t->codes, t->scales, src.format, codes, scales, dst, rows,
                                       cols, (mx_rounding)ri);
                    mx_pack(codes, n, dst, packed);
                    char name[QT_CKPT_NAME_MAX + 16];
                    snprintf(name, sizeof name, "%s/elements", t->name);
                    const qt_ckpt_tensor *el = qt_ckpt_find(ck.params, ck.n_params, name);
                    snprintf(name, sizeof name, "%s/scales", t->name);
                    const qt_ckpt_tensor *sc = qt_ckpt_find(ck.params, ck.n_params, name);
                    assert_int_equal(el->shape[0], np);
                    assert_memory_equal(el->data, packed, np);
                    assert_memory_equal(sc->data, scales, ns);
                    assert_string_equal(qt_ckpt_find_attr(&ck, t->name, "format")->str,
                                        mx_format_name(dst));
                    free(codes);
                    free(scales);
                    free(packed);
                }
                qt_ckpt_free(&ck);
                assert_int_equal(qt_anchor_read(out, &r, err, sizeof err), 0);
                assert_int_equal(r.format, dst);
                assert_int_equal(r.source, low.source);
                for (size_t i = 0; i < low.n; i++) {
                    const qt_anchor_tensor *y = qtt_find_tensor(&r, low.t[i].name);
                    assert_non_null(y);
                    if (y->quantized)
                        assert_memory_equal(y->codes, low.t[i].codes,
                                            (size_t)y->shape[0] * (size_t)y->shape[1]);
                }
                qt_anchor_free(&r);
                qt_anchor_free(&low);
            }
            qt_anchor_free(&src);
            qt_anchor_free(&a);
        }
    qt_model_free(m);
    qt_config_free(&c);
}

/* ---- from a training checkpoint ---- */

/* An anchor made from a training checkpoint equals the one made from the model it holds. */
static void test_anchor_from_train_checkpoint(void **state) {
    fx *f = *state;
    qt_config c;
    qtt_small_config(&c, true, true);
    c.quant.rounding = QT_ROUND_NEAREST;
    qt_model *m = qtt_make_model(&c, 4);
    char *text = qt_config_to_ini(&c);
    qt_ckpt_tensor *params = calloc(m->n_params, sizeof *params);
    for (size_t i = 0; i < m->n_params; i++) {
        qt_ckpt_tensor *t = &params[i];
        snprintf(t->name, sizeof t->name, "%s", m->params[i].name);
        t->dtype = QT_CK_F32;
        t->ndim = m->params[i].t.ndim;
        for (int d = 0; d < t->ndim; d++)
            t->shape[d] = m->params[i].t.shape[d];
        t->data = m->params[i].t.data;
    }
    qt_ckpt ck = {.kind = QT_CKPT_TRAIN,
                  .step = 9,
                  .config_text = text,
                  .model_hash = qt_config_model_hash(&c),
                  .params = params,
                  .n_params = m->n_params};
    qt_anchor_ckpt a, b;
    char err[512] = "";
    assert_int_equal(qt_anchor_from_train(&a, &ck, "t.h5", MX_FP8_E5M2, err, sizeof err), 0);
    assert_int_equal(qt_anchor_from_model(&b, m, true, MX_FP8_E5M2, MX_ROUND_NEAREST, text, 9,
                                          ck.model_hash, err, sizeof err),
                     0);
    assert_int_equal(a.rounding, MX_ROUND_NEAREST);
    assert_int_equal(a.n, b.n);
    assert_true(qt_anchor_head_quantized(&a, m)); /* tied: wte, per quant.quantize_head */
    for (size_t i = 0; i < a.n; i++) {
        assert_string_equal(a.t[i].name, b.t[i].name);
        assert_int_equal(a.t[i].quantized, b.t[i].quantized);
        size_t n = (size_t)a.t[i].shape[0] * (size_t)(a.t[i].ndim == 2 ? a.t[i].shape[1] : 1);
        if (a.t[i].quantized)
            assert_memory_equal(a.t[i].codes, b.t[i].codes, n);
        else
            assert_memory_equal(a.t[i].data, b.t[i].data, n * sizeof(float));
    }
    qt_anchor_free(&b);
    qt_anchor_free(&a);

    ck.model_hash ^= 1;
    assert_int_equal(qt_anchor_from_train(&a, &ck, "t.h5", MX_INT8, err, sizeof err), -1);
    assert_has(err, "t.h5: model_hash");
    ck.model_hash ^= 1;
    assert_int_equal(qt_anchor_from_train(&a, &ck, "t.h5", MX_INT4, err, sizeof err), -1);
    assert_has(err, "mxint4 is not an anchor format");
    ck.kind = QT_CKPT_ANCHOR;
    assert_int_equal(qt_anchor_from_train(&a, &ck, "t.h5", MX_INT8, err, sizeof err), -1);
    assert_has(err, "t.h5: is an anchor, not a training checkpoint");
    ck.kind = QT_CKPT_TRAIN;
    snprintf(params[3].name, sizeof params[3].name, "renamed");
    assert_int_equal(qt_anchor_from_train(&a, &ck, "t.h5", MX_INT8, err, sizeof err), -1);
    assert_has(err, "t.h5: /params/");
    assert_has(err, "is missing");
    assert_null(a.t);
    (void)f;
    free(params);
    free(text);
    qt_model_free(m);
    qt_config_free(&c);
}

/* ---- refusals ---- */

static void test_conversion_refusals(void **state) {
    (void)state;
    qt_config c;
    qtt_small_config(&c, false, false);
    qt_model *m = qtt_make_model(&c, 6);
    qt_anchor_ckpt a, low, out;
    char err[512] = "", why[256] = "";
    assert_int_equal(
        qt_anchor_from_model(&a, m, false, MX_INT4, MX_ROUND_EVEN, NULL, 0, 0, err, sizeof err),
        -1);
    assert_has(err, "mxint4 is not an anchor format");
    assert_null(a.t);
    assert_int_equal(
        qt_anchor_from_model(&a, m, false, MX_INT8, MX_ROUND_EVEN, NULL, 0, 0, err, sizeof err), 0);
    assert_int_equal(qt_anchor_check_convert(&a, MX_FP32, why, sizeof why), -1);
    assert_has(why, "fp32 (32 bits) is above mxint8 (8 bits)");
    for (int d = MX_INT8; d < MX_FORMAT_COUNT; d++) /* 8-bit anchors reach every MX format */
        assert_int_equal(qt_anchor_check_convert(&a, (mx_format)d, why, sizeof why), 0);
    assert_int_equal(qt_anchor_convert(&a, MX_FP32, &out, err, sizeof err), -1);
    assert_has(err, "cannot convert to fp32");
    assert_null(out.t);
    assert_int_equal(qt_anchor_convert(&a, MX_INT4, &low, err, sizeof err), 0);
    assert_int_equal(low.source, MX_INT8);
    assert_int_equal(qt_anchor_check_convert(&low, MX_INT8, why, sizeof why), -1);
    assert_has(why, "mxint8 (8 bits) is above mxint4 (4 bits)");
    assert_int_equal(qt_anchor_check_convert(&low, MX_FP6_E2M3, why, sizeof why), -1);
    assert_has(why, "above");
    assert_int_equal(qt_anchor_check_convert(&low, MX_INT2, why, sizeof why), -1);
    assert_has(why, "already converted (mxint8 -> mxint4)");
    assert_int_equal(qt_anchor_check_convert(&low, MX_INT4, why, sizeof why), 0); /* identity */
    assert_int_equal(qt_anchor_load_model(&low, m, MX_INT2, "low.h5", err, sizeof err), -1);
    assert_has(err, "low.h5: cannot evaluate at mxint2");

    /* A model of another shape is named tensor by tensor. */
    qt_config c2;
    qtt_small_config(&c2, false, false);
    c2.model.d_model = 64;
    char e2[256];
    qt_model *m2 = qt_model_create(&c2, e2, sizeof e2);
    assert_int_equal(qt_anchor_load_model(&a, m2, MX_INT8, "a.h5", err, sizeof err), -1);
    assert_has(err, "a.h5: /params/wte has shape [256, 48], the model needs [256, 64]");
    qt_model_free(m2);
    qt_config_free(&c2);

    qt_anchor_free(&low);
    qt_anchor_free(&a);
    qt_model_free(m);
    qt_config_free(&c);
}

int qtt_run_anchor_convert(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, qtt_tmpdir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_convert_equals_slice_and_scale),
        T(test_anchor_from_train_checkpoint),
        T(test_conversion_refusals),
    };
#undef T
    return cmocka_run_group_tests_name("anchor_convert", tests, NULL, NULL);
}
