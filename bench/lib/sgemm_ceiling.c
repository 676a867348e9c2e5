/* sgemm_ceiling.c — OpenBLAS sgemm timed on the model's weight-matmul shapes, as the training
 * step calls it, one round after each timed step. */
#include "bench/lib/sgemm_ceiling.h"
#include "bench/lib/bench_util.h"

#include <cblas.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bench_sgemm_model_shapes(const qt_model *m, bench_mm_shape sh[BENCH_SG_SHAPES]) {
    /* gpt.c multiplies by wq, wk, wv stacked into one [3C,C] weight when they are plain real
     * matrices (not CRoPE's planes); the sgemm ceiling uses the shapes the step runs. */
    bool fused = m->L > 0 && m->blocks[0].wq && !m->blocks[0].wq_im;
    int n_sh = 0;
    if (fused) {
        sh[n_sh++] = (bench_mm_shape){"qkv", m->C, 3 * m->C, m->L};
        sh[n_sh++] = (bench_mm_shape){"wo", m->C, m->C, m->L};
    } else {
        sh[n_sh++] = (bench_mm_shape){"qkv/wo", m->C, m->C, 4 * m->L};
    }
    sh[n_sh++] = (bench_mm_shape){"mlp.up", m->C, m->F, m->L};
    sh[n_sh++] = (bench_mm_shape){"mlp.down", m->F, m->C, m->L};
    sh[n_sh++] = (bench_mm_shape){"lm_head", m->C, m->V, 1};
    return n_sh;
}

static float *rand_buf(size_t n, unsigned *seed) {
    float *p = malloc(n * sizeof *p);
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)((*seed >> 8) & 0xFFFF) / 65536.0f - 0.5f;
    }
    return p;
}

/* One transpose pattern of linear(R, IC → OC) as the training does it. Pattern 0: forward
 * y = x·wᵀ (NT); 1: dx += dy·w (NN); 2: dw += dyᵀ·x (TN). Returns seconds. */
static double run_gemm(const bench_sgemm *g, int pat, int IC, int OC) {
    int R = g->R;
    double t0 = bench_now_s();
    if (pat == 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, OC, IC, 1, g->x, IC, g->w, IC, 0,
                    g->out, OC);
    else if (pat == 1)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, IC, OC, 1, g->dy, OC, g->w, IC, 1,
                    g->out, IC);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, R, 1, g->dy, OC, g->x, IC, 1,
                    g->out, IC);
    return bench_now_s() - t0;
}

void bench_sgemm_free(bench_sgemm *g) {
    free(g->x);
    free(g->dy);
    free(g->w);
    free(g->out);
    for (int i = 0; i < BENCH_SG_CASES; i++)
        free(g->t[i]);
}

int bench_sgemm_init(bench_sgemm *g, const bench_mm_shape *sh, int n_sh, int R, int cap) {
    memset(g, 0, sizeof *g);
    memcpy(g->sh, sh, (size_t)n_sh * sizeof *sh);
    g->n_sh = n_sh;
    g->R = R;
    g->cap = cap;
    int maxd = 1;
    for (int i = 0; i < n_sh; i++) {
        maxd = sh[i].IC > maxd ? sh[i].IC : maxd;
        maxd = sh[i].OC > maxd ? sh[i].OC : maxd;
    }
    unsigned seed = 12345;
    size_t big = (size_t)R * (size_t)maxd, sq = (size_t)maxd * (size_t)maxd;
    g->x = rand_buf(big, &seed);
    g->dy = rand_buf(big, &seed);
    g->w = rand_buf(sq, &seed);
    g->out = calloc(big > sq ? big : sq, sizeof *g->out);
    bool ok = g->x && g->dy && g->w && g->out;
    for (int i = 0; i < 3 * n_sh; i++)
        ok = ok && (g->t[i] = calloc((size_t)cap, sizeof(double))) != NULL;
    if (!ok) {
        bench_sgemm_free(g);
        return -1;
    }
    for (int i = 0; i < n_sh; i++)
        for (int p = 0; p < 3; p++)
            run_gemm(g, p, sh[i].IC, sh[i].OC);
    return 0;
}

void bench_sgemm_round(bench_sgemm *g) {
    if (g->rounds == g->cap)
        return;
    for (int i = 0; i < g->n_sh; i++)
        for (int p = 0; p < 3; p++)
            g->t[3 * i + p][g->rounds] = run_gemm(g, p, g->sh[i].IC, g->sh[i].OC);
    g->rounds++;
}

double bench_sgemm_report(bench_sgemm *g) {
    static const char *const pat_name[3] = {"NT (fwd y=x·wT)", "NN (bwd dx=dy·w)",
                                            "TN (bwd dw=dyT·x)"};
    int R = g->R;
    printf("\nsgemm in this process (%d threads) on the model's weight-matmul shapes, median of %d "
           "rounds, one round after each timed step:\n",
           omp_get_max_threads(), g->rounds);
    printf("  %-8s %5s %5s %5s  %-18s %9s %9s\n", "layer", "M", "N", "K", "pattern", "ms",
           "GFLOP/s");
    double sum_f = 0, sum_t = 0;
    for (int i = 0; i < g->n_sh; i++) {
        for (int p = 0; p < 3; p++) {
            int IC = g->sh[i].IC, OC = g->sh[i].OC;
            double f = 2.0 * R * IC * OC;
            double t = bench_summarize(g->t[3 * i + p], g->rounds).median;
            int M = p == 2 ? OC : R, N = p == 0 ? OC : IC, K = p == 0 ? IC : p == 1 ? OC : R;
            printf("  %-8s %5d %5d %5d  %-18s %9.3f %9.1f\n", g->sh[i].what, M, N, K, pat_name[p],
                   1e3 * t, f / t * 1e-9);
            sum_f += g->sh[i].count * f;
            sum_t += g->sh[i].count * t;
        }
    }
    double rate = sum_f / sum_t * 1e-9;
    printf("  step-weighted sgemm rate (each shape x3 patterns, counted as often as one step "
           "uses it): %.1f GFLOP/s\n",
           rate);
    return rate;
}
