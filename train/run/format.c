/* format.c — the per-step format sampler. */
#include "train/run/format.h"

static const mx_format anchor_formats[] = {MX_INT8, MX_FP8_E4M3, MX_FP8_E5M2}; /* = qt_anchor */

int qt_format_sampler_init(qt_format_sampler *fs, const qt_config *c, char *err, size_t errlen) {
    fs->mode = c->quant.mode;
    fs->start_step = c->quant.start_step;
    if (qt_config_format_set(c, &fs->set, err, errlen) != 0)
        return -1;
    fs->base = (qt_quant){
        .format = MX_FP32,
        .rounding = (mx_rounding)c->quant.rounding,
        .ste = (ag_ste)c->quant.ste,
        .weights_via = c->quant.weights_via_anchor ? anchor_formats[c->quant.anchor] : MX_FP32,
        .activations = c->quant.quantize == QT_QUANTIZE_WEIGHTS_ACTS,
        .head = c->quant.quantize_head};
    return 0;
}

mx_format qt_format_draw(const qt_format_sampler *fs, data_rng *rng, int64_t step) {
    if (fs->mode == QT_QUANT_NONE || step < fs->start_step || fs->set.n == 0)
        return MX_FP32;
    if (fs->mode == QT_QUANT_SINGLE)
        return (mx_format)fs->set.formats[0];
    double u = data_rng_uniform(rng), acc = 0;
    for (int i = 0; i < fs->set.n - 1; i++) {
        acc += fs->set.weights[i];
        if (u < acc)
            return (mx_format)fs->set.formats[i];
    }
    return (mx_format)fs->set.formats[fs->set.n - 1];
}

qt_quant qt_format_quant(const qt_format_sampler *fs, mx_format f) {
    qt_quant q = fs->base;
    q.format = f;
    return q;
}

mx_format qt_format_eval(const qt_format_sampler *fs) {
    return fs->mode == QT_QUANT_SINGLE ? (mx_format)fs->set.formats[0] : MX_FP32;
}
