/* qat_ptq.c — `qat-ptq --checkpoint F --method rtn|gptq|smoothquant+rtn|smoothquant+gptq
 *              --format FMT [--calib-batches N] [--alpha A] [--damp D]
 *              [--quantize weights|weights+activations] [--corpus PATH] --out G`
 * Post-training quantization of a training checkpoint's float weights into a file of kind "ptq"
 * that qat-eval evaluates (train/run/ptq.h says what each method does). */
#include "train/run/ptq.h"
#include "train/run/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN QT_CLI_ERRLEN

static void usage(FILE *f) {
    fputs("usage: qat-ptq --checkpoint TRAIN.h5 --method METHOD --format FORMAT --out FILE "
          "[options]\n"
          "  --method M           rtn | gptq | smoothquant+rtn | smoothquant+gptq\n"
          "  --format F           any MX format: mxint8 mxint6 mxint4 mxint2 mxfp8_e4m3 "
          "mxfp8_e5m2\n"
          "                       mxfp6_e3m2 mxfp6_e2m3 mxfp4_e2m1\n"
          "  --calib-batches N    calibration batches from the training split (default 16)\n"
          "  --alpha A            SmoothQuant migration strength in [0, 1] (default 0.5)\n"
          "  --damp D             GPTQ dampening, fraction of the mean Hessian diagonal "
          "(default 0.01;\n"
          "                       raised automatically when the Cholesky factorization fails)\n"
          "  --quantize weights|weights+activations\n"
          "                       whether activations are quantized during calibration and\n"
          "                       evaluation (default: the stored quant.quantize)\n"
          "  --corpus PATH        calibrate on PATH instead of the stored data.corpus\n"
          "The result (kind 'ptq', packed like an anchor) is evaluated by qat-eval at its format.\n"
          "Exit codes: 0 ok, 2 usage, 3 data, 4 checkpoint, 5 non-finite weights.\n",
          f);
}

typedef struct opts {
    const char *ckpt, *out;
    const char *format;
    qt_ptq_opts p;
} opts;

static int parse_number(const char *opt, const char *v, double *out) {
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end) {
        fprintf(stderr, "qat-ptq: %s expects a number, got '%s'\n", opt, v);
        return -1;
    }
    *out = d;
    return 0;
}

static int parse_option(opts *o, const char *a, const char *v) {
    double d;
    if (!strcmp(a, "--checkpoint")) {
        o->ckpt = v;
    } else if (!strcmp(a, "--out")) {
        o->out = v;
    } else if (!strcmp(a, "--method")) {
        o->p.method = v;
    } else if (!strcmp(a, "--format")) {
        o->format = v;
    } else if (!strcmp(a, "--corpus")) {
        o->p.corpus = v;
    } else if (!strcmp(a, "--alpha")) {
        return parse_number(a, v, &o->p.alpha);
    } else if (!strcmp(a, "--damp")) {
        return parse_number(a, v, &o->p.damp);
    } else if (!strcmp(a, "--calib-batches")) {
        if (parse_number(a, v, &d) != 0 || d != (double)(int64_t)d || d < 1 || d > 1e6) {
            fprintf(stderr, "qat-ptq: --calib-batches expects an integer in [1, 1000000]\n");
            return -1;
        }
        o->p.calib_batches = (int64_t)d;
    } else if (!strcmp(a, "--quantize")) {
        if (!strcmp(v, "weights"))
            o->p.quantize = QT_QUANTIZE_WEIGHTS;
        else if (!strcmp(v, "weights+activations"))
            o->p.quantize = QT_QUANTIZE_WEIGHTS_ACTS;
        else {
            fprintf(stderr, "qat-ptq: --quantize expects weights or weights+activations\n");
            return -1;
        }
    } else {
        fprintf(stderr, "qat-ptq: unknown option '%s'\n", a);
        return -1;
    }
    return 0;
}

/* 0 parsed, 1 --help, -1 bad arguments (message printed). */
static int parse_args(int argc, char **argv, opts *o) {
    *o = (opts){
        .p = {.calib_batches = 16, .alpha = 0.5, .damp = 0.01, .quantize = -1, .log = stderr}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return 1;
        if (!v || a[0] != '-') {
            fprintf(stderr, "qat-ptq: unknown or incomplete option '%s'\n", a);
            return -1;
        }
        if (parse_option(o, a, v) != 0)
            return -1;
        i++;
    }
    if (!o->ckpt || !o->out || !o->p.method || !o->format) {
        fprintf(stderr, "qat-ptq: --checkpoint, --method, --format and --out are required\n");
        return -1;
    }
    if (!(o->p.alpha >= 0 && o->p.alpha <= 1) || !(o->p.damp > 0 && o->p.damp < 1e3)) {
        fprintf(stderr, "qat-ptq: --alpha must be in [0, 1] and --damp in (0, 1000)\n");
        return -1;
    }
    return 0;
}

static int run(void *arg, char *err) {
    opts *o = arg;
    bool smooth, gptq;
    if (qt_ptq_method_parse(o->p.method, &smooth, &gptq) != 0) {
        snprintf(err, ERRLEN,
                 "--method: unknown method '%s' (expected rtn, gptq, smoothquant+rtn or "
                 "smoothquant+gptq)",
                 o->p.method);
        return QT_EXIT_USAGE;
    }
    if (qt_cli_mx_format("--format", o->format, &o->p.format, err, ERRLEN) != 0)
        return QT_EXIT_USAGE;
    qt_ckpt ck;
    if (qt_ckpt_read(o->ckpt, &ck, err, ERRLEN) != 0)
        return QT_EXIT_CKPT;
    fprintf(stderr, "qat-ptq: %s (step %lld): %s to %s\n", o->ckpt, (long long)ck.step, o->p.method,
            mx_format_name(o->p.format));
    qt_anchor_ckpt out;
    int rc = qt_ptq_run(&ck, o->ckpt, &o->p, &out, err, ERRLEN);
    qt_ckpt_free(&ck);
    if (rc != QT_EXIT_OK)
        return rc;
    if (qt_anchor_write(o->out, &out, err, ERRLEN) != 0) {
        rc = QT_EXIT_CKPT;
    } else {
        size_t bytes = 0, n = qt_anchor_quantized_count(&out, &bytes);
        fprintf(stderr, "qat-ptq: wrote %s: %zu quantized tensors, %.1f KiB packed\n", o->out, n,
                (double)bytes / 1024.0);
    }
    qt_anchor_free(&out);
    return rc;
}

int main(int argc, char **argv) {
    opts o;
    return qt_cli_main("qat-ptq", parse_args(argc, argv, &o), usage, run, &o);
}
