/* ptq_smooth.c — SmoothQuant (Xiao et al. 2022) scale migration: per input channel j a factor
 * s_j moves quantization difficulty from activations (divided by s) to weights (multiplied by s)
 * without changing the FP32 function. The caller folds 1/s into the preceding norm (ptq_div_vec)
 * and s into every linear layer reading that norm's output (ptq_scale_cols). */
#include "quant/ptq.h"

#include <math.h>

/* One channel: 1 for a dead or broken channel, else the clamped SmoothQuant ratio. pow in double:
 * the ratio of two float maxima raised to α ∈ [0, 1] cannot overflow double, and the clamp keeps
 * the float result (and 1/s) well inside float range. */
static float smooth_one(float a, float w, double alpha) {
    if (!(a > 0.0f && w > 0.0f && isfinite(a) && isfinite(w)))
        return 1.0f;
    double s = pow((double)a, alpha) / pow((double)w, 1.0 - alpha);
    s = s < PTQ_SMOOTH_MIN ? PTQ_SMOOTH_MIN : s;
    s = s > PTQ_SMOOTH_MAX ? PTQ_SMOOTH_MAX : s;
    return (float)s;
}

int ptq_smooth_scales(const float *act_absmax, const float *w_absmax, size_t cols, double alpha,
                      float *s) {
    if (!(alpha >= 0.0 && alpha <= 1.0)) /* NaN fails too */
        return PTQ_ERR_ARG;
    if (cols > 0 && (!act_absmax || !w_absmax || !s))
        return PTQ_ERR_ARG;
    for (size_t j = 0; j < cols; j++)
        s[j] = smooth_one(act_absmax[j], w_absmax[j], alpha);
    return PTQ_OK;
}

void ptq_absmax_cols(const float *x, size_t rows, size_t cols, float *acc) {
    if (!x || !acc)
        return;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        for (size_t j = 0; j < cols; j++) {
            const float a = fabsf(xr[j]);
            /* a NaN either way wins and then sticks: NaN > y and y > NaN are both false */
            acc[j] = (a > acc[j] || isnan(a)) ? a : acc[j];
        }
    }
}

void ptq_scale_cols(float *w, size_t rows, size_t cols, const float *s) {
    if (!w || !s)
        return;
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++)
            w[r * cols + j] *= s[j];
}

void ptq_div_vec(float *v, const float *s, size_t n) {
    if (!v || !s)
        return;
    for (size_t i = 0; i < n; i++)
        v[i] /= s[i];
}
