/* agtest.c — the helpers agtest.h declares: random and hand-filled tensors, float copies, the
 * gradient-check assertion with op coverage, and single-op builds shared by several test files. */
#include "agtest.h"

#include <stdlib.h>
#include <string.h>

ag_tensor *agt_rand(int ndim, const int64_t *shape, double lo, double hi, uint64_t seed,
                    bool requires_grad) {
    ag_tensor *t = malloc(sizeof *t);
    ag_tensor_wrap(t, AG_F64, NULL, NULL, ndim, shape);
    double *d = malloc((t->numel ? t->numel : 1) * sizeof *d);
    for (size_t i = 0; i < t->numel; i++)
        d[i] = tu_uniform(&seed, lo, hi);
    t->data = d;
    t->requires_grad = requires_grad;
    return t;
}

double *agt_rand_vals(size_t n, double lo, double hi, uint64_t seed) {
    double *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (double)(float)tu_uniform(&seed, lo, hi);
    return v;
}

ag_tensor *agt_from_vals(int ndim, const int64_t *shape, const double *vals) {
    ag_tensor *t = agt_rand(ndim, shape, 0, 1, 0, false);
    memcpy(t->data, vals, t->numel * sizeof(double));
    return t;
}

ag_tensor *agt_to_f32(const ag_tensor *d) {
    ag_tensor *f = malloc(sizeof *f);
    float *data = malloc((d->numel ? d->numel : 1) * sizeof *data);
    float *grad = d->requires_grad ? calloc(d->numel ? d->numel : 1, sizeof *grad) : NULL;
    for (size_t i = 0; i < d->numel; i++)
        data[i] = (float)((const double *)d->data)[i];
    ag_tensor_wrap(f, AG_F32, data, grad, d->ndim, d->shape);
    f->requires_grad = d->requires_grad;
    return f;
}

void agt_free_f32(ag_tensor *f) {
    if (!f)
        return;
    free(f->grad);
    agt_free(f);
}

double agt_at(const ag_tensor *t, size_t i) {
    return t->dtype == AG_F32 ? ((const float *)t->data)[i] : ((const double *)t->data)[i];
}

double agt_grad_at(const ag_tensor *t, size_t i) {
    return t->dtype == AG_F32 ? ((const float *)t->grad)[i] : ((const double *)t->grad)[i];
}

void agt_assert_all_close(const ag_tensor *a, const ag_tensor *b, double atol, double rtol) {
    assert_int_equal(a->numel, b->numel);
    for (size_t i = 0; i < a->numel; i++)
        assert_close(agt_at(a, i), agt_at(b, i), atol, rtol);
}

void agt_free(ag_tensor *t) {
    if (!t)
        return;
    free(t->data);
    free(t);
}

void agt_gradcheck_tol(const char *what, ag_gc_build_fn build, void *ctx, ag_tensor **in, int n_in,
                       double eps, double atol, double rtol) {
    ag_gc_report rep;
    int bad = ag_gradcheck(build, ctx, in, n_in, eps, atol, rtol, &rep);
    if (bad != 0) {
        print_error("%s: %d of %zu gradient elements disagree (arena failure if -1); worst: "
                    "input %d index %zu analytic %.12g numeric %.12g; max rel err %.3g\n",
                    what, bad, rep.n_checked, rep.worst_input, rep.worst_index, rep.worst_analytic,
                    rep.worst_numeric, rep.max_rel_err);
        fail();
    }
    assert_true(rep.n_checked > 0);
    for (size_t i = 0; i < sizeof agt_ops_checked / sizeof agt_ops_checked[0]; i++)
        agt_ops_checked[i] |= rep.ops_seen[i];
}

void agt_gradcheck(const char *what, ag_gc_build_fn build, void *ctx, ag_tensor **in, int n_in) {
    agt_gradcheck_tol(what, build, ctx, in, n_in, 1e-6, 1e-8, 1e-6);
}

void agt_mark_checked(ag_op op) { agt_ops_checked[op / 32] |= 1u << (op % 32); }

/* ---- float/double helpers and single-op builds for the test_ops_*.c files -------------------- */

ag_tensor *agt_to_f32_nograd(const ag_tensor *t64) {
    ag_tensor *t = malloc(sizeof *t);
    ag_tensor_wrap(t, AG_F32, NULL, NULL, t64->ndim, t64->shape);
    float *d = malloc((t->numel ? t->numel : 1) * sizeof *d);
    for (size_t i = 0; i < t->numel; i++)
        d[i] = (float)((const double *)t64->data)[i];
    t->data = d;
    t->requires_grad = t64->requires_grad;
    return t;
}

ag_tensor *agt_from_vals_as(ag_dtype d, int ndim, const int64_t *shape, const double *vals,
                            bool requires_grad) {
    ag_tensor *t = agt_rand(ndim, shape, 0, 1, 0, requires_grad);
    for (size_t i = 0; i < t->numel; i++)
        ((double *)t->data)[i] = vals[i];
    if (d == AG_F64)
        return t;
    ag_tensor *f = agt_to_f32_nograd(t);
    agt_free(t);
    return f;
}

void agt_assert_data(const ag_tensor *t, const double *want, double atol) {
    for (size_t i = 0; i < t->numel; i++)
        assert_close(agt_at(t, i), want[i], atol, 0);
}

void agt_assert_grad(const ag_tensor *t, const double *want, double atol) {
    assert_non_null(t->grad);
    for (size_t i = 0; i < t->numel; i++)
        assert_close(agt_grad_at(t, i), want[i], atol, 0);
}

void agt_give_grad(ag_tensor *t) {
    t->grad = calloc(t->numel ? t->numel : 1, ag_dtype_size(t->dtype));
}

void agt_free_grad(ag_tensor *t) {
    free(t->grad);
    t->grad = NULL;
}

void agt_backward_ones(ag_tape *tape, ag_tensor *out) {
    size_t es = ag_dtype_size(out->dtype);
    void *seed = malloc(out->numel * es);
    for (size_t i = 0; i < out->numel; i++) {
        if (out->dtype == AG_F32)
            ((float *)seed)[i] = 1;
        else
            ((double *)seed)[i] = 1;
    }
    assert_int_equal(ag_backward(tape, out, seed), 0);
    free(seed);
}

void agt_check_f32_matches_f64(const char *what, ag_gc_build_fn build, void *ctx, ag_tensor **in64,
                               int n, double rtol) {
    ag_tensor *in32[AG_MAX_INPUTS + 2];
    ag_tape *t64 = ag_tape_create(1 << 20, 0, 64), *t32 = ag_tape_create(1 << 20, 0, 64);
    for (int k = 0; k < n; k++) {
        in32[k] = agt_to_f32_nograd(in64[k]);
        if (in64[k]->requires_grad) {
            agt_give_grad(in64[k]);
            agt_give_grad(in32[k]);
        }
    }
    ag_tensor *o64 = build(t64, in64, ctx), *o32 = build(t32, in32, ctx);
    assert_non_null(o64);
    assert_non_null(o32);
    assert_int_equal(o32->dtype, AG_F32);
    double *s64 = malloc(o64->numel * sizeof *s64);
    float *s32 = malloc(o64->numel * sizeof *s32);
    uint64_t seed = 99;
    for (size_t i = 0; i < o64->numel; i++)
        s32[i] = (float)(s64[i] = tu_uniform(&seed, -1, 1));
    assert_int_equal(ag_backward(t64, o64, s64), 0);
    assert_int_equal(ag_backward(t32, o32, s32), 0);

    double scale = 0;
    for (size_t i = 0; i < o64->numel; i++)
        scale = fmax(scale, fabs(agt_at(o64, i)));
    for (size_t i = 0; i < o64->numel; i++)
        if (!(fabs(agt_at(o32, i) - agt_at(o64, i)) <= rtol * (scale + 1e-30))) {
            print_error("%s: float output[%zu] = %.9g, double %.9g\n", what, i, agt_at(o32, i),
                        agt_at(o64, i));
            fail();
        }
    for (int k = 0; k < n; k++) {
        if (!in64[k]->requires_grad)
            continue;
        scale = 0;
        for (size_t i = 0; i < in64[k]->numel; i++)
            scale = fmax(scale, fabs(agt_grad_at(in64[k], i)));
        for (size_t i = 0; i < in64[k]->numel; i++) {
            double g32 = agt_grad_at(in32[k], i), g64 = agt_grad_at(in64[k], i);
            if (!(fabs(g32 - g64) <= rtol * (scale + 1e-30))) {
                print_error("%s: float grad of input %d [%zu] = %.9g, double %.9g\n", what, k, i,
                            g32, g64);
                fail();
            }
        }
        agt_free_grad(in64[k]);
        agt_free_grad(in32[k]);
    }
    for (int k = 0; k < n; k++)
        agt_free(in32[k]);
    free(s64);
    free(s32);
    ag_tape_free(t64);
    ag_tape_free(t32);
}

ag_tensor *agt_build_add(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_add(t, in[0], in[1]);
}

ag_tensor *agt_build_mul(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_mul(t, in[0], in[1]);
}

ag_tensor *agt_build_gelu(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_gelu(t, in[0]);
}
