/* nf4.c — the NF4 element and its blocks: the 16-value table of MX_FORMATS.md §6, the nearest
 * code with ties to the lower index, sizes and storage cost, and the packed tensor kernels
 * (quantize, dequantize, dequantize a range). Double quantization is in nf4_dq.c. */
#include "quant/nf4.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* MX_FORMATS.md §6. Every constant there is a float printed to 17 digits, so these are exact. */
static const float NF4_TABLE[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

/* NF4_MID[k]: the largest float <= (table[k] + table[k+1]) / 2 computed exactly (two floats
 * summed and halved are exact in double). Six midpoints are floats themselves (k = 2, 6, 7, 9,
 * 11, 13); the other nine lie strictly between two floats and are rounded down, so that for
 * every float v: v > NF4_MID[k] <=> v is strictly nearer table[k+1] than table[k]. A plain
 * (a + b) / 2 in float rounds to nearest and would put some floats on the wrong side.
 * tests/quant/test_nf4_code.c recomputes them from the table. */
static const float NF4_MID[15] = {
    -0x1.b239b2p-1f, -0x1.38a4e2p-1f, -0x1.d70900p-2f, -0x1.5bd4eep-2f, -0x1.e079dap-3f,
    -0x1.1a7178p-3f, -0x1.74f0e2p-5f, 0x1.45f5fep-5f,  0x1.ec90c4p-4f,  0x1.a0cfc0p-3f,
    0x1.2b05a8p-2f,  0x1.8ea7f2p-2f,  0x1.00da06p-1f,  0x1.491b5ep-1f,  0x1.b913b2p-1f,
};

/* Blocks below this count run on one thread: starting a team costs more than they take. */
#define NF4_PARALLEL_MIN_BLOCKS 256

/* ---- element --------------------------------------------------------------------------------- */

/* Counting midpoints below v gives the nearest index for ordered v. Counted from the zero code
 * outwards (7 + positive midpoints below v − negative midpoints at or above v) rather than from
 * 0, so that NaN, for which every comparison is false, lands on code 7: the kernel relies on
 * this for all-zero blocks (0/0) and non-finite blocks (x/NaN), which then need no branch.
 * Written out: as two loops over k, gcc -O2 does not unroll them early enough for the tensor
 * loop around it to vectorize. */
static inline int nf4_code_of(float v) {
    const float *m = NF4_MID;
    int lo = (v <= m[0]) + (v <= m[1]) + (v <= m[2]) + (v <= m[3]) + (v <= m[4]) + (v <= m[5]) +
             (v <= m[6]);
    int hi = (v > m[7]) + (v > m[8]) + (v > m[9]) + (v > m[10]) + (v > m[11]) + (v > m[12]) +
             (v > m[13]) + (v > m[14]);
    return NF4_CODE_ZERO - lo + hi;
}

const float *nf4_table(void) { return NF4_TABLE; }

uint8_t nf4_code(float v) { return (uint8_t)nf4_code_of(v); }

/* ---- sizes ----------------------------------------------------------------------------------- */

size_t nf4_num_blocks(size_t n) { return n / NF4_BLOCK + (n % NF4_BLOCK != 0); }
size_t nf4_packed_size(size_t n) { return n / 2 + n % 2; }
size_t nf4_dq_num_blocks(size_t nb) { return nb / NF4_DQ_BLOCK + (nb % NF4_DQ_BLOCK != 0); }

double nf4_bits_per_param(size_t n, int double_quant) {
    if (n == 0)
        return 0.0;
    const size_t nb = nf4_num_blocks(n);
    double bits = 8.0 * (double)nf4_packed_size(n);
    if (double_quant)
        bits += 8.0 * (double)nb + 32.0 * (double)nf4_dq_num_blocks(nb) + 32.0;
    else
        bits += 32.0 * (double)nb;
    return bits / (double)n;
}

/* ---- blocks ---------------------------------------------------------------------------------- */

static inline uint32_t nf4_f2u(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float nf4_u2f(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* One block of n <= 64 elements. absmax from the largest |bit pattern| (ordered like |value|,
 * >= 0x7f800000 iff the block holds a NaN or an Inf): integer max, no fabsf/fmaxf NaN rules to
 * worry about. The divisions are what the contract defines (x / absmax); a zero block divides
 * 0 by 0 and a NaN block divides by NaN, both give NaN and nf4_code_of(NaN) is the zero code.
 * static inline so that the tensor loop gets a copy specialised for n == 64. */
static inline void nf4_qblock(const float *restrict x, size_t n, uint8_t *restrict packed,
                              float *restrict absmax) {
    int32_t m = 0; /* signed: |bit patterns| fit, and the vector compare is signed */
    for (size_t i = 0; i < n; i++) {
        int32_t u = (int32_t)(nf4_f2u(x[i]) & 0x7fffffffu);
        m = u > m ? u : m;
    }
    const float a = m >= 0x7f800000 ? NAN : nf4_u2f((uint32_t)m);
    *absmax = a;
    int32_t c[NF4_BLOCK]; /* int32, not uint8: gcc would narrow each of the 15 compare masks */
    for (size_t i = 0; i < n; i++)
        c[i] = nf4_code_of(x[i] / a);
    for (size_t j = 0; j < n / 2; j++)
        packed[j] = (uint8_t)(c[2 * j] | c[2 * j + 1] << 4);
    if (n % 2)
        packed[n / 2] = (uint8_t)c[n - 1]; /* high nibble of the last byte stays 0 */
}

/* This thread's share [b0, b1) of `total` blocks: a fixed contiguous partition. */
static void nf4_thread_range(size_t total, size_t *b0, size_t *b1) {
    size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
    size_t q = total / nt, r = total % nt;
    *b0 = t * q + (t < r ? t : r);
    *b1 = *b0 + q + (t < r);
}

void nf4_quantize(const float *x, size_t n, uint8_t *packed, float *absmax) {
    const size_t nb = nf4_num_blocks(n);
#pragma omp parallel if (nb >= NF4_PARALLEL_MIN_BLOCKS)
    {
        size_t b0, b1;
        nf4_thread_range(nb, &b0, &b1);
        for (size_t b = b0; b < b1; b++) {
            const size_t i = b * NF4_BLOCK;
            if (n - i >= NF4_BLOCK) /* constant trip count: unrolled vector code */
                nf4_qblock(x + i, NF4_BLOCK, packed + i / 2, absmax + b);
            else
                nf4_qblock(x + i, n - i, packed + i / 2, absmax + b);
        }
    }
}

/* Elements [i0, i1) into out[0 .. i1-i0), one block at a time. Each block's 16 products
 * table[c]·absmax are formed once: the same IEEE products as one multiply per element, so the
 * result does not depend on where a range starts. A range can only begin on an odd element (a
 * high nibble) in its first block and end on an even one in its last, since blocks start on
 * even elements. The bulk reads four packed bytes as one little-endian word and does eight
 * lookups from it: measured 1.5x faster than byte by byte, where gcc emulates a gather per
 * byte (AVX2 has no 16-entry float lookup it would use). */
static void nf4_deq_span(const uint8_t *restrict packed, const float *restrict absmax, size_t i0,
                         size_t i1, float *restrict out) {
    size_t i = i0;
    while (i < i1) {
        const size_t b = i / NF4_BLOCK, bend = (b + 1) * NF4_BLOCK, end = bend < i1 ? bend : i1;
        float tab[16];
        for (int c = 0; c < 16; c++)
            tab[c] = NF4_TABLE[c] * absmax[b];
        if (i % 2) {
            *out++ = tab[packed[i / 2] >> 4];
            i++;
        }
        for (; i + 8 <= end; i += 8, out += 8) {
            const uint8_t *p = packed + i / 2;
            const uint32_t w =
                (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            for (int k = 0; k < 8; k++)
                out[k] = tab[(w >> (4 * k)) & 0xf];
        }
        for (; i < end; i++)
            *out++ = tab[(packed[i / 2] >> (4 * (i % 2))) & 0xf];
    }
}

void nf4_dequantize_range(const uint8_t *packed, const float *absmax, size_t i0, size_t i1,
                          float *out) {
    if (i1 <= i0)
        return;
    /* Threads take contiguous runs of the blocks the range touches, clipped to [i0, i1). */
    const size_t bfirst = i0 / NF4_BLOCK, nb = (i1 - 1) / NF4_BLOCK + 1 - bfirst;
#pragma omp parallel if (nb >= NF4_PARALLEL_MIN_BLOCKS)
    {
        size_t b0, b1;
        nf4_thread_range(nb, &b0, &b1);
        if (b0 < b1) {
            size_t s = (bfirst + b0) * NF4_BLOCK, e = (bfirst + b1) * NF4_BLOCK;
            s = s > i0 ? s : i0;
            e = e < i1 ? e : i1;
            nf4_deq_span(packed, absmax, s, e, out + (s - i0));
        }
    }
}

void nf4_dequantize(const uint8_t *packed, const float *absmax, size_t n, float *out) {
    nf4_dequantize_range(packed, absmax, 0, n, out);
}
