/* test_val.c — fixed, wrapping validation batches. */
#include "datatest.h"

enum { T = 16, W = 10, N = W * T + 1 }; /* exactly 10 windows */

static void check_row(const uint8_t *val, const int32_t *x, const int32_t *y, int w) {
    for (int t = 0; t < T; t++) {
        assert_int_equal(x[t], val[w * T + t]);
        assert_int_equal(y[t], val[w * T + t + 1]);
    }
}

static void test_count(void **state) {
    (void)state;
    assert_int_equal(data_val_batch_count(N, 4, T), 3); /* ceil(10 / 4) */
    assert_int_equal(data_val_batch_count(N, 5, T), 2);
    assert_int_equal(data_val_batch_count(N, 10, T), 1);
    assert_int_equal(data_val_batch_count(N, 11, T), 1);
    assert_int_equal(data_val_batch_count(N - 1, 1, T), 9); /* the last window lost its target */
    assert_int_equal(data_val_batch_count(T + 1, 1, T), 1);
    assert_int_equal(data_val_batch_count(T, 1, T), 0);
    assert_int_equal(data_val_batch_count(N, 0, T), 0);
    assert_int_equal(data_val_batch_count(N, 1, 0), 0);
}

static void test_batches(void **state) {
    (void)state;
    uint8_t val[N];
    dtt_fill(val, N, 21);
    enum { B = 4 };
    int32_t x[B * T], y[B * T], x2[B * T], y2[B * T];
    /* Batch k, row b = window (4k + b) mod 10: batch 2 wraps to windows 8, 9, 0, 1. */
    static const int expect[3][B] = {{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 0, 1}};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(data_val_batch(val, N, B, T, (size_t)k, x, y), 0);
        for (int b = 0; b < B; b++)
            check_row(val, x + b * T, y + b * T, expect[k][b]);
    }
    /* Indices past the count cycle through the same batches. */
    assert_int_equal(data_val_batch(val, N, B, T, 3, x, y), 0);
    assert_int_equal(data_val_batch(val, N, B, T, 0, x2, y2), 0);
    assert_memory_equal(x, x2, sizeof x);
    assert_memory_equal(y, y2, sizeof y);
    assert_int_equal(data_val_batch(val, N, B, T, 3 * 1000 + 2, x, y), 0);
    for (int b = 0; b < B; b++)
        check_row(val, x + b * T, y + b * T, expect[2][b]);

    /* B larger than the number of windows wraps within one batch. */
    int32_t xb[12 * T], yb[12 * T];
    assert_int_equal(data_val_batch(val, N, 12, T, 0, xb, yb), 0);
    for (int b = 0; b < 12; b++)
        check_row(val, xb + b * T, yb + b * T, b % W);

    /* Too short: nothing written. */
    x[0] = -7;
    assert_int_equal(data_val_batch(val, T, 1, T, 0, x, y), -1);
    assert_int_equal(x[0], -7);
    assert_int_equal(data_val_batch(val, N, 0, T, 0, x, y), -1);
}

int dtt_run_val(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_batches),
    };
    return cmocka_run_group_tests_name("data_val", tests, NULL, NULL);
}
