/* gradcheck.c — central finite differences in double precision against the tape's gradients. */
#include "autograd/ag.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Deterministic weights R for L = Σ out ⊙ R: distinct, non-trivial values in [-1, 1]. */
static double proj_weight(size_t i) {
    uint64_t z = (uint64_t)i * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static double eval_loss(ag_tape *t, ag_gc_build_fn build, void *ctx, ag_tensor **in, int *fail) {
    ag_tape_reset(t);
    ag_tape_set_recording(t, false);
    ag_tensor *out = build(t, in, ctx);
    ag_tape_set_recording(t, true);
    if (!out) {
        *fail = 1;
        return 0;
    }
    const double *o = out->data;
    double L = 0;
    for (size_t i = 0; i < out->numel; i++)
        L += o[i] * proj_weight(i);
    return L;
}

int ag_gradcheck(ag_gc_build_fn build, void *ctx, ag_tensor **in, int n_in, double eps, double atol,
                 double rtol, ag_gc_report *rep) {
    memset(rep, 0, sizeof *rep);
    ag_tape *t = ag_tape_create(1 << 20, 0, 4096);
    double **analytic = calloc((size_t)n_in, sizeof *analytic);
    int bad = -1, fail = 0;
    if (!t || !analytic)
        goto done;

    /* Analytic pass: grads into fresh zeroed buffers owned here. */
    for (int k = 0; k < n_in; k++) {
        if (!in[k]->requires_grad)
            continue;
        analytic[k] = calloc(in[k]->numel, sizeof(double));
        if (!analytic[k])
            goto done;
        in[k]->grad = analytic[k];
    }
    ag_tensor *out = build(t, in, ctx);
    if (!out)
        goto done;
    for (size_t i = 0; i < ag_tape_size(t); i++) {
        ag_op op = ag_tape_node(t, i)->op;
        rep->ops_seen[op / 32] |= 1u << (op % 32);
    }
    double *seed = ag_tape_alloc(t, out->numel * sizeof(double));
    if (!seed)
        goto done;
    for (size_t i = 0; i < out->numel; i++)
        seed[i] = proj_weight(i);
    if (ag_backward(t, out, seed) != 0)
        goto done;
    for (int k = 0; k < n_in; k++)
        in[k]->grad = NULL;

    bad = 0;
    for (int k = 0; k < n_in; k++) {
        if (!analytic[k])
            continue;
        double *x = in[k]->data;
        for (size_t i = 0; i < in[k]->numel; i++) {
            double x0 = x[i];
            x[i] = x0 + eps;
            double lp = eval_loss(t, build, ctx, in, &fail);
            x[i] = x0 - eps;
            double lm = eval_loss(t, build, ctx, in, &fail);
            x[i] = x0;
            if (fail) {
                bad = -1;
                goto done;
            }
            double num = (lp - lm) / (2 * eps), ana = analytic[k][i];
            double err = fabs(num - ana), scale = fmax(fabs(num), fabs(ana));
            double rel = scale > 0 ? err / scale : 0;
            rep->n_checked++;
            if (err > rep->max_abs_err)
                rep->max_abs_err = err;
            if (rel > rep->max_rel_err)
                rep->max_rel_err = rel;
            if (!(err <= atol + rtol * scale)) {
                if (bad == 0 || err > fabs(rep->worst_analytic - rep->worst_numeric)) {
                    rep->worst_input = k;
                    rep->worst_index = i;
                    rep->worst_analytic = ana;
                    rep->worst_numeric = num;
                }
                bad++;
            }
        }
    }
done:
    for (int k = 0; analytic && k < n_in; k++) {
        if (in[k]->grad == analytic[k])
            in[k]->grad = NULL;
        free(analytic[k]);
    }
    free(analytic);
    ag_tape_free(t);
    return bad;
}
