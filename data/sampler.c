/* sampler.c — the training batch sampler: shuffled non-overlapping windows, resumable.
 *
 * Non-overlapping windows at stride T (each window's last token is the next window's first input)
 * make an epoch a well-defined pass over the text: every token is predicted exactly once per
 * epoch. The position is {epoch, cursor, RNG state at the epoch's start} rather than the
 * permutation itself, so a checkpoint stores three numbers and four words however large the corpus;
 * restoring redraws the permutation from that RNG state. */
#include "data/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct data_sampler {
    const uint8_t *tokens; /* (n) borrowed from the caller */
    size_t n, B, T;
    size_t n_windows;
    size_t *perm; /* (n_windows) visiting order of this epoch */
    int64_t epoch;
    size_t cursor;
    data_rng rng;         /* advanced past this epoch's permutation */
    data_rng epoch_start; /* rng before this epoch's permutation was drawn */
};

/* Save the RNG as the epoch's start, then draw the epoch's order (Fisher–Yates from the back). */
static void start_epoch(data_sampler *s) {
    s->epoch_start = s->rng;
    for (size_t i = 0; i < s->n_windows; i++)
        s->perm[i] = i;
    for (size_t i = s->n_windows; i > 1; i--) {
        size_t j = (size_t)data_rng_below(&s->rng, (uint64_t)i);
        size_t t = s->perm[i - 1];
        s->perm[i - 1] = s->perm[j];
        s->perm[j] = t;
    }
    s->cursor = 0;
}

int data_sampler_create(const uint8_t *tokens, size_t n, size_t B, size_t T, const data_rng *rng,
                        const char *name, data_sampler **out, char *err, size_t errlen) {
    *out = NULL;
    if (!name)
        name = "token stream";
    if (B == 0 || T == 0 || B > SIZE_MAX / T) {
        snprintf(err, errlen, "%s: invalid batch shape B=%zu T=%zu", name, B, T);
        return -1;
    }
    if (T == SIZE_MAX || n < T + 1) {
        snprintf(err, errlen,
                 "%s: %zu tokens is too short for one training window of seq_len+1 = %zu tokens",
                 name, n, T + 1);
        return -1;
    }
    if ((rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0) {
        snprintf(err, errlen, "%s: the sampler's RNG state is all zero (not a valid state)", name);
        return -1;
    }
    data_sampler *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "%s: out of memory creating the sampler", name);
        return -1;
    }
    s->tokens = tokens;
    s->n = n;
    s->B = B;
    s->T = T;
    s->n_windows = (n - 1) / T;
    s->perm = malloc(s->n_windows * sizeof *s->perm);
    if (!s->perm) {
        snprintf(err, errlen, "%s: out of memory for %zu windows", name, s->n_windows);
        free(s);
        return -1;
    }
    s->rng = *rng;
    start_epoch(s);
    *out = s;
    return 0;
}

void data_sampler_free(data_sampler *s) {
    if (!s)
        return;
    free(s->perm);
    free(s);
}

size_t data_sampler_windows(const data_sampler *s) { return s->n_windows; }

void data_sampler_next(data_sampler *s, int32_t *x, int32_t *y) {
    const size_t T = s->T;
    for (size_t b = 0; b < s->B; b++) {
        const uint8_t *w = s->tokens + s->perm[s->cursor] * T; /* (T+1) */
        for (size_t t = 0; t < T; t++) {
            x[b * T + t] = w[t];
            y[b * T + t] = w[t + 1];
        }
        /* Roll over eagerly, so a saved state always has cursor < windows per epoch. */
        if (++s->cursor == s->n_windows) {
            s->epoch++;
            start_epoch(s);
        }
    }
}

void data_sampler_get_state(const data_sampler *s, data_sampler_state *st) {
    st->epoch = s->epoch;
    st->cursor = (int64_t)s->cursor;
    data_rng_get_state(&s->epoch_start, st->rng);
}

int data_sampler_set_state(data_sampler *s, const data_sampler_state *st, char *err,
                           size_t errlen) {
    if (st->epoch < 0 || st->cursor < 0 || (uint64_t)st->cursor >= (uint64_t)s->n_windows) {
        snprintf(err, errlen,
                 "sampler state epoch %lld cursor %lld is out of range (cursor must be in [0, "
                 "%zu), the windows per epoch of this token stream)",
                 (long long)st->epoch, (long long)st->cursor, s->n_windows);
        return -1;
    }
    data_rng r;
    if (data_rng_set_state(&r, st->rng) != 0) {
        snprintf(err, errlen, "sampler state: RNG state is all zero (not a valid state)");
        return -1;
    }
    s->rng = r;
    s->epoch = st->epoch;
    start_epoch(s);
    s->cursor = (size_t)st->cursor;
    return 0;
}
