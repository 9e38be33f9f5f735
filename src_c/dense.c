/* dense.c -- a dense layer's forward and backward pass over BLAS gemm. Formulas: kernels.h. */
#include "fastbp.h"

#ifndef REAL
#define FBP_TEMPLATE_FILE "dense.c"
#include "template.h"
#else

/* Row-major C (M x N) := alpha op(A) op(B) + beta C, through column-major gemm.
 * A row-major matrix is the column-major view of its transpose, and C^T = op(B)^T op(A)^T,
 * so the operands are swapped and nothing is copied. lda, ldb, ldc are row strides. */
static void FBP(gemm_rowmajor)(const fbp_blas *blas, char transA, char transB, int M, int N,
                               int K, REAL alpha, const REAL *A, int lda, const REAL *B,
                               int ldb, REAL beta, REAL *C, int ldc)
{
    blas->FBP_GEMM(&transB, &transA, &N, &M, &K, &alpha, (REAL *)B, &ldb, (REAL *)A, &lda,
                   &beta, C, &ldc);
}

void FBP(dense_forward)(const fbp_blas *blas, int rows, int in, int out, const REAL *X,
                        const REAL *W, const REAL *b, int act, double slope, REAL *Y)
{
    for (int r = 0; r < rows; r++) {
        REAL *y = Y + (ptrdiff_t)r * out;
        for (int j = 0; j < out; j++) y[j] = b[j];
    }
    /* Y (rows x out) += X (rows x in) . W (in x out) */
    FBP(gemm_rowmajor)(blas, 'N', 'N', rows, out, in, 1, X, in, W, out, 1, Y, out);
    FBP(activation_forward)(act, slope, rows, out, Y);
}

void FBP(dense_backward)(const fbp_blas *blas, int rows, int in, int out, const REAL *X,
                         const REAL *W, const REAL *dZ, REAL *dW, REAL *db, REAL *dX)
{
    /* dW (in x out) = X^T (in x rows) . dZ (rows x out) */
    FBP(gemm_rowmajor)(blas, 'T', 'N', in, out, rows, 1, X, in, dZ, out, 0, dW, out);
    for (int j = 0; j < out; j++) db[j] = 0;
    for (int r = 0; r < rows; r++) {
        const REAL *dz = dZ + (ptrdiff_t)r * out;
        for (int j = 0; j < out; j++) db[j] += dz[j];
    }
    /* dX (rows x in) = dZ (rows x out) . W^T (out x in) */
    if (dX) FBP(gemm_rowmajor)(blas, 'N', 'T', rows, in, out, 1, dZ, out, W, out, 0, dX, in);
}

#endif /* REAL */
