/* bench_mx.c — throughput of MX fake quantization (quant/mx.h) against plain copying, measured
 * in the same run: bytes read + written per second for each format and both roundings, beside
 * memcpy and an OpenMP copy loop on the same buffers. The target is fake quant >= 50% of copy.
 *
 * usage: bench_mx [rows cols [threads [reps]]]   (default 4096 4096 2 7; best of reps) */
#include "quant/mx.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Static partition like the kernels', so that first touch places pages where they are used. */
static void copy_loop(const float *restrict in, float *restrict out, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = in[i];
}

static void memcpy_whole(const float *in, float *out, size_t n) {
    memcpy(out, in, n * sizeof *out);
}

typedef struct {
    const float *in;
    float *out;
    size_t rows, cols;
    mx_format f;
    mx_rounding r;
    int kind; /* 0 memcpy, 1 copy loop, 2 fake quant, 3 fake quant in place */
} job;

static void run(const job *j) {
    switch (j->kind) {
    case 0:
        memcpy_whole(j->in, j->out, j->rows * j->cols);
        break;
    case 1:
        copy_loop(j->in, j->out, j->rows * j->cols);
        break;
    case 2:
        mx_fake_quant(j->in, j->out, j->rows, j->cols, j->f, j->r);
        break;
    default:
        mx_fake_quant(j->out, j->out, j->rows, j->cols, j->f, j->r);
        break;
    }
}

static double time_once(const job *j) {
    double t0 = omp_get_wtime();
    run(j);
    return omp_get_wtime() - t0;
}

enum { N_JOBS = 2 + 3 * MX_FORMAT_COUNT };

/* Every job once per round, rounds repeated, best time per job kept: on a shared machine each
 * job then sees the same spread of background load, so the ratios stay meaningful. */
static void measure(job *jobs, int n_jobs, int reps, double *best) {
    for (int k = 0; k < n_jobs; k++) {
        run(&jobs[k]); /* warm-up: page faults, caches */
        best[k] = 1e30;
    }
    for (int rep = 0; rep < reps; rep++)
        for (int k = 0; k < n_jobs; k++) {
            double t = time_once(&jobs[k]);
            best[k] = t < best[k] ? t : best[k];
        }
}

/* GB/s of 8 bytes (one float read, one written) per element. */
static double gbps(const job *j, double t) { return 8.0 * (double)(j->rows * j->cols) / t / 1e9; }

int main(int argc, char **argv) {
    size_t rows = argc > 2 ? strtoul(argv[1], NULL, 10) : 4096;
    size_t cols = argc > 2 ? strtoul(argv[2], NULL, 10) : 4096;
    int threads = argc > 3 ? atoi(argv[3]) : 2;
    int reps = argc > 4 ? atoi(argv[4]) : 7;
    if (rows == 0 || cols == 0 || threads < 1 || reps < 1) {
        fprintf(stderr, "usage: %s [rows cols [threads [reps]]]\n", argv[0]);
        return 2;
    }
    omp_set_num_threads(threads);
    const size_t n = rows * cols;
    float *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    if (!in || !out) {
        fprintf(stderr, "bench_mx: cannot allocate 2 x %zu floats\n", n);
        return 1;
    }
    /* Values like activations: per-row magnitudes over several decades, mixed signs. */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint64_t z = (uint64_t)i * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 29)) * 0xBF58476D1CE4E5B9ull;
        z ^= z >> 32;
        float u = (float)(z & 0xffffff) / 16777216.0f - 0.5f;
        in[i] = u * (float)(1u << (i / cols % 16));
        out[i] = 0.0f;
    }

    printf("bench_mx: %zu x %zu floats (%.0f MiB in, %.0f MiB out), %d threads, best of %d\n", rows,
           cols, n * 4.0 / 1048576, n * 4.0 / 1048576, threads, reps);
    job jobs[N_JOBS];
    int nj = 0;
    jobs[nj++] = (job){in, out, rows, cols, MX_FP32, MX_ROUND_EVEN, 0};
    jobs[nj++] = (job){in, out, rows, cols, MX_FP32, MX_ROUND_EVEN, 1};
    for (int f = 0; f < MX_FORMAT_COUNT; f++) {
        jobs[nj++] = (job){in, out, rows, cols, (mx_format)f, MX_ROUND_EVEN, 2};
        jobs[nj++] = (job){in, out, rows, cols, (mx_format)f, MX_ROUND_NEAREST, 2};
        jobs[nj++] = (job){in, out, rows, cols, (mx_format)f, MX_ROUND_EVEN, 3};
    }
    double best[N_JOBS];
    measure(jobs, nj, reps, best);

    double bw_memcpy = gbps(&jobs[0], best[0]), bw_loop = gbps(&jobs[1], best[1]);
    double bw_copy = bw_loop > bw_memcpy ? bw_loop : bw_memcpy;
    printf("copy: memcpy %.1f GB/s, OpenMP copy loop %.1f GB/s (reference: the faster, %.1f GB/s)"
           "\n\n",
           bw_memcpy, bw_loop, bw_copy);
    printf("%-12s %12s %8s %14s %8s %14s\n", "format", "even GB/s", "vs copy", "nearest GB/s",
           "vs copy", "in-place GB/s");
    double worst = 1e30;
    for (int f = 0; f < MX_FORMAT_COUNT; f++) {
        const int k = 2 + 3 * f;
        double e = gbps(&jobs[k], best[k]), ne = gbps(&jobs[k + 1], best[k + 1]);
        printf("%-12s %12.1f %7.0f%% %14.1f %7.0f%%", mx_format_name((mx_format)f), e,
               100 * e / bw_copy, ne, 100 * ne / bw_copy);
        if (f == MX_FP32) { /* in place is a no-op */
            printf(" %14s\n", "-");
            continue;
        }
        printf(" %14.1f\n", gbps(&jobs[k + 2], best[k + 2]));
        worst = e < worst ? e : worst;
        worst = ne < worst ? ne : worst;
    }
    double check = 0;
    for (size_t i = 0; i < n; i += 4099)
        check += out[i];
    printf("\nslowest MX format: %.1f GB/s = %.0f%% of copy (target >= 50%%)   [checksum %g]\n",
           worst, 100 * worst / bw_copy, check);
    free(in);
    free(out);
    return 0;
}
