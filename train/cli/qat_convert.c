/* qat_convert.c — packed lower-format files from an anchor, and anchors from training checkpoints.
 *   qat-convert --anchor FILE --to FORMAT --out FILE         Slice-and-Scale every quantized
 *                                                            tensor to FORMAT (attr source_format)
 *   qat-convert --checkpoint TRAIN.h5 --to ANCHORFMT --out FILE   an anchor (mxint8, mxfp8_e4m3,
 *                                                            mxfp8_e5m2) from a training checkpoint
 */
#include "train/io/anchor.h"
#include "train/run/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN QT_CLI_ERRLEN

static void usage(FILE *f) {
    fputs(
        "usage: qat-convert --anchor FILE --to FORMAT --out FILE\n"
        "       qat-convert --checkpoint TRAIN.h5 --to mxint8|mxfp8_e4m3|mxfp8_e5m2 --out FILE\n"
        "  --anchor      Slice-and-Scale an anchor to FORMAT, any MX format with at most the\n"
        "                anchor's bits; the result is packed and qat-eval reads it\n"
        "  --checkpoint  quantize a training checkpoint into an anchor (its stored quant.rounding\n"
        "                and quant.quantize_head decide how, as at the end of qat-train)\n"
        "Exit codes: 0 ok, 2 usage (bad format, conversion upward), 4 checkpoint.\n",
        f);
}

typedef struct opts {
    const char *anchor, *ckpt, *to, *out;
} opts;

/* 0 parsed, 1 --help, -1 bad arguments (message printed). */
static int parse_args(int argc, char **argv, opts *o) {
    const qt_cli_opt table[] = {
        {"--anchor", &o->anchor},
        {"--checkpoint", &o->ckpt},
        {"--to", &o->to},
        {"--out", &o->out},
    };
    int rc =
        qt_cli_parse_strings("qat-convert", argc, argv, table, (int)(sizeof table / sizeof *table));
    if (rc != 0)
        return rc;
    if (!o->anchor == !o->ckpt) {
        fprintf(stderr, "qat-convert: give exactly one of --anchor FILE or --checkpoint FILE\n");
        return -1;
    }
    if (!o->to || !o->out) {
        fprintf(stderr, "qat-convert: --to FORMAT and --out FILE are required\n");
        return -1;
    }
    return 0;
}

static int from_anchor(const opts *o, mx_format to, qt_anchor_ckpt *out, char *err) {
    qt_anchor_ckpt src;
    char why[512];
    if (qt_anchor_read(o->anchor, &src, err, ERRLEN) != 0)
        return QT_EXIT_CKPT;
    int rc = QT_EXIT_USAGE;
    if (qt_anchor_check_convert(&src, to, why, sizeof why) != 0) {
        snprintf(err, ERRLEN, "--to %s: cannot convert %s: %s", o->to, o->anchor, why);
    } else if (qt_anchor_convert(&src, to, out, err, ERRLEN) != 0) {
        rc = QT_EXIT_INTERNAL;
    } else {
        fprintf(stderr, "qat-convert: %s: %s anchor -> %s by Slice-and-Scale (rounding %s)\n",
                o->anchor, mx_format_name(src.format), mx_format_name(to),
                src.rounding == MX_ROUND_NEAREST ? "nearest" : "even");
        rc = QT_EXIT_OK;
    }
    qt_anchor_free(&src);
    return rc;
}

static int from_train(const opts *o, mx_format to, qt_anchor_ckpt *out, char *err) {
    qt_ckpt ck;
    if (qt_ckpt_read(o->ckpt, &ck, err, ERRLEN) != 0)
        return QT_EXIT_CKPT;
    int rc = QT_EXIT_CKPT;
    if (ck.kind != QT_CKPT_TRAIN)
        snprintf(err, ERRLEN,
                 "%s: is of kind '%s'; --checkpoint takes a training checkpoint (kind 'train')%s",
                 o->ckpt, qt_ckpt_kind_name(ck.kind),
                 ck.kind == QT_CKPT_ANCHOR ? "; use --anchor to convert an anchor" : "");
    else if (qt_anchor_from_train(out, &ck, o->ckpt, to, err, ERRLEN) == 0)
        rc = QT_EXIT_OK;
    if (rc == QT_EXIT_OK)
        fprintf(stderr,
                "qat-convert: %s: training checkpoint at step %lld -> %s anchor (rounding "
                "%s)\n",
                o->ckpt, (long long)ck.step, mx_format_name(to),
                out->rounding == MX_ROUND_NEAREST ? "nearest" : "even");
    qt_ckpt_free(&ck);
    return rc;
}

static int run(void *arg, char *err) {
    const opts *o = arg;
    mx_format to;
    if (mx_format_parse(o->to, &to) != 0) {
        snprintf(err, ERRLEN,
                 "--to: unknown format '%s' (expected mxint8, mxint6, mxint4, mxint2, mxfp8_e4m3, "
                 "mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4_e2m1)",
                 o->to);
        return QT_EXIT_USAGE;
    }
    if (o->ckpt && !qt_anchor_format_ok(to)) {
        snprintf(err, ERRLEN,
                 "--to %s: an anchor made from --checkpoint %s must be mxint8, mxfp8_e4m3 or "
                 "mxfp8_e5m2 (convert that anchor with --anchor for lower formats)",
                 o->to, o->ckpt);
        return QT_EXIT_USAGE;
    }
    qt_anchor_ckpt out = {0};
    int rc = o->anchor ? from_anchor(o, to, &out, err) : from_train(o, to, &out, err);
    if (rc == QT_EXIT_OK) {
        if (qt_anchor_write(o->out, &out, err, ERRLEN) != 0) {
            rc = QT_EXIT_CKPT;
        } else {
            size_t bytes = 0, n = qt_anchor_quantized_count(&out, &bytes);
            fprintf(stderr, "qat-convert: wrote %s: %zu quantized tensors, %.1f KiB packed\n",
                    o->out, n, (double)bytes / 1024.0);
        }
    }
    qt_anchor_free(&out);
    return rc;
}

int main(int argc, char **argv) {
    opts o;
    return qt_cli_main("qat-convert", parse_args(argc, argv, &o), usage, run, &o);
}
