/* activations.c -- activations in place, and their derivatives from the activation output.
 * Formulas: see kernels.h. Written once; template.h instantiates float and double. */
#include "fastbp.h"

#ifndef REAL
#define FBP_TEMPLATE_FILE "activations.c"
#include "template.h"
#else

/* 1 / (1 + exp(-z)): for z << 0, exp(-z) overflows to inf and the result is 0, never NaN. */
static inline REAL FBP(sigmoid)(REAL z) { return (REAL)1 / ((REAL)1 + exp(-z)); }

/* Softmax of one row in place, with the row maximum subtracted so exp never overflows. */
static void FBP(softmax_row)(int cols, REAL *z)
{
    REAL zmax = z[0];
    for (int j = 1; j < cols; j++)
        if (z[j] > zmax) zmax = z[j];
    REAL sum = 0;
    for (int j = 0; j < cols; j++) {
        z[j] = exp(z[j] - zmax);
        sum += z[j];
    }
    const REAL inv = (REAL)1 / sum;
    for (int j = 0; j < cols; j++) z[j] *= inv;
}

void FBP(activation_forward)(int act, double slope, int rows, int cols, REAL *Z)
{
    const ptrdiff_t n = (ptrdiff_t)rows * cols;
    const REAL a = (REAL)slope;
    switch (act) {
    case FBP_RELU:
        for (ptrdiff_t i = 0; i < n; i++) Z[i] = Z[i] > 0 ? Z[i] : (REAL)0;
        break;
    case FBP_LEAKY_RELU:
        for (ptrdiff_t i = 0; i < n; i++) Z[i] = Z[i] > 0 ? Z[i] : a * Z[i];
        break;
    case FBP_SIGMOID:
        for (ptrdiff_t i = 0; i < n; i++) Z[i] = FBP(sigmoid)(Z[i]);
        break;
    case FBP_TANH:
        for (ptrdiff_t i = 0; i < n; i++) Z[i] = tanh(Z[i]);
        break;
    case FBP_SOFTMAX:
        for (int r = 0; r < rows; r++) FBP(softmax_row)(cols, Z + (ptrdiff_t)r * cols);
        break;
    default: /* FBP_IDENTITY */
        break;
    }
}

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
            for (int j = 0; j < cols; j++) dot += g[j] * p[j];
            for (int j = 0; j < cols; j++) g[j] = p[j] * (g[j] - dot);
        }
        break;
    default: /* FBP_IDENTITY: derivative 1 */
        break;
    }
}

#endif /* REAL */
