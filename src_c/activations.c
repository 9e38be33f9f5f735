/* activations.c -- activations in place, and their derivatives from the activation output.
 * Formulas: see kernels.h. Written once; template.h instantiates float and double. */
#include "fastbp.h"

#ifndef REAL
#define FBP_TEMPLATE_FILE "activations.c"
#include "template.h"
#else

#include "vecmath.h"

/* Softmax of rows x cols in place, in blocks of rows so that the exps vectorize across rows. */
static inline void FBP(softmax_rows)(int rows, int cols, REAL *Z)
{
    for (int r0 = 0; r0 < rows; r0 += FBP_SOFTMAX_ROWS) {
        const int block = rows - r0 < FBP_SOFTMAX_ROWS ? rows - r0 : FBP_SOFTMAX_ROWS;
        REAL *z = Z + (ptrdiff_t)r0 * cols;
        REAL maxes[FBP_SOFTMAX_ROWS], sums[FBP_SOFTMAX_ROWS];
        FBP(softmax_exps)(block, cols, z, z, maxes, sums);
        for (int r = 0; r < block; r++) {
            const REAL inv = (REAL)1 / sums[r];
            for (int j = 0; j < cols; j++) z[(ptrdiff_t)r * cols + j] *= inv;
        }
    }
}

FBP_DISPATCH
void FBP(activation_forward)(int act, double slope, int rows, int cols, REAL *Z)
{
    const ptrdiff_t n = (ptrdiff_t)rows * cols;
    const REAL a = (REAL)slope;
    switch (act) {
    case FBP_RELU:
        /* NaN stays NaN (as numpy.maximum and torch.relu): only z <= 0 becomes 0 */
        for (ptrdiff_t i = 0; i < n; i++) Z[i] = Z[i] <= 0 ? (REAL)0 : Z[i];
        break;
    case FBP_LEAKY_RELU:
        for (ptrdiff_t i = 0; i < n; i++) Z[i] = Z[i] > 0 ? Z[i] : a * Z[i];
        break;
    case FBP_SIGMOID:
#pragma omp simd
        for (ptrdiff_t i = 0; i < n; i++) Z[i] = FBP(sigmoid_v)(Z[i]);
        break;
    case FBP_TANH:
#pragma omp simd
        for (ptrdiff_t i = 0; i < n; i++) Z[i] = FBP(tanh_v)(Z[i]);
        break;
    case FBP_SOFTMAX:
        FBP(softmax_rows)(rows, cols, Z);
        break;
    default: /* FBP_IDENTITY */
        break;
    }
}

FBP_DISPATCH
void FBP(activation_backward)(int act, double slope, int rows, int cols,
                              const REAL *restrict A, REAL *restrict dA)
{
    const ptrdiff_t n = (ptrdiff_t)rows * cols;
    const REAL a = (REAL)slope;
    switch (act) {
    case FBP_RELU:
        for (ptrdiff_t i = 0; i < n; i++) dA[i] = A[i] > 0 ? dA[i] : (REAL)0;
        break;
    case FBP_LEAKY_RELU: /* slope > 0, so A > 0 exactly where Z > 0 */
        for (ptrdiff_t i = 0; i < n; i++) dA[i] = A[i] > 0 ? dA[i] : a * dA[i];
        break;
    case FBP_SIGMOID:
        for (ptrdiff_t i = 0; i < n; i++) dA[i] *= A[i] * ((REAL)1 - A[i]);
        break;
    case FBP_TANH:
        for (ptrdiff_t i = 0; i < n; i++) dA[i] *= (REAL)1 - A[i] * A[i];
        break;
    case FBP_SOFTMAX:
        for (int r = 0; r < rows; r++) {
            const REAL *p = A + (ptrdiff_t)r * cols;
            REAL *g = dA + (ptrdiff_t)r * cols;
            REAL dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int j = 0; j < cols; j++) dot += g[j] * p[j];
            for (int j = 0; j < cols; j++) g[j] = p[j] * (g[j] - dot);
        }
        break;
    default: /* FBP_IDENTITY: derivative 1 */
        break;
    }
}

#endif /* REAL */
