/* mx_pack.c — bit-packing of element codes for checkpoints: a little-endian bit stream with
 * element i in bits [b*i, b*i + b). Whole groups (2 x 4-bit, 4 x 6-bit = 3 bytes, 4 x 2-bit) take
 * a straight-line path; the last partial group goes bit by bit, so odd lengths need no padding
 * in the caller's code array. */
#include "quant/mx_internal.h"

size_t mx_packed_size(mx_format f, size_t n) {
    const mx_fmt_info *fi = mx_info(f);
    if (!fi)
        return 0;
    /* ceil(n * b / 8) without overflowing n * b */
    const size_t b = (size_t)fi->bits;
    return n / 8 * b + (n % 8 * b + 7) / 8;
}

void mx_pack(const uint8_t *codes, size_t n, mx_format f, uint8_t *out) {
    const mx_fmt_info *fi = mx_info(f);
    if (!fi)
        return;
    const unsigned b = (unsigned)fi->bits, mask = (1u << b) - 1u;
    size_t i = 0;
    if (b == 8) {
        memcpy(out, codes, n);
        return;
    }
    if (b == 4)
        for (; i + 2 <= n; i += 2)
            out[i / 2] = (uint8_t)((codes[i] & mask) | (codes[i + 1] & mask) << 4);
    else if (b == 2)
        for (; i + 4 <= n; i += 4)
            out[i / 4] = (uint8_t)((codes[i] & mask) | (codes[i + 1] & mask) << 2 |
                                   (codes[i + 2] & mask) << 4 | (codes[i + 3] & mask) << 6);
    else /* b == 6 */
        for (; i + 4 <= n; i += 4) {
            uint32_t w = (codes[i] & mask) | (codes[i + 1] & mask) << 6 |
                         (codes[i + 2] & mask) << 12 | (uint32_t)(codes[i + 3] & mask) << 18;
            uint8_t *o = out + i / 4 * 3;
            o[0] = (uint8_t)w;
            o[1] = (uint8_t)(w >> 8);
            o[2] = (uint8_t)(w >> 16);
        }
    /* tail: clear the remaining bytes, then OR in bit by bit */
    const size_t first = i * b / 8, end = mx_packed_size(f, n);
    for (size_t k = first; k < end; k++)
        out[k] = 0;
    for (; i < n; i++)
        for (unsigned k = 0; k < b; k++) {
            size_t bit = i * b + k;
            out[bit / 8] |= (uint8_t)(((codes[i] >> k) & 1u) << (bit % 8));
        }
}

void mx_unpack(const uint8_t *packed, size_t n, mx_format f, uint8_t *codes) {
    const mx_fmt_info *fi = mx_info(f);
    if (!fi)
        return;
    const unsigned b = (unsigned)fi->bits, mask = (1u << b) - 1u;
    size_t i = 0;
    if (b == 8) {
        memcpy(codes, packed, n);
        return;
    }
    if (b == 4)
        for (; i + 2 <= n; i += 2) {
            codes[i] = packed[i / 2] & mask;
            codes[i + 1] = packed[i / 2] >> 4;
        }
    else if (b == 2)
        for (; i + 4 <= n; i += 4) {
            const uint8_t v = packed[i / 4];
            codes[i] = v & mask;
            codes[i + 1] = (v >> 2) & mask;
            codes[i + 2] = (v >> 4) & mask;
            codes[i + 3] = v >> 6;
        }
    else /* b == 6 */
        for (; i + 4 <= n; i += 4) {
            const uint8_t *p = packed + i / 4 * 3;
            uint32_t w = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
            codes[i] = w & mask;
            codes[i + 1] = (w >> 6) & mask;
            codes[i + 2] = (w >> 12) & mask;
            codes[i + 3] = (uint8_t)(w >> 18);
        }
    for (; i < n; i++) {
        unsigned c = 0;
        for (unsigned k = 0; k < b; k++) {
            size_t bit = i * b + k;
            c |= ((packed[bit / 8] >> (bit % 8)) & 1u) << k;
        }
        codes[i] = (uint8_t)c;
    }
}
