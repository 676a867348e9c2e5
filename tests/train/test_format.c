/* test_format.c — the per-step format sampler: modes, delayed start, weights, determinism. */
#include "qttest.h"

#include "train/run/format.h"

#include <string.h>

static void init(qt_format_sampler *fs, qt_config *c, const char *sets) {
    char err[256], buf[512];
    assert_int_equal(qt_config_defaults(c), 0);
    snprintf(buf, sizeof buf, "%s", sets);
    for (char *tok = strtok(buf, "|"); tok; tok = strtok(NULL, "|"))
        assert_int_equal(qt_config_set(c, tok, err, sizeof err), 0);
    assert_int_equal(qt_format_sampler_init(fs, c, err, sizeof err), 0);
}

static void test_none_and_single(void **state) {
    (void)state;
    qt_config c;
    qt_format_sampler fs;
    data_rng r, r0;
    data_rng_seed(&r, 1, DATA_STREAM_FORMAT);
    r0 = r;
    init(&fs, &c, "quant.mode=none");
    assert_int_equal(qt_format_draw(&fs, &r, 5), MX_FP32);
    qt_config_free(&c);
    init(&fs, &c, "quant.mode=single|quant.formats=mxfp4_e2m1|quant.start_step=3");
    assert_int_equal(qt_format_draw(&fs, &r, 2), MX_FP32);
    assert_int_equal(qt_format_draw(&fs, &r, 3), MX_FP4_E2M1);
    assert_int_equal(qt_format_eval(&fs), MX_FP4_E2M1);
    assert_memory_equal(&r, &r0, sizeof r); /* no draws outside multi mode */
    qt_config_free(&c);
}

static void test_multi_weights_and_determinism(void **state) {
    (void)state;
    qt_config c;
    qt_format_sampler fs;
    init(&fs, &c,
         "quant.mode=multi|quant.formats=mxint4, mxint8|quant.format_weights=1,3|"
         "quant.start_step=10|quant.weights_via_anchor=true|quant.quantize=weights");
    assert_int_equal(fs.set.n, 2);
    assert_true(fs.set.weights[0] == 0.25 && fs.set.weights[1] == 0.75);
    qt_quant q = qt_format_quant(&fs, MX_INT4);
    assert_int_equal(q.format, MX_INT4);
    assert_int_equal(q.weights_via, MX_INT8);
    assert_false(q.activations);
    assert_int_equal(qt_format_eval(&fs), MX_FP32);
    data_rng a, b;
    data_rng_seed(&a, 42, DATA_STREAM_FORMAT);
    data_rng_seed(&b, 42, DATA_STREAM_FORMAT);
    assert_int_equal(qt_format_draw(&fs, &a, 9), MX_FP32);
    int n4 = 0;
    for (int i = 0; i < 4000; i++) {
        mx_format f = qt_format_draw(&fs, &a, 10 + i);
        assert_int_equal(f, qt_format_draw(&fs, &b, 10 + i));
        assert_true(f == MX_INT4 || f == MX_INT8);
        n4 += f == MX_INT4;
    }
    assert_in_range(n4, 900, 1100); /* 1000 expected; 3.6 sigma either side */
    qt_config_free(&c);
}

static void test_bad_lists_are_refused(void **state) {
    (void)state;
    qt_config c;
    char err[256];
    assert_int_equal(qt_config_defaults(&c), 0);
    assert_int_equal(qt_config_set(&c, "quant.format_weights=1,2", err, sizeof err), 0);
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "format_weights has 2 entries for 8 formats"));
    assert_int_equal(qt_config_set(&c, "quant.formats=mxint4,mxint4", err, sizeof err), 0);
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "'mxint4' listed twice"));
    assert_int_equal(qt_config_set(&c, "quant.formats=fp32", err, sizeof err), 0);
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "'fp32' is not an MX format"));
    assert_int_equal(qt_config_set(&c, "quant.formats=mxint4,mxint8", err, sizeof err), 0);
    assert_int_equal(qt_config_set(&c, "quant.mode=single", err, sizeof err), 0);
    assert_int_equal(qt_config_set(&c, "quant.format_weights=uniform", err, sizeof err), 0);
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "mode = single needs one"));
    assert_int_equal(qt_config_set(&c, "quant.formats=mxint4", err, sizeof err), 0);
    assert_int_equal(qt_config_set(&c, "quant.format_weights=-1", err, sizeof err), 0);
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "'-1' is not a positive number"));
    qt_config_free(&c);
}

int qtt_run_format(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none_and_single),
        cmocka_unit_test(test_multi_weights_and_determinism),
        cmocka_unit_test(test_bad_lists_are_refused),
    };
    return cmocka_run_group_tests_name("format_sampler", tests, NULL, NULL);
}
