/* qat_merge.c — `qat-merge --adapters G [--base F] --out H [--format FMT]`
 * Folds the adapters of a QLoRA checkpoint into its frozen base: every adapted weight becomes
 * dequant(base) + s·B·A, every other base weight dequant(base). Writes a float32 training
 * checkpoint (config: the adapters' run with [lora] off) that qat-eval, qat-ptq and
 * run.init_from read, or with --format a quantized file (an anchor for mxint8/mxfp8_e4m3/
 * mxfp8_e5m2, an RTN-quantized 'ptq' file for the other MX formats), and prints the error that
 * re-quantizing the merged weights introduced. */
#include "train/io/anchor.h"
#include "train/run/init.h"
#include "train/run/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN QT_CLI_ERRLEN

static void usage(FILE *f) {
    fputs("usage: qat-merge --adapters QLORA.h5 --out FILE [--base BASE.h5] [--format FORMAT]\n"
          "  --adapters  a checkpoint of a QLoRA run (lora.enabled = true)\n"
          "  --base      the base it was trained on (default: its stored lora.init_from); its\n"
          "              packed fingerprint must match the one the checkpoint recorded\n"
          "  --format    quantize the merged weights: mxint8, mxfp8_e4m3, mxfp8_e5m2 give an "
          "anchor,\n"
          "              other MX formats an RTN-quantized file; without it, float32\n"
          "Exit codes: 0 ok, 2 usage, 3 data, 4 checkpoint.\n",
          f);
}

typedef struct opts {
    const char *adapters, *base, *out, *format;
} opts;

/* 0 parsed, 1 --help, -1 bad arguments (message printed). */
static int parse_args(int argc, char **argv, opts *o) {
    const qt_cli_opt table[] = {
        {"--adapters", &o->adapters},
        {"--base", &o->base},
        {"--out", &o->out},
        {"--format", &o->format},
    };
    int rc =
        qt_cli_parse_strings("qat-merge", argc, argv, table, (int)(sizeof table / sizeof *table));
    if (rc != 0)
        return rc;
    if (!o->adapters || !o->out) {
        fprintf(stderr, "qat-merge: --adapters and --out are required\n");
        return -1;
    }
    return 0;
}

typedef struct merge {
    qt_config cfg, plain; /* the QLoRA run's config; the same with [lora] off */
    char *plain_text;
    qt_model *lora, *merged;
} merge;

static void merge_free(merge *g) {
    qt_model_free(g->lora);
    qt_model_free(g->merged);
    free(g->plain_text);
    qt_config_free(&g->cfg);
    qt_config_free(&g->plain);
}

static int load_config(merge *g, const qt_ckpt *ck, const opts *o, char *err) {
    char perr[ERRLEN];
    if (qt_config_defaults(&g->cfg) != 0 || qt_config_defaults(&g->plain) != 0) {
        snprintf(err, ERRLEN, "out of memory");
        return QT_EXIT_INTERNAL;
    }
    const char *text = ck->config_text ? ck->config_text : "";
    if (qt_config_load_string(&g->cfg, text, o->adapters, perr, sizeof perr) != 0 ||
        qt_config_load_string(&g->plain, text, o->adapters, perr, sizeof perr) != 0) {
        snprintf(err, ERRLEN, "%s: the stored config is not usable: %s", o->adapters, perr);
        return QT_EXIT_CKPT;
    }
    if (ck->kind != QT_CKPT_TRAIN || !g->cfg.lora.enabled) {
        snprintf(err, ERRLEN, "%s: not a QLoRA checkpoint (a '%s' file with lora.enabled = %s)",
                 o->adapters, qt_ckpt_kind_name(ck->kind), g->cfg.lora.enabled ? "true" : "false");
        return QT_EXIT_CKPT;
    }
    if (o->base)
        snprintf(g->cfg.lora.init_from, sizeof g->cfg.lora.init_from, "%s", o->base);
    if (qt_config_set(&g->plain, "lora.enabled=false", perr, sizeof perr) != 0 ||
        qt_config_set(&g->plain, "lora.init_from=", perr, sizeof perr) != 0 ||
        !(g->plain_text = qt_config_to_ini(&g->plain))) {
        snprintf(err, ERRLEN, "out of memory");
        return QT_EXIT_INTERNAL;
    }
    return QT_EXIT_OK;
}

/* The QLoRA model: base from lora.init_from (fingerprint checked), adapters from ck. */
static int load_lora(merge *g, const qt_ckpt *ck, const opts *o, char *err) {
    if (!(g->lora = qt_model_create(&g->cfg, err, ERRLEN)))
        return QT_EXIT_INTERNAL;
    int rc = qt_lora_load_base(g->lora, &g->cfg, g->cfg.lora.init_from, err, ERRLEN);
    if (rc != QT_EXIT_OK)
        return rc;
    const qt_ckpt_attr *h = qt_ckpt_find_attr(ck, "", "lora_base_hash");
    if (!h || h->type != QT_CK_ATTR_INT || (uint64_t)h->ints[0] != qt_lora_base_hash(g->lora)) {
        snprintf(err, ERRLEN,
                 "%s: its adapters were trained on another base than %s in %s (base "
                 "fingerprints differ)",
                 o->adapters, g->cfg.lora.init_from, qt_lora_base_name(g->cfg.lora.base_format));
        return QT_EXIT_CKPT;
    }
    return qt_model_load_params(g->lora, ck, o->adapters, err, ERRLEN) == 0 ? QT_EXIT_OK
                                                                            : QT_EXIT_CKPT;
}

/* Every parameter of the plain model: a merged base weight, or the QLoRA model's own copy. */
static int build_merged(merge *g, char *err) {
    if (!(g->merged = qt_model_create(&g->plain, err, ERRLEN)))
        return QT_EXIT_INTERNAL;
    int adapted = 0;
    for (size_t i = 0; i < g->merged->n_params; i++) {
        qt_param *p = &g->merged->params[i];
        qt_lora_slot *s = qt_lora_find(g->lora, p->name);
        qt_param *q = s ? NULL : qt_model_find(g->lora, p->name);
        if (s) {
            qt_lora_merged_weight(g->lora, s, p->t.data);
            adapted += s->a != NULL;
        } else if (q && q->t.numel == p->t.numel) {
            memcpy(p->t.data, q->t.data, p->t.numel * sizeof(float));
        } else {
            snprintf(err, ERRLEN, "internal: %s has no counterpart in the QLoRA model", p->name);
            return QT_EXIT_INTERNAL;
        }
    }
    fprintf(stderr, "qat-merge: folded %d adapters (rank %d, scale %g) into the %s base\n", adapted,
            g->lora->lora_rank, g->lora->lora_scale, qt_lora_base_name(g->cfg.lora.base_format));
    return QT_EXIT_OK;
}

static int write_float(const merge *g, const qt_ckpt *ck, const char *path, char *err) {
    qt_model *m = g->merged;
    qt_ckpt_tensor *params = calloc(m->n_params, sizeof *params);
    if (!params) {
        snprintf(err, ERRLEN, "out of memory");
        return QT_EXIT_INTERNAL;
    }
    for (size_t i = 0; i < m->n_params; i++) {
        qt_ckpt_tensor *t = &params[i];
        snprintf(t->name, sizeof t->name, "%s", m->params[i].name);
        t->dtype = QT_CK_F32;
        t->ndim = m->params[i].t.ndim;
        memcpy(t->shape, m->params[i].t.shape, sizeof t->shape);
        t->data = m->params[i].t.data;
    }
    /* No optimizer state: a fresh start (run.init_from) or evaluation, not a resume. */
    qt_ckpt out = {.kind = QT_CKPT_TRAIN,
                   .step = ck->step,
                   .config_text = g->plain_text,
                   .model_hash = qt_config_model_hash(&g->plain),
                   .params = params,
                   .n_params = m->n_params};
    int rc = qt_ckpt_write(path, &out, err, ERRLEN) == 0 ? QT_EXIT_OK : QT_EXIT_CKPT;
    free(params);
    return rc;
}

/* Quantize the merged model in f and report ‖Q(W) − W‖/‖W‖ over the quantized weights. */
static int write_quantized(const merge *g, const qt_ckpt *ck, mx_format f, const char *path,
                           char *err) {
    qt_model *m = g->merged;
    bool head = g->plain.quant.quantize_head;
    mx_rounding r = (mx_rounding)g->plain.quant.rounding;
    qt_anchor_ckpt a;
    int rc = QT_EXIT_INTERNAL;
    if (qt_quantized_from_model(&a, m, head, f, r, g->plain_text, ck->step,
                                qt_config_model_hash(&g->plain), err, ERRLEN) != 0)
        return rc;
    /* Not an anchor format: an RTN-quantized 'ptq' file, which qat-eval reads at f. */
    if (!qt_anchor_format_ok(f))
        snprintf(a.ptq_method, sizeof a.ptq_method, "rtn");
    double num = 0, den = 0, worst = 0;
    const char *worst_name = "";
    for (size_t i = 0; i < a.n; i++) {
        const qt_anchor_tensor *t = &a.t[i];
        if (!t->quantized)
            continue;
        size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
        const float *w = qt_model_find(m, t->name)->t.data;
        float *q = malloc(rows * cols * sizeof *q);
        if (!q) {
            qt_anchor_free(&a);
            snprintf(err, ERRLEN, "out of memory");
            return rc;
        }
        mx_dequantize(t->codes, t->scales, q, rows, cols, f);
        double n1 = 0, d1 = 0;
        for (size_t j = 0; j < rows * cols; j++) {
            n1 += ((double)q[j] - w[j]) * ((double)q[j] - w[j]);
            d1 += (double)w[j] * w[j];
        }
        free(q);
        num += n1;
        den += d1;
        if (d1 > 0 && sqrt(n1 / d1) > worst) {
            worst = sqrt(n1 / d1);
            worst_name = t->name;
        }
    }
    fprintf(stderr,
            "qat-merge: re-quantizing the merged weights to %s: relative RMS error %.4f overall, "
            "worst %.4f (%s)\n",
            mx_format_name(f), den > 0 ? sqrt(num / den) : 0.0, worst, worst_name);
    rc = qt_anchor_write(path, &a, err, ERRLEN) == 0 ? QT_EXIT_OK : QT_EXIT_CKPT;
    qt_anchor_free(&a);
    return rc;
}

static int run(void *arg, char *err) {
    const opts *o = arg;
    mx_format f = MX_FP32;
    if (o->format && qt_cli_mx_format("--format", o->format, &f, err, ERRLEN) != 0)
        return QT_EXIT_USAGE;
    qt_ckpt ck;
    if (qt_ckpt_read(o->adapters, &ck, err, ERRLEN) != 0)
        return QT_EXIT_CKPT;
    merge g = {0};
    int rc = load_config(&g, &ck, o, err);
    if (rc == QT_EXIT_OK)
        rc = load_lora(&g, &ck, o, err);
    if (rc == QT_EXIT_OK)
        rc = build_merged(&g, err);
    if (rc == QT_EXIT_OK)
        rc = f == MX_FP32 ? write_float(&g, &ck, o->out, err)
                          : write_quantized(&g, &ck, f, o->out, err);
    if (rc == QT_EXIT_OK)
        fprintf(stderr, "qat-merge: wrote %s (%s)\n", o->out,
                f == MX_FP32 ? "float32 training checkpoint, [lora] off" : mx_format_name(f));
    merge_free(&g);
    qt_ckpt_free(&ck);
    return rc;
}

int main(int argc, char **argv) {
    opts o;
    return qt_cli_main("qat-merge", parse_args(argc, argv, &o), usage, run, &o);
}
