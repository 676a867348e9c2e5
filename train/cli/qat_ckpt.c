/* qat_ckpt.c — inspect and verify checkpoints.
 *   qat-ckpt FILE...                   verify each file and print a summary (exit 4 if any is bad)
 *   qat-ckpt --compare-params A B      exit 0 iff A and B hold bit-identical /params */
#include "train/io/ckpt.h"
#include "train/run/train.h"

#include <stdio.h>
#include <string.h>

static int summary(const char *path) {
    qt_ckpt ck;
    char err[1024];
    if (qt_ckpt_read(path, &ck, err, sizeof err) != 0) {
        fprintf(stderr, "qat-ckpt: %s\n", err);
        return QT_EXIT_CKPT;
    }
    size_t n = 0;
    for (size_t i = 0; i < ck.n_params; i++) {
        size_t k = 1;
        for (int d = 0; d < ck.params[i].ndim; d++)
            k *= (size_t)ck.params[i].shape[d];
        n += k;
    }
    printf("%s: ok, kind %s, step %lld, %zu tensors (%zu elements), %zu optimizer tensors, "
           "%zu rng streams\n",
           path, qt_ckpt_kind_name(ck.kind), (long long)ck.step, ck.n_params, n, ck.n_optim,
           ck.n_rngs);
    qt_ckpt_free(&ck);
    return QT_EXIT_OK;
}

static size_t nbytes(const qt_ckpt_tensor *t) {
    size_t k = t->dtype == QT_CK_F32 ? 4 : 1;
    for (int d = 0; d < t->ndim; d++)
        k *= (size_t)t->shape[d];
    return k;
}

static int compare(const char *a, const char *b) {
    qt_ckpt x, y;
    char err[1024];
    if (qt_ckpt_read(a, &x, err, sizeof err) != 0) {
        fprintf(stderr, "qat-ckpt: %s\n", err);
        return QT_EXIT_CKPT;
    }
    if (qt_ckpt_read(b, &y, err, sizeof err) != 0) {
        fprintf(stderr, "qat-ckpt: %s\n", err);
        qt_ckpt_free(&x);
        return QT_EXIT_CKPT;
    }
    int diff = x.n_params != y.n_params;
    for (size_t i = 0; !diff && i < x.n_params; i++) {
        const qt_ckpt_tensor *t = qt_ckpt_find(y.params, y.n_params, x.params[i].name);
        if (!t || nbytes(t) != nbytes(&x.params[i]) ||
            memcmp(t->data, x.params[i].data, nbytes(t)) != 0) {
            fprintf(stderr, "qat-ckpt: /params/%s differs\n", x.params[i].name);
            diff = 1;
        }
    }
    qt_ckpt_free(&x);
    qt_ckpt_free(&y);
    return diff ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--compare-params"))
        return compare(argv[2], argv[3]);
    if (argc < 2 || argv[1][0] == '-') {
        fputs("usage: qat-ckpt FILE...  |  qat-ckpt --compare-params A B\n", stderr);
        return QT_EXIT_USAGE;
    }
    int rc = QT_EXIT_OK;
    for (int i = 1; i < argc; i++)
        if (summary(argv[i]) != QT_EXIT_OK)
            rc = QT_EXIT_CKPT;
    return rc;
}
