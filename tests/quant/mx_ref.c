/* mx_ref.c — the slow scalar MX reference the fast kernels are judged against. Written from
 * MX_FORMATS.md alone, in double precision, sharing nothing with quant/ but the enum: its own
 * format table, frexp for the shared exponent, ldexp for scaling, and rounding by exhaustive
 * search over every code of the format (no rounding trick to get wrong twice). Below it, the
 * helpers and PTQ fixtures more than one quant/ test file uses (these do call quant/). */
#include "mxtest.h"
#include "quant/ptq.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int is_int, bits, ebits, mbits, bias, emax;
    double max_normal;
} ref_fmt;

/* MX_FORMATS.md §2, column by column. */
static const ref_fmt REF[MX_FORMAT_COUNT] = {
    [MX_INT8] = {1, 8, 0, 0, 0, 0, 127.0 / 64}, [MX_INT6] = {1, 6, 0, 0, 0, 0, 31.0 / 16},
    [MX_INT4] = {1, 4, 0, 0, 0, 0, 7.0 / 4},    [MX_INT2] = {1, 2, 0, 0, 0, 0, 1.0},
    [MX_FP8_E4M3] = {0, 8, 4, 3, 7, 8, 448.0},  [MX_FP8_E5M2] = {0, 8, 5, 2, 15, 15, 57344.0},
    [MX_FP6_E3M2] = {0, 6, 3, 2, 3, 4, 28.0},   [MX_FP6_E2M3] = {0, 6, 2, 3, 1, 2, 7.5},
    [MX_FP4_E2M1] = {0, 4, 2, 1, 1, 2, 6.0},
};

double mxr_code_value(mx_format f, unsigned code) {
    const ref_fmt *F = &REF[f];
    unsigned c = code & ((1u << F->bits) - 1u);
    if (F->is_int) { /* two's complement k, value k * 2^-(b-2) */
        long k = (long)c - (c >= (1u << (F->bits - 1)) ? (1L << F->bits) : 0);
        return (double)k * ldexp(1.0, -(F->bits - 2));
    }
    unsigned s = c >> (F->bits - 1);
    unsigned E = (c >> F->mbits) & ((1u << F->ebits) - 1u);
    unsigned M = c & ((1u << F->mbits) - 1u);
    double frac = (double)M / (double)(1u << F->mbits), v;
    if (f == MX_FP8_E5M2 && E == 31)
        v = M == 0 ? INFINITY : NAN;
    else if (f == MX_FP8_E4M3 && E == 15 && M == 7)
        v = NAN;
    else if (E == 0)
        v = frac * ldexp(1.0, 1 - F->bias); /* subnormal 0.M * 2^(1-bias) */
    else
        v = (1.0 + frac) * ldexp(1.0, (int)E - F->bias);
    return s ? -v : v;
}

double mxr_above_max(mx_format f) {
    const ref_fmt *F = &REF[f];
    if (F->is_int)
        return 2.0; /* 2^(b-1) * 2^-(b-2) */
    /* max normal lies in the binade 2^emax, whose step is 2^(emax - mbits) */
    return F->max_normal + ldexp(1.0, F->emax - F->mbits);
}

static unsigned mxr_signed_code(mx_format f, unsigned mag, int neg) {
    const ref_fmt *F = &REF[f];
    if (!neg || mag == 0)
        return mag;
    if (F->is_int)
        return (0u - mag) & ((1u << F->bits) - 1u);
    return mag | (1u << (F->bits - 1));
}

/* The non-negative codes' values in code order (increasing); NaN/Inf entries are skipped. */
typedef struct {
    int n;
    double v[128];
} mxr_grid;

static void mxr_grid_init(mx_format f, mxr_grid *g) {
    g->n = 1 << (REF[f].bits - 1);
    for (int c = 0; c < g->n; c++)
        g->v[c] = mxr_code_value(f, (unsigned)c);
}

static unsigned mxr_q_grid(mx_format f, const mxr_grid *g, double x, mx_rounding r) {
    const ref_fmt *F = &REF[f];
    double ax = fabs(x);
    unsigned best = 0;
    double best_d = INFINITY;
    for (unsigned c = 0; c < (unsigned)g->n; c++) {
        double v = g->v[c];
        if (!isfinite(v))
            continue;
        if (ax > F->max_normal) { /* saturation: the code of max normal */
            if (v == F->max_normal)
                best = c;
            continue;
        }
        double d = fabs(ax - v);
        if (d < best_d) {
            best_d = d;
            best = c;
        } else if (d == best_d) { /* a tie between best (lower) and c (upper) */
            if (r == MX_ROUND_NEAREST || (c & 1u) == 0)
                best = c;
        }
    }
    return mxr_signed_code(f, best, x < 0);
}

unsigned mxr_q(mx_format f, double x, mx_rounding r) {
    mxr_grid g;
    mxr_grid_init(f, &g);
    return mxr_q_grid(f, &g, x, r);
}

/* double -> float for values known to be float32 grid points or beyond its range. */
static float mxr_to_float(double d) {
    if (fabs(d) > FLT_MAX)
        return d > 0 ? INFINITY : -INFINITY;
    return (float)d;
}

void mxr_quantize_block(const float *v, size_t n, mx_format f, mx_rounding r, uint8_t *codes,
                        uint8_t *scale, float *out) {
    const ref_fmt *F = &REF[f];
    int special = 0;
    double amax = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(v[i]) || isinf(v[i]))
            special = 1;
        else if (fabs((double)v[i]) > amax)
            amax = fabs((double)v[i]);
    }
    if (special || amax == 0.0) {
        *scale = special ? 255 : 0;
        for (size_t i = 0; i < n; i++) {
            codes[i] = 0;
            out[i] = special ? NAN : 0.0f;
        }
        return;
    }
    int ex;
    frexp(amax, &ex); /* amax = m * 2^ex, m in [0.5, 1): floor(log2 amax) = ex - 1 */
    int s = ex - 1 - F->emax;
    if (s < -127)
        s = -127;
    *scale = (uint8_t)(s + 127);
    mxr_grid g;
    mxr_grid_init(f, &g);
    for (size_t i = 0; i < n; i++) {
        unsigned c = mxr_q_grid(f, &g, ldexp((double)v[i], -s), r);
        codes[i] = (uint8_t)c;
        out[i] = mxr_to_float(ldexp(mxr_code_value(f, c), s));
    }
}

void mxr_quantize(const float *in, uint8_t *codes, uint8_t *scales, float *out, size_t rows,
                  size_t cols, mx_format f, mx_rounding r) {
    size_t nb = (cols + 31) / 32;
    float tmp[32];
    for (size_t i = 0; i < rows; i++)
        for (size_t b = 0; b < nb; b++) {
            size_t off = i * cols + b * 32, n = cols - b * 32 < 32 ? cols - b * 32 : 32;
            mxr_quantize_block(in + off, n, f, r, codes + off, scales + i * nb + b,
                               out ? out + off : tmp);
        }
}

void mxr_dequantize(const uint8_t *codes, const uint8_t *scales, float *out, size_t rows,
                    size_t cols, mx_format f) {
    size_t nb = (cols + 31) / 32;
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) {
            uint8_t e = scales[i * nb + j / 32];
            out[i * cols + j] =
                e == 255 ? NAN
                         : mxr_to_float(ldexp(mxr_code_value(f, codes[i * cols + j]), e - 127));
        }
}

/* ---- helpers -----------------------------------------------------------------------------------
 */

bool mxt_same_floats(const char *what, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t ua, ub;
        memcpy(&ua, &a[i], 4);
        memcpy(&ub, &b[i], 4);
        if (ua != ub && !(isnan(a[i]) && isnan(b[i]))) {
            print_error("%s[%zu]: %.9g (0x%08x) vs %.9g (0x%08x)\n", what, i, a[i], ua, b[i], ub);
            return false;
        }
    }
    return true;
}

bool mxt_same_bytes(const char *what, const uint8_t *a, const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) {
            print_error("%s[%zu]: 0x%02x vs 0x%02x\n", what, i, a[i], b[i]);
            return false;
        }
    return true;
}

uint64_t mxt_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void *mxt_xmalloc(size_t n) {
    void *p = malloc(n);
    assert_non_null(p);
    return p;
}

double mxt_gauss(uint64_t *s) {
    double u1 = 1.0 - tu_uniform(s, 0.0, 1.0), u2 = tu_uniform(s, 0.0, 1.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- PTQ fixtures ------------------------------------------------------------------------------
 */

/* The list ends at MX_FP4_E2M1: a format added after it must be added here too. */
_Static_assert(MX_FORMAT_COUNT == MX_FP4_E2M1 + 1, "MXT_FORMATS must list every MX format");
const mx_format MXT_FORMATS[MX_FORMAT_COUNT - 1] = {MX_INT8,     MX_INT6,     MX_INT4,
                                                    MX_INT2,     MX_FP8_E4M3, MX_FP8_E5M2,
                                                    MX_FP6_E3M2, MX_FP6_E2M3, MX_FP4_E2M1};

float *mxt_make_calib(size_t n, size_t c, uint64_t seed) {
    float *x = mxt_xmalloc(n * c * sizeof *x);
    double *z = mxt_xmalloc(c * sizeof *z), *m = mxt_xmalloc(c * c * sizeof *m);
    for (size_t i = 0; i < c * c; i++)
        m[i] = mxt_gauss(&seed) / sqrt((double)c);
    for (size_t r = 0; r < n; r++) {
        for (size_t k = 0; k < c; k++)
            z[k] = mxt_gauss(&seed);
        for (size_t j = 0; j < c; j++) {
            double v = 0.0;
            for (size_t k = 0; k < c; k++)
                v += z[k] * m[k * c + j];
            x[r * c + j] = (float)(j % 37 == 3 ? 12.0 * v : v);
        }
    }
    free(z);
    free(m);
    return x;
}

float *mxt_make_weights(size_t rows, size_t cols, uint64_t seed) {
    float *w = mxt_xmalloc(rows * cols * sizeof *w);
    for (size_t i = 0; i < rows * cols; i++)
        w[i] = (float)(0.05 * mxt_gauss(&seed));
    return w;
}

double *mxt_hessian_of(const float *x, size_t n, size_t c) {
    ptq_hessian *h = ptq_hessian_create(c);
    assert_non_null(h);
    assert_int_equal(ptq_hessian_add(h, x, n), PTQ_OK);
    double *H = mxt_xmalloc(c * c * sizeof *H);
    assert_int_equal(ptq_hessian_get(h, H), PTQ_OK);
    ptq_hessian_free(h);
    return H;
}

double mxt_output_error(const float *w, const float *wq, size_t rows, size_t cols, const float *x,
                        size_t n) {
    double total = 0.0, *d = mxt_xmalloc(cols * sizeof *d);
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < cols; j++)
            d[j] = (double)w[r * cols + j] - (double)wq[r * cols + j];
        for (size_t t = 0; t < n; t++) {
            double y = 0.0;
            for (size_t j = 0; j < cols; j++)
                y += d[j] * x[t * cols + j];
            total += y * y;
        }
    }
    free(d);
    return total;
}

float *mxt_rtn_of(const float *w, size_t rows, size_t cols, mx_format f, mx_rounding r) {
    float *wq = mxt_xmalloc(rows * cols * sizeof *wq);
    ptq_rtn(w, rows, cols, f, r, NULL, NULL, wq);
    return wq;
}
