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
 * REAL float  -> fbp_<name>_f32, BLAS sgemm
 * REAL double -> fbp_<name>_f64, BLAS dgemm
 * <tgmath.h> makes exp, log1p, tanh, sqrt, fabs pick the float or double function by argument. */
#include <tgmath.h>

#define REAL float
#define FBP(name) fbp_##name##_f32
#define FBP_GEMM sgemm
#include FBP_TEMPLATE_FILE
#undef REAL
#undef FBP
#undef FBP_GEMM

#define REAL double
#define FBP(name) fbp_##name##_f64
#define FBP_GEMM dgemm
#include FBP_TEMPLATE_FILE
#undef REAL
#undef FBP
#undef FBP_GEMM

#undef FBP_TEMPLATE_FILE
