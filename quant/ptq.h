/* ptq.h — post-training quantization of linear layers onto MX formats: round-to-nearest (RTN),
 * GPTQ with the MX block scales fixed on the fly, the Hessian accumulator GPTQ needs, SmoothQuant
 * scale migration and the layer error tr((W−Wq)·H·(W−Wq)ᵀ) that GPTQ minimises.
 *
 * Shapes: a weight W is row-major [rows = out features, cols = in features] float32. MX blocks
 * are 32 consecutive elements along each row (the input dimension), exactly as in quant/mx.h:
 * codes are one byte per element (right-aligned), scales one E8M0 byte per block, row-major over
 * rows × mx_num_blocks(cols). Calibration activations X are row-major [N, cols] float32 (one row
 * per token). A Hessian H is cols×cols, row-major, double, symmetric with both triangles stored.
 *
 * Status: fallible functions return PTQ_OK (0) or a negative ptq_status; those with (err, errlen)
 * also write a message there (err may be NULL when errlen is 0). Nothing here exits or aborts.
 *
 * Determinism: every result here is bit-identical run to run and across OpenMP thread counts
 * (GPTQ works on fixed chunks of rows and runs its BLAS/LAPACK calls single-threaded, see
 * ptq_gptq.c), except that ptq_hessian_add and ptq_layer_error leave OpenBLAS's own threading on
 * (dsyrk, dsymm), so their last bits may depend on the thread count. PTQ runs offline: GPTQ, the
 * Hessian accumulator and the layer error allocate with malloc and free everything before
 * returning.
 */
#ifndef QAT_QUANT_PTQ_H
#define QAT_QUANT_PTQ_H

#include "quant/mx.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PTQ_OK = 0,
    PTQ_ERR_ARG = -1,       /* bad argument: NULL pointer, non-MX format, bad option, size */
    PTQ_ERR_NONFINITE = -2, /* NaN or Inf in an input (weights, Hessian, activations) */
    PTQ_ERR_NOT_PD = -3,    /* matrix not positive definite (even after escalated dampening) */
    PTQ_ERR_NOMEM = -4,     /* malloc failed */
    PTQ_ERR_EMPTY = -5,     /* Hessian accumulator has seen no activation row */
} ptq_status;

/* "ok", "bad argument", ...; "unknown status" for other values. Static strings. */
const char *ptq_status_to_string(int status);

/* ---- RTN (ptq_rtn.c) ------------------------------------------------------------------------ */

/* Round-to-nearest onto the MX grid, i.e. the format contract itself: codes/scales as
 * mx_quantize, wq as mx_fake_quant (== mx_dequantize(codes, scales), bit for bit).
 *   w      [rows, cols]                     input
 *   codes  [rows, cols] or NULL             written only together with scales
 *   scales [rows, mx_num_blocks(cols)] or NULL
 *   wq     [rows, cols] or NULL             may equal w
 * fp32 (not an MX format): wq is a copy, codes/scales are not written (as in mx.h). */
void ptq_rtn(const float *w, size_t rows, size_t cols, mx_format f, mx_rounding r, uint8_t *codes,
             uint8_t *scales, float *wq);

/* ---- Hessian accumulator (ptq_hessian.c) ----------------------------------------------------- */

/* Accumulates H = (2/N) Σ_n x_n x_nᵀ over calibration rows x_n ∈ ℝ^cols in double: keeps the sum
 * S = Σ x xᵀ and the count N, so the result is the mean whatever the chunking of the rows. */
typedef struct ptq_hessian ptq_hessian;

/* New accumulator for rows of `cols` features, N = 0. Owns S (cols² doubles) and a conversion
 * buffer (PTQ_HESSIAN_CHUNK × cols doubles). NULL when cols == 0 or out of memory. */
#define PTQ_HESSIAN_CHUNK 256
ptq_hessian *ptq_hessian_create(size_t cols);
void ptq_hessian_free(ptq_hessian *h); /* NULL is a no-op */

/* S += Xᵀ X, N += nrows for X [nrows, cols] (nrows == 0 is a no-op). X is not kept. A chunk with
 * a NaN or Inf anywhere is rejected as a whole (PTQ_ERR_NONFINITE, nothing added); NULL
 * arguments give PTQ_ERR_ARG. */
int ptq_hessian_add(ptq_hessian *h, const float *x, size_t nrows);

size_t ptq_hessian_cols(const ptq_hessian *h);
size_t ptq_hessian_count(const ptq_hessian *h); /* N: activation rows added so far */

/* H [cols, cols] (caller-owned) = (2/N)·S, both triangles. PTQ_ERR_EMPTY when N == 0 (H not
 * written), PTQ_ERR_ARG for NULL. */
int ptq_hessian_get(const ptq_hessian *h, double *H);

/* ---- GPTQ (ptq_gptq.c, ptq_chol.c) ----------------------------------------------------------- */

typedef struct {
    double damp;  /* relative dampening: λ = damp · mean(diag H) is added to diag H; >= 0 */
    size_t block; /* lazy-batch width in columns; a positive multiple of 32 */
} ptq_gptq_opts;

#define PTQ_GPTQ_DAMP 0.01
#define PTQ_GPTQ_BLOCK 128
/* Dampening escalation: when H + λI is not positive definite (Cholesky or triangular inverse
 * fails), damp is multiplied by 10 (0 becomes 1e-6) and the factorization retried, at most this
 * many attempts in all. */
#define PTQ_GPTQ_MAX_TRIES 8

ptq_gptq_opts ptq_gptq_default_opts(void); /* damp 0.01, block 128 */

typedef struct {
    double damp;      /* relative dampening finally used (> opts->damp after escalation) */
    double lambda;    /* absolute value added to the diagonal: damp · mean(diag H) */
    int tries;        /* factorization attempts (1 when the first one succeeded) */
    size_t dead_cols; /* inputs with H[i][i] == 0: their weights were set to 0 */
} ptq_gptq_info;

/* GPTQ (Frantar et al. 2022) onto an MX grid, without act-order:
 *   w      [rows, cols]               input weights, must be finite
 *   H      [cols, cols]               symmetric, finite, diag >= 0 (e.g. from ptq_hessian_get)
 *   opts   options, or NULL for ptq_gptq_default_opts()
 *   codes  [rows, cols] or NULL       MX element codes (one per byte, right-aligned)
 *   scales [rows, mx_num_blocks(cols)] or NULL   E8M0 scales
 *   wq     [rows, cols] or NULL       == mx_dequantize(codes, scales) bit for bit; may equal w
 *   info   or NULL                    dampening actually used, dead inputs
 * Dead inputs (H[i][i] == 0) get H[i][i] = 1 with row and column i of H zeroed and W[:, i] = 0,
 * so they come out exactly 0. λ = damp · mean(diag H) is added to the diagonal (escalated while
 * needed, see PTQ_GPTQ_MAX_TRIES), then U = upper Cholesky factor of H⁻¹ (H⁻¹ = UᵀU). Columns are
 * processed left to right in batches of opts->block; column i is rounded, its error
 * e = (w_i − q_i)/U[i][i] is spread over the later columns j by −e·U[i][j] (within the batch at
 * once, to later batches with one GEMM per batch). MX grid: on reaching column i with i % 32 == 0
 * the E8M0 scale of each row's block [i, i+32) is fixed from the current, error-updated weights of
 * that block (the scale mx_quantize chooses for them); the block's columns are then rounded one
 * at a time onto that scale's grid with rounding r. A short last block (cols % 32 != 0) is
 * handled as in mx.h. The output is therefore a valid MX tensor.
 * Returns PTQ_OK; PTQ_ERR_ARG (NULL w/H with rows·cols > 0, fp32 or unknown format, bad opts,
 * cols > INT_MAX), PTQ_ERR_NONFINITE (NaN/Inf in w or H, or a weight update overflowed),
 * PTQ_ERR_NOT_PD (negative diag H, or still not positive definite after PTQ_GPTQ_MAX_TRIES),
 * PTQ_ERR_NOMEM. On error the outputs are unspecified. rows == 0 or cols == 0: PTQ_OK, nothing
 * written. Cost: O(cols³) for the factorization plus O(rows·cols²) for the updates; memory
 * cols² + rows·(cols + block) doubles. */
int ptq_gptq(const float *w, size_t rows, size_t cols, const double *H, mx_format f, mx_rounding r,
             const ptq_gptq_opts *opts, uint8_t *codes, uint8_t *scales, float *wq,
             ptq_gptq_info *info, char *err, size_t errlen);

/* In place: a [n, n] symmetric positive definite (both triangles stored) becomes U, the upper
 * triangular Cholesky factor of a⁻¹ (a⁻¹ = UᵀU, positive diagonal, strict lower part set to 0).
 * GPTQ's Hinv. Computed without forming a⁻¹: with J the exchange matrix, JaJ = LLᵀ and
 * U = J·L⁻¹·J (LAPACK dpotrf + dtrtri, single-threaded for determinism). Returns PTQ_OK,
 * PTQ_ERR_NOT_PD (a unspecified), PTQ_ERR_ARG (n > INT_MAX). */
int ptq_inv_chol_upper(double *a, size_t n);

/* ---- SmoothQuant (ptq_smooth.c) -------------------------------------------------------------- */

#define PTQ_SMOOTH_MIN 1e-5 /* smoothing scales are clamped to [PTQ_SMOOTH_MIN, PTQ_SMOOTH_MAX] */
#define PTQ_SMOOTH_MAX 1e5

/* s [cols] (out): s_j = act_absmax_j^α / w_absmax_j^(1−α), computed in double, clamped to
 * [PTQ_SMOOTH_MIN, PTQ_SMOOTH_MAX] so that neither the folded norm weight (·1/s) nor the weights
 * (·s) leave a sane float range; s_j = 1 when either absmax is 0, negative or not finite (a dead
 * or broken channel is left alone). act_absmax: max |X_j| over the calibration tokens;
 * w_absmax: max |W_ij| over the rows of every linear layer that reads this input (the caller
 * concatenates them, e.g. with repeated ptq_absmax_cols on one accumulator). Returns PTQ_OK, or
 * PTQ_ERR_ARG (nothing written) when alpha is not in [0, 1] or a pointer is NULL with cols > 0. */
int ptq_smooth_scales(const float *act_absmax, const float *w_absmax, size_t cols, double alpha,
                      float *s);

/* acc[j] = max(acc[j], max_r |x[r][j]|) for x [rows, cols], acc [cols] updated in place (start it
 * at 0). NaN in x makes acc[j] NaN (and it stays NaN), so ptq_smooth_scales then leaves that
 * channel at s = 1 instead of hiding the problem. */
void ptq_absmax_cols(const float *x, size_t rows, size_t cols, float *acc);

/* w [rows, cols] ← w · diag(s), s [cols]: column j of every row times s[j]. */
void ptq_scale_cols(float *w, size_t rows, size_t cols, const float *s);

/* v[i] ← v[i] / s[i] for i < n: folds 1/s into the weight and bias of the norm feeding the layer,
 * so that (LN(x)·g/s + b/s) · (W·diag(s))ᵀ = (LN(x)·g + b) · Wᵀ. */
void ptq_div_vec(float *v, const float *s, size_t n);

/* ---- quality metric (ptq_metric.c) ----------------------------------------------------------- */

/* tr((W − Wq) · H · (W − Wq)ᵀ) = Σ_r d_rᵀ H d_r with d_r = w_r − wq_r in double, for w, wq
 * [rows, cols] and H [cols, cols] symmetric. With H = (2/N)·XᵀX this is (2/N)·‖W·Xᵀ − Wq·Xᵀ‖²_F,
 * the quantity GPTQ minimises. Returns NaN on NULL arguments or when memory runs out; 0 for
 * rows == 0 or cols == 0. */
double ptq_layer_error(const float *w, const float *wq, size_t rows, size_t cols, const double *H);

#endif
