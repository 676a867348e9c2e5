/* test_state.c — creation checks, state tensors as named buffers, loading them, the step counter.
 */
#include "optest.h"

#include <stdlib.h>
#include <string.h>

static void test_config_defaults_and_names(void **state) {
    (void)state;
    opt_config a = opt_config_defaults(OPT_ADAMW), s = opt_config_defaults(OPT_SGD);
    assert_int_equal(a.kind, OPT_ADAMW);
    assert_true(a.beta1 == 0.9 && a.beta2 == 0.999 && a.eps == 1e-8 && a.weight_decay == 0.01);
    assert_int_equal(s.kind, OPT_SGD);
    assert_true(s.momentum == 0.0 && s.weight_decay == 0.0);
    assert_string_equal(opt_kind_name(OPT_ADAMW), "adamw");
    assert_string_equal(opt_kind_name(OPT_SGD), "sgd");
    assert_string_equal(opt_kind_name(OPT_KIND_COUNT), "unknown");
    assert_string_equal(opt_schedule_name(OPT_SCHED_COSINE), "cosine");
    assert_string_equal(opt_schedule_name(OPT_SCHED_LINEAR), "linear");
    assert_string_equal(opt_schedule_name(OPT_SCHED_CONSTANT), "constant");
}

static void test_adamw_state_layout(void **state) {
    (void)state;
    float a[5], ag[5], b[1], bg[1];
    opt_param ps[3] = {{"h.0.attn.wq", a, ag, 5, true},
                       {"empty", NULL, NULL, 0, true},
                       {"ln_f.bias", b, bg, 1, false}};
    opt_config c = opt_config_defaults(OPT_ADAMW);
    char err[256] = "";
    opt_optimizer *o = opt_create(&c, ps, 3, err, sizeof err);
    assert_non_null(o);
    assert_string_equal(err, "");
    assert_int_equal(opt_state_count(o), 6);
    const char *names[6] = {"h.0.attn.wq/m", "h.0.attn.wq/v", "empty/m",
                            "empty/v",       "ln_f.bias/m",   "ln_f.bias/v"};
    const size_t numel[6] = {5, 5, 0, 0, 1, 1};
    for (size_t i = 0; i < 6; i++) {
        const opt_state *s = opt_state_at(o, i);
        assert_non_null(s);
        assert_string_equal(s->name, names[i]);
        assert_int_equal(s->numel, numel[i]);
        assert_int_equal((uintptr_t)s->data % 64, 0);
        for (size_t j = 0; j < s->numel; j++)
            assert_true(s->data[j] == 0.0f);
    }
    assert_null(opt_state_at(o, 6));
    assert_int_equal(opt_get_config(o)->kind, OPT_ADAMW);
    /* A step over a zero-element parameter is harmless. */
    memset(ag, 0, sizeof ag);
    bg[0] = 0;
    opt_step(o, 1e-3);
    opt_free(o);
    opt_free(NULL);
}

static void test_state_load(void **state) {
    (void)state;
    float a[4], ag[4];
    opt_param ps[1] = {{"wte", a, ag, 4, false}};
    opt_config c = opt_config_defaults(OPT_ADAMW);
    char err[256];
    opt_optimizer *o = opt_create(&c, ps, 1, err, sizeof err);
    const float v[4] = {1, 2, 3, 4};
    assert_int_equal(opt_state_load(o, "wte/v", v, 4, err, sizeof err), 0);
    assert_memory_equal(opt_state_at(o, 1)->data, v, sizeof v);
    assert_true(opt_state_at(o, 0)->data[0] == 0.0f); /* m untouched */

    assert_int_equal(opt_state_load(o, "wte/m", v, 3, err, sizeof err), -1);
    assert_string_equal(err, "optimizer state 'wte/m' has 3 elements, expected 4 "
                             "(the parameter's size)");
    assert_int_equal(opt_state_load(o, "lm_head/m", v, 4, err, sizeof err), -1);
    assert_string_equal(err, "optimizer state 'lm_head/m' does not fit this optimizer: none of its "
                             "1 parameters is named 'lm_head'");
    assert_int_equal(opt_state_load(o, "wte/momentum", v, 4, err, sizeof err), -1);
    assert_string_equal(err, "optimizer state 'wte/momentum' does not fit this optimizer: adamw "
                             "keeps 'wte/m' and 'wte/v' for that parameter");
    assert_int_equal(opt_state_load(o, NULL, v, 4, err, sizeof err), -1);
    assert_non_null(strstr(err, "NULL"));
    opt_free(o);
}

static void test_step_counter(void **state) {
    (void)state;
    float a[1] = {0}, ag[1] = {0};
    opt_param ps[1] = {{"a", a, ag, 1, true}};
    opt_config c = opt_config_defaults(OPT_ADAMW);
    char err[256];
    opt_optimizer *o = opt_create(&c, ps, 1, err, sizeof err);
    assert_int_equal(opt_get_step(o), 0);
    opt_step(o, 1e-3);
    opt_step(o, 1e-3);
    assert_int_equal(opt_get_step(o), 2);
    opt_set_step(o, 123456789012LL);
    assert_true(opt_get_step(o) == 123456789012LL);
    opt_set_step(o, -5);
    assert_int_equal(opt_get_step(o), 0);
    opt_free(o);
}

/* Each rejected configuration returns NULL and a message naming the culprit. */
static void expect_create_error(const opt_config *c, const opt_param *ps, size_t n,
                                const char *needle) {
    char err[256] = "";
    opt_optimizer *o = opt_create(c, ps, n, err, sizeof err);
    if (o || !strstr(err, needle)) {
        print_error("expected an error containing \"%s\", got %s \"%s\"\n", needle,
                    o ? "an optimizer and" : "NULL and", err);
        opt_free(o);
        fail();
    }
}

static void test_create_rejects_bad_input(void **state) {
    (void)state;
    float a[2], ag[2];
    opt_param ok[1] = {{"a", a, ag, 2, true}};
    opt_config c = opt_config_defaults(OPT_ADAMW);

    expect_create_error(NULL, ok, 1, "config is NULL");
    opt_config bad = c;
    bad.beta1 = 1.0;
    expect_create_error(&bad, ok, 1, "adamw beta1 = 1: must be in [0, 1)");
    bad = c;
    bad.beta2 = -0.1;
    expect_create_error(&bad, ok, 1, "adamw beta2 = -0.1: must be in [0, 1)");
    bad = c;
    bad.eps = 0.0;
    expect_create_error(&bad, ok, 1, "adamw eps = 0: must be > 0");
    bad = c;
    bad.eps = NAN;
    expect_create_error(&bad, ok, 1, "eps = nan");
    bad = c;
    bad.weight_decay = -1e-3;
    expect_create_error(&bad, ok, 1, "weight_decay = -0.001");
    bad = opt_config_defaults(OPT_SGD);
    bad.momentum = 1.0;
    expect_create_error(&bad, ok, 1, "sgd momentum = 1: must be in [0, 1)");
    bad.kind = OPT_KIND_COUNT;
    expect_create_error(&bad, ok, 1, "unknown optimizer kind 2");

    expect_create_error(&c, NULL, 1, "params is NULL but n = 1");
    opt_param unnamed[2] = {{"a", a, ag, 2, true}, {NULL, a, ag, 2, true}};
    expect_create_error(&c, unnamed, 2, "parameter 1 has no name");
    opt_param empty[1] = {{"", a, ag, 2, true}};
    expect_create_error(&c, empty, 1, "parameter 0 has no name");
    opt_param nograd[1] = {{"h.1.mlp.up", a, NULL, 2, true}};
    expect_create_error(&c, nograd, 1, "parameter 'h.1.mlp.up' (2 elements) has a NULL grad");
    opt_param nodata[1] = {{"h.1.mlp.up", NULL, ag, 2, true}};
    expect_create_error(&c, nodata, 1, "has a NULL data");
    opt_param dup[3] = {{"x", a, ag, 1, true}, {"y", a, ag, 1, true}, {"x", a, ag, 1, true}};
    expect_create_error(&c, dup, 3, "parameters 0 and 2 are both named 'x'");

    /* No parameters at all is valid: nothing to do. */
    char err[64];
    opt_optimizer *o = opt_create(&c, NULL, 0, err, sizeof err);
    assert_non_null(o);
    assert_int_equal(opt_state_count(o), 0);
    opt_step(o, 1e-3);
    opt_free(o);
}

int optt_run_state(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults_and_names),
        cmocka_unit_test(test_adamw_state_layout),
        cmocka_unit_test(test_state_load),
        cmocka_unit_test(test_step_counter),
        cmocka_unit_test(test_create_rejects_bad_input),
    };
    return cmocka_run_group_tests_name("optim_state", tests, NULL, NULL);
}
