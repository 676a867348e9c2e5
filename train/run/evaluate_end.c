/* evaluate_end.c — the end of a quantized qat-train run: out_dir/anchor.h5, then the validation
 * loss at every format computed from that file by Slice-and-Scale. */
#define _POSIX_C_SOURCE 200809L
#include "train/run/evaluate.h"
#include "train/run/session.h"

#include <unistd.h>

#define ERRLEN 2048

int qt_session_final_anchor(qt_session *s) {
    const qt_config *c = &s->cfg;
    char path[QT_PATH_MAX + 16], err[ERRLEN];
    snprintf(path, sizeof path, "%s/anchor.h5", c->run.out_dir);
    mx_format f = MX_FP32;
    qt_anchor_ckpt made, a = {0};
    qt_evaluator e = {0};
    int rc = QT_EXIT_CKPT;
    mx_format_parse(qt_anchor_name(c->quant.anchor), &f); /* validated: an anchor format */
    if (qt_anchor_from_model(&made, s->model, c->quant.quantize_head, f,
                             (mx_rounding)c->quant.rounding, s->config_text, s->step,
                             qt_config_model_hash(c), err, sizeof err) != 0) {
        rc = QT_EXIT_INTERNAL;
        goto done;
    }
    int wrc = qt_anchor_write(path, &made, err, sizeof err);
    size_t bytes = 0, nq = qt_anchor_quantized_count(&made, &bytes);
    qt_anchor_free(&made);
    /* The table is computed from what the file holds, read back and verified. */
    if (wrc != 0 || qt_anchor_read(path, &a, err, sizeof err) != 0)
        goto done;
    fprintf(stderr,
            "qat-train: anchor %s: %s (rounding %s), %zu quantized tensors in %.1f KiB packed\n",
            path, mx_format_name(f), c->quant.rounding == QT_ROUND_NEAREST ? "nearest" : "even", nq,
            (double)bytes / 1024.0);

    qt_eval_opts eo = {.config_text = s->config_text,
                       .origin = path,
                       .val = s->split.val,
                       .n_val = s->split.n_val,
                       .batches = c->run.eval_batches};
    if ((rc = qt_evaluator_open(&e, &eo, err, sizeof err)) != QT_EXIT_OK)
        goto done;
    mx_format fmts[16];
    qt_eval_row rows[16];
    int n = qt_eval_parse_formats("all", fmts, 16, err, sizeof err);
    for (int i = 0; i < n; i++)
        rows[i].format = fmts[i];
    bool acts = c->quant.quantize == QT_QUANTIZE_WEIGHTS_ACTS;
    fprintf(stderr,
            "qat-train: validation loss from the anchor by Slice-and-Scale (%zu batches of %d x "
            "%d tokens, %s quantized):\n",
            e.n_batches, e.B, e.T, acts ? "weights and activations" : "weights");
    rc = QT_EXIT_INTERNAL;
    /* One line per format while it works, on a terminal only (logs get the table alone). */
    FILE *log = isatty(fileno(stderr)) ? stderr : NULL;
    if (qt_eval_anchor_rows(&e, &a, path, acts, rows, n, log, "qat-train", err, sizeof err) != 0)
        goto done;
    qt_eval_print_table(stderr, rows, n);
    fprintf(stderr, "fp32 = the dequantized %s anchor weights, activations not quantized.\n",
            mx_format_name(f));
    rc = QT_EXIT_OK;
done:
    if (rc != QT_EXIT_OK)
        fprintf(stderr, "qat-train: %s\n", err);
    qt_evaluator_close(&e);
    qt_anchor_free(&a);
    return rc;
}
