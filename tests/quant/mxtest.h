/* mxtest.h — shared by the quant/ test files: the slow scalar MX reference, the helpers and
 * fixtures more than one file uses, and the group runners. */
#ifndef QAT_TESTS_MXTEST_H
#define QAT_TESTS_MXTEST_H

#include "common/testutil.h"
#include "quant/mx.h"

#include <stdbool.h>

/* ---- mx_ref.c: MX_FORMATS.md §2-§5 straight from the definition, in double precision --------- */

/* Value of an element code at scale 1 from the bit layout (NaN for NaN codes, ±Inf for E5M2). */
double mxr_code_value(mx_format f, unsigned code);
/* The grid point just above max normal in the unbounded grid (E4M3: 480, INT8: 2, E2M1: 8). */
double mxr_above_max(mx_format f);
/* Element quantizer Q: nearest grid value by exhaustive search over every finite code, ties by
 * the parity of the code (even) or to the larger magnitude (nearest), saturating; returns the
 * code (zero is the +0 code). */
unsigned mxr_q(mx_format f, double x, mx_rounding r);
/* One block of n <= 32 values: codes, scale byte and fake-quant outputs. */
void mxr_quantize_block(const float *v, size_t n, mx_format f, mx_rounding r, uint8_t *codes,
                        uint8_t *scale, float *out);
/* Whole tensors, blocking as in mx.h. out may be NULL. */
void mxr_quantize(const float *in, uint8_t *codes, uint8_t *scales, float *out, size_t rows,
                  size_t cols, mx_format f, mx_rounding r);
void mxr_dequantize(const uint8_t *codes, const uint8_t *scales, float *out, size_t rows,
                    size_t cols, mx_format f);

/* ---- helpers shared by the test files ----------------------------------------------------------
 */

/* Bitwise equality of float arrays (any NaN equals any NaN); prints the first difference. */
bool mxt_same_floats(const char *what, const float *a, const float *b, size_t n);
bool mxt_same_bytes(const char *what, const uint8_t *a, const uint8_t *b, size_t n);
/* A float whose bits are a random draw from the splitmix stream. */
uint64_t mxt_next(uint64_t *s);
/* malloc that fails the current test instead of returning NULL. */
void *mxt_xmalloc(size_t n);
/* A N(0,1) draw (Box-Muller over tu_uniform's stream). */
double mxt_gauss(uint64_t *s);

/* ---- PTQ fixtures shared by the test_ptq_*.c files ----------------------------------------- */

/* Every MX element format (MX_FP32 is excluded: a plain copy, nothing to quantize). */
extern const mx_format MXT_FORMATS[MX_FORMAT_COUNT - 1];
#define MXT_NFORMATS (sizeof MXT_FORMATS / sizeof MXT_FORMATS[0])
/* Correlated calibration activations X [n, c] = Z·M with Z iid N(0,1) and M [c, c] iid
 * N(0, 1/c) (features strongly mixed, covariance far from diagonal), plus a few outlier
 * channels 12× larger, as LLM activations have. The caller frees. */
float *mxt_make_calib(size_t n, size_t c, uint64_t seed);
/* Weights [rows, cols] iid N(0, 0.05²). The caller frees. */
float *mxt_make_weights(size_t rows, size_t cols, uint64_t seed);
/* H = (2/N) XᵀX [c, c] through the accumulator, for X [n, c]. The caller frees. */
double *mxt_hessian_of(const float *x, size_t n, size_t c);
/* ‖W·Xᵀ − Wq·Xᵀ‖²_F straight from the activations, in double. */
double mxt_output_error(const float *w, const float *wq, size_t rows, size_t cols, const float *x,
                        size_t n);
/* ptq_rtn's fake-quantized weights alone. The caller frees. */
float *mxt_rtn_of(const float *w, size_t rows, size_t cols, mx_format f, mx_rounding r);

/* Each test file exposes one runner returning its number of failed tests. */
int mxt_run_formats(void);
int mxt_run_exact(void);
int mxt_run_random(void);
int mxt_run_sns(void);
int mxt_run_pack(void);
int mxt_run_ptq_parts(void);
int mxt_run_ptq_gptq(void);
int mxt_run_ptq_smooth(void);
int mxt_run_nf4_code(void);
int mxt_run_nf4_dq(void);
int mxt_run_nf4_tensor(void);

#endif
