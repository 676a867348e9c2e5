/* mxtest.h — shared by the quant/ test files: the slow scalar MX reference and the group runners.
 */
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

/* Each test file exposes one runner returning its number of failed tests. */
int mxt_run_formats(void);
int mxt_run_exact(void);
int mxt_run_random(void);
int mxt_run_sns(void);
int mxt_run_pack(void);
int mxt_run_ptq(void);
int mxt_run_nf4(void);

#endif
