/* real_end.h — close the instantiation opened by real_begin.h. */
#undef REAL
#undef K
#undef R_EXP
#undef R_TANH
#undef R_SQRT
#undef R_LOG
#undef R_GEMM
#undef R_GEMM_PANELS
#undef R_GEMM_ARGS
#undef R_GEMM_MANY
#undef AG_REAL_F32
#undef AG_REAL_F64
