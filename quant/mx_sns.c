/* mx_sns.c — Slice-and-Scale (MX_FORMATS.md §5): an anchor (MXINT8 / MXFP8) block converted to
 * a lower format. By definition SnS = quantize_dst(dequantize_src(block)); this file computes it
 * with integers only wherever that is provably identical, and runs the definition elsewhere.
 *
 * Why the fast path is exact. Let the source block hold element values q_i (codes) and scale
 * 2^s. The definition's amax is max|q_i| * 2^s. If max|q_i| lies in the source's top binade
 * [2^emax_src, 2^(emax_src+1)) — always the case for a block produced by the quantizer with an
 * unclamped scale — then floor(log2 amax) = emax_src + s and the destination exponent is
 * s + emax_src - emax_dst, i.e. e_dst = e_src + emax_src - emax_dst, as long as that stays >= 0
 * (no clamping at 2^-127). Each element then becomes Q_dst(q_i * 2^(emax_dst - emax_src)): a
 * function of the source code alone. So the fast path is a 256-entry code -> code table per
 * call, built by integer re-rounding (mx_recode), plus one add on the scale byte.
 *
 * The definition runs instead for blocks where that reasoning fails:
 *   - max|q_i| below the top binade: all-zero blocks, blocks whose source scale was clamped at
 *     2^-127 (we also route every e_src == 0 block there, as the contract says), and codes that
 *     did not come from our quantizer;
 *   - codes the definition turns into NaN/Inf (E4M3 S.1111.111, E5M2 exponent 31) or outside
 *     the symmetric range (INT -2^(b-1), whose value -2 is in the next binade);
 *   - e_src + emax_src > 254, where dequantization overflows float32 (the definition then sees
 *     Inf, hence a NaN block), and e_dst < 0, where the definition clamps.
 * A NaN source block (scale 255) gives a NaN destination block (scale 255, codes 0). */
#include "quant/mx_internal.h"

enum {
    MX_SNS_TOP = 1,    /* |value| in [2^emax_src, 2^(emax_src+1)) */
    MX_SNS_SPECIAL = 2 /* NaN, Inf, INT -2^(b-1): only the definition knows the answer */
};

int mx_sns_supported(mx_format src, mx_format dst) {
    return (src == MX_INT8 || src == MX_FP8_E4M3 || src == MX_FP8_E5M2) && mx_format_is_mx(dst);
}

/* floor(log2 n) for n >= 1 (at most 9 bits here). */
static int mx_ilog2(uint32_t n) {
    int l = 0;
    while (n >>= 1)
        l++;
    return l;
}

/* round(n / 2^k) for k >= 1 with the given tie rule: the arithmetic shift with rounding of §5,
 * on magnitudes (so even/away are symmetric in the sign). */
static uint32_t mx_round_shift(uint32_t n, int k, mx_rounding r) {
    if (k >= 32)
        return 0; /* n < 2^31 <= half */
    uint32_t q = n >> k, rem = n & ((1u << k) - 1u), half = 1u << (k - 1);
    int up = rem > half || (rem == half && (r == MX_ROUND_NEAREST || (q & 1u)));
    return q + (uint32_t)up;
}

/* Source code -> |value| = n * 2^L, the sign, and the flags. */
static void mx_decode(const mx_fmt_info *s, uint8_t code, uint32_t *n, int *L, int *neg,
                      int *flags) {
    const int gm = s->grid_mbits;
    *flags = 0;
    if (s->is_int) {
        int k = code >= (1u << (s->bits - 1)) ? (int)code - (1 << s->bits) : (int)code;
        *neg = k < 0;
        *n = (uint32_t)(k < 0 ? -k : k);
        *L = -s->mbits; /* value k * 2^-(b-2) */
        if (k == -(1 << (s->bits - 1)))
            *flags |= MX_SNS_SPECIAL;
    } else {
        uint32_t mag = code & ((1u << (s->bits - 1)) - 1u);
        uint32_t ef = mag >> gm, mant = mag & ((1u << gm) - 1u);
        *neg = (code >> (s->bits - 1)) & 1;
        if ((s->ebits == 5 && ef == 31) || (s->ebits == 4 && mag == 0x7f))
            *flags |= MX_SNS_SPECIAL;
        *n = ef == 0 ? mant : (1u << gm) + mant;
        *L = (ef == 0 ? 1 : (int)ef) - (1 - s->grid_emin) - gm;
    }
    if (*n != 0 && mx_ilog2(*n) + *L == s->emax)
        *flags |= MX_SNS_TOP;
}

/* Q_dst(n * 2^Lp) with sign, as a destination code, in integers: the binade exponent
 * ex = max(floor(log2 y), emin) fixes the step 2^t, t = ex - mbits; the magnitude in steps is
 * n shifted by Lp - t (exact left, rounded right); saturation compares m * 2^t with
 * max_int * 2^max_t. For INT8 -> INT-b this is exactly k_dst = clamp(round(k_src / 2^(8-b))). */
static uint8_t mx_recode(const mx_fmt_info *d, uint32_t n, int Lp, int neg, mx_rounding r) {
    if (n == 0)
        return 0;
    const int gm = d->grid_mbits;
    int lg = mx_ilog2(n) + Lp;
    int ex = lg > d->grid_emin ? lg : d->grid_emin;
    int t = ex - gm, sh = Lp - t;
    uint64_t m = sh >= 0 ? (uint64_t)n << sh : mx_round_shift(n, -sh, r);
    int sat = t >= d->max_t ? (m << (t - d->max_t)) > (uint64_t)d->max_int
                            : m > ((uint64_t)d->max_int << (d->max_t - t));
    uint32_t mag;
    if (d->is_int) {
        mag = sat ? (uint32_t)d->max_int : (uint32_t)m; /* m < 2^(b-1): the "subnormal" binade */
    } else if (sat) {
        mag = ((uint32_t)(d->emax + 1 - d->grid_emin) << gm) | (uint32_t)(d->max_int - (1 << gm));
    } else {
        if (m >> (gm + 1)) { /* rounded up into the next binade: m == 2^(gm+1) */
            m >>= 1;
            t++;
        }
        mag = m >> gm ? ((uint32_t)(t + gm + 1 - d->grid_emin) << gm) | ((uint32_t)m - (1u << gm))
                      : (uint32_t)m; /* subnormal: only at ex == emin */
    }
    if (mag == 0 || !neg)
        return (uint8_t)mag;
    return d->is_int ? (uint8_t)((0u - mag) & ((1u << d->bits) - 1u))
                     : (uint8_t)(mag | (1u << (d->bits - 1)));
}

typedef struct {
    uint8_t code[256]; /* destination code of each source code on the fast path */
    uint8_t flag[256]; /* MX_SNS_* of each source code */
} mx_sns_lut;

static void mx_sns_lut_init(mx_sns_lut *lut, const mx_fmt_info *s, const mx_fmt_info *d,
                            mx_rounding r) {
    for (int c = 0; c < 256; c++) {
        uint32_t n;
        int L, neg, flags;
        mx_decode(s, (uint8_t)c, &n, &L, &neg, &flags);
        lut->flag[c] = (uint8_t)flags;
        lut->code[c] = flags & MX_SNS_SPECIAL ? 0 : mx_recode(d, n, L + d->emax - s->emax, neg, r);
    }
}

void mx_slice_and_scale(const uint8_t *src_codes, const uint8_t *src_scales, mx_format src,
                        uint8_t *dst_codes, uint8_t *dst_scales, mx_format dst, size_t rows,
                        size_t cols, mx_rounding r) {
    if (!mx_sns_supported(src, dst))
        return;
    const mx_fmt_info *s = mx_info(src), *d = mx_info(dst);
    mx_sns_lut lut;
    mx_sns_lut_init(&lut, s, d, r);
    float table[256];
    mx_code_table(src, table);
    mx_kparams p;
    mx_kparams_init(&p, d);
    const int shift = s->emax - d->emax;
    const size_t nb = mx_num_blocks(cols), total = rows * nb;
#pragma omp parallel for schedule(static) if (total >= MX_PARALLEL_MIN_BLOCKS)
    for (size_t b = 0; b < total; b++) {
        const size_t row = b / nb, j = (b % nb) * MX_BLOCK_SIZE;
        const size_t off = row * cols + j, n = cols - j < MX_BLOCK_SIZE ? cols - j : MX_BLOCK_SIZE;
        const uint8_t *restrict sc = src_codes + off;
        uint8_t *restrict dc = dst_codes + off;
        const int e = src_scales[b], e_dst = e + shift;
        if (e == MX_SCALE_NAN) {
            dst_scales[b] = MX_SCALE_NAN;
            for (size_t i = 0; i < n; i++)
                dc[i] = 0;
            continue;
        }
        unsigned flags = 0;
        for (size_t i = 0; i < n; i++)
            flags |= lut.flag[sc[i]];
        if (flags == MX_SNS_TOP && e != 0 && e + s->emax <= 254 && e_dst >= 0) {
            dst_scales[b] = (uint8_t)e_dst;
            for (size_t i = 0; i < n; i++)
                dc[i] = lut.code[sc[i]];
        } else {
            float v[MX_BLOCK_SIZE];
            mx_dequantize_block(sc, (uint8_t)e, v, n, table);
            mx_quantize_block(v, dc, dst_scales + b, n, &p, r);
        }
    }
}
