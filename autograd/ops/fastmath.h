/* fastmath.h — branch-free float exp and tanh that gcc vectorizes without -ffast-math.
 * (libm's expf/tanhf block vectorization; see ../shared/PERF_NOTES.md, trap 2.) */
#ifndef QAT_AUTOGRAD_FASTMATH_H
#define QAT_AUTOGRAD_FASTMATH_H

#include <stdint.h>
#include <string.h>

/* exp(x) for float, relative error < 2 ulp on [-87, 88]; clamps outside (exp(-inf)->~0).
 * Cody-Waite reduction x = n ln2 + r, degree-6 polynomial on |r| <= ln2/2, 2^n built from bits. */
static inline float ag_expf_fast(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

/* tanh(x) = 1 - 2/(exp(2x)+1), accurate to a few ulp; saturates cleanly for large |x|. */
static inline float ag_tanhf_fast(float x) {
    float e = ag_expf_fast(2.0f * x);
    return 1.0f - 2.0f / (e + 1.0f);
}

#endif
