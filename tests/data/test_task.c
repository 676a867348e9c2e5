/* test_task.c — arithmetic tasks: generation, the held-out eval set, exact-match reward, batches.
 */
#include "datatest.h"

#include <stdlib.h>

static data_task_cfg cfg_of(int kind, int lo, int hi) {
    data_task_cfg c = {kind, lo, hi};
    return c;
}

static int digits_of(uint64_t v) {
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* The problem is internally consistent: prompt and answer are exactly the decimal forms. */
static void check_problem(const data_task_problem *p) {
    char want[64];
    assert_true(p->op == '+' || p->op == '*');
    uint64_t r = p->op == '+' ? p->a + p->b : p->a * p->b;
    assert_true(p->result == r);
    snprintf(want, sizeof want, "%llu%c%llu=", (unsigned long long)p->a, p->op,
             (unsigned long long)p->b);
    assert_string_equal(p->prompt, want);
    assert_int_equal(p->prompt_len, strlen(want));
    snprintf(want, sizeof want, "%llu", (unsigned long long)r);
    assert_string_equal(p->answer, want);
    assert_int_equal(p->answer_len, strlen(want));
}

static void test_names_and_defaults(void **state) {
    (void)state;
    assert_string_equal(data_task_kind_name(DATA_TASK_ADD), "add");
    assert_string_equal(data_task_kind_name(DATA_TASK_MUL), "mul");
    assert_string_equal(data_task_kind_name(DATA_TASK_MIXED), "mixed");
    assert_string_equal(data_task_kind_name(7), "?");
    assert_string_equal(data_task_kind_name(-1), "?");
    for (int k = 0; k < DATA_TASK_KIND_COUNT; k++)
        assert_int_equal(data_task_kind_from_name(data_task_kind_name(k)), k);
    assert_int_equal(data_task_kind_from_name("Add"), -1);
    assert_int_equal(data_task_kind_from_name(NULL), -1);
    assert_string_equal(data_task_parse_status_name(DATA_TASK_PARSE_OK), "ok");
    assert_string_equal(data_task_parse_status_name(DATA_TASK_PARSE_NO_TERMINATOR),
                        "no_terminator");
    assert_string_equal(data_task_parse_status_name(99), "?");

    data_task_cfg c;
    data_task_cfg_default(&c);
    assert_int_equal(c.kind, DATA_TASK_ADD);
    assert_int_equal(c.min_digits, 2);
    assert_int_equal(c.max_digits, 2);
    char err[256] = "";
    assert_int_equal(data_task_cfg_validate(&c, err, sizeof err), 0);
}

static void test_validate_messages(void **state) {
    (void)state;
    static const struct {
        data_task_cfg c;
        const char *msg;
    } bad[] = {
        {{3, 2, 2}, "task.kind = 3 is not a task kind (expected add, mul or mixed)"},
        {{-1, 2, 2}, "task.kind = -1"},
        {{DATA_TASK_ADD, 0, 2}, "task.min_digits = 0 is outside [1, 9]"},
        {{DATA_TASK_ADD, 10, 10}, "task.min_digits = 10 is outside [1, 9]"},
        {{DATA_TASK_MUL, 1, 10}, "task.max_digits = 10 is outside [1, 9]"},
        {{DATA_TASK_MUL, 1, 0}, "task.max_digits = 0 is outside [1, 9]"},
        {{DATA_TASK_MIXED, 3, 2},
         "task.min_digits = 3 > task.max_digits = 2 (need min_digits "
         "<= max_digits)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        assert_int_equal(data_task_cfg_validate(&bad[i].c, err, sizeof err), -1);
        assert_contains(err, bad[i].msg);
        assert_int_equal(data_task_cfg_validate(&bad[i].c, NULL, 0), -1); /* NULL err is fine */
        assert_int_equal(data_task_max_len(&bad[i].c), 0);
        /* Every entry point refuses it, leaving the rng alone. */
        data_rng r, r0;
        data_rng_seed(&r, 1, DATA_STREAM_DATA);
        r0 = r;
        data_task_problem p;
        assert_int_equal(data_task_next(&bad[i].c, &r, &p), -1);
        err[0] = '\0';
        assert_int_equal(data_task_prompts(&bad[i].c, &r, 1, NULL, 0, &p, err, sizeof err), -1);
        assert_contains(err, bad[i].msg);
        int32_t x[32], y[32];
        err[0] = '\0';
        assert_int_equal(data_task_sft_batch(&bad[i].c, &r, 1, 32, NULL, 0, x, y, err, sizeof err),
                         -1);
        assert_contains(err, bad[i].msg);
        err[0] = '\0';
        assert_int_equal(data_task_eval_set(&bad[i].c, 1, 5, &p, err, sizeof err), -1);
        assert_contains(err, bad[i].msg);
        assert_memory_equal(&r, &r0, sizeof r);
    }
    /* Edges are valid. */
    data_task_cfg ok[] = {cfg_of(DATA_TASK_ADD, 1, 1), cfg_of(DATA_TASK_MIXED, 1, 9),
                          cfg_of(DATA_TASK_MUL, 9, 9)};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(data_task_cfg_validate(&ok[i], NULL, 0), 0);
}

static void test_make(void **state) {
    (void)state;
    data_task_problem p;
    assert_int_equal(data_task_make('+', 12, 34, &p), 0);
    assert_string_equal(p.prompt, "12+34=");
    assert_int_equal(p.prompt_len, 6);
    assert_string_equal(p.answer, "46");
    assert_int_equal(p.answer_len, 2);
    assert_true(p.result == 46);
    assert_int_equal(data_task_make('*', 0, 7, &p), 0);
    assert_string_equal(p.prompt, "0*7=");
    assert_string_equal(p.answer, "0");
    assert_int_equal(data_task_make('*', 999999999, 999999999, &p), 0);
    assert_string_equal(p.prompt, "999999999*999999999=");
    assert_string_equal(p.answer, "999999998000000001");
    assert_int_equal(data_task_make('-', 1, 2, &p), -1);
    assert_int_equal(data_task_make('+', 1000000000, 2, &p), -1);
    assert_int_equal(data_task_make('+', 2, 1000000000, &p), -1);
}

static void test_max_len(void **state) {
    (void)state;
    data_task_cfg c = cfg_of(DATA_TASK_ADD, 2, 2);
    assert_int_equal(data_task_max_len(&c), 10); /* "99+99=198\n" */
    c = cfg_of(DATA_TASK_MUL, 1, 2);
    assert_int_equal(data_task_max_len(&c), 11); /* "99*99=9801\n" */
    c = cfg_of(DATA_TASK_MIXED, 2, 2);
    assert_int_equal(data_task_max_len(&c), 11);
    c = cfg_of(DATA_TASK_ADD, 1, 1);
    assert_int_equal(data_task_max_len(&c), 7); /* "9+9=18\n" */
    c = cfg_of(DATA_TASK_MUL, 9, 9);
    assert_int_equal(data_task_max_len(&c), 20 + 18 + 1);
}

/* Draw many problems and check digit ranges, leading zeros, answers and op choice. */
static void check_stream(data_task_cfg c, int n, int *n_add, int *n_mul, int *digit_hist) {
    data_rng r;
    data_rng_seed(&r, 77, DATA_STREAM_DATA);
    for (int i = 0; i < n; i++) {
        data_task_problem p;
        assert_int_equal(data_task_next(&c, &r, &p), 0);
        check_problem(&p);
        if (c.kind == DATA_TASK_ADD)
            assert_int_equal(p.op, '+');
        if (c.kind == DATA_TASK_MUL)
            assert_int_equal(p.op, '*');
        *n_add += p.op == '+';
        *n_mul += p.op == '*';
        int da = digits_of(p.a), db = digits_of(p.b);
        assert_in_range(da, c.min_digits, c.max_digits);
        assert_in_range(db, c.min_digits, c.max_digits);
        digit_hist[da]++;
        digit_hist[db]++;
        /* No leading zero: the prompt starts with a nonzero digit unless the operand is 0. */
        assert_true(p.prompt[0] != '0' || p.a == 0);
        assert_true(p.answer[0] != '0' || p.result == 0);
        assert_int_equal(p.prompt_len + p.answer_len + 1 <= data_task_max_len(&c), 1);
    }
}

static void test_ranges_and_answers(void **state) {
    (void)state;
    enum { N = 4000 };
    int hist[DATA_TASK_MAX_DIGITS + 1];
    int na = 0, nm = 0;

    memset(hist, 0, sizeof hist);
    check_stream(cfg_of(DATA_TASK_ADD, 2, 2), N, &na, &nm, hist);
    assert_int_equal(na, N);
    assert_int_equal(hist[2], 2 * N);

    na = nm = 0;
    memset(hist, 0, sizeof hist);
    check_stream(cfg_of(DATA_TASK_MUL, 1, 3), N, &na, &nm, hist);
    assert_int_equal(nm, N);
    /* Digit counts are uniform over 1..3: each about 2N/3 of 2N operands. */
    for (int d = 1; d <= 3; d++)
        assert_in_range(hist[d], 2 * N / 3 - 300, 2 * N / 3 + 300);

    na = nm = 0;
    memset(hist, 0, sizeof hist);
    check_stream(cfg_of(DATA_TASK_MIXED, 1, 9), N, &na, &nm, hist);
    assert_int_equal(na + nm, N);
    assert_in_range(na, N / 2 - 200, N / 2 + 200);
    for (int d = 1; d <= 9; d++)
        assert_true(hist[d] > 0);

    /* 1-digit operands include 0 and 9 (the whole range [0, 10)). */
    data_task_cfg c = cfg_of(DATA_TASK_ADD, 1, 1);
    data_rng r;
    data_rng_seed(&r, 3, DATA_STREAM_DATA);
    int seen[10] = {0};
    for (int i = 0; i < 500; i++) {
        data_task_problem p;
        assert_int_equal(data_task_next(&c, &r, &p), 0);
        seen[p.a]++;
    }
    for (int v = 0; v < 10; v++)
        assert_true(seen[v] > 0);
}

static void test_determinism(void **state) {
    (void)state;
    data_task_cfg c = cfg_of(DATA_TASK_MIXED, 1, 4);
    enum { N = 64 };
    data_task_problem p1[N], p2[N], p3[N];
    data_rng r1, r2, r3;
    data_rng_seed(&r1, 42, DATA_STREAM_DATA);
    data_rng_seed(&r2, 42, DATA_STREAM_DATA);
    data_rng_seed(&r3, 43, DATA_STREAM_DATA);
    char err[256] = "";
    assert_int_equal(data_task_prompts(&c, &r1, N, NULL, 0, p1, err, sizeof err), 0);
    assert_int_equal(data_task_prompts(&c, &r2, N, NULL, 0, p2, err, sizeof err), 0);
    assert_int_equal(data_task_prompts(&c, &r3, N, NULL, 0, p3, err, sizeof err), 0);
    int differ = 0;
    for (int i = 0; i < N; i++) {
        assert_true(p1[i].a == p2[i].a && p1[i].b == p2[i].b && p1[i].op == p2[i].op);
        assert_string_equal(p1[i].prompt, p2[i].prompt);
        differ += p1[i].a != p3[i].a || p1[i].b != p3[i].b || p1[i].op != p3[i].op;
    }
    assert_true(differ > N / 2);
    assert_memory_equal(&r1, &r2, sizeof r1);

    /* data_task_prompts is data_task_next n times. */
    data_rng_seed(&r1, 42, DATA_STREAM_DATA);
    for (int i = 0; i < N; i++) {
        data_task_problem p;
        assert_int_equal(data_task_next(&c, &r1, &p), 0);
        assert_string_equal(p.prompt, p2[i].prompt);
    }
}

/* Pinned: the first problems of the eval set of seed 1234. These are part of the contract (eval
 * scores across runs and versions compare only while the set stays the same). */
static void test_eval_set_pinned_and_independent(void **state) {
    (void)state;
    data_task_cfg c = cfg_of(DATA_TASK_ADD, 2, 2);
    enum { N = 200 };
    data_task_problem *e1 = calloc(N, sizeof *e1), *e2 = calloc(N, sizeof *e2);
    assert_non_null(e1);
    assert_non_null(e2);
    char err[256] = "";
    assert_int_equal(data_task_eval_set(&c, N, 1234, e1, err, sizeof err), 0);
    static const char *const pinned[] = {
        "61+34=", "63+85=", "43+80=", "35+58=", "61+90=", "51+30=", "49+89=", "29+94="};
    for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++)
        assert_string_equal(e1[i].prompt, pinned[i]);
    /* And for mixed 1..3 digits (op draw, digit-count draws, value draws). */
    data_task_cfg m = cfg_of(DATA_TASK_MIXED, 1, 3);
    static const char *const pinned_mixed[] = {
        "8*3=", "85*3=", "84+82=", "61+90=", "785+395=", "359*29=", "5+93=", "76*13="};
    assert_int_equal(data_task_eval_set(&m, 8, 1234, e2, err, sizeof err), 0);
    for (size_t i = 0; i < 8; i++)
        assert_string_equal(e2[i].prompt, pinned_mixed[i]);

    /* Stable across calls, whatever the training stream has drawn in between. */
    data_rng train;
    data_rng_seed(&train, 1234, DATA_STREAM_DATA);
    data_task_problem junk[37];
    assert_int_equal(data_task_prompts(&c, &train, 37, NULL, 0, junk, err, sizeof err), 0);
    assert_int_equal(data_task_eval_set(&c, N, 1234, e2, err, sizeof err), 0);
    for (int i = 0; i < N; i++) {
        check_problem(&e1[i]);
        assert_string_equal(e1[i].prompt, e2[i].prompt);
    }
    /* A prefix of a bigger set is the smaller set. */
    assert_int_equal(data_task_eval_set(&c, 10, 1234, e2, err, sizeof err), 0);
    for (int i = 0; i < 10; i++)
        assert_string_equal(e1[i].prompt, e2[i].prompt);
    /* Not the training stream of the same seed. */
    int same = 0;
    for (int i = 0; i < 37; i++)
        same += strcmp(junk[i].prompt, e1[i].prompt) == 0;
    assert_true(same < 3);
    /* Distinct problems. */
    for (int i = 0; i < N; i++)
        assert_int_equal(data_task_in_set(e1, (size_t)i, &e1[i]), 0);
    /* Another seed gives another set. */
    assert_int_equal(data_task_eval_set(&c, N, 1235, e2, err, sizeof err), 0);
    int differ = 0;
    for (int i = 0; i < N; i++)
        differ += strcmp(e1[i].prompt, e2[i].prompt) != 0;
    assert_true(differ > N / 2);
    free(e1);
    free(e2);
}

static void test_eval_set_full_space(void **state) {
    (void)state;
    /* 1-digit mixed has exactly 2·10·10 problems: all can be drawn, one more cannot. */
    data_task_cfg c = cfg_of(DATA_TASK_MIXED, 1, 1);
    data_task_problem e[201];
    char err[256] = "";
    assert_int_equal(data_task_eval_set(&c, 200, 9, e, err, sizeof err), 0);
    int seen[2][10][10];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 200; i++)
        seen[e[i].op == '*'][e[i].a][e[i].b]++;
    for (int o = 0; o < 2; o++)
        for (int a = 0; a < 10; a++)
            for (int b = 0; b < 10; b++)
                assert_int_equal(seen[o][a][b], 1);
    assert_int_equal(data_task_eval_set(&c, 201, 9, e, err, sizeof err), -1);
    assert_contains(err, "201 distinct problems asked, but mixed with 1..1 digits has only 200");
    c = cfg_of(DATA_TASK_ADD, 2, 2);
    assert_int_equal(data_task_eval_set(&c, 0, 9, e, err, sizeof err), 0);

    /* A held-out set covering everything: batches report instead of looping. */
    c = cfg_of(DATA_TASK_MIXED, 1, 1);
    data_rng r;
    data_rng_seed(&r, 1, DATA_STREAM_DATA);
    data_task_problem p;
    assert_int_equal(data_task_prompts(&c, &r, 1, e, 200, &p, err, sizeof err), -1);
    assert_contains(err, "1000 problems in a row were in the held-out set of 200");
    int32_t x[16], y[16];
    assert_int_equal(data_task_sft_batch(&c, &r, 1, 16, e, 200, x, y, err, sizeof err), -1);
    assert_contains(err, "held-out set");
}

static void test_held_out_excluded(void **state) {
    (void)state;
    /* 1-digit addition (100 problems) with half held out: batches never contain them. */
    data_task_cfg c = cfg_of(DATA_TASK_ADD, 1, 1);
    data_task_problem e[50];
    char err[256] = "";
    assert_int_equal(data_task_eval_set(&c, 50, 4, e, err, sizeof err), 0);
    data_rng r;
    data_rng_seed(&r, 5, DATA_STREAM_DATA);
    data_task_problem p[300];
    assert_int_equal(data_task_prompts(&c, &r, 300, e, 50, p, err, sizeof err), 0);
    for (int i = 0; i < 300; i++)
        assert_int_equal(data_task_in_set(e, 50, &p[i]), 0);
    /* Without the held-out set the same stream does hit them. */
    data_rng_seed(&r, 5, DATA_STREAM_DATA);
    assert_int_equal(data_task_prompts(&c, &r, 300, NULL, 0, p, err, sizeof err), 0);
    int hits = 0;
    for (int i = 0; i < 300; i++)
        hits += data_task_in_set(e, 50, &p[i]);
    assert_true(hits > 50);

    /* in_set matches op and operands in order. */
    data_task_problem q, set[2];
    data_task_make('+', 12, 34, &set[0]);
    data_task_make('*', 5, 6, &set[1]);
    data_task_make('+', 12, 34, &q);
    assert_int_equal(data_task_in_set(set, 2, &q), 1);
    data_task_make('+', 34, 12, &q);
    assert_int_equal(data_task_in_set(set, 2, &q), 0);
    data_task_make('*', 12, 34, &q);
    assert_int_equal(data_task_in_set(set, 2, &q), 0);
    data_task_make('*', 5, 6, &q);
    assert_int_equal(data_task_in_set(set, 2, &q), 1);
    assert_int_equal(data_task_in_set(set, 1, &q), 0);
    assert_int_equal(data_task_in_set(NULL, 0, &q), 0);
}

static double reward_str(const data_task_problem *p, const char *s) {
    return data_task_reward(p, (const uint8_t *)s, strlen(s));
}

static void test_reward(void **state) {
    (void)state;
    data_task_problem p;
    data_task_make('+', 12, 34, &p);
    assert_true(reward_str(&p, "46\n") == 1.0);
    assert_true(reward_str(&p, "46\nanything after the terminator") == 1.0);
    assert_true(reward_str(&p, "46\n47\n") == 1.0);
    static const char *const wrong[] = {
        "47\n",  "4\n",   "64\n",  "460\n", "046\n", "46",    "4",      "",       "\n",
        " 46\n", "46 \n", "+46\n", "46x\n", "4 6\n", "-46\n", "46.0\n", "\n46\n", "x",
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++)
        if (reward_str(&p, wrong[i]) != 0.0) {
            print_error("completion \"%s\" rewarded\n", wrong[i]);
            fail();
        }
    assert_true(data_task_reward(&p, NULL, 0) == 0.0);
    /* n bounds what is read: "46\n" cut before the terminator is no answer. */
    assert_true(data_task_reward(&p, (const uint8_t *)"46\n", 2) == 0.0);

    /* Zero is "0" and only "0". */
    data_task_make('*', 0, 57, &p);
    assert_true(reward_str(&p, "0\n") == 1.0);
    assert_true(reward_str(&p, "00\n") == 0.0);
    assert_true(reward_str(&p, "\n") == 0.0);
    /* The largest answers. */
    data_task_make('*', 999999999, 999999999, &p);
    assert_true(reward_str(&p, "999999998000000001\n") == 1.0);
    assert_true(reward_str(&p, "999999998000000002\n") == 0.0);
}

static data_task_parse_status parse_str(const char *s, uint64_t *v) {
    return data_task_parse_answer((const uint8_t *)s, strlen(s), v);
}

static void test_parse(void **state) {
    (void)state;
    uint64_t v = 99;
    assert_int_equal(parse_str("46\n", &v), DATA_TASK_PARSE_OK);
    assert_true(v == 46);
    assert_int_equal(parse_str("0\n", &v), DATA_TASK_PARSE_OK);
    assert_true(v == 0);
    assert_int_equal(parse_str("", &v), DATA_TASK_PARSE_EMPTY);
    assert_true(v == 0);
    assert_int_equal(data_task_parse_answer(NULL, 0, &v), DATA_TASK_PARSE_EMPTY);
    assert_int_equal(parse_str("\n12\n", &v), DATA_TASK_PARSE_EMPTY);
    assert_int_equal(parse_str("46 \n", &v), DATA_TASK_PARSE_BAD_CHAR);
    assert_true(v == 46);
    assert_int_equal(parse_str(" 46\n", &v), DATA_TASK_PARSE_BAD_CHAR);
    assert_true(v == 0);
    assert_int_equal(parse_str("046\n", &v), DATA_TASK_PARSE_LEADING_ZERO);
    assert_true(v == 46);
    assert_int_equal(parse_str("00\n", &v), DATA_TASK_PARSE_LEADING_ZERO);
    assert_int_equal(parse_str("123", &v), DATA_TASK_PARSE_NO_TERMINATOR);
    assert_true(v == 123);
    assert_int_equal(parse_str("9999999999999999999\n", &v), DATA_TASK_PARSE_OK); /* 19 digits */
    assert_true(v == 9999999999999999999ull);
    assert_int_equal(parse_str("99999999999999999999\n", &v), DATA_TASK_PARSE_TOO_LONG);
    assert_int_equal(parse_str("46\n", NULL), DATA_TASK_PARSE_OK); /* value may be NULL */
}

/* Rows are the problems data_task_next draws from the same stream, laid out as documented; row 0
 * is "43+27=70\n" (the first 2-digit addition of seed 11) and is checked literally. */
static void test_sft_layout(void **state) {
    (void)state;
    data_task_cfg c = cfg_of(DATA_TASK_ADD, 2, 2);
    enum { B = 8, T = 12 };
    int32_t x[B * T], y[B * T];
    data_rng r, r0;
    data_rng_seed(&r, 11, DATA_STREAM_DATA);
    r0 = r;
    char err[256] = "";
    assert_int_equal(data_task_sft_batch(&c, &r, B, T, NULL, 0, x, y, err, sizeof err), 0);

    /* Row 0 by hand: prompt positions 0..4 predict nothing, '=' predicts '7', '7' predicts '0',
     * '0' predicts the terminator, the terminator and the padding predict nothing. */
    static const int32_t ex[T] = {'4', '3', '+', '2', '7', '=', '7', '0', '\n', 0, 0, 0};
    static const int32_t ey[T] = {-1, -1, -1, -1, -1, '7', '0', '\n', -1, -1, -1, -1};
    assert_memory_equal(x, ex, sizeof ex);
    assert_memory_equal(y, ey, sizeof ey);

    /* Every row by the rule. */
    for (int b = 0; b < B; b++) {
        data_task_problem p;
        assert_int_equal(data_task_next(&c, &r0, &p), 0);
        char s[64];
        int L = snprintf(s, sizeof s, "%s%s\n", p.prompt, p.answer);
        const int32_t *xr = x + b * T, *yr = y + b * T;
        for (int t = 0; t < T; t++) {
            assert_int_equal(xr[t], t < L ? (uint8_t)s[t] : DATA_TASK_PAD);
            int in_answer = t + 1 >= (int)p.prompt_len && t + 1 < L;
            assert_int_equal(yr[t], in_answer ? (uint8_t)s[t + 1] : -1);
        }
    }
    /* The batch consumed exactly B problems' draws. */
    assert_memory_equal(&r, &r0, sizeof r);
}

static void test_sft_too_short(void **state) {
    (void)state;
    data_task_cfg c = cfg_of(DATA_TASK_MUL, 2, 3); /* "999*999=998001\n": 15 bytes, T >= 14 */
    int32_t x[2 * 14], y[2 * 14];
    x[0] = 12345;
    data_rng r, r0;
    data_rng_seed(&r, 2, DATA_STREAM_DATA);
    r0 = r;
    char err[256] = "";
    assert_int_equal(data_task_sft_batch(&c, &r, 2, 13, NULL, 0, x, y, err, sizeof err), -1);
    assert_contains(err, "T = 13 is too short for mul with 2..3 digits: the longest sample is 15 "
                         "bytes and needs T >= 14");
    assert_int_equal(x[0], 12345);
    assert_memory_equal(&r, &r0, sizeof r);
    assert_int_equal(data_task_sft_batch(&c, &r, 0, 14, NULL, 0, x, y, err, sizeof err), -1);
    assert_contains(err, "B = 0, T = 14");
    assert_int_equal(data_task_sft_batch(&c, &r, 2, 0, NULL, 0, x, y, err, sizeof err), -1);

    /* T = 14 exactly fits: the longest rows end on their last answer digit predicting '\n'. */
    c = cfg_of(DATA_TASK_MUL, 3, 3);
    enum { B = 64, T = 14 };
    int32_t xb[B * T], yb[B * T];
    assert_int_equal(data_task_sft_batch(&c, &r, B, T, NULL, 0, xb, yb, err, sizeof err), 0);
    for (int b = 0; b < B; b++) {
        int n_nl_target = 0;
        for (int t = 0; t < T; t++)
            n_nl_target += yb[b * T + t] == '\n';
        assert_int_equal(n_nl_target, 1); /* every row predicts its terminator */
    }
}

int dtt_run_task(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_defaults),
        cmocka_unit_test(test_validate_messages),
        cmocka_unit_test(test_make),
        cmocka_unit_test(test_max_len),
        cmocka_unit_test(test_ranges_and_answers),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_eval_set_pinned_and_independent),
        cmocka_unit_test(test_eval_set_full_space),
        cmocka_unit_test(test_held_out_excluded),
        cmocka_unit_test(test_reward),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_sft_layout),
        cmocka_unit_test(test_sft_too_short),
    };
    return cmocka_run_group_tests_name("data_task", tests, NULL, NULL);
}
