/* dense.c -- a dense layer's forward and backward pass over BLAS gemm. Formulas: kernels.h. */
#include "fastbp.h"

#ifndef REAL
#define FBP_TEMPLATE_FILE "dense.c"
#include "template.h"
#else

/* Batches of at most this many rows take the direct path below instead of BLAS. Measured with
 * callgrind on the bench workloads (instructions per epoch, BLAS -> direct): online, 1 row,
 * 64.1M -> 38.9M; the same network at 32 rows, 7.4M -> 17.2M; so only near-vector products
 * gain from skipping BLAS's call, checks and packing. */
#ifndef FBP_SMALL_ROWS
#define FBP_SMALL_ROWS 2
#endif

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

/* The direct path for small products, one per form the layer needs. Each keeps its innermost
 * loop contiguous (or a reduction), so it vectorizes. Not a general GEMM: no blocking, meant
 * for operands that sit in L1, where BLAS's call, checks and packing cost more than the
 * arithmetic (see FBP_SMALL_ROWS). */

/* Y (M x N) += X (M x K) . W (K x N) */
FBP_DISPATCH
static void FBP(small_nn)(int M, int N, int K, const REAL *restrict X, const REAL *restrict W,
                          REAL *restrict Y)
{
    for (int i = 0; i < M; i++) {
        REAL *y = Y + (ptrdiff_t)i * N;
        const REAL *x = X + (ptrdiff_t)i * K;
        for (int k = 0; k < K; k++) {
            const REAL xik = x[k];
            const REAL *w = W + (ptrdiff_t)k * N;
#pragma omp simd
            for (int j = 0; j < N; j++) y[j] += xik * w[j];
        }
    }
}

/* dW (K x N) = X^T . dZ, X is M x K, dZ is M x N */
FBP_DISPATCH
static void FBP(small_tn)(int M, int N, int K, const REAL *restrict X, const REAL *restrict dZ,
                          REAL *restrict dW)
{
    for (ptrdiff_t i = 0; i < (ptrdiff_t)K * N; i++) dW[i] = 0;
    for (int r = 0; r < M; r++) {
        const REAL *x = X + (ptrdiff_t)r * K;
        const REAL *dz = dZ + (ptrdiff_t)r * N;
        for (int k = 0; k < K; k++) {
            const REAL xrk = x[k];
            REAL *dw = dW + (ptrdiff_t)k * N;
#pragma omp simd
            for (int j = 0; j < N; j++) dw[j] += xrk * dz[j];
        }
    }
}

/* dX (M x K) = dZ (M x N) . W^T, W is K x N: each entry a dot product of two rows */
FBP_DISPATCH
static void FBP(small_nt)(int M, int N, int K, const REAL *restrict dZ, const REAL *restrict W,
                          REAL *restrict dX)
{
    for (int i = 0; i < M; i++) {
        const REAL *dz = dZ + (ptrdiff_t)i * N;
        for (int k = 0; k < K; k++) {
            const REAL *w = W + (ptrdiff_t)k * N;
            REAL dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int j = 0; j < N; j++) dot += dz[j] * w[j];
            dX[(ptrdiff_t)i * K + k] = dot;
        }
    }
}

static int FBP(is_small)(int rows) { return rows <= FBP_SMALL_ROWS; }

/* A layer with one output unit (a regression or yes/no output) multiplies matrices by a
 * vector; these loops run along the contiguous input dimension, with none of a gemm call's
 * packing (callgrind, binary workload 30-16-1, batch 16: 0.99M -> 0.83M instructions/epoch). */

/* y (M) += X (M x K) . w (K) */
FBP_DISPATCH
static void FBP(column_forward)(int M, int K, const REAL *restrict X, const REAL *restrict w,
                                REAL *restrict y)
{
    for (int i = 0; i < M; i++) {
        const REAL *x = X + (ptrdiff_t)i * K;
        REAL dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int k = 0; k < K; k++) dot += x[k] * w[k];
        y[i] += dot;
    }
}

/* dw (K) = X^T . dz;  dX (M x K) = dz . w^T (dX may be NULL) */
FBP_DISPATCH
static void FBP(column_backward)(int M, int K, const REAL *restrict X, const REAL *restrict w,
                                 const REAL *restrict dz, REAL *restrict dw, REAL *restrict dX)
{
    for (int k = 0; k < K; k++) dw[k] = 0;
    for (int i = 0; i < M; i++) {
        const REAL *x = X + (ptrdiff_t)i * K;
        const REAL d = dz[i];
#pragma omp simd
        for (int k = 0; k < K; k++) dw[k] += d * x[k];
        if (dX) {
            REAL *dx = dX + (ptrdiff_t)i * K;
#pragma omp simd
            for (int k = 0; k < K; k++) dx[k] = d * w[k];
        }
    }
}

void FBP(dense_forward)(const fbp_blas *blas, int rows, int in, int out, const REAL *X,
                        const REAL *W, const REAL *b, int act, double slope, REAL *Y)
{
    for (int r = 0; r < rows; r++) {
        REAL *y = Y + (ptrdiff_t)r * out;
        for (int j = 0; j < out; j++) y[j] = b[j];
    }
    /* Y (rows x out) += X (rows x in) . W (in x out) */
    if (out == 1)
        FBP(column_forward)(rows, in, X, W, Y);
    else if (FBP(is_small)(rows))
        FBP(small_nn)(rows, out, in, X, W, Y);
    else
        FBP(gemm_rowmajor)(blas, 'N', 'N', rows, out, in, 1, X, in, W, out, 1, Y, out);
    FBP(activation_forward)(act, slope, rows, out, Y);
}

void FBP(dense_backward)(const fbp_blas *blas, int rows, int in, int out, const REAL *X,
                         const REAL *W, const REAL *dZ, REAL *dW, REAL *db, REAL *dX)
{
    if (out == 1) {
        FBP(column_backward)(rows, in, X, W, dZ, dW, dX);
        REAL sum = 0;
        for (int r = 0; r < rows; r++) sum += dZ[r];
        db[0] = sum;
        return;
    }
    const int small = FBP(is_small)(rows);
    /* dW (in x out) = X^T (in x rows) . dZ (rows x out) */
    if (small)
        FBP(small_tn)(rows, out, in, X, dZ, dW);
    else
        FBP(gemm_rowmajor)(blas, 'T', 'N', in, out, rows, 1, X, in, dZ, out, 0, dW, out);
    for (int j = 0; j < out; j++) db[j] = 0;
    for (int r = 0; r < rows; r++) {
        const REAL *dz = dZ + (ptrdiff_t)r * out;
        for (int j = 0; j < out; j++) db[j] += dz[j];
    }
    /* dX (rows x in) = dZ (rows x out) . W^T (out x in) */
    if (dX && small)
        FBP(small_nt)(rows, out, in, dZ, W, dX);
    else if (dX)
        FBP(gemm_rowmajor)(blas, 'N', 'T', rows, in, out, 1, dZ, out, W, out, 0, dX, in);
}

#endif /* REAL */
