/* ptq_gptq.c — GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative
 * Pre-trained Transformers", 2022) onto an MX grid, in double precision.
 *
 * Structure. GPTQ treats every output row independently: row r's result depends only on w_r and
 * U = chol_upper(H⁻¹). So the rows are cut into fixed chunks of GPTQ_ROWS, and each chunk runs
 * the whole column sweep on its own (one OpenMP task per chunk, no barrier per batch): within a
 * batch of `block` columns each row updates its own later columns, then one single-threaded
 * dgemm per chunk pushes the batch's errors to all later columns. The chunking does not depend on
 * the thread count, and OpenBLAS runs single-threaded inside the parallel region, so every call
 * sees the same operands whatever the thread count: the result is bit-identical for any count.
 *
 * MX grid. When the sweep reaches column i with i % 32 == 0, each row's block [i, i+32) gets its
 * E8M0 scale from the current (error-updated) weights of that block, asking mx_quantize itself so
 * the scale is by definition the one the format would choose; the block's columns are then
 * rounded one by one on that fixed grid, each seeing the errors of its left neighbours. Element
 * values are table[code]·2^(e−127), the very product mx_dequantize computes, so wq equals
 * mx_dequantize(codes, scales) bit for bit.
 *
 * Deliberately not done: act-order (column permutation by diag H), grouping other than the MX
 * block, and static-group tricks — none is needed for the MX formats' fixed 32-wide blocks. */
#include "quant/ptq.h"

#include <cblas.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows per chunk: small enough to balance 2-8 threads on 256-row layers, large enough that the
 * per-chunk dgemm (which repacks its U panel every call) stays efficient. Fixed, for determinism.
 */
#define GPTQ_ROWS 32

typedef struct {
    size_t rows, cols, nb, block;
    mx_format f;
    mx_rounding r;
    const double *U;  /* [cols, cols] upper Cholesky factor of (H + λI)⁻¹ */
    double *W;        /* [rows, cols] working weights, error-updated as the sweep goes */
    double *E;        /* [rows, block] scaled errors (w − q)/U[i][i] of the current batch */
    uint8_t *codes;   /* [rows, cols] or NULL */
    uint8_t *scales;  /* [rows, nb] or NULL */
    float *wq;        /* [rows, cols] or NULL */
    float table[256]; /* code -> element value at scale 1, as mx_dequantize uses */
} gptq_ctx;

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

ptq_gptq_opts ptq_gptq_default_opts(void) {
    ptq_gptq_opts o = {PTQ_GPTQ_DAMP, PTQ_GPTQ_BLOCK};
    return o;
}

/* ---- checks -------------------------------------------------------------------------------- */

static int check_args(const float *w, size_t rows, size_t cols, const double *H, mx_format f,
                      mx_rounding r, const ptq_gptq_opts *o, char *err, size_t errlen) {
    if (!mx_format_is_mx(f)) {
        set_err(err, errlen, "ptq_gptq: format %d (%s) is not an MX element format", (int)f,
                mx_format_name(f));
        return PTQ_ERR_ARG;
    }
    if (r != MX_ROUND_EVEN && r != MX_ROUND_NEAREST) {
        set_err(err, errlen, "ptq_gptq: unknown rounding mode %d", (int)r);
        return PTQ_ERR_ARG;
    }
    if (!(o->damp >= 0.0 && o->damp < HUGE_VAL)) {
        set_err(err, errlen, "ptq_gptq: damp = %g: must be finite and >= 0", o->damp);
        return PTQ_ERR_ARG;
    }
    if (o->block == 0 || o->block % MX_BLOCK_SIZE != 0 || o->block > INT_MAX) {
        set_err(err, errlen, "ptq_gptq: block = %zu: must be a positive multiple of %d", o->block,
                MX_BLOCK_SIZE);
        return PTQ_ERR_ARG;
    }
    if (rows > INT_MAX || cols > INT_MAX) {
        set_err(err, errlen, "ptq_gptq: shape [%zu, %zu] exceeds the BLAS int range", rows, cols);
        return PTQ_ERR_ARG;
    }
    if (rows > 0 && cols > 0 && (!w || !H)) {
        set_err(err, errlen, "ptq_gptq: %s is NULL for a [%zu, %zu] layer", w ? "H" : "w", rows,
                cols);
        return PTQ_ERR_ARG;
    }
    return PTQ_OK;
}

static int check_values(const float *w, size_t rows, size_t cols, const double *H, char *err,
                        size_t errlen) {
    for (size_t i = 0; i < rows * cols; i++)
        if (!isfinite(w[i])) {
            set_err(err, errlen,
                    "ptq_gptq: w[%zu][%zu] = %g is not finite: GPTQ needs finite weights "
                    "(repair or reload the checkpoint first)",
                    i / cols, i % cols, (double)w[i]);
            return PTQ_ERR_NONFINITE;
        }
    for (size_t i = 0; i < cols * cols; i++)
        if (!isfinite(H[i])) {
            set_err(err, errlen,
                    "ptq_gptq: H[%zu][%zu] = %g is not finite (calibration activations with "
                    "NaN/Inf?)",
                    i / cols, i % cols, H[i]);
            return PTQ_ERR_NONFINITE;
        }
    for (size_t i = 0; i < cols; i++)
        if (H[i * cols + i] < 0.0) {
            set_err(err, errlen,
                    "ptq_gptq: H[%zu][%zu] = %g < 0: not a second-moment matrix (expected "
                    "H = (2/N) sum of x x^T)",
                    i, i, H[i * cols + i]);
            return PTQ_ERR_NOT_PD;
        }
    return PTQ_OK;
}

/* ---- Hinv with dead inputs and escalating dampening ----------------------------------------- */

/* U = H with dead inputs (H[i][i] == 0) decoupled: row and column i zeroed, H[i][i] = 1 (so
 * U[k][i] = 0 for k != i and nothing ever flows into a dead column), plus λ on the diagonal. */
static void damped_copy(const double *H, size_t n, double lambda, double *U) {
    memcpy(U, H, n * n * sizeof *U);
    for (size_t i = 0; i < n; i++)
        if (H[i * n + i] == 0.0)
            for (size_t k = 0; k < n; k++)
                U[i * n + k] = U[k * n + i] = 0.0;
    for (size_t i = 0; i < n; i++)
        U[i * n + i] = (H[i * n + i] == 0.0 ? 1.0 : H[i * n + i]) + lambda;
}

static int hinv(const double *H, size_t n, double damp, double *U, ptq_gptq_info *info, char *err,
                size_t errlen) {
    double sum = 0.0;
    size_t dead = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = H[i * n + i];
        dead += d == 0.0;
        sum += d == 0.0 ? 1.0 : d;
    }
    const double mean = sum / (double)n;
    if (!isfinite(mean)) {
        set_err(err, errlen, "ptq_gptq: mean(diag H) overflows (%g)", mean);
        return PTQ_ERR_NONFINITE;
    }
    info->dead_cols = dead;
    const double damp0 = damp;
    for (int t = 1;; t++) {
        info->damp = damp;
        info->lambda = damp * mean;
        info->tries = t;
        damped_copy(H, n, info->lambda, U);
        int st = ptq_inv_chol_upper(U, n);
        if (st != PTQ_ERR_NOT_PD)
            return st;
        if (t == PTQ_GPTQ_MAX_TRIES) {
            set_err(err, errlen,
                    "ptq_gptq: H + lambda*I is not positive definite with damp escalated from "
                    "%g to %g (lambda = %g, mean diag %g, %d tries): H is not a valid Hessian",
                    damp0, damp, info->lambda, mean, t);
            return PTQ_ERR_NOT_PD;
        }
        damp = damp > 0.0 ? damp * 10.0 : 1e-6;
    }
}

/* ---- the column sweep ----------------------------------------------------------------------- */

/* Weights are checked before each conversion to float: out of float range means GPTQ diverged
 * (and the conversion itself would not be portable C). NaN fails too. */
static int fits_float(double v) { return fabs(v) <= FLT_MAX; }

/* E8M0 byte mx_quantize chooses for the n <= 32 current weights of one block; MX_SCALE_NAN if a
 * weight left float range. */
static int block_scale(const double *w, size_t n, mx_format f, mx_rounding r) {
    float seg[MX_BLOCK_SIZE];
    uint8_t codes[MX_BLOCK_SIZE], e;
    for (size_t k = 0; k < n; k++) {
        if (!fits_float(w[k]))
            return MX_SCALE_NAN;
        seg[k] = (float)w[k];
    }
    mx_quantize(seg, codes, &e, 1, n, f, r);
    return e;
}

/* Columns [b0, b1) of row `row`: round each column, record its scaled error in E and spread it
 * over the rest of the batch. Returns 0, or -1 when the updated weights overflowed float. */
static int row_batch(const gptq_ctx *c, size_t row, size_t b0, size_t b1) {
    const size_t cols = c->cols;
    double *restrict w = c->W + row * cols;
    double *restrict e = c->E + row * c->block;
    float x = 0.0f, inv = 0.0f; /* 2^(e−127), 2^(127−e) of the current MX block */
    for (size_t i = b0; i < b1; i++) {
        if (i % MX_BLOCK_SIZE == 0) {
            const size_t n = cols - i < MX_BLOCK_SIZE ? cols - i : MX_BLOCK_SIZE;
            const int sb = block_scale(w + i, n, c->f, c->r);
            if (sb == MX_SCALE_NAN)
                return -1;
            if (c->scales)
                c->scales[row * c->nb + i / MX_BLOCK_SIZE] = (uint8_t)sb;
            x = ldexpf(1.0f, sb - 127); /* exact, 2^-127 included (a float subnormal) */
            inv = ldexpf(1.0f, 127 - sb);
        }
        if (!fits_float(w[i]))
            return -1;
        const float v = (float)w[i];
        /* as mx_quantize: V·2^-s (a product with a power of two), then the element quantizer */
        const uint8_t code = mx_value_to_code(c->f, v * inv, c->r);
        const float q = c->table[code] * x;
        if (c->codes)
            c->codes[row * cols + i] = code;
        if (c->wq)
            c->wq[row * cols + i] = q;
        const double *restrict u = c->U + i * cols;
        const double ei = (w[i] - (double)q) / u[i];
        e[i - b0] = ei;
        for (size_t j = i + 1; j < b1; j++)
            w[j] -= ei * u[j];
    }
    return 0;
}

/* Rows [r0, r1) through every batch. */
static int sweep_chunk(const gptq_ctx *c, size_t r0, size_t r1) {
    const size_t cols = c->cols, m = r1 - r0;
    for (size_t b0 = 0; b0 < cols; b0 += c->block) {
        const size_t b1 = cols - b0 < c->block ? cols : b0 + c->block;
        for (size_t row = r0; row < r1; row++)
            if (row_batch(c, row, b0, b1) != 0)
                return -1;
        if (b1 == cols)
            break;
        /* W[r0:r1, b1:] -= E[r0:r1, :bs] · U[b0:b1, b1:] */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)(cols - b1),
                    (int)(b1 - b0), -1.0, c->E + r0 * c->block, (int)c->block,
                    c->U + b0 * cols + b1, (int)cols, 1.0, c->W + r0 * cols + b1, (int)cols);
    }
    return 0;
}

/* Every chunk, in parallel. Returns the first failing row chunk's start, or rows if none. */
static size_t sweep(const gptq_ctx *c, int *failed) {
    const size_t rows = c->rows, nchunks = (rows + GPTQ_ROWS - 1) / GPTQ_ROWS;
    /* No if() clause: OpenBLAS must always see an active parallel region (see top comment). */
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t k = 0; k < nchunks; k++) {
        const size_t r0 = k * GPTQ_ROWS, r1 = r0 + GPTQ_ROWS < rows ? r0 + GPTQ_ROWS : rows;
        failed[k] = sweep_chunk(c, r0, r1);
    }
    for (size_t k = 0; k < nchunks; k++)
        if (failed[k])
            return k * GPTQ_ROWS;
    return rows;
}

int ptq_gptq(const float *w, size_t rows, size_t cols, const double *H, mx_format f, mx_rounding r,
             const ptq_gptq_opts *opts, uint8_t *codes, uint8_t *scales, float *wq,
             ptq_gptq_info *info, char *err, size_t errlen) {
    const ptq_gptq_opts o = opts ? *opts : ptq_gptq_default_opts();
    ptq_gptq_info inf = {o.damp, 0.0, 0, 0};
    int st = check_args(w, rows, cols, H, f, r, &o, err, errlen);
    if (st == PTQ_OK && rows > 0 && cols > 0)
        st = check_values(w, rows, cols, H, err, errlen);
    if (st != PTQ_OK || rows == 0 || cols == 0) {
        if (info)
            *info = inf;
        return st;
    }
    gptq_ctx c = {.rows = rows,
                  .cols = cols,
                  .nb = mx_num_blocks(cols),
                  .block = o.block,
                  .f = f,
                  .r = r,
                  .codes = codes,
                  .scales = scales,
                  .wq = wq};
    double *U = malloc(cols * cols * sizeof *U);
    c.W = malloc(rows * cols * sizeof *c.W);
    c.E = malloc(rows * o.block * sizeof *c.E);
    int *failed = malloc((rows + GPTQ_ROWS - 1) / GPTQ_ROWS * sizeof *failed);
    if (!U || !c.W || !c.E || !failed) {
        set_err(err, errlen, "ptq_gptq: out of memory for a [%zu, %zu] layer", rows, cols);
        st = PTQ_ERR_NOMEM;
        goto done;
    }
    st = hinv(H, cols, o.damp, U, &inf, err, errlen);
    if (st != PTQ_OK)
        goto done;
    c.U = U;
    for (int k = 0; k < 256; k++)
        c.table[k] = mx_code_to_value(f, (uint8_t)k);
    for (size_t i = 0; i < rows * cols; i++) /* dead inputs: W[:, i] = 0 */
        c.W[i] = H[(i % cols) * (cols + 1)] == 0.0 ? 0.0 : (double)w[i];
    const size_t bad = sweep(&c, failed);
    if (bad < rows) {
        set_err(err, errlen,
                "ptq_gptq: weight updates overflowed float32 in the rows from %zu (H nearly "
                "singular? "
                "try a larger damp than %g)",
                bad, inf.damp);
        st = PTQ_ERR_NONFINITE;
    }
done:
    free(failed);
    free(c.E);
    free(c.W);
    free(U);
    if (info)
        *info = inf;
    return st;
}
