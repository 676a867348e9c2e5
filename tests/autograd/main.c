/* main.c — the autograd test binary: every group, then the check that every op has a gradcheck. */
#include "agtest.h"

#include <stdlib.h>
#include <string.h>

uint32_t agt_ops_checked[(AG_OP_COUNT + 31) / 32];

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

/* Runs after all groups: an op without a passing double-precision gradient check fails here. */
static void test_every_op_has_gradcheck(void **state) {
    (void)state;
    int missing = 0;
    for (int op = 0; op < AG_OP_COUNT; op++)
        if (!(agt_ops_checked[op / 32] & (1u << (op % 32)))) {
            print_error("op '%s' has no passing gradient check\n", ag_op_name((ag_op)op));
            missing++;
        }
    assert_int_equal(missing, 0);
}

int main(void) {
    int failed = agt_run_core() + agt_run_ops_basic() + agt_run_ops_nn() + agt_run_fakequant() +
                 agt_run_fastmath() + agt_run_clinear() + agt_run_frozen_linear() +
                 agt_run_dropout() + agt_run_lora_linear() + agt_run_assign();
    failed += agt_run_grpo() + agt_run_gemm() + agt_run_attention();
    const struct CMUnitTest coverage[] = {cmocka_unit_test(test_every_op_has_gradcheck)};
    failed += cmocka_run_group_tests_name("autograd_coverage", coverage, NULL, NULL);
    return failed;
}
