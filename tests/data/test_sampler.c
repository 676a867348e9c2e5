/* test_sampler.c — epochs as permutations of windows, batch contents, bit-identical resume. */
#include "datatest.h"

#include <stdlib.h>

enum { T = 16, B = 5, W = 37, N = W * T + 5 }; /* 37 windows; B does not divide W */

/* Tokens with window w starting at byte value w, so every row names its window in x[0]. */
static void make_tokens(uint8_t *tok) {
    dtt_fill(tok, N, 8);
    for (int w = 0; w <= W; w++)
        tok[w * T] = (uint8_t)w;
}

static data_sampler *make(const uint8_t *tok, uint64_t seed) {
    data_rng r;
    data_rng_seed(&r, seed, DATA_STREAM_DATA);
    data_sampler *s = NULL;
    char err[256] = "";
    int rc = data_sampler_create(tok, N, B, T, &r, "toks", &s, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    return s;
}

/* The window of one row, after checking the row is exactly that window and its shift by one. */
static int row_window(const uint8_t *tok, const int32_t *x, const int32_t *y) {
    int w = x[0];
    assert_in_range(w, 0, W - 1);
    for (int t = 0; t < T; t++) {
        assert_int_equal(x[t], tok[w * T + t]);
        assert_int_equal(y[t], tok[w * T + t + 1]);
    }
    return w;
}

static void test_epochs_visit_every_window_once(void **state) {
    (void)state;
    uint8_t tok[N];
    make_tokens(tok);
    data_sampler *s = make(tok, 1);
    assert_int_equal(data_sampler_windows(s), W);

    enum { BATCHES = 30, SEEN = BATCHES * B }; /* 150 windows: four full epochs and 2 more */
    int order[SEEN];
    int32_t x[B * T], y[B * T];
    for (int k = 0; k < BATCHES; k++) {
        data_sampler_next(s, x, y);
        for (int b = 0; b < B; b++)
            order[k * B + b] = row_window(tok, x + b * T, y + b * T);
    }
    for (int e = 0; e < 4; e++) {
        int hits[W] = {0};
        for (int i = 0; i < W; i++)
            hits[order[e * W + i]]++;
        for (int w = 0; w < W; w++)
            assert_int_equal(hits[w], 1);
    }
    /* Each epoch is reshuffled. */
    assert_memory_not_equal(order, order + W, W * sizeof order[0]);
    assert_memory_not_equal(order + W, order + 2 * W, W * sizeof order[0]);

    data_sampler_state st;
    data_sampler_get_state(s, &st);
    assert_int_equal(st.epoch, 4);
    assert_int_equal(st.cursor, SEEN - 4 * W);

    /* The order is Fisher–Yates from the back with data_rng_below on the sampler's stream: the
     * checkpoint contract, recomputed here for the first two epochs. */
    data_rng r;
    data_rng_seed(&r, 1, DATA_STREAM_DATA);
    for (int e = 0; e < 2; e++) {
        int perm[W];
        for (int i = 0; i < W; i++)
            perm[i] = i;
        for (int i = W; i > 1; i--) {
            int j = (int)data_rng_below(&r, (uint64_t)i);
            int t = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = t;
        }
        assert_memory_equal(perm, order + e * W, sizeof perm);
    }
    data_sampler_free(s);
    data_sampler_free(NULL);

    /* Another seed, another order. */
    s = make(tok, 2);
    int other[W];
    for (int k = 0; k * B < W; k++) {
        data_sampler_next(s, x, y);
        for (int b = 0; b < B && k * B + b < W; b++)
            other[k * B + b] = row_window(tok, x + b * T, y + b * T);
    }
    assert_memory_not_equal(other, order, sizeof other);
    data_sampler_free(s);
}

static void test_initial_state(void **state) {
    (void)state;
    uint8_t tok[N];
    make_tokens(tok);
    data_sampler *s = make(tok, 3);
    data_sampler_state st;
    data_sampler_get_state(s, &st);
    data_rng r;
    data_rng_seed(&r, 3, DATA_STREAM_DATA);
    assert_int_equal(st.epoch, 0);
    assert_int_equal(st.cursor, 0);
    assert_memory_equal(st.rng, r.s, sizeof st.rng);
    data_sampler_free(s);
}

/* Draw n batches, save, draw m; a fresh sampler (seeded differently) restored from the saved
 * state draws the same m batches. */
static void check_resume(const uint8_t *tok, int n, int m) {
    data_sampler *a = make(tok, 9), *b = make(tok, 1000);
    int32_t x[B * T], y[B * T], x2[B * T], y2[B * T];
    for (int k = 0; k < n; k++)
        data_sampler_next(a, x, y);
    data_sampler_state st;
    data_sampler_get_state(a, &st);
    char err[256] = "";
    assert_int_equal(data_sampler_set_state(b, &st, err, sizeof err), 0);
    for (int k = 0; k < m; k++) {
        data_sampler_next(a, x, y);
        data_sampler_next(b, x2, y2);
        assert_memory_equal(x, x2, sizeof x);
        assert_memory_equal(y, y2, sizeof y);
    }
    data_sampler_state sa, sb;
    data_sampler_get_state(a, &sa);
    data_sampler_get_state(b, &sb);
    assert_memory_equal(&sa, &sb, sizeof sa);
    data_sampler_free(a);
    data_sampler_free(b);
}

static void test_resume_bit_identical(void **state) {
    (void)state;
    uint8_t tok[N];
    make_tokens(tok);
    check_resume(tok, 0, 10);
    check_resume(tok, 7, 20); /* mid-epoch, then across two epoch boundaries */
    check_resume(tok, W, 9);  /* B·W windows: exactly at an epoch start (cursor 0) */
    check_resume(tok, 50, 30);
}

static void test_bad_state_and_shapes(void **state) {
    (void)state;
    uint8_t tok[N];
    make_tokens(tok);
    data_sampler *s = make(tok, 4), *twin = make(tok, 4);
    data_sampler_state st;
    data_sampler_get_state(s, &st);
    char err[256];

    data_sampler_state bad = st;
    bad.cursor = W;
    assert_int_equal(data_sampler_set_state(s, &bad, err, sizeof err), -1);
    assert_contains(err, "cursor 37");
    assert_contains(err, "[0, 37)");
    bad = st;
    bad.epoch = -1;
    assert_int_equal(data_sampler_set_state(s, &bad, err, sizeof err), -1);
    bad = st;
    bad.cursor = -1;
    assert_int_equal(data_sampler_set_state(s, &bad, err, sizeof err), -1);
    bad = st;
    memset(bad.rng, 0, sizeof bad.rng);
    assert_int_equal(data_sampler_set_state(s, &bad, err, sizeof err), -1);
    assert_contains(err, "all zero");

    /* A failed restore leaves the sampler where it was. */
    int32_t x[B * T], y[B * T], x2[B * T], y2[B * T];
    data_sampler_next(s, x, y);
    data_sampler_next(twin, x2, y2);
    assert_memory_equal(x, x2, sizeof x);
    data_sampler_free(s);
    data_sampler_free(twin);

    data_rng r;
    data_rng_seed(&r, 1, DATA_STREAM_DATA);
    data_sampler *out = (data_sampler *)&r; /* must be reset to NULL on failure */
    assert_int_equal(data_sampler_create(tok, T, B, T, &r, "train split", &out, err, sizeof err),
                     -1);
    assert_null(out);
    assert_contains(err, "train split");
    assert_contains(err, "16 tokens");
    assert_contains(err, "seq_len+1 = 17");
    assert_int_equal(data_sampler_create(tok, N, 0, T, &r, NULL, &out, err, sizeof err), -1);
    assert_contains(err, "B=0");
    assert_int_equal(data_sampler_create(tok, N, B, 0, &r, NULL, &out, err, sizeof err), -1);
    data_rng zero = {{0, 0, 0, 0}};
    assert_int_equal(data_sampler_create(tok, N, B, T, &zero, NULL, &out, err, sizeof err), -1);

    /* The smallest stream: one window; every batch row is that window. */
    assert_int_equal(data_sampler_create(tok, T + 1, 3, T, &r, NULL, &out, err, sizeof err), 0);
    int32_t x3[3 * T], y3[3 * T];
    data_sampler_next(out, x3, y3);
    for (int b = 0; b < 3; b++)
        assert_int_equal(row_window(tok, x3 + b * T, y3 + b * T), 0);
    data_sampler_get_state(out, &st);
    assert_int_equal(st.epoch, 3);
    assert_int_equal(st.cursor, 0);
    data_sampler_free(out);
}

int dtt_run_sampler(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epochs_visit_every_window_once),
        cmocka_unit_test(test_initial_state),
        cmocka_unit_test(test_resume_bit_identical),
        cmocka_unit_test(test_bad_state_and_shapes),
    };
    return cmocka_run_group_tests_name("data_sampler", tests, NULL, NULL);
}
