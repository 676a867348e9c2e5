/* fakequant.c — MX fake quantization with a straight-through backward.
 *
 * Forward: quantize-dequantize x in blocks of 32 along one axis (quant/mx.h does the numerics);
 * optionally through an anchor format and Slice-and-Scale, so training sees the very weights an
 * anchor checkpoint deploys. Backward: dx += dy (identity STE) or dx += dy where the element did
 * not saturate (clipped STE). Finite differences mean nothing across rounding steps, so this op is
 * checked against the closed form of its STE rather than numerically (tests/autograd). */
#include "autograd/ops/ops.h"

#include <math.h>
#include <string.h>

typedef struct fq_ctx {
    uint8_t *keep; /* (numel) 1 where the gradient passes; NULL for the identity STE */
} fq_ctx;

/* Work buffer layout: `rows` blocks-rows of `cols`, blocks along cols. For axis 0 of a 2-D
 * tensor (R,C) the work buffer is its transpose (C,R). */
static void gather(const ag_tensor *x, float *restrict w, bool transpose) {
    size_t R = (size_t)x->shape[0], C = x->numel / (R ? R : 1);
    if (!transpose) { /* f64 (an f32 tensor along its last axis needs no work buffer) */
        const double *d = x->data;
        for (size_t i = 0; i < x->numel; i++)
            w[i] = (float)d[i];
    } else {
        for (size_t i = 0; i < R; i++)
            for (size_t j = 0; j < C; j++)
                w[j * R + i] = x->dtype == AG_F32 ? ((const float *)x->data)[i * C + j]
                                                  : (float)((const double *)x->data)[i * C + j];
    }
}

static void scatter(const float *restrict w, ag_tensor *y, bool transpose) {
    size_t R = (size_t)y->shape[0], C = y->numel / (R ? R : 1);
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < C; j++) {
            size_t src = transpose ? j * R + i : i * C + j;
            if (y->dtype == AG_F32)
                ((float *)y->data)[i * C + j] = w[src];
            else
                ((double *)y->data)[i * C + j] = (double)w[src];
        }
}

/* keep[i] = 0 where |x| exceeded the largest element value at its block's scale (it saturated). */
static void saturation_mask(const float *restrict x, const uint8_t *restrict scales,
                            uint8_t *restrict keep, size_t rows, size_t cols, mx_format f) {
    size_t nb = mx_num_blocks(cols);
    float maxn = mx_format_max_normal(f);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            uint8_t e = scales[r * nb + c / MX_BLOCK_SIZE];
            float lim = e == MX_SCALE_NAN ? INFINITY : ldexpf(maxn, (int)e - 127);
            keep[r * cols + c] = fabsf(x[r * cols + c]) <= lim;
        }
}

/* Quantize src (rows,cols) per spec into dst (may equal src); fill keep (same layout) for the
 * clipped STE. */
static int quantize(ag_tape *t, const float *src, float *dst, uint8_t *keep, size_t rows,
                    size_t cols, const ag_fq_spec *spec) {
    bool via = spec->via != MX_FP32 && spec->via != spec->format;
    if (!via && !keep) {
        mx_fake_quant(src, dst, rows, cols, spec->format, spec->rounding);
        return 0;
    }
    size_t n = rows * cols, ns = rows * mx_num_blocks(cols);
    uint8_t *codes = ag_tape_alloc(t, n), *scales = ag_tape_alloc(t, ns);
    if (!codes || !scales)
        return -1;
    if (via) {
        uint8_t *acodes = ag_tape_alloc(t, n), *ascales = ag_tape_alloc(t, ns);
        if (!acodes || !ascales)
            return -1;
        mx_quantize(src, acodes, ascales, rows, cols, spec->via, spec->rounding);
        mx_slice_and_scale(acodes, ascales, spec->via, codes, scales, spec->format, rows, cols,
                           spec->rounding);
    } else {
        mx_quantize(src, codes, scales, rows, cols, spec->format, spec->rounding);
    }
    if (keep)
        saturation_mask(src, scales, keep, rows, cols, spec->format);
    mx_dequantize(codes, scales, dst, rows, cols, spec->format);
    return 0;
}

ag_tensor *ag_fakequant(ag_tape *t, ag_tensor *x, const ag_fq_spec *spec, int axis) {
    if (!x || !spec)
        return NULL;
    if (spec->format == MX_FP32)
        return x;
    if (!mx_format_is_mx(spec->format) || (spec->via != MX_FP32 && spec->via != spec->format &&
                                           !mx_sns_supported(spec->via, spec->format)))
        return NULL;
    if (axis < 0)
        axis += x->ndim;
    bool transpose = axis != x->ndim - 1;
    if (transpose && !(axis == 0 && x->ndim == 2))
        return NULL;
    ag_tensor *in[1] = {x};
    ag_tensor *y = ag_op_output(t, x->dtype, x->ndim, x->shape, in, 1);
    if (!y)
        return NULL;
    size_t rows = transpose ? (size_t)x->shape[1] : ag_rows(x);
    size_t cols = transpose ? (size_t)x->shape[0] : ag_cols(x);
    bool direct = !transpose && x->dtype == AG_F32; /* from x straight into y, no copies */
    float *w = direct ? y->data : ag_tape_alloc(t, x->numel * sizeof *w);
    bool clipped = spec->ste == AG_STE_CLIPPED && y->requires_grad && ag_tape_recording(t);
    uint8_t *keep = clipped ? ag_tape_alloc(t, x->numel) : NULL;
    if (!w || (clipped && !keep))
        return NULL;
    if (!direct)
        gather(x, w, transpose);
    if (quantize(t, direct ? x->data : w, w, keep, rows, cols, spec) != 0)
        return NULL;
    if (!direct)
        scatter(w, y, transpose);
    ag_node *n = ag_record(t, AG_OP_FAKEQUANT, y, in, 1);
    if (n) {
        fq_ctx *c = ag_tape_alloc(t, sizeof *c);
        if (!c)
            return NULL;
        c->keep = keep;
        n->ctx = c;
        n->i[0] = transpose;
        n->i[1] = (int64_t)rows;
        n->i[2] = (int64_t)cols;
    }
    return y;
}

void ag_fakequant_backward(ag_node *n) {
    ag_tensor *x = n->in[0], *y = n->out;
    if (!x->requires_grad)
        return;
    const uint8_t *keep = ((fq_ctx *)n->ctx)->keep;
    bool transpose = n->i[0];
    size_t rows = (size_t)n->i[1], cols = (size_t)n->i[2], N = x->numel;
/* keep is in work layout: element i of x is element k of the transposed work buffer. */
#define FQ_KEEP(i) (!keep ? 1 : keep[transpose ? ((i) % rows) * cols + (i) / rows : (i)])
    if (x->dtype == AG_F32) {
        float *restrict dx = x->grad;
        const float *restrict dy = y->grad;
#pragma omp parallel for schedule(static) if (N > 32768)
        for (size_t i = 0; i < N; i++)
            dx[i] += FQ_KEEP(i) ? dy[i] : 0.0f;
    } else {
        double *restrict dx = x->grad;
        const double *restrict dy = y->grad;
        for (size_t i = 0; i < N; i++)
            dx[i] += FQ_KEEP(i) ? dy[i] : 0.0;
    }
#undef FQ_KEEP
}
