/* template.h -- instantiate a kernel file for float and for double.
 *
 * A kernel file foo.c is written once with REAL as the element type and FBP(name) for its
 * function names, and instantiates itself:
 *
 *     #include "fastbp.h"
 *     #ifndef REAL
 *     #define FBP_TEMPLATE_FILE "foo.c"
 *     #include "template.h"
 *     #else
 *     ... code using REAL, FBP(name), FBP_GEMM ...
 *     #endif
 *
 * REAL float  -> fbp_<name>_f32, BLAS sgemm, REAL_IS_DOUBLE 0
 * REAL double -> fbp_<name>_f64, BLAS dgemm, REAL_IS_DOUBLE 1
 * <tgmath.h> makes exp, log1p, tanh, sqrt, fabs pick the float or double function by argument. */
#include <tgmath.h>

/* Runtime dispatch for the hot loops: gcc compiles each marked function for AVX-512, AVX2+FMA
 * and the baseline, and picks the best one the CPU supports when the module loads, so the
 * default build stays portable (no -march=native). Elsewhere the baseline is all there is. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(FBP_NO_DISPATCH)
#define FBP_DISPATCH __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FBP_DISPATCH
#endif

#define REAL float
#define REAL_IS_DOUBLE 0
#define FBP(name) fbp_##name##_f32
#define FBP_GEMM sgemm
#include FBP_TEMPLATE_FILE
#undef REAL
#undef REAL_IS_DOUBLE
#undef FBP
#undef FBP_GEMM

#define REAL double
#define REAL_IS_DOUBLE 1
#define FBP(name) fbp_##name##_f64
#define FBP_GEMM dgemm
#include FBP_TEMPLATE_FILE
#undef REAL
#undef REAL_IS_DOUBLE
#undef FBP
#undef FBP_GEMM

#undef FBP_TEMPLATE_FILE
