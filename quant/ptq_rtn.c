/* ptq_rtn.c — round-to-nearest PTQ: the MX format contract itself, behind the same interface as
 * GPTQ so that callers can switch algorithms without touching their buffers. */
#include "quant/ptq.h"

#include <string.h>

void ptq_rtn(const float *w, size_t rows, size_t cols, mx_format f, mx_rounding r, uint8_t *codes,
             uint8_t *scales, float *wq) {
    if (!w)
        return;
    if (codes && scales) {
        mx_quantize(w, codes, scales, rows, cols, f, r);
        /* dequantize(quantize(w)) == fake_quant(w) bit for bit, and reuses the codes just made;
         * fp32 has no codes, so it takes the copy in mx_fake_quant below. */
        if (wq && mx_format_is_mx(f)) {
            mx_dequantize(codes, scales, wq, rows, cols, f);
            return;
        }
    }
    if (wq)
        mx_fake_quant(w, wq, rows, cols, f, r);
}
