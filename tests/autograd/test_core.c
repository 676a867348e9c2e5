/* test_core.c — arena, tape, no-record mode, and the scale op as the simplest gradcheck. */
#include "agtest.h"

#include <stdlib.h>
#include <string.h>

static void test_arena_alignment_and_reset(void **state) {
    (void)state;
    ag_arena *a = ag_arena_create(1024, 0);
    assert_non_null(a);
    void *p = ag_arena_alloc(a, 3), *q = ag_arena_alloc(a, 100);
    assert_int_equal((uintptr_t)p % 64, 0);
    assert_int_equal((uintptr_t)q % 64, 0);
    assert_true((char *)q - (char *)p >= 64);
    assert_int_equal(ag_arena_used(a), 64 + 128);
    ag_arena_reset(a);
    assert_int_equal(ag_arena_used(a), 0);
    assert_ptr_equal(ag_arena_alloc(a, 8), p); /* reuse from the start */
    ag_arena_free(a);
}

static void test_arena_grows_then_stops_allocating(void **state) {
    (void)state;
    ag_arena *a = ag_arena_create(4096, 0);
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < 100; i++)
            assert_non_null(ag_arena_alloc(a, 1000));
        ag_arena_reset(a);
    }
    /* One growth during step 0 plus one consolidation at its reset; none afterwards. */
    size_t grows = ag_arena_grow_count(a);
    for (int i = 0; i < 100; i++)
        assert_non_null(ag_arena_alloc(a, 1000));
    assert_int_equal(ag_arena_grow_count(a), grows);
    assert_true(ag_arena_capacity(a) >= 100 * 1024);
    ag_arena_free(a);
}

static void test_arena_limit_reports_need(void **state) {
    (void)state;
    ag_arena *a = ag_arena_create(1024, 4096);
    assert_non_null(ag_arena_alloc(a, 4000));
    assert_null(ag_arena_alloc(a, 1000));
    assert_non_null(strstr(ag_arena_error(a), "need 1024 more bytes"));
    ag_arena_reset(a);
    assert_string_equal(ag_arena_error(a), "");
    ag_arena_free(a);
}

static ag_tensor *build_scale(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_scale(t, ag_scale(t, in[0], -2.5), 0.75);
}

static void test_scale_gradcheck(void **state) {
    (void)state;
    int64_t sh[2] = {3, 5};
    ag_tensor *x = agt_rand(2, sh, -1, 1, 1, true);
    ag_tensor *in[1] = {x};
    agt_gradcheck("scale", build_scale, NULL, in, 1);
    agt_free(x);
}

static void test_no_record_mode_records_nothing(void **state) {
    (void)state;
    ag_tape *t = ag_tape_create(1 << 16, 0, 16);
    float xd[4] = {1, 2, 3, 4}, gd[4] = {0};
    int64_t sh[1] = {4};
    ag_tensor x;
    ag_tensor_wrap(&x, AG_F32, xd, gd, 1, sh);
    x.requires_grad = true;
    ag_tape_set_recording(t, false);
    ag_tensor *y = ag_scale(t, &x, 2.0);
    assert_non_null(y);
    assert_false(y->requires_grad);
    assert_int_equal(ag_tape_size(t), 0);
    assert_close(((float *)y->data)[3], 8.0, 0, 0);
    ag_tape_set_recording(t, true);
    y = ag_scale(t, &x, 2.0);
    assert_int_equal(ag_tape_size(t), 1);
    assert_int_equal(ag_backward(t, y, (float[4]){1, 1, 1, 1}), 0);
    assert_close(gd[0], 2.0, 0, 0);
    ag_tape_free(t);
}

static void test_null_propagates_on_full_arena(void **state) {
    (void)state;
    ag_tape *t = ag_tape_create(1024, 2048, 16);
    double xd[1000];
    memset(xd, 0, sizeof xd);
    int64_t sh[1] = {1000};
    ag_tensor x;
    ag_tensor_wrap(&x, AG_F64, xd, NULL, 1, sh);
    ag_tensor *y = ag_scale(t, ag_scale(t, &x, 2.0), 3.0);
    assert_null(y);
    assert_non_null(strstr(ag_tape_error(t), "arena full"));
    ag_tape_free(t);
}

int agt_run_core(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_alignment_and_reset),
        cmocka_unit_test(test_arena_grows_then_stops_allocating),
        cmocka_unit_test(test_arena_limit_reports_need),
        cmocka_unit_test(test_scale_gradcheck),
        cmocka_unit_test(test_no_record_mode_records_nothing),
        cmocka_unit_test(test_null_propagates_on_full_arena),
    };
    return cmocka_run_group_tests_name("autograd_core", tests, NULL, NULL);
}
