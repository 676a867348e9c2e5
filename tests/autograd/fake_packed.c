/* fake_packed.c — a stand-in packed format for the frozen-weight tests (test_frozen_linear.c,
 * test_lora_linear.c): int8 codes with one float scale per row, so the weight really is packed
 * (not a float copy) and the dequantizer's calls can be counted. */
#include "agtest.h"

#include <stdlib.h>

static void fake_dequant(const void *ctx, int64_t r0, int64_t r1, float *out) {
    /* Casting const away is fine here: every fake_q is a heap object, and the counters are test
     * bookkeeping, not the weight. */
    fake_q *q = (fake_q *)ctx;
    atomic_fetch_add(&q->calls, 1);
    if (r0 < 0 || r1 > q->rows || r0 >= r1) {
        atomic_fetch_add(&q->bad_ranges, 1);
        return;
    }
    atomic_fetch_add(&q->rows_done, (long)(r1 - r0));
    for (int64_t r = r0; r < r1; r++)
        for (int64_t c = 0; c < q->cols; c++)
            out[(r - r0) * q->cols + c] = (float)q->codes[r * q->cols + c] * q->scale[r];
}

fake_q *fake_new_abs(int64_t rows, int64_t cols, uint64_t seed, bool absolute) {
    fake_q *q = calloc(1, sizeof *q);
    q->rows = rows;
    q->cols = cols;
    q->codes = malloc((size_t)(rows * cols));
    q->scale = malloc((size_t)rows * sizeof *q->scale);
    for (int64_t i = 0; i < rows * cols; i++) {
        int c = (int)tu_uniform(&seed, -127, 128);
        q->codes[i] = (int8_t)(absolute && c < 0 ? -c : c);
    }
    for (int64_t r = 0; r < rows; r++)
        q->scale[r] = (float)tu_uniform(&seed, 0.001, 0.01);
    return q;
}

fake_q *fake_new(int64_t rows, int64_t cols, uint64_t seed) {
    return fake_new_abs(rows, cols, seed, false);
}

void fake_free(fake_q *q) {
    if (!q)
        return;
    free(q->codes);
    free(q->scale);
    free(q);
}

ag_frozen fake_desc(const fake_q *q) {
    return (ag_frozen){.rows = q->rows, .cols = q->cols, .dequant_rows = fake_dequant, .ctx = q};
}
