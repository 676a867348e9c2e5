/* val.c — fixed validation batches.
 *
 * Validation is read in order, never shuffled: the same batch index always means the same windows,
 * so losses from different steps, runs and formats (qat-eval) are measured on identical text. */
#include "data/data.h"

size_t data_val_batch_count(size_t n, size_t B, size_t T) {
    if (B == 0 || T == 0 || T == SIZE_MAX || n < T + 1)
        return 0;
    size_t w = (n - 1) / T;
    return w / B + (w % B != 0);
}

int data_val_batch(const uint8_t *val, size_t n, size_t B, size_t T, size_t batch_index, int32_t *x,
                   int32_t *y) {
    size_t count = data_val_batch_count(n, B, T);
    if (count == 0)
        return -1;
    size_t w = (n - 1) / T;
    size_t k = batch_index % count;
    for (size_t b = 0; b < B; b++) {
        /* k < count gives k·B < w (or k = 0), so k·B + b cannot overflow. */
        const uint8_t *win = val + ((k * B + b) % w) * T; /* (T+1) */
        for (size_t t = 0; t < T; t++) {
            x[b * T + t] = win[t];
            y[b * T + t] = win[t + 1];
        }
    }
    return 0;
}
