/* nf4_dq.c — double quantization of the NF4 block absmax values (QLoRA's "DQ"): centered by
 * their mean, symmetric int8 codes with one float scale per 256 values; and the status names
 * (encoding is the only fallible step of the module).
 *
 * Why symmetric int8 and not QLoRA's dynamic ("FP8-like") map: what matters downstream is the
 * error of absmax' relative to absmax, and absmax ≈ mean + c, so a fixed absolute step in c is
 * what the data wants. The dynamic map spends its precision near c = 0 (blocks whose absmax is
 * close to the mean), which buys nothing, and has no simple error bound. The linear code gives
 * |absmax' − absmax| <= scale/2 exactly (see below), and -128 is free to mark NaN blocks.
 *
 * Exactness, the one subtle point: mean and scales are multiples of U = 2^(e-22) (2^e <= max
 * absmax < 2^(e+1)), so every decoded value mean + k·scale is a multiple of U below 2^(e+2),
 * i.e. a float, and the decoder's float arithmetic is exact. Without that, the final rounding of
 * mean + k·scale could push a value up to half an ulp past scale/2. The mean moves by at most
 * U/2 = one ulp of the largest absmax; the codes absorb that.
 */
#include "quant/nf4.h"

#include <math.h>

/* Nearest k ∈ [-127, 127] to (a − mean)/s, ties to even, for finite a and s > 0. The division
 * only gives a first guess (it can be off by one at a midpoint); the midpoints
 * mean + (k ± 1/2)·s are multiples of U/2 below 2^(e+2), hence exact in double, and the
 * comparisons with a settle it exactly. */
static int nf4_dq_pick(double a, double mean, double s) {
    const double t = (a - mean) / s;
    int k = t >= 127.0 ? 127 : t <= -127.0 ? -127 : (int)floor(t + 0.5);
    while (k < 127 && a > mean + (k + 0.5) * s)
        k++;
    while (k > -127 && a < mean + (k - 0.5) * s)
        k--;
    if (k % 2 != 0 && k < 127 && a == mean + (k + 0.5) * s)
        k++;
    else if (k % 2 != 0 && k > -127 && a == mean + (k - 0.5) * s)
        k--;
    return k;
}

/* One DQ block of n <= 256 absmax values: its scale (the smallest multiple of u with
 * 127·scale >= max |a − mean|) and codes. */
static void nf4_dq_block(const float *a, size_t n, double mean, double u, int8_t *codes,
                         float *scale) {
    double cmax = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(a[i]))
            cmax = fmax(cmax, fabs((double)a[i] - mean));
    const double s = ceil(cmax / (127.0 * u)) * u; /* < 2^24 multiples of u: a float */
    *scale = (float)s;
    for (size_t i = 0; i < n; i++)
        codes[i] = (int8_t)(!isfinite(a[i]) ? NF4_DQ_NAN
                            : s == 0.0      ? 0
                                            : nf4_dq_pick(a[i], mean, s));
}

int nf4_dq_encode(const float *absmax, size_t nb, float *mean, int8_t *codes, float *scales) {
    if (!mean || (nb > 0 && (!absmax || !codes || !scales)))
        return NF4_ERR_ARG;
    double sum = 0.0;
    size_t count = 0;
    float amax = 0.0f;
    for (size_t j = 0; j < nb; j++) {
        const float a = absmax[j];
        if (!isfinite(a))
            continue;
        if (a < 0.0f || a >= 0x1p127f) /* 2^127: decoded values must stay below FLT_MAX */
            return NF4_ERR_RANGE;
        sum += a;
        count++;
        amax = a > amax ? a : amax;
    }
    float m = count ? (float)(sum / (double)count) : 0.0f;
    int all_equal = 1;
    for (size_t j = 0; j < nb && all_equal; j++)
        all_equal = !isfinite(absmax[j]) || absmax[j] == m;
    double u = 1.0; /* unused when all finite values are equal: every scale is 0 then */
    if (!all_equal) {
        int ex; /* amax = f·2^ex, f ∈ [0.5, 1): e = ex − 1, U = 2^(e−22) */
        frexpf(amax, &ex);
        u = ldexp(1.0, ex - 23 > -149 ? ex - 23 : -149);
        m = (float)(rint(m / u) * u); /* rint: ties to even in the default rounding mode */
    }
    *mean = m;
    for (size_t j = 0; j < nb; j += NF4_DQ_BLOCK) {
        const size_t n = nb - j < NF4_DQ_BLOCK ? nb - j : NF4_DQ_BLOCK;
        nf4_dq_block(absmax + j, n, m, u, codes + j, scales + j / NF4_DQ_BLOCK);
    }
    return NF4_OK;
}

/* Exact in float for encoder output (see the file comment), so the operation order is free; a
 * select rather than a branch for NaN keeps the loop vectorizable. */
void nf4_dq_decode(float mean, const int8_t *codes, const float *scales, size_t nb, float *absmax) {
    for (size_t j = 0; j < nb; j += NF4_DQ_BLOCK) {
        const size_t n = nb - j < NF4_DQ_BLOCK ? nb - j : NF4_DQ_BLOCK;
        const float s = scales[j / NF4_DQ_BLOCK];
        for (size_t i = 0; i < n; i++) {
            const int k = codes[j + i];
            const float v = mean + (float)k * s;
            absmax[j + i] = k == NF4_DQ_NAN ? NAN : v > 0.0f ? v : 0.0f;
        }
    }
}

const char *nf4_status_to_string(int status) {
    switch (status) {
    case NF4_OK:
        return "ok";
    case NF4_ERR_ARG:
        return "bad argument";
    case NF4_ERR_RANGE:
        return "absmax out of range (negative or >= 2^127)";
    default:
        return "unknown status";
    }
}
