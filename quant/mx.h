/* mx.h — the public face of qat's Microscaling (MX) formats: names, element properties, exact
 * fake quantization, quantize/dequantize to codes + E8M0 scales, Slice-and-Scale from an anchor,
 * and bit-packing of codes for storage. The contract is ../shared/MX_FORMATS.md; docs/MX.md says
 * how it is implemented.
 *
 * Tensors are row-major rows×cols; blocks are 32 consecutive elements along each row, the last
 * block of a row is short when cols is not a multiple of 32 (as if padded with zeros). Scales are
 * one E8M0 byte per block, row-major over rows × mx_num_blocks(cols).
 *
 * Every function here is total: none allocates, none fails on any input values (NaN, Inf,
 * subnormals). Functions that cannot apply to a format (fp32 has no codes, an unsupported
 * Slice-and-Scale pair) write nothing; callers check mx_format_is_mx()/mx_sns_supported() first.
 * Kernels run OpenMP-parallel over blocks; results do not depend on the thread count.
 */
#ifndef QAT_QUANT_MX_H
#define QAT_QUANT_MX_H

#include <stddef.h>
#include <stdint.h>

#define MX_BLOCK_SIZE 32 /* elements sharing one E8M0 scale */
#define MX_SCALE_NAN 255 /* E8M0 byte of a block that held a NaN or an Inf */

typedef enum {
    MX_FP32 = 0,
    MX_INT8,
    MX_INT6,
    MX_INT4,
    MX_INT2,
    MX_FP8_E4M3,
    MX_FP8_E5M2,
    MX_FP6_E3M2,
    MX_FP6_E2M3,
    MX_FP4_E2M1,
    MX_FORMAT_COUNT
} mx_format;

typedef enum { MX_ROUND_EVEN = 0, MX_ROUND_NEAREST = 1 } mx_rounding;

/* ---- names and properties ------------------------------------------------------------------ */

const char *mx_format_name(mx_format f);               /* "mxint8", "mxfp4_e2m1", "fp32", ... */
int mx_format_parse(const char *name, mx_format *out); /* 0 on success, -1 if unknown */

/* Unknown enum values: name "?", is_mx 0, bits 0, and 0 from the other properties. */
int mx_format_is_mx(mx_format f);         /* 1 for the nine MX element formats, 0 for fp32 */
int mx_format_is_int(mx_format f);        /* 1 for mxint8/6/4/2 */
int mx_format_bits(mx_format f);          /* element bits: 8, 6, 4, 2; fp32: 32 */
int mx_format_exponent_bits(mx_format f); /* FP elements: 5, 4, 3, 2; INT and fp32: 0 */
int mx_format_mantissa_bits(mx_format f); /* FP elements: 3, 2, 1; INT-b: b-2 fraction bits */
int mx_format_emax(mx_format f);          /* exponent of the largest normal binade; INT: 0 */
float mx_format_max_normal(mx_format f);  /* 448, 57344, 127/64, ...; fp32: FLT_MAX */
/* Storage cost including the shared scale: bits + 8/32 (e.g. 4.25 for mxfp4_e2m1); fp32: 32. */
double mx_format_bits_per_element(mx_format f);
size_t mx_num_blocks(size_t cols); /* blocks per row: ceil(cols / 32) */

/* Element code <-> value at scale 1. A code is the element's bit pattern right-aligned in a byte
 * (FP: sign|exponent|mantissa; INT-b: two's complement in b bits); bits above the element width
 * are ignored. mx_code_to_value decodes every pattern, including E5M2 Inf/NaN, the E4M3 NaN and
 * the never-produced INT code -2^(b-1) (value -2). mx_value_to_code is the element quantizer Q of
 * MX_FORMATS.md §3.5: rounds v to the grid with r, saturates to ±max normal (±Inf too); a zero
 * result is the +0 code; NaN gives the format's NaN code (E4M3, E5M2) or 0 where there is none. */
float mx_code_to_value(mx_format f, uint8_t code);
uint8_t mx_value_to_code(mx_format f, float v, mx_rounding r);

/* ---- tensors ------------------------------------------------------------------------------- */

/* Quantize-dequantize rows×cols floats, blocks of 32 along each row (in may equal out; other
 * overlaps are not supported). fp32 (and unknown values): a copy. Zeros come out as +0.0. */
void mx_fake_quant(const float *in, float *out, size_t rows, size_t cols, mx_format f,
                   mx_rounding r);
/* Codes (one per byte, right-aligned) and E8M0 scales (rows × ceil(cols/32)). A NaN block has
 * scale 255 and codes 0; an all-zero block scale 0 and codes 0. fp32: writes nothing. */
void mx_quantize(const float *in, uint8_t *codes, uint8_t *scales, size_t rows, size_t cols,
                 mx_format f, mx_rounding r);
/* Bit-identical to mx_fake_quant of the tensor the codes came from. Scale 255: the block is NaN.
 * fp32: writes nothing. */
void mx_dequantize(const uint8_t *codes, const uint8_t *scales, float *out, size_t rows,
                   size_t cols, mx_format f);

/* Slice-and-Scale: dst = quantize_dst(dequantize_src(src)) with rounding r, block by block, for
 * any codes and scales; computed by the integer fast path of MX_FORMATS.md §5 where that is
 * identical, by the definition elsewhere. Writes nothing unless mx_sns_supported(src, dst). */
void mx_slice_and_scale(const uint8_t *src_codes, const uint8_t *src_scales, mx_format src,
                        uint8_t *dst_codes, uint8_t *dst_scales, mx_format dst, size_t rows,
                        size_t cols, mx_rounding r);
/* 1 when src is an anchor format (mxint8, mxfp8_e4m3, mxfp8_e5m2) and dst is any MX element
 * format (all have at most 8 bits; dst == src is the identity on quantizer output); 0 otherwise
 * (fp32 on either side, lower-precision sources, unknown values). */
int mx_sns_supported(mx_format src, mx_format dst);

/* ---- packed storage ------------------------------------------------------------------------ */

/* Codes as a little-endian bit stream: element i occupies bits [b*i, b*i + b) where bit k is bit
 * k%8 of byte k/8. So 4-bit codes go two per byte (first element in the low nibble), 6-bit codes
 * four per three bytes (element 0 in bits 0-5 of the 24-bit little-endian word), 2-bit codes four
 * per byte (low bits first), 8-bit codes as is. Unused bits of the last byte are 0.
 * mx_packed_size is ceil(n*b/8) bytes; fp32: 0 (and mx_pack/mx_unpack write nothing).
 * mx_pack ignores bits above b in each code; mx_unpack writes right-aligned codes. */
size_t mx_packed_size(mx_format f, size_t n);
void mx_pack(const uint8_t *codes, size_t n, mx_format f, uint8_t *out);
void mx_unpack(const uint8_t *packed, size_t n, mx_format f, uint8_t *codes);

#endif
