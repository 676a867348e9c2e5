/* task.c — verifiable arithmetic problems ("12+34=" -> "46\n") for SFT and GRPO: generation, a
 * fixed held-out evaluation set, exact-match reward and SFT/prompt batches.
 *
 * Everything here is a pure function of the config and the data_rng passed in; the only allocation
 * is the temporary hash set that keeps the evaluation set free of duplicates. */
#include "data/data.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A trainer's held-out set would have to cover nearly every problem for this many consecutive
 * draws to be held out; then we report instead of looping forever. */
#define TASK_MAX_REDRAWS 1000

static const char *const kind_names[DATA_TASK_KIND_COUNT] = {"add", "mul", "mixed"};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == DATA_TASK_KIND_COUNT,
               "one name per data_task_kind");

static const char *const parse_names[] = {"ok",           "empty",    "bad_char",
                                          "leading_zero", "too_long", "no_terminator"};
_Static_assert(sizeof parse_names / sizeof parse_names[0] == DATA_TASK_PARSE_NO_TERMINATOR + 1,
               "one name per data_task_parse_status");

static const uint64_t pow10_u64[DATA_TASK_MAX_DIGITS + 1] = {
    1ull,      10ull,      100ull,      1000ull,      10000ull,
    100000ull, 1000000ull, 10000000ull, 100000000ull, 1000000000ull};

static void set_err(char *err, size_t errlen, const char *msg) {
    if (err && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

const char *data_task_kind_name(int kind) {
    return (kind >= 0 && kind < DATA_TASK_KIND_COUNT) ? kind_names[kind] : "?";
}

int data_task_kind_from_name(const char *name) {
    if (!name)
        return -1;
    for (int k = 0; k < DATA_TASK_KIND_COUNT; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return k;
    return -1;
}

const char *data_task_parse_status_name(int status) {
    return (status >= 0 && status <= DATA_TASK_PARSE_NO_TERMINATOR) ? parse_names[status] : "?";
}

void data_task_cfg_default(data_task_cfg *cfg) {
    cfg->kind = DATA_TASK_ADD;
    cfg->min_digits = 2;
    cfg->max_digits = 2;
}

int data_task_cfg_validate(const data_task_cfg *cfg, char *err, size_t errlen) {
    if (cfg->kind < 0 || cfg->kind >= DATA_TASK_KIND_COUNT) {
        if (err && errlen > 0)
            snprintf(err, errlen, "task.kind = %d is not a task kind (expected add, mul or mixed)",
                     cfg->kind);
        return -1;
    }
    if (cfg->min_digits < 1 || cfg->min_digits > DATA_TASK_MAX_DIGITS) {
        if (err && errlen > 0)
            snprintf(err, errlen, "task.min_digits = %d is outside [1, %d]", cfg->min_digits,
                     DATA_TASK_MAX_DIGITS);
        return -1;
    }
    if (cfg->max_digits < 1 || cfg->max_digits > DATA_TASK_MAX_DIGITS) {
        if (err && errlen > 0)
            snprintf(err, errlen,
                     "task.max_digits = %d is outside [1, %d] (products must fit in 18 digits)",
                     cfg->max_digits, DATA_TASK_MAX_DIGITS);
        return -1;
    }
    if (cfg->min_digits > cfg->max_digits) {
        if (err && errlen > 0)
            snprintf(err, errlen,
                     "task.min_digits = %d > task.max_digits = %d (need min_digits <= max_digits)",
                     cfg->min_digits, cfg->max_digits);
        return -1;
    }
    return 0;
}

/* Decimal digits of v into out (no NUL); returns how many. */
static size_t put_u64(char *out, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static size_t n_digits(uint64_t v) {
    char tmp[20];
    return put_u64(tmp, v);
}

int data_task_make(char op, uint64_t a, uint64_t b, data_task_problem *p) {
    const uint64_t lim = pow10_u64[DATA_TASK_MAX_DIGITS];
    if ((op != '+' && op != '*') || a >= lim || b >= lim)
        return -1;
    memset(p, 0, sizeof *p);
    p->a = a;
    p->b = b;
    p->op = op;
    p->result = op == '+' ? a + b : a * b; /* < 10^18: exact */
    size_t k = put_u64(p->prompt, a);
    p->prompt[k++] = op;
    k += put_u64(p->prompt + k, b);
    p->prompt[k++] = '=';
    p->prompt[k] = '\0';
    p->prompt_len = k;
    p->answer_len = put_u64(p->answer, p->result);
    p->answer[p->answer_len] = '\0';
    return 0;
}

static uint64_t draw_operand(const data_task_cfg *cfg, data_rng *rng) {
    int d = cfg->min_digits +
            (int)data_rng_below(rng, (uint64_t)(cfg->max_digits - cfg->min_digits + 1));
    if (d == 1)
        return data_rng_below(rng, 10);
    uint64_t lo = pow10_u64[d - 1];
    return lo + data_rng_below(rng, pow10_u64[d] - lo);
}

/* data_task_next on a config known to be valid. */
static void next_valid(const data_task_cfg *cfg, data_rng *rng, data_task_problem *p) {
    char op = cfg->kind == DATA_TASK_MUL ? '*' : '+';
    if (cfg->kind == DATA_TASK_MIXED)
        op = data_rng_below(rng, 2) == 0 ? '+' : '*';
    uint64_t a = draw_operand(cfg, rng);
    uint64_t b = draw_operand(cfg, rng);
    data_task_make(op, a, b, p); /* cannot fail: op is valid and operands < 10^max_digits */
}

int data_task_next(const data_task_cfg *cfg, data_rng *rng, data_task_problem *p) {
    if (data_task_cfg_validate(cfg, NULL, 0) != 0)
        return -1;
    next_valid(cfg, rng, p);
    return 0;
}

size_t data_task_max_prompt_len(const data_task_cfg *cfg) {
    return 2 * (size_t)cfg->max_digits + 2; /* "A+B=" with both operands at max_digits */
}

size_t data_task_max_len(const data_task_cfg *cfg) {
    if (data_task_cfg_validate(cfg, NULL, 0) != 0)
        return 0;
    uint64_t m = pow10_u64[cfg->max_digits] - 1; /* the largest operand */
    size_t prompt = data_task_max_prompt_len(cfg);
    size_t answer = cfg->kind == DATA_TASK_ADD ? n_digits(m + m) : n_digits(m * m);
    return prompt + answer + 1;
}

/* ---- held-out evaluation set ---- */

/* One number per distinct problem: operands < 2^30 each, the op in bit 60. */
static uint64_t problem_key(const data_task_problem *p) {
    return ((uint64_t)(p->op == '*') << 60) | (p->a << 30) | p->b;
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Number of distinct problems cfg can produce (valid cfg): at most 2·10^18, fits in uint64_t. */
static uint64_t problem_space(const data_task_cfg *cfg) {
    uint64_t ops =
        pow10_u64[cfg->max_digits] - (cfg->min_digits == 1 ? 0 : pow10_u64[cfg->min_digits - 1]);
    return ops * ops * (cfg->kind == DATA_TASK_MIXED ? 2u : 1u);
}

int data_task_eval_set(const data_task_cfg *cfg, size_t n, uint64_t seed, data_task_problem *out,
                       char *err, size_t errlen) {
    if (data_task_cfg_validate(cfg, err, errlen) != 0)
        return -1;
    uint64_t space = problem_space(cfg);
    if ((uint64_t)n > space) {
        if (err && errlen > 0)
            snprintf(err, errlen,
                     "task eval set: %zu distinct problems asked, but %s with %d..%d digits has "
                     "only %" PRIu64 " (use fewer eval problems or more digits)",
                     n, data_task_kind_name(cfg->kind), cfg->min_digits, cfg->max_digits, space);
        return -1;
    }
    if (n == 0)
        return 0;
    /* Open addressing, load factor <= 1/2; slots hold key + 1 so that 0 means empty. */
    size_t cap = 2;
    while (cap < 2 * n) {
        if (cap > SIZE_MAX / 4 / sizeof(uint64_t)) {
            set_err(err, errlen, "task eval set: too many problems for a hash set in memory");
            return -1;
        }
        cap *= 2;
    }
    uint64_t *slots = calloc(cap, sizeof *slots);
    if (!slots) {
        if (err && errlen > 0)
            snprintf(err, errlen, "task eval set: out of memory for a %zu-slot hash set", cap);
        return -1;
    }
    data_rng rng;
    data_rng_seed(&rng, seed, DATA_TASK_EVAL_STREAM);
    size_t have = 0;
    while (have < n) {
        data_task_problem p;
        next_valid(cfg, &rng, &p);
        uint64_t key = problem_key(&p) + 1;
        size_t i = (size_t)mix64(key) & (cap - 1);
        while (slots[i] != 0 && slots[i] != key)
            i = (i + 1) & (cap - 1);
        if (slots[i] == key)
            continue; /* a duplicate: draw again */
        slots[i] = key;
        out[have++] = p;
    }
    free(slots);
    return 0;
}

int data_task_in_set(const data_task_problem *set, size_t n, const data_task_problem *p) {
    for (size_t i = 0; i < n; i++)
        if (set[i].op == p->op && set[i].a == p->a && set[i].b == p->b)
            return 1;
    return 0;
}

/* ---- reward ---- */

data_task_parse_status data_task_parse_answer(const uint8_t *completion, size_t n,
                                              uint64_t *value) {
    uint64_t v = 0;
    size_t digits = 0;
    data_task_parse_status st = DATA_TASK_PARSE_NO_TERMINATOR;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = completion[i];
        if (c == DATA_TASK_TERMINATOR) {
            st = DATA_TASK_PARSE_OK;
            break;
        }
        if (c < '0' || c > '9') {
            st = DATA_TASK_PARSE_BAD_CHAR;
            break;
        }
        if (digits == 19) { /* a 20th digit: no longer fits; 19 always do (< 10^19 < 2^64) */
            st = DATA_TASK_PARSE_TOO_LONG;
            break;
        }
        v = v * 10 + (uint64_t)(c - '0');
        digits++;
    }
    if (value)
        *value = v;
    if (st == DATA_TASK_PARSE_OK || st == DATA_TASK_PARSE_NO_TERMINATOR) {
        if (digits == 0) /* no bytes, or the terminator first */
            return DATA_TASK_PARSE_EMPTY;
        if (digits > 1 && completion[0] == '0')
            return DATA_TASK_PARSE_LEADING_ZERO;
    }
    return st;
}

double data_task_reward(const data_task_problem *p, const uint8_t *completion, size_t n) {
    uint64_t v;
    return data_task_parse_answer(completion, n, &v) == DATA_TASK_PARSE_OK && v == p->result ? 1.0
                                                                                             : 0.0;
}

/* ---- batches ---- */

/* Next problem not in held_out; -1 with a message after TASK_MAX_REDRAWS held-out draws. */
static int next_allowed(const data_task_cfg *cfg, data_rng *rng, const data_task_problem *held_out,
                        size_t n_held_out, data_task_problem *p, char *err, size_t errlen) {
    for (int tries = 0; tries < TASK_MAX_REDRAWS; tries++) {
        next_valid(cfg, rng, p);
        if (!data_task_in_set(held_out, n_held_out, p))
            return 0;
    }
    if (err && errlen > 0)
        snprintf(err, errlen,
                 "task: %d problems in a row were in the held-out set of %zu (%s, %d..%d digits): "
                 "it covers nearly every problem; use fewer eval problems or more digits",
                 TASK_MAX_REDRAWS, n_held_out, data_task_kind_name(cfg->kind), cfg->min_digits,
                 cfg->max_digits);
    return -1;
}

int data_task_sft_batch(const data_task_cfg *cfg, data_rng *rng, size_t B, size_t T,
                        const data_task_problem *held_out, size_t n_held_out, int32_t *x,
                        int32_t *y, char *err, size_t errlen) {
    if (data_task_cfg_validate(cfg, err, errlen) != 0)
        return -1;
    if (B == 0 || T == 0) {
        if (err && errlen > 0)
            snprintf(err, errlen, "task SFT batch: B = %zu, T = %zu (both must be positive)", B, T);
        return -1;
    }
    size_t need = data_task_max_len(cfg) - 1;
    if (T < need) {
        if (err && errlen > 0)
            snprintf(err, errlen,
                     "task SFT batch: T = %zu is too short for %s with %d..%d digits: the longest "
                     "sample is %zu bytes and needs T >= %zu (raise model.seq_len or lower "
                     "max_digits)",
                     T, data_task_kind_name(cfg->kind), cfg->min_digits, cfg->max_digits, need + 1,
                     need);
        return -1;
    }
    for (size_t b = 0; b < B; b++) {
        data_task_problem p;
        if (next_allowed(cfg, rng, held_out, n_held_out, &p, err, errlen) != 0)
            return -1;
        data_task_sft_rows(&p, 1, T, x + b * T, y + b * T);
    }
    return 0;
}

void data_task_sft_rows(const data_task_problem *p, size_t n, size_t T, int32_t *x, int32_t *y) {
    for (size_t b = 0; b < n; b++) {
        char s[DATA_TASK_PROMPT_CAP + DATA_TASK_ANSWER_CAP + 1];
        size_t L = 0, pl = p[b].prompt_len;
        memcpy(s, p[b].prompt, pl);
        L += pl;
        memcpy(s + L, p[b].answer, p[b].answer_len);
        L += p[b].answer_len;
        s[L++] = DATA_TASK_TERMINATOR;
        int32_t *xr = x + b * T; /* (T) */
        int32_t *yr = y + b * T; /* (T) */
        for (size_t t = 0; t < T; t++) {
            xr[t] = t < L ? (int32_t)(uint8_t)s[t] : DATA_TASK_PAD;
            yr[t] = (t + 1 >= pl && t + 1 < L) ? (int32_t)(uint8_t)s[t + 1] : -1;
        }
    }
}

int data_task_prompts(const data_task_cfg *cfg, data_rng *rng, size_t n,
                      const data_task_problem *held_out, size_t n_held_out,
                      data_task_problem *problems, char *err, size_t errlen) {
    if (data_task_cfg_validate(cfg, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (next_allowed(cfg, rng, held_out, n_held_out, &problems[i], err, errlen) != 0)
            return -1;
    return 0;
}
