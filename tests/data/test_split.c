/* test_split.c — the evenly spaced block split. */
#include "datatest.h"

#include <stdlib.h>

#define BLK DATA_SPLIT_BLOCK

static void test_block_rule(void **state) {
    (void)state;
    /* f = 0.2: blocks 4, 9, 14, ... (floor((i+1)/5) steps up after every fifth block). */
    for (size_t i = 0; i < 50; i++)
        assert_int_equal(data_split_block_is_val(i, 0.2), i % 5 == 4);
    /* f = 0.1 over 1000 blocks: exactly 100 val blocks, exactly 10 apart — spread over the
     * whole stream, not bunched at one end. */
    size_t count = 0, last = 0;
    for (size_t i = 0; i < 1000; i++)
        if (data_split_block_is_val(i, 0.1)) {
            if (count > 0)
                assert_int_equal(i - last, 10);
            else
                assert_int_equal(i, 9);
            last = i;
            count++;
        }
    assert_int_equal(count, 100);
    /* f = 0.3: 3 of every 10 blocks. */
    count = 0;
    for (size_t i = 0; i < 1000; i++)
        count += (size_t)data_split_block_is_val(i, 0.3);
    assert_int_equal(count, 300);
}

static void test_split_contents(void **state) {
    (void)state;
    const size_t n = 10 * BLK + 100; /* 11 blocks, the last one partial */
    uint8_t *b = malloc(n);
    dtt_fill(b, n, 3);
    data_split s;
    char err[512] = "";
    assert_int_equal(data_split_make(b, n, 0.2, 64, "mem", &s, err, sizeof err), 0);
    /* val = blocks 4 and 9; train = blocks 0-3, 5-8, 10 (100 bytes) in order. */
    assert_int_equal(s.n_val, 2 * BLK);
    assert_int_equal(s.n_train, n - 2 * BLK);
    assert_memory_equal(s.val, b + 4 * BLK, BLK);
    assert_memory_equal(s.val + BLK, b + 9 * BLK, BLK);
    assert_memory_equal(s.train, b, 4 * BLK);
    assert_memory_equal(s.train + 4 * BLK, b + 5 * BLK, 4 * BLK);
    assert_memory_equal(s.train + 8 * BLK, b + 10 * BLK, 100);
    data_split_free(&s);
    assert_null(s.train);
    assert_null(s.val);
    assert_int_equal(s.n_train + s.n_val, 0);
    data_split_free(&s);
    data_split_free(NULL);

    /* Deterministic: the same input gives the same split. */
    data_split s2;
    assert_int_equal(data_split_make(b, n, 0.2, 64, "mem", &s, err, sizeof err), 0);
    assert_int_equal(data_split_make(b, n, 0.2, 64, "mem", &s2, err, sizeof err), 0);
    assert_int_equal(s.n_val, s2.n_val);
    assert_memory_equal(s.val, s2.val, s.n_val);
    assert_memory_equal(s.train, s2.train, s.n_train);
    data_split_free(&s);
    data_split_free(&s2);
    free(b);
}

static void test_partial_val_block_and_too_short(void **state) {
    (void)state;
    const size_t n = BLK + 10;
    uint8_t *b = malloc(n);
    dtt_fill(b, n, 4);
    data_split s;
    char err[512] = "";
    /* f = 0.5: block 0 train, block 1 (10 bytes) val. */
    assert_int_equal(data_split_make(b, n, 0.5, 9, "tiny.txt", &s, err, sizeof err), 0);
    assert_int_equal(s.n_train, BLK);
    assert_int_equal(s.n_val, 10);
    assert_memory_equal(s.val, b + BLK, 10);
    data_split_free(&s);

    /* seq_len 10 needs 11 bytes per split. */
    assert_int_equal(data_split_make(b, n, 0.5, 10, "tiny.txt", &s, err, sizeof err), -1);
    assert_contains(err, "tiny.txt");
    assert_contains(err, "train 4096 bytes and val 10 bytes");
    assert_contains(err, "seq_len+1 = 11");
    assert_null(s.train);
    assert_null(s.val);

    /* A corpus shorter than 1/f blocks has no val block at all. */
    assert_int_equal(data_split_make(b, n, 0.1, 10, NULL, &s, err, sizeof err), -1);
    assert_contains(err, "val 0 bytes");
    free(b);
}

static void test_bad_fraction(void **state) {
    (void)state;
    uint8_t b[100] = {0};
    data_split s;
    char err[512];
    const double bad[] = {0.0, 1.0, -0.1, 1.5, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(data_split_make(b, sizeof b, bad[i], 4, "x.txt", &s, err, sizeof err), -1);
        assert_contains(err, "x.txt");
        assert_contains(err, "val_fraction must be in (0, 1)");
    }
}

int dtt_run_split(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_rule),
        cmocka_unit_test(test_split_contents),
        cmocka_unit_test(test_partial_val_block_and_too_short),
        cmocka_unit_test(test_bad_fraction),
    };
    return cmocka_run_group_tests_name("data_split", tests, NULL, NULL);
}
