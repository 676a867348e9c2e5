/* agtest.h — shared by the autograd test files: random tensors and the gradient-check assertion. */
#ifndef QAT_TESTS_AGTEST_H
#define QAT_TESTS_AGTEST_H

#include "autograd/ag.h"

#include <stdatomic.h>
#include <stdbool.h>
#include "common/testutil.h"

/* Bitmask of ops that some passing gradient check recorded (see test_coverage in main.c). */
extern uint32_t agt_ops_checked[(AG_OP_COUNT + 31) / 32];

/* Heap tensor (AG_F64) with values uniform in [lo, hi) from seed; free with agt_free. */
ag_tensor *agt_rand(int ndim, const int64_t *shape, double lo, double hi, uint64_t seed,
                    bool requires_grad);
void agt_free(ag_tensor *t);
/* n values uniform in [lo, hi) from seed, each exactly representable in float, so that float and
 * double tensors built from them hold the same numbers (malloc'ed; the caller frees). */
double *agt_rand_vals(size_t n, double lo, double hi, uint64_t seed);
/* Double tensor of the given shape holding vals (free with agt_free). */
ag_tensor *agt_from_vals(int ndim, const int64_t *shape, const double *vals);
/* Float copy of a double tensor, with a zeroed float grad when it requires grad (free with
 * agt_free_f32). */
ag_tensor *agt_to_f32(const ag_tensor *d);
void agt_free_f32(ag_tensor *f);
/* Element i of a float or double tensor's data / grad, as a double. */
double agt_at(const ag_tensor *t, size_t i);
double agt_grad_at(const ag_tensor *t, size_t i);
/* Same numel, and every element close (assert_close with atol, rtol). */
void agt_assert_all_close(const ag_tensor *a, const ag_tensor *b, double atol, double rtol);

/* Run ag_gradcheck (eps 1e-6, atol 1e-8, rtol 1e-6 unless changed) and fail the test with the
 * worst element if any element disagrees; on success, mark the recorded ops as checked. */
void agt_gradcheck(const char *what, ag_gc_build_fn build, void *ctx, ag_tensor **in, int n_in);
void agt_gradcheck_tol(const char *what, ag_gc_build_fn build, void *ctx, ag_tensor **in, int n_in,
                       double eps, double atol, double rtol);

/* For ops checked against a closed form instead of finite differences (straight-through
 * estimators): record that op as covered once its closed-form test passed. */
void agt_mark_checked(ag_op op);

/* ---- float/double helpers and single-op builds for the test_ops_*.c files -------------------- */

/* Heap AG_F32 copy of an AG_F64 tensor (same shape and requires_grad) with no grad buffer, unlike
 * agt_to_f32; free with agt_free. */
ag_tensor *agt_to_f32_nograd(const ag_tensor *t64);
/* Heap tensor of dtype d holding vals (n = product of shape), no grad buffer; free with agt_free.
 */
ag_tensor *agt_from_vals_as(ag_dtype d, int ndim, const int64_t *shape, const double *vals,
                            bool requires_grad);
/* Every element of t's data / grad within atol of want (grad must exist). */
void agt_assert_data(const ag_tensor *t, const double *want, double atol);
void agt_assert_grad(const ag_tensor *t, const double *want, double atol);
/* Zeroed heap grad buffer for t / free it and reset t->grad to NULL. */
void agt_give_grad(ag_tensor *t);
void agt_free_grad(ag_tensor *t);
/* Backward from out with a seed of all ones; fails the test if backward fails. */
void agt_backward_ones(ag_tape *tape, ag_tensor *out);
/* Runs build on the f64 inputs and on float copies of them, backward with the same seed, and
 * compares outputs and input gradients: each within rtol·scale, scale = max |value| of that
 * tensor (the gradient checks only run the double kernels; this covers the float ones). */
void agt_check_f32_matches_f64(const char *what, ag_gc_build_fn build, void *ctx, ag_tensor **in64,
                               int n, double rtol);
/* ag_gc_build_fn for ag_add(in[0], in[1]), ag_mul(in[0], in[1]) and ag_gelu(in[0]) (ctx unused):
 * test_ops_elementwise.c checks them, test_ops_lm.c runs them at 1 and 2 threads. */
ag_tensor *agt_build_add(ag_tape *t, ag_tensor **in, void *ctx);
ag_tensor *agt_build_mul(ag_tape *t, ag_tensor **in, void *ctx);
ag_tensor *agt_build_gelu(ag_tape *t, ag_tensor **in, void *ctx);

/* Each test file exposes one runner returning its number of failed tests. */
int agt_run_core(void);
int agt_run_ops_matmul(void);
int agt_run_ops_elementwise(void);
int agt_run_ops_lm(void);
int agt_run_ops_nn(void);
int agt_run_fakequant(void);
int agt_run_fastmath(void);
int agt_run_clinear(void);
int agt_run_frozen_linear(void);
int agt_run_dropout(void);
int agt_run_lora_linear(void);
int agt_run_assign(void);
int agt_run_grpo(void);
int agt_run_gemm(void);
int agt_run_attention(void);

/* ---- fake_packed.c: a packed stand-in for frozen-weight tests ---------------------------------
 */

/* int8 codes (rows, cols) with one float scale per row; the callback counts what it saw (it runs
 * on the op's threads, hence atomics). */
typedef struct fake_q {
    int64_t rows, cols;
    int8_t *codes;
    float *scale;
    atomic_long calls, rows_done, bad_ranges;
} fake_q;
fake_q *fake_new(int64_t rows, int64_t cols, uint64_t seed);
/* absolute: codes >= 0 (the magnitudes of fake_new's codes for the same seed). */
fake_q *fake_new_abs(int64_t rows, int64_t cols, uint64_t seed, bool absolute);
void fake_free(fake_q *q);
ag_frozen fake_desc(const fake_q *q);

#endif
