/* sgemm_ceiling.h — the rate OpenBLAS sgemm reaches on the model's own weight-matmul shapes, in
 * all three transpose patterns a training step uses, measured in the benchmark's process one round
 * at a time, so that the ceiling and the step it is compared with see the same machine load. */
#ifndef QAT_BENCH_LIB_SGEMM_CEILING_H
#define QAT_BENCH_LIB_SGEMM_CEILING_H

#include "train/model/gpt.h"

/* One weight-matmul shape of the model: IC inputs, OC outputs, used `count` times per step. */
typedef struct bench_mm_shape {
    const char *what;
    int IC, OC, count;
} bench_mm_shape;

#define BENCH_SG_SHAPES 5
#define BENCH_SG_CASES                                                                             \
    (BENCH_SG_SHAPES * 3) /* up to BENCH_SG_SHAPES shapes x 3 transpose patterns */

/* sgemm on the model's shapes, one round (every case once) after each timed step, so that the
 * ceiling and the step are measured under the same load. A zero-initialized struct may be passed
 * to bench_sgemm_free. */
typedef struct bench_sgemm {
    bench_mm_shape sh[BENCH_SG_SHAPES];
    int n_sh, R, rounds, cap;
    float *x, *dy, *w, *out;
    double *t[BENCH_SG_CASES]; /* seconds, one per round */
} bench_sgemm;

/* The weight-matmul shapes one step of m runs, into sh[]; returns how many (<= BENCH_SG_SHAPES). */
int bench_sgemm_model_shapes(const qt_model *m, bench_mm_shape sh[BENCH_SG_SHAPES]);

/* Buffers for `cap` rounds over the n_sh shapes (copied) with R rows, and one untimed round.
 * Returns 0 or -1 (out of memory; g is then freed). */
int bench_sgemm_init(bench_sgemm *g, const bench_mm_shape *sh, int n_sh, int R, int cap);
/* One timed round, every case once; does nothing once `cap` rounds are stored. */
void bench_sgemm_round(bench_sgemm *g);
/* Prints every case (median over the rounds) and returns the step-weighted rate in GFLOP/s: the
 * FLOPs of all of one step's weight matmuls divided by the time sgemm alone takes for them. */
double bench_sgemm_report(bench_sgemm *g);
/* Releases g's buffers (not g itself). */
void bench_sgemm_free(bench_sgemm *g);

#endif
