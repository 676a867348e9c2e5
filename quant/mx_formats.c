/* mx_formats.c — the format table (MX_FORMATS.md §2), names, properties, and the element
 * code <-> value helpers. Everything else in quant/mx_* reads formats from here. */
#include "quant/mx_internal.h"

#include <float.h>
#include <pthread.h>
#include <string.h>

/* clang-format off */
static const mx_fmt_info mx_table[MX_FORMAT_COUNT] = {
    /*              name   bits int eb mb gmb gemin emax max_int max_t max_normal */
    [MX_FP32]     = {"fp32",       32, 0, 8, 23, 23, -126, 127, 0,  0, FLT_MAX},
    [MX_INT8]     = {"mxint8",      8, 1, 0,  6,  7,    1,   0, 127, -6, 127.0f / 64},
    [MX_INT6]     = {"mxint6",      6, 1, 0,  4,  5,    1,   0, 31, -4, 31.0f / 16},
    [MX_INT4]     = {"mxint4",      4, 1, 0,  2,  3,    1,   0, 7,  -2, 7.0f / 4},
    [MX_INT2]     = {"mxint2",      2, 1, 0,  0,  1,    1,   0, 1,   0, 1.0f},
    [MX_FP8_E4M3] = {"mxfp8_e4m3",  8, 0, 4,  3,  3,   -6,   8, 14,  5, 448.0f},
    [MX_FP8_E5M2] = {"mxfp8_e5m2",  8, 0, 5,  2,  2,  -14,  15, 7,  13, 57344.0f},
    [MX_FP6_E3M2] = {"mxfp6_e3m2",  6, 0, 3,  2,  2,   -2,   4, 7,   2, 28.0f},
    [MX_FP6_E2M3] = {"mxfp6_e2m3",  6, 0, 2,  3,  3,    0,   2, 15, -1, 7.5f},
    [MX_FP4_E2M1] = {"mxfp4_e2m1",  4, 0, 2,  1,  1,    0,   2, 3,   1, 6.0f},
};
/* clang-format on */

static int mx_valid(mx_format f) { return (unsigned)f < (unsigned)MX_FORMAT_COUNT; }

const mx_fmt_info *mx_info(mx_format f) {
    return mx_valid(f) && f != MX_FP32 ? &mx_table[f] : NULL;
}

const char *mx_format_name(mx_format f) { return mx_valid(f) ? mx_table[f].name : "?"; }

int mx_format_parse(const char *name, mx_format *out) {
    if (!name)
        return -1;
    for (int f = 0; f < MX_FORMAT_COUNT; f++)
        if (strcmp(name, mx_table[f].name) == 0) {
            if (out)
                *out = (mx_format)f;
            return 0;
        }
    return -1;
}

int mx_format_is_mx(mx_format f) { return mx_info(f) != NULL; }
int mx_format_is_int(mx_format f) { return mx_valid(f) ? mx_table[f].is_int : 0; }
int mx_format_bits(mx_format f) { return mx_valid(f) ? mx_table[f].bits : 0; }
int mx_format_exponent_bits(mx_format f) {
    return mx_valid(f) && f != MX_FP32 ? mx_table[f].ebits : 0;
}
int mx_format_mantissa_bits(mx_format f) {
    return mx_valid(f) && f != MX_FP32 ? mx_table[f].mbits : 0;
}
int mx_format_emax(mx_format f) { return mx_valid(f) ? mx_table[f].emax : 0; }
float mx_format_max_normal(mx_format f) { return mx_valid(f) ? mx_table[f].max_normal : 0.0f; }

double mx_format_bits_per_element(mx_format f) {
    if (!mx_valid(f))
        return 0.0;
    /* fp32 carries no shared scale. */
    return f == MX_FP32 ? 32.0 : mx_table[f].bits + 8.0 / MX_BLOCK_SIZE;
}

size_t mx_num_blocks(size_t cols) { return cols / MX_BLOCK_SIZE + (cols % MX_BLOCK_SIZE != 0); }

void mx_kparams_init(mx_kparams *p, const mx_fmt_info *fi) {
    const int mb = fi->grid_mbits;
    p->kexp = (uint32_t)(23 - mb) << 23;
    p->c_min_exp = fi->grid_emin - mb + 23;
    p->c_min = mx_pow2f(p->c_min_exp);
    p->emin_pow = mx_pow2f(fi->grid_emin);
    p->max_normal = fi->max_normal;
    p->emax = fi->emax;
    /* Half a step at the bottom, 2^(emin + s - mb - 1), must be normal: s >= -125 - emin + mb.
     * C at the top binade k + s (k = emax for FP; the INT grid's only binade is emin = 1 > emax),
     * 2^(k + s - mb + 23), must be finite: s <= 104 + mb - k. */
    const int top = fi->emax > fi->grid_emin ? fi->emax : fi->grid_emin;
    p->s_lo = -125 - fi->grid_emin + mb;
    p->s_hi = 104 + mb - top;
    p->emin_field = fi->grid_emin + 127;
    p->mbits = mb;
    p->int_mask = fi->is_int ? 0xffffffffu : 0u;
    p->code_mask = (1u << fi->bits) - 1u;
    p->sign_code = 1u << (fi->bits - 1);
}

/* Decodes straight from the bit layout (not through the kernels), so it can serve as the
 * dequantization table and as an independent check of mx_encode. */
float mx_code_to_value(mx_format f, uint8_t code) {
    const mx_fmt_info *fi = mx_info(f);
    if (!fi)
        return 0.0f;
    uint32_t c = code & ((1u << fi->bits) - 1u);
    if (fi->is_int) {
        int k = c >= (1u << (fi->bits - 1)) ? (int)c - (1 << fi->bits) : (int)c;
        return ldexpf((float)k, -fi->mbits);
    }
    uint32_t neg = c >> (fi->bits - 1);
    uint32_t mag = c & ((1u << (fi->bits - 1)) - 1u);
    int ef = (int)(mag >> fi->mbits);
    int mant = (int)(mag & ((1u << fi->mbits) - 1u));
    int bias = 1 - fi->grid_emin;
    float v;
    if (f == MX_FP8_E5M2 && ef == 31)
        v = mant == 0 ? INFINITY : NAN;
    else if (f == MX_FP8_E4M3 && mag == 0x7f)
        v = NAN;
    else if (ef == 0)
        v = ldexpf((float)mant, fi->grid_emin - fi->mbits);
    else
        v = ldexpf((float)((1 << fi->mbits) + mant), ef - bias - fi->mbits);
    return neg ? -v : v;
}

uint8_t mx_value_to_code(mx_format f, float v, mx_rounding r) {
    const mx_fmt_info *fi = mx_info(f);
    if (!fi)
        return 0;
    if (isnan(v))
        return f == MX_FP8_E4M3 || f == MX_FP8_E5M2 ? 0x7f : 0;
    mx_kparams p;
    mx_kparams_init(&p, fi);
    /* The kernel needs |v| < 2^(emax+1); beyond max normal the answer is saturation anyway. */
    if (fabsf(v) > fi->max_normal)
        v = copysignf(fi->max_normal, v);
    uint32_t sign;
    float m = r == MX_ROUND_NEAREST ? mx_round(v, p.c_min, p.max_normal, &p, 1, &sign)
                                    : mx_round(v, p.c_min, p.max_normal, &p, 0, &sign);
    return (uint8_t)mx_encode(m, sign, &p);
}

/* Every format's table, built once: dequantizing a short stretch (one row of a packed QLoRA base
 * per decoded token) must not pay 256 ldexpf calls each time. */
static float code_tables[MX_FORMAT_COUNT][256];
static pthread_once_t code_tables_once = PTHREAD_ONCE_INIT;

static void build_code_tables(void) {
    for (int f = 1; f < MX_FORMAT_COUNT; f++)
        for (int c = 0; c < 256; c++)
            code_tables[f][c] = mx_code_to_value((mx_format)f, (uint8_t)c);
}

const float *mx_code_table_of(mx_format f) {
    pthread_once(&code_tables_once, build_code_tables);
    return code_tables[f];
}

void mx_code_table(mx_format f, float table[256]) {
    memcpy(table, mx_code_table_of(f), 256 * sizeof *table);
}
