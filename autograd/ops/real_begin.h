/* real_begin.h — open one instantiation of an op's kernels (*.inc) for float or double.
 *
 * Usage in an op file:   #define AG_REAL_F32 / AG_REAL_F64
 *                        #include "autograd/ops/real_begin.h"
 *                        #include "autograd/ops/NAME.inc"
 *                        #include "autograd/ops/real_end.h"
 * Kernels name themselves K(name) (name_f32 / name_f64) and compute in REAL. Transcendentals go
 * through R_EXP/R_TANH so the float build can use vectorizable approximations while the double
 * build (gradient checks) uses libm. No include guard: this file is meant to be included twice. */
#include <math.h>

#if defined(AG_REAL_F32)
#define REAL float
#define K(name) name##_f32
#define R_EXP(x) ag_expf_fast(x)
#define R_TANH(x) ag_tanhf_fast(x)
#define R_SQRT(x) sqrtf(x)
#define R_LOG(x) logf(x)
#define R_GEMM cblas_sgemm
#define R_GEMM_PANELS ag_gemm_f32
#define R_GEMM_ARGS ag_gemm_args_f32
#define R_GEMM_MANY ag_gemm_many_f32
#elif defined(AG_REAL_F64)
#define REAL double
#define K(name) name##_f64
#define R_EXP(x) exp(x)
#define R_TANH(x) tanh(x)
#define R_SQRT(x) sqrt(x)
#define R_LOG(x) log(x)
#define R_GEMM cblas_dgemm
#define R_GEMM_PANELS ag_gemm_f64
#define R_GEMM_ARGS ag_gemm_args_f64
#define R_GEMM_MANY ag_gemm_many_f64
#else
#error "define AG_REAL_F32 or AG_REAL_F64 before including real_begin.h"
#endif
