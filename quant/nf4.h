/* nf4.h — the NF4 4-bit format of QLoRA (MX_FORMATS.md §6) with double quantization of the block
 * absmax values: element codes, packed quantize/dequantize of a flattened tensor, dequantization
 * of any element range (for tile-by-tile forward passes), the 8-bit double quantization and the
 * storage cost.
 *
 * Blocking: blocks of NF4_BLOCK = 64 consecutive elements of the flattened tensor; the last block
 * is short when n % 64 != 0. absmax[b] = max |x| over block b, one float per block.
 * Element: code = nf4_code(x / absmax) with the IEEE float division x / absmax (not a multiply by
 * a reciprocal, which could round differently and overflows for subnormal absmax); value =
 * nf4_table()[code] · absmax (one float multiply).
 * Packed codes: two per byte, element i in the low nibble of byte i/2 when i is even, in the high
 * nibble when odd; nf4_packed_size(n) = ceil(n/2) bytes, the unused high nibble of the last byte
 * (odd n) is 0. Blocks start on byte boundaries (64 is even).
 *
 * Special blocks (a block is 64 elements, so these never leak into other blocks):
 *   all zero (either sign)  absmax +0, codes all 7 (NF4_CODE_ZERO), dequantized exactly +0.0.
 *   any NaN or ±Inf         absmax NaN, codes all 7, dequantized all NaN: a broken block stays
 *                           visibly broken, it never becomes finite garbage.
 *
 * Double quantization (QLoRA's "DQ", MX_FORMATS.md §6): the nb block absmax values are centered
 * by their mean and quantized to symmetric int8 codes k ∈ [-127, 127] in blocks of
 * NF4_DQ_BLOCK = 256 with one float scale per 256; decoded absmax' = max(mean + k·scale, 0).
 * Code -128 (NF4_DQ_NAN) marks a non-finite absmax and decodes to NaN. See nf4_dq_encode for the
 * exact rules; the guarantee is |absmax' − absmax| <= scale/2 exactly, for every finite absmax.
 * As in QLoRA, the element codes are NOT re-picked after double quantization: they were chosen
 * with the exact absmax and are dequantized with absmax', so a DQ round trip is
 *   nf4_quantize → absmax → nf4_dq_encode → store (packed, mean, codes, scales)
 *   → nf4_dq_decode → absmax' → nf4_dequantize(packed, absmax').
 *
 * Storage per parameter: 4 bits + 32/64 for float absmax (4.5 bits), or with double quantization
 * 4 + 8/64 + 32/(64·256) (+ 32 bits of mean per tensor) ≈ 4.127 bits; see nf4_bits_per_param.
 *
 * Nothing here allocates. Only nf4_dq_encode can fail (it returns a status); the other functions
 * are total over all float inputs and need valid pointers for the sizes given. Kernels run
 * OpenMP-parallel over fixed contiguous ranges of blocks for large n; every result is
 * bit-identical for any thread count. Build without -ffast-math (NaN checks, exact divisions).
 */
#ifndef QAT_QUANT_NF4_H
#define QAT_QUANT_NF4_H

#include <stddef.h>
#include <stdint.h>

#define NF4_BLOCK 64      /* elements sharing one absmax */
#define NF4_DQ_BLOCK 256  /* absmax values sharing one double-quantization scale */
#define NF4_CODE_ZERO 7   /* the code of 0.0: all-zero and non-finite blocks use it */
#define NF4_DQ_NAN (-128) /* DQ code of a non-finite absmax; finite ones get [-127, 127] */

typedef enum {
    NF4_OK = 0,
    NF4_ERR_ARG = -1,   /* NULL pointer where data is needed */
    NF4_ERR_RANGE = -2, /* an absmax value is negative or >= 2^127 */
} nf4_status;

/* "ok", "bad argument", ...; "unknown status" for other values. Static strings. */
const char *nf4_status_to_string(int status);

/* ---- element and sizes (nf4.c) --------------------------------------------------------------- */

/* The 16 values of MX_FORMATS.md §6 as float, ascending: [0] = -1, [7] = 0, [15] = 1. Static. */
const float *nf4_table(void);

/* Index of the table value nearest to v, ties to the lower index; |v| > 1 saturates to 0 / 15
 * (±Inf too), NaN gives NF4_CODE_ZERO. Exact: v is compared with the 15 midpoints of adjacent
 * table values, each stored as the largest float <= the exact midpoint, so a v exactly at a
 * midpoint goes to the lower code and the next float up to the upper one. */
uint8_t nf4_code(float v);

size_t nf4_num_blocks(size_t n);     /* absmax values for n elements: ceil(n / 64) */
size_t nf4_packed_size(size_t n);    /* bytes of packed codes: ceil(n / 2) */
size_t nf4_dq_num_blocks(size_t nb); /* DQ scales for nb absmax values: ceil(nb / 256) */

/* Code of element i in packed codes (low nibble for even i). */
static inline uint8_t nf4_code_at(const uint8_t *packed, size_t i) {
    return (uint8_t)((packed[i / 2] >> (4 * (i % 2))) & 0xf);
}

/* Storage of n parameters in bits per parameter, exactly as laid out here: 8·ceil(n/2) bits of
 * codes plus, per tensor, either 32 bits of absmax per block (double_quant == 0), or 8 bits per
 * block + 32 bits per 256 blocks + 32 bits of mean (double_quant != 0). 0 for n == 0.
 * Large n: 4.5 vs 4 + 8/64 + 32/16384 ≈ 4.12695. */
double nf4_bits_per_param(size_t n, int double_quant);

/* ---- tensors (nf4.c) ------------------------------------------------------------------------- */

/* Quantizes n floats of x:
 *   packed [nf4_packed_size(n)]  codes, two per byte (padding nibble 0)
 *   absmax [nf4_num_blocks(n)]   max |x| per block; NaN for a block holding a NaN or an Inf
 * x must not overlap the outputs. */
void nf4_quantize(const float *x, size_t n, uint8_t *packed, float *absmax);

/* out[i] = nf4_table()[code_i] · absmax[i / 64] for i < n; out [n]. Any absmax works (e.g. the
 * absmax' of nf4_dq_decode); a NaN absmax gives a NaN block. */
void nf4_dequantize(const uint8_t *packed, const float *absmax, size_t n, float *out);

/* Elements [i0, i1) only: out[0 .. i1-i0) equals out[i0 .. i1) of nf4_dequantize, bit for bit.
 * i0 and i1 may fall inside a block or a byte. Cost proportional to i1 - i0 (plus 16 multiplies
 * per block touched). Nothing is written when i1 <= i0. */
void nf4_dequantize_range(const uint8_t *packed, const float *absmax, size_t i0, size_t i1,
                          float *out);

/* ---- double quantization (nf4_dq.c) ---------------------------------------------------------- */

/* Encodes nb absmax values:
 *   mean   [1]                        float, see below
 *   codes  [nb]                       int8: k ∈ [-127, 127], or NF4_DQ_NAN for NaN/±Inf absmax
 *   scales [nf4_dq_num_blocks(nb)]    float, one per 256 absmax values (0 when all are equal)
 * Rules, exactly:
 *   - mean: the mean of the finite absmax values (summed in double, in index order), rounded to
 *     float; 0 when none is finite. If all finite values are equal, mean is that value, scales
 *     are 0 and codes 0 (decoding is exact). Otherwise mean is further rounded (ties to even) to
 *     a multiple of U = 2^(e-22), where 2^e <= max absmax < 2^(e+1) (U >= 2^-149): one bit
 *     coarser than the spacing of floats at the largest absmax, which costs nothing in accuracy
 *     and makes every decoded mean + k·scale exact in float.
 *   - scale of a 256-block: the smallest multiple of U that is >= max |absmax − mean| / 127 over
 *     the block's finite values (0 if they all equal mean).
 *   - k: the integer in [-127, 127] nearest to (absmax − mean)/scale, ties to even, decided by
 *     exact comparisons. Hence |absmax' − absmax| <= scale/2 with no rounding slack.
 * Returns NF4_OK; NF4_ERR_ARG for NULL mean, or NULL arrays with nb > 0; NF4_ERR_RANGE if a
 * finite absmax is negative (-0 is fine) or >= 2^127 (nf4_quantize never produces either). On
 * error nothing is written. nb == 0: mean = 0, NF4_OK. */
int nf4_dq_encode(const float *absmax, size_t nb, float *mean, int8_t *codes, float *scales);

/* absmax'[j] = max(mean + k_j · scales[j / 256], 0) in float (exact for encoder output), NaN for
 * k_j == NF4_DQ_NAN; absmax [nb]. The clamp at 0 never moves a decoded value away from a true
 * absmax (those are >= 0); it keeps a tiny block whose absmax sits far below the mean from
 * flipping sign. */
void nf4_dq_decode(float mean, const int8_t *codes, const float *scales, size_t nb, float *absmax);

#endif
