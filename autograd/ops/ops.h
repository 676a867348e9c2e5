/* ops.h — internal to autograd/: what op files share (backward entry points, dtype dispatch). */
#ifndef QAT_AUTOGRAD_OPS_H
#define QAT_AUTOGRAD_OPS_H

#include "autograd/ag.h"

/* One backward per op, referenced by the op table in table.c. Backward functions accumulate into
 * the grads of inputs that require them and never allocate. */
void ag_matmul_backward(ag_node *n);
void ag_linear_backward(ag_node *n);
void ag_add_backward(ag_node *n);
void ag_mul_backward(ag_node *n);
void ag_scale_backward(ag_node *n);
void ag_gelu_backward(ag_node *n);
void ag_layernorm_backward(ag_node *n);
void ag_rmsnorm_backward(ag_node *n);
void ag_embedding_backward(ag_node *n);
void ag_rope_backward(ag_node *n);
void ag_attention_backward(ag_node *n);
void ag_cross_entropy_backward(ag_node *n);
void ag_fakequant_backward(ag_node *n);
void ag_clinear_backward(ag_node *n);
void ag_frozen_linear_backward(ag_node *n);
void ag_dropout_backward(ag_node *n);
void ag_lora_linear_backward(ag_node *n);
void ag_grpo_loss_backward(ag_node *n);

/* True when every non-NULL tensor among the first n shares a's dtype. */
bool ag_dtypes_match(ag_tensor *a, ag_tensor **others, int n);

/* ---- dropout.c: ag_dropout's mask, for ops that fuse it (lora_linear.c) ---------------------- */

/* The mask of ag_dropout for (p, seed), 0 < p < 1, in the form its kernel takes. */
typedef struct ag_drop_mask {
    uint64_t key; /* the hashed seed */
    uint32_t thr; /* an element is kept when its 32-bit half of the hash is below thr */
    double p;     /* q = 1 − p, rounded to the kernel's dtype, is the divisor */
} ag_drop_mask;
ag_drop_mask ag_drop_mask_of(double p, uint64_t seed);
/* dst[k] = m_{i0+k}·src[k]/q (accumulate: dst[k] += ...) for k < n, where i0 + k is the flat
 * index, in the tensor the mask belongs to, of the element src[k] stands for: exactly what
 * ag_dropout (and its backward) computes for that element, whatever the stretch [i0, i0 + n),
 * and on the calling thread only (callers partition and thread the work themselves). */
void ag_drop_apply_f32(const float *restrict src, float *restrict dst, size_t i0, size_t n,
                       const ag_drop_mask *m, bool accumulate);
void ag_drop_apply_f64(const double *restrict src, double *restrict dst, size_t i0, size_t n,
                       const ag_drop_mask *m, bool accumulate);

/* ---- frozen_linear.c: the engine of ag_frozen_linear, for ops that contain a frozen layer ---- */

/* Saved state of one frozen product y = x·Wᵀ (arena, opaque): the copied descriptor, the tile
 * plan and where the tiles sit in the tape's shared scratch (from offset 0). */
typedef struct ag_frz ag_frz;
/* Check x (.., IC) against w and plan the tiles; NULL on the shapes ag_frozen_linear rejects, or
 * a full arena. w is copied; w->ctx must stay alive until the backward pass has run. */
ag_frz *ag_frz_new(ag_tape *t, const ag_tensor *x, const ag_frozen *w);
/* Bytes of shared scratch, from offset 0, that both passes need: the caller reserves at least
 * this much (ag_tape_shared) before the first pass, and may reuse that region for its own
 * temporaries between passes. */
size_t ag_frz_scratch(const ag_frz *c);
/* y (R, OC) = x·Wᵀ, overwritten; the product of ag_frozen_linear, bit for bit. */
void ag_frz_forward(ag_frz *c, const ag_tensor *x, void *y);
/* dx (R, IC) += dy·W, dy (R, OC): the backward of ag_frozen_linear. Never allocates. */
void ag_frz_backward(ag_frz *c, const ag_tensor *x, const void *dy, void *dx);

/* ---- gemm.c: products split into row panels (thread-count independent) --------------------- */

/* C (M,N) = alpha·op(A)·op(B) + beta·C, row-major, op = transpose when ta/tb. Large products are
 * split into ag_gemm_panels(M,N,K) fixed row panels, each one single-threaded BLAS call, run on
 * the OpenMP threads: faster than BLAS's own threading on the linear layers' shapes, and the
 * result depends on the shape only, not on the thread count. An unsplit product is one BLAS call
 * with BLAS's own threads. */
void ag_gemm_f32(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);
void ag_gemm_f64(bool ta, bool tb, int M, int N, int K, double alpha, const double *A, int lda,
                 const double *B, int ldb, double beta, double *C, int ldc);
/* Independent products (no C overlaps another product's A, B or C), computed concurrently as one
 * task list of their panels. Each product comes out exactly as ag_gemm computes it alone, except
 * that an unsplit one, run beside others, is a single-threaded task: with two or more tasks the
 * results never depend on the thread count. n <= AG_GEMM_MANY_MAX. */
enum { AG_GEMM_MANY_MAX = 4 };
#define AG_GEMM_ARGS(REAL)                                                                         \
    struct {                                                                                       \
        bool ta, tb;                                                                               \
        int M, N, K;                                                                               \
        REAL alpha;                                                                                \
        const REAL *A;                                                                             \
        int lda;                                                                                   \
        const REAL *B;                                                                             \
        int ldb;                                                                                   \
        REAL beta;                                                                                 \
        REAL *C;                                                                                   \
        int ldc;                                                                                   \
    }
typedef AG_GEMM_ARGS(float) ag_gemm_args_f32;
typedef AG_GEMM_ARGS(double) ag_gemm_args_f64;
void ag_gemm_many_f32(const ag_gemm_args_f32 *g, int n);
void ag_gemm_many_f64(const ag_gemm_args_f64 *g, int n);
/* How many row panels ag_gemm uses for an (M,N,K) product (1: one plain BLAS call). */
int ag_gemm_panels(int M, int N, int K);

#endif
