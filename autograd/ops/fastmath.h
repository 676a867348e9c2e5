/* fastmath.h — branch-free float exp and tanh that gcc vectorizes without -ffast-math.
 * (libm's expf/tanhf block vectorization; see ../shared/PERF_NOTES.md, trap 2.)
 *
 * Two things keep these loops vectorizable at -O2 on plain SSE2:
 *  - no floorf (it is a libm call without SSE4.1): n = round(x/ln2) comes from the 1.5·2^23
 *    "shifter" addition, which also leaves n in the low mantissa bits, so 2^n needs no
 *    float→int conversion;
 *  - selects are done on bits, not with `c ? a : b`. With the default -ftrapping-math, gcc
 *    jump-threads a ternary clamp into branches whose arms hold (possibly trapping) float
 *    arithmetic, and then refuses to if-convert the loop ("control flow in loop").
 * NaN propagates through both functions (NaN loss detection relies on it).
 * Measured against double libm (tests/autograd/test_fastmath.c): exp < 1 ulp, tanh < 2 ulp. */
#ifndef QAT_AUTOGRAD_FASTMATH_H
#define QAT_AUTOGRAD_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline uint32_t ag_fm_bits(float x) {
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

static inline float ag_fm_float(uint32_t b) {
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* c ? a : b, computed on bits so that it stays a data dependency (see above). */
static inline float ag_fm_select(int c, float a, float b) {
    uint32_t m = -(uint32_t)(c != 0);
    return ag_fm_float((ag_fm_bits(a) & m) | (ag_fm_bits(b) & ~m));
}

/* exp(x) for float, < 1 ulp on [-87.3, 88.3]. Outside that range the argument is clamped: the
 * result never underflows below ~1.2e-38 nor overflows (x > 88.3 gives ~2.2e38, not inf), which
 * is what softmax and tanh need. Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, degree-6
 * polynomial (Cephes coefficients), 2^n assembled from bits. */
static inline float ag_expf_fast(float x) {
    x = ag_fm_select(x < -87.3f, -87.3f, x);
    x = ag_fm_select(x > 88.3f, 88.3f, x);
    const float shifter = 12582912.0f; /* 1.5·2^23: adding it rounds to an integer */
    float t = x * 1.44269504088896341f + shifter;
    float n = t - shifter;
    float r = x - n * 0.693359375f; /* ln2 split in an exact head and a small tail */
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* t's low bits hold n (|n| <= 127): n + 127 shifted into the exponent field is 2^n. */
    return p * ag_fm_float((ag_fm_bits(t) + 127u) << 23);
}

/* tanh(x) for float, < 2 ulp everywhere (relative error < 2e-7, also near 0 and for subnormals).
 * |x| >= 0.625: sign(x)·(1 − e)/(1 + e) with e = exp(−2|x|) ∈ (0, 0.29], free of cancellation
 * and saturating to exactly 1. |x| < 0.625: x + x³·q(x²), a degree-4 minimax fit of
 * (tanh(x)/x − 1)/x² (relative error 4e-9 before rounding) — the exp form would lose up to all
 * bits there to the cancellation in 1 − e. Both are computed on |x|, one is selected, and the
 * sign of x is put back (so tanh(−0) = −0). */
static inline float ag_tanhf_fast(float x) {
    uint32_t sign = ag_fm_bits(x) & 0x80000000u;
    float a = ag_fm_float(ag_fm_bits(x) ^ sign); /* |x|; tanh is odd: the sign goes back last */
    float e = ag_expf_fast(-2.0f * a);
    float big = (1.0f - e) / (1.0f + e);
    float s = a * a;
    float q = -5.704978141886501e-3f;
    q = q * s + 2.0639078591989192e-2f;
    q = q * s - 5.373971214115011e-2f;
    q = q * s + 1.3331442157987672e-1f;
    q = q * s - 3.3333281940244675e-1f;
    float small = a + a * s * q;
    return ag_fm_float(ag_fm_bits(ag_fm_select(a < 0.625f, small, big)) | sign);
}

#endif
