/* mx_internal.h — shared by quant/mx_*.c, not public: the format table entry and the exact
 * element/block kernels. The kernels are static inline so that each caller's loops vectorize
 * (gcc -O2, SSE2 baseline) with the format parameters held in registers.
 *
 * One grid for all nine formats. An FP element of a binade with exponent ex has step
 * 2^(ex - mbits), ex = max(floor(log2|x|), emin). An INT-b element is exactly such a grid with
 * emin = 1 and mbits = b-1: every |x| < 2 then sits in the "subnormal" binade with step
 * 2^(1-(b-1)) = 2^-(b-2). So the kernels carry (grid_emin, grid_mbits, max_normal) and never
 * branch on the kind of format.
 */
#ifndef QAT_QUANT_MX_INTERNAL_H
#define QAT_QUANT_MX_INTERNAL_H

#include "quant/mx.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const char *name;
    int bits;       /* element bits (32 for fp32) */
    int is_int;     /* INT-b: two's complement k, value k * 2^-(b-2) */
    int ebits;      /* FP exponent bits; 0 for INT */
    int mbits;      /* FP mantissa bits; INT-b: b-2 fraction bits */
    int grid_mbits; /* mantissa bits of the unified grid (FP: mbits; INT-b: b-1) */
    int grid_emin;  /* smallest binade exponent of the grid (FP: 1-bias; INT: 1) */
    int emax;       /* exponent of the largest normal binade, for the shared exponent */
    int max_int;    /* max normal = max_int * 2^max_t, with max_int an integer */
    int max_t;
    float max_normal;
} mx_fmt_info;

/* The entry of f; NULL for fp32 and unknown values (neither has element codes). */
const mx_fmt_info *mx_info(mx_format f);

/* ---- bit helpers --------------------------------------------------------------------------- */

static inline uint32_t mx_f2u(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float mx_u2f(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* 2^k exactly for k in [-149, 127], built from bits (no libm call per block). */
static inline float mx_pow2f(int k) {
    return k >= -126 ? mx_u2f((uint32_t)(k + 127) << 23) : mx_u2f(1u << (k + 149));
}

/* ---- element kernel -------------------------------------------------------------------------- */

/* Loop-invariant parameters of one format, derived once per call. */
typedef struct {
    /* rounding */
    uint32_t kexp;  /* (23 - mbits) << 23: exponent bits of 2^k -> of C = 2^(k - mbits + 23) */
    int c_min_exp;  /* emin - mbits + 23: C of the grid's lowest binade at scale 1 is 2^this */
    float c_min;    /* 2^c_min_exp */
    float emin_pow; /* 2^grid_emin: the bottom of the grid's lowest binade at scale 1 */
    float max_normal;
    int emax;
    int s_lo, s_hi; /* block exponents s for which the grid at scale 2^s is all normal floats */
    /* encoding */
    int32_t emin_field; /* grid_emin + 127 */
    int32_t mbits;      /* grid_mbits */
    uint32_t int_mask;  /* all ones for INT formats */
    uint32_t code_mask; /* (1 << bits) - 1 */
    uint32_t sign_code; /* FP sign bit in the code, 1 << (bits-1) */
} mx_kparams;

void mx_kparams_init(mx_kparams *p, const mx_fmt_info *fi);

/* Q of MX_FORMATS.md §3.5 on the grid scaled by 2^s, applied to v: the grid's lowest binade
 * starts at 2^(emin+s), a binade [2^k, 2^(k+1)) above it has step 2^(k - mbits), and results
 * saturate at sat = max_normal * 2^s. c_lo = 2^(emin + s - mbits + 23) is the rounding constant
 * C of the lowest binade. Returns the rounded, saturated magnitude and sets *sign to v's sign
 * bit, or to 0 when the result is zero (zeros are always +0). `nearest` is a compile-time
 * constant at every call site, so each rounding mode gets its own loop.
 *
 * Two ways to call it: with s = 0 on v / 2^s (c_lo = c_min, sat = max_normal), or directly on
 * the unscaled v with c_lo and sat of the block's s, which saves two multiplies per element and
 * is the same computation scaled by an exact power of two — valid while every constant it
 * builds (C, step, half) is a normal float: p->s_lo <= s <= p->s_hi.
 *
 * Exactness: with k = max(floor(log2|v|), emin+s) and C = 2^(k - mbits + 23) > |v|, the float
 * sum |v| + C lies in [C, 2C), whose ulp is the grid step, so the hardware's round-to-nearest-even
 * rounds |v| to the grid (C is an even number of steps, so parity is kept) and (|v| + C) - C is
 * exact. C = max(C of |v|'s binade, c_lo): built from |v|'s exponent bits (a zero or subnormal
 * |v| gives a tiny normal C that the max discards). Ties away from zero: a tie that went down
 * leaves |v| - r == step/2 exactly, and then r + step is the answer. Float max/min/add/compare
 * and integer ops on exponent bits only: no division, no libm, all vectorizable with SSE2. */
static inline float mx_round(float v, float c_lo, float sat, const mx_kparams *p, int nearest,
                             uint32_t *sign) {
    uint32_t u = mx_f2u(v);
    uint32_t sgn = u & 0x80000000u;
    float a = mx_u2f(u ^ sgn);
    float ca = mx_u2f((mx_f2u(a) & 0x7f800000u) + p->kexp);
    float c = ca > c_lo ? ca : c_lo; /* maxps */
    float r = (a + c) - c;
    if (nearest) {
        float step = mx_u2f(mx_f2u(c) - (23u << 23)), half = mx_u2f(mx_f2u(c) - (24u << 23));
        uint32_t tie = (a - r == half) ? 0xffffffffu : 0u;
        /* integer mask, not ?: on floats: a conditional add would defeat if-conversion */
        r = r + mx_u2f(mx_f2u(step) & tie);
    }
    r = r < sat ? r : sat; /* minps */
    *sign = r != 0.0f ? sgn : 0u;
    return r;
}

/* Code of a magnitude r returned by mx_round at scale 1 (s = 0) with its sign. Normal FP
 * magnitudes: the top mbits of the float mantissa and the rebiased exponent. Magnitudes below
 * 2^emin (FP subnormals, every INT value): r + 2^emin is exact and its top mbits mantissa bits are
 * r / step. */
static inline uint32_t mx_encode(float r, uint32_t sign, const mx_kparams *p) {
    /* integer masks, not ?: on floats: gcc must see one unconditional add to if-convert */
    uint32_t sub = 0u - (uint32_t)(r < p->emin_pow);
    float rr = r + mx_u2f(mx_f2u(p->emin_pow) & sub);
    int32_t off = p->emin_field - 1 + (int32_t)(sub & 1u);
    uint32_t mag = (mx_f2u(rr) >> (23 - p->mbits)) - ((uint32_t)off << p->mbits);
    /* selects by masks: a loop-invariant branch on is_int would stop vectorization */
    uint32_t neg =
        ((0u - mag) & p->code_mask & p->int_mask) | ((mag | p->sign_code) & ~p->int_mask);
    uint32_t smask = 0u - (sign >> 31);
    return (neg & smask) | (mag & ~smask);
}

/* ---- block kernels --------------------------------------------------------------------------- */

/* Copies the n <= 32 values of a block into buf and returns the largest |bit pattern|: ordered
 * like |value| for floats, and >= 0x7f800000 iff the block holds a NaN or an Inf. Copying first
 * is what makes in == out safe for fake quantization. */
static inline uint32_t mx_block_load(const float *in, float *restrict buf, size_t n) {
    int32_t m = 0; /* signed: |bit patterns| fit, and SSE2 has a signed compare */
    for (size_t i = 0; i < n; i++) {
        float v = in[i];
        int32_t u = (int32_t)(mx_f2u(v) & 0x7fffffffu);
        buf[i] = v;
        m = u > m ? u : m;
    }
    return (uint32_t)m;
}

/* E8M0 byte of a block from its largest |bit pattern|: 255 for NaN/Inf; otherwise
 * s = floor(log2 amax) - emax clamped at -127. floor(log2 amax) is the float exponent field - 127
 * for normal amax; a zero or subnormal amax is below 2^-126, so it clamps (scale byte 0). */
static inline int mx_scale_byte(uint32_t amax_bits, int emax) {
    if (amax_bits >= 0x7f800000u)
        return MX_SCALE_NAN;
    int e = (int)(amax_bits >> 23) - emax;
    return e < 0 ? 0 : e;
}

/* Block-level entry points, shared by fake quantization, quantization and Slice-and-Scale
 * (whose fallback is the definition, run through these on one block). n <= 32. */
void mx_quantize_block(const float *in, uint8_t *restrict codes, uint8_t *restrict scale, size_t n,
                       const mx_kparams *p, mx_rounding r);
void mx_dequantize_block(const uint8_t *restrict codes, uint8_t scale, float *restrict out,
                         size_t n, const float *restrict table);
/* table[c] = mx_code_to_value(f, c) for all 256 bytes. */
void mx_code_table(mx_format f, float table[256]);
/* The same table, shared and built once (thread-safe); f must be an MX format. */
const float *mx_code_table_of(mx_format f);

/* Blocks below this count run on one thread: starting a team costs more than they take. */
#define MX_PARALLEL_MIN_BLOCKS 512

/* This thread's share [b0, b1) of `total` blocks: a fixed contiguous partition (as
 * schedule(static)), so a thread walks its blocks with increments instead of a division each. */
static inline void mx_thread_range(size_t total, size_t *b0, size_t *b1) {
    size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
    size_t q = total / nt, r = total % nt;
    *b0 = t * q + (t < r ? t : r);
    *b1 = *b0 + q + (t < r);
}

#endif
