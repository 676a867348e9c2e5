/* qat_eval.c — `qat-eval --checkpoint FILE [--formats all|LIST] [--batches N] [--csv OUT]
 *               [--quantize weights|weights+activations] [--corpus PATH]`
 * Validation loss and perplexity of a checkpoint at each format, as a table on stdout (progress
 * and notes on stderr). Training checkpoint: the float weights quantized in each format. Anchor:
 * each format by Slice-and-Scale from it. Converted or PTQ file: its own format. */
#include "train/io/anchor.h"
#include "train/run/evaluate.h"
#include "train/run/format.h"
#include "train/run/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN QT_CLI_ERRLEN
#define MAX_ROWS 16

static void usage(FILE *f) {
    fputs("usage: qat-eval --checkpoint FILE [options]\n"
          "  --formats all|LIST   formats to evaluate: all (default), or names like "
          "mxint8,mxfp4_e2m1\n"
          "                       (fp32 is always included: Δ is relative to it)\n"
          "  --batches N          validation batches (default: run.eval_batches of the stored "
          "config)\n"
          "  --csv OUT            also write the table as CSV to OUT\n"
          "  --quantize weights|weights+activations\n"
          "                       what the quantized rows quantize (default: the stored "
          "quant.quantize)\n"
          "  --corpus PATH        evaluate on PATH instead of the stored data.corpus\n"
          "The model, val split, seq_len and batch size come from the checkpoint's stored config.\n"
          "Exit codes: 0 ok, 2 usage, 3 data, 4 checkpoint.\n",
          f);
}

typedef struct opts {
    const char *ckpt, *formats, *csv, *corpus;
    int64_t batches;
    int quantize; /* -1: stored; else qt_quantize_what */
} opts;

/* 0 parsed, 1 --help, -1 bad arguments (message printed). */
static int parse_args(int argc, char **argv, opts *o) {
    *o = (opts){.formats = "all", .quantize = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return 1;
        if (!v || a[0] != '-') {
            fprintf(stderr, "qat-eval: unknown or incomplete option '%s'\n", a);
            return -1;
        }
        i++;
        if (!strcmp(a, "--checkpoint")) {
            o->ckpt = v;
        } else if (!strcmp(a, "--formats")) {
            o->formats = v;
        } else if (!strcmp(a, "--csv")) {
            o->csv = v;
        } else if (!strcmp(a, "--corpus")) {
            o->corpus = v;
        } else if (!strcmp(a, "--batches")) {
            char *end;
            long long n = strtoll(v, &end, 10);
            if (end == v || *end || n <= 0) {
                fprintf(stderr, "qat-eval: --batches expects a positive integer, got '%s'\n", v);
                return -1;
            }
            o->batches = n;
        } else if (!strcmp(a, "--quantize")) {
            if (!strcmp(v, "weights")) {
                o->quantize = QT_QUANTIZE_WEIGHTS;
            } else if (!strcmp(v, "weights+activations")) {
                o->quantize = QT_QUANTIZE_WEIGHTS_ACTS;
            } else {
                fprintf(stderr,
                        "qat-eval: --quantize expects weights or weights+activations, got '%s'\n",
                        v);
                return -1;
            }
        } else {
            fprintf(stderr, "qat-eval: unknown option '%s'\n", a);
            return -1;
        }
    }
    if (!o->ckpt) {
        fprintf(stderr, "qat-eval: --checkpoint FILE is required\n");
        return -1;
    }
    return 0;
}

/* Rows of a training checkpoint: its float weights, quantized per its stored [quant] options. */
static int train_rows(qt_evaluator *e, const qt_ckpt *ck, const char *path, bool acts,
                      qt_eval_row *rows, int n, char *err) {
    qt_format_sampler fs;
    if (qt_model_load_params(e->model, ck, path, err, ERRLEN) != 0 ||
        qt_format_sampler_init(&fs, &e->cfg, err, ERRLEN) != 0)
        return QT_EXIT_CKPT;
    qt_quant base = qt_format_quant(&fs, MX_FP32);
    base.activations = acts;
    if (e->model->slots)
        fprintf(stderr,
                "qat-eval: weights: the frozen %s base of lora.init_from plus the adapters; each "
                "format fake-quantizes the adapters (and activations), the base stays as packed\n",
                qt_lora_base_name(e->cfg.lora.base_format));
    else if (base.weights_via != MX_FP32)
        fprintf(stderr,
                "qat-eval: weights: Slice-and-Scale of the %s-quantized float weights to each "
                "format, as the run trained (quant.weights_via_anchor = true)\n",
                mx_format_name(base.weights_via));
    else
        fprintf(stderr, "qat-eval: weights: the float32 weights quantized directly to each format "
                        "(quant.weights_via_anchor = false)\n");
    if (base.head && e->model->tied)
        fprintf(stderr, "qat-eval: note: the tied wte is quantized as the output projection only "
                        "(as in training); from an anchor, its embedding lookups are too\n");
    if (qt_eval_direct_rows(e, &base, rows, n, stderr, "qat-eval", err, ERRLEN) != 0)
        return QT_EXIT_INTERNAL;
    return QT_EXIT_OK;
}

static void describe_anchor(const qt_anchor_ckpt *a, const char *path) {
    const char *r = a->rounding == MX_ROUND_NEAREST ? "nearest" : "even";
    if (a->ptq_method[0])
        fprintf(stderr,
                "qat-eval: %s: post-training quantized to %s by %s (rounding %s), step %lld: "
                "evaluated at %s only\n",
                path, mx_format_name(a->format), a->ptq_method, r, (long long)a->step,
                mx_format_name(a->format));
    else if (a->source == MX_FP32)
        fprintf(stderr,
                "qat-eval: %s: anchor %s (rounding %s), step %lld: every format by "
                "Slice-and-Scale from it\n",
                path, mx_format_name(a->format), r, (long long)a->step);
    else
        fprintf(
            stderr,
            "qat-eval: %s: %s converted from a %s anchor (rounding %s), step %lld: evaluated at "
            "%s only\n",
            path, mx_format_name(a->format), mx_format_name(a->source), r, (long long)a->step,
            mx_format_name(a->format));
}

static int run(void *arg, char *err) {
    const opts *o = arg;
    mx_format fmts[MAX_ROWS];
    qt_eval_row rows[MAX_ROWS];
    int n = qt_eval_parse_formats(o->formats, fmts, MAX_ROWS, err, ERRLEN);
    if (n < 0)
        return QT_EXIT_USAGE;
    for (int i = 0; i < n; i++)
        rows[i].format = fmts[i];

    qt_ckpt ck;
    qt_anchor_ckpt a = {0};
    qt_evaluator e = {0};
    if (qt_ckpt_read(o->ckpt, &ck, err, ERRLEN) != 0)
        return QT_EXIT_CKPT;
    int rc = QT_EXIT_CKPT;
    bool anchor = ck.kind == QT_CKPT_ANCHOR || ck.kind == QT_CKPT_PTQ;
    if (anchor && qt_anchor_from_ckpt(&a, &ck, o->ckpt, err, ERRLEN) != 0)
        goto done;
    qt_eval_opts eo = {.config_text = ck.config_text,
                       .origin = o->ckpt,
                       .corpus = o->corpus,
                       .batches = o->batches};
    if ((rc = qt_evaluator_open(&e, &eo, err, ERRLEN)) != QT_EXIT_OK)
        goto done;
    rc = QT_EXIT_CKPT;
    if (qt_config_model_hash(&e.cfg) != ck.model_hash) {
        snprintf(err, ERRLEN, "%s: model_hash does not match the stored [model] config", o->ckpt);
        goto done;
    }
    bool acts =
        (o->quantize < 0 ? (int)e.cfg.quant.quantize : o->quantize) == QT_QUANTIZE_WEIGHTS_ACTS;
    if (anchor)
        describe_anchor(&a, o->ckpt);
    else
        fprintf(stderr, "qat-eval: %s: %s checkpoint, step %lld\n", o->ckpt,
                qt_ckpt_kind_name(ck.kind), (long long)ck.step);
    if (e.task.held_out)
        fprintf(stderr,
                "qat-eval: task %s (%d..%d digits): %zu held-out problems, loss on the answer "
                "tokens and exact-match accuracy of greedy completions; %s quantized\n",
                data_task_kind_name(e.task.cfg.kind), e.task.cfg.min_digits, e.task.cfg.max_digits,
                e.task.n_held_out, acts ? "weights and activations" : "weights");
    else
        fprintf(stderr,
                "qat-eval: %zu validation batches of %d x %d tokens from %s; %s quantized\n",
                e.n_batches, e.B, e.T, o->corpus ? o->corpus : e.cfg.data.corpus,
                acts ? "weights and activations" : "weights");
    if (anchor) { /* fails on an anchor that does not fit its stored config: rc stays 4 */
        if (qt_eval_anchor_rows(&e, &a, o->ckpt, acts, rows, n, stderr, "qat-eval", err, ERRLEN) !=
            0)
            goto done;
    } else if ((rc = train_rows(&e, &ck, o->ckpt, acts, rows, n, err)) != QT_EXIT_OK) {
        goto done;
    }
    qt_eval_print_table(stdout, rows, n);
    if (anchor)
        printf("fp32 = the dequantized %s weights of the file, activations not quantized.\n",
               mx_format_name(a.format));
    else if (e.model->slots)
        printf("fp32 = the %s base and float32 adapters, nothing else quantized.\n",
               qt_lora_base_name(e.cfg.lora.base_format));
    else
        printf("fp32 = the float32 weights, nothing quantized.\n");
    fflush(stdout);
    rc = QT_EXIT_USAGE;
    if (o->csv && qt_eval_write_csv(o->csv, rows, n, err, ERRLEN) != 0)
        goto done;
    rc = QT_EXIT_OK;
done:
    qt_ckpt_free(&ck);
    qt_evaluator_close(&e);
    qt_anchor_free(&a);
    return rc;
}

int main(int argc, char **argv) {
    opts o;
    return qt_cli_main("qat-eval", parse_args(argc, argv, &o), usage, run, &o);
}
