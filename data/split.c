/* split.c — the deterministic train/val split by evenly spaced blocks.
 *
 * Holding out "the last 10%" would make validation one file (or one author) and would change
 * completely when files are added; taking evenly spaced 4 KiB blocks spreads validation over the
 * whole corpus while keeping each held-out block long enough to contain real context. */
#include "data/data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int data_split_block_is_val(size_t i, double f) {
    return floor((double)(i + 1) * f) > floor((double)i * f);
}

int data_split_make(const uint8_t *bytes, size_t n, double f, size_t seq_len, const char *name,
                    data_split *s, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    if (!name)
        name = "corpus";
    if (!(f > 0.0 && f < 1.0)) { /* also rejects NaN */
        snprintf(err, errlen, "%s: val_fraction must be in (0, 1), got %g", name, f);
        return -1;
    }
    size_t n_blocks = n / DATA_SPLIT_BLOCK + (n % DATA_SPLIT_BLOCK != 0);
    size_t n_val = 0;
    for (size_t i = 0; i < n_blocks; i++) {
        size_t len = i + 1 < n_blocks ? DATA_SPLIT_BLOCK : n - i * DATA_SPLIT_BLOCK;
        if (data_split_block_is_val(i, f))
            n_val += len;
    }
    size_t n_train = n - n_val;
    if (seq_len == SIZE_MAX || n_train < seq_len + 1 || n_val < seq_len + 1) {
        snprintf(err, errlen,
                 "%s: %zu bytes split at val_fraction %g (blocks of %d bytes) give train %zu "
                 "bytes and val %zu bytes; each needs at least seq_len+1 = %zu bytes (use a "
                 "larger corpus, a shorter seq_len or another val_fraction)",
                 name, n, f, DATA_SPLIT_BLOCK, n_train, n_val, seq_len + 1);
        return -1;
    }
    s->train = malloc(n_train);
    s->val = malloc(n_val);
    if (!s->train || !s->val) {
        snprintf(err, errlen, "%s: out of memory splitting %zu bytes", name, n);
        data_split_free(s);
        return -1;
    }
    for (size_t i = 0; i < n_blocks; i++) {
        size_t off = i * DATA_SPLIT_BLOCK;
        size_t len = i + 1 < n_blocks ? DATA_SPLIT_BLOCK : n - off;
        if (data_split_block_is_val(i, f)) {
            memcpy(s->val + s->n_val, bytes + off, len);
            s->n_val += len;
        } else {
            memcpy(s->train + s->n_train, bytes + off, len);
            s->n_train += len;
        }
    }
    return 0;
}

void data_split_free(data_split *s) {
    if (!s)
        return;
    free(s->train);
    free(s->val);
    memset(s, 0, sizeof *s);
}
