/* dense.c -- a dense layer's forward and backward pass: BLAS gemm, or for small layers the
 * kernel of small_gemm.c. Formulas: kernels.h. */
#include "fastbp.h"

#ifndef REAL

/* Which products go to the register-blocked kernel of small_gemm.c instead of BLAS (where the
 * CPU has one). Chosen from epoch times of the bench workloads (1 thread; the commit that set
 * them has the numbers) and products timed alone: the kernel matches or beats OpenBLAS on
 * weight matrices up to 16384 entries with up to 256 inputs, at any number of rows, and loses
 * beyond (OpenBLAS's cache blocking pays off). */
#define FBP_SMALL_WEIGHTS 16384
#define FBP_SMALL_INPUTS 256
/* dX = dZ.W^T goes through a transposed copy of W (small_gemm's B is row-major); the copy
 * costs about a cycle per weight, which larger matrices do not earn back. */
#define FBP_SMALL_TRANSPOSED_WEIGHTS 8192

/* Y = X.W and dW = X^T.dZ. Decided by the layer's shape alone, never by the rows, so that in a
 * small layer a row's output does not depend on the other rows of its batch: predict(X)[i]
 * equals predict(X[i:i+1]) bit for bit (the kernel's order of summation depends on shapes
 * only; BLAS makes no such promise for the large layers). */
static int small_layer(int in, int out)
{
    return in <= FBP_SMALL_INPUTS && (ptrdiff_t)in * out <= FBP_SMALL_WEIGHTS;
}

/* dX = dZ.W^T through the transposed copy. */
static int small_input_grad(int in, int out)
{
    return small_layer(in, out) && (ptrdiff_t)in * out <= FBP_SMALL_TRANSPOSED_WEIGHTS;
}

int fbp_transpose_scratch_len(int in, int out) { return small_input_grad(in, out) ? in * out : 0; }

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

/* Wt (out x in) = W^T, W is in x out (written row by row: contiguous stores, strided loads) */
FBP_DISPATCH
static void FBP(transpose)(int in, int out, const REAL *restrict W, REAL *restrict Wt)
{
    for (int j = 0; j < out; j++) {
        REAL *wt = Wt + (ptrdiff_t)j * in;
#pragma omp simd
        for (int k = 0; k < in; k++) wt[k] = W[(ptrdiff_t)k * out + j];
    }
}

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

FBP_DISPATCH
void FBP(dense_forward)(const fbp_blas *blas, int rows, int in, int out, const REAL *X,
                        const REAL *W, const REAL *b, int act, double slope, REAL *Y)
{
    /* Y (rows x out) = X (rows x in) . W (in x out) + b */
    if (out == 1 || !small_layer(in, out) ||
        !FBP(small_gemm)(rows, out, in, X, in, 1, W, out, b, Y, out)) {
        for (int r = 0; r < rows; r++) {
            REAL *y = Y + (ptrdiff_t)r * out;
            for (int j = 0; j < out; j++) y[j] = b[j];
        }
        if (out == 1)
            FBP(column_forward)(rows, in, X, W, Y);
        else
            FBP(gemm_rowmajor)(blas, 'N', 'N', rows, out, in, 1, X, in, W, out, 1, Y, out);
    }
    FBP(activation_forward)(act, slope, rows, out, Y);
}

FBP_DISPATCH
void FBP(dense_backward)(const fbp_blas *blas, int rows, int in, int out, const REAL *X,
                         const REAL *W, const REAL *dZ, REAL *dW, REAL *db, REAL *dX,
                         REAL *scratch)
{
    if (out == 1) {
        FBP(column_backward)(rows, in, X, W, dZ, dW, dX);
        REAL sum = 0;
        for (int r = 0; r < rows; r++) sum += dZ[r];
        db[0] = sum;
        return;
    }
    /* dW (in x out) = X^T (in x rows) . dZ (rows x out): A(k, r) = X[r * in + k] */
    if (!small_layer(in, out) ||
        !FBP(small_gemm)(in, out, rows, X, 1, in, dZ, out, NULL, dW, out))
        FBP(gemm_rowmajor)(blas, 'T', 'N', in, out, rows, 1, X, in, dZ, out, 0, dW, out);
    for (int j = 0; j < out; j++) db[j] = 0;
    for (int r = 0; r < rows; r++) {
        const REAL *dz = dZ + (ptrdiff_t)r * out;
        for (int j = 0; j < out; j++) db[j] += dz[j];
    }
    if (!dX) return;
    /* dX (rows x in) = dZ (rows x out) . W^T (out x in), through W^T in scratch when given and
     * this CPU has the kernel (checked before copying W) */
    if (scratch && fbp_transpose_scratch_len(in, out) && fbp_small_gemm_available()) {
        FBP(transpose)(in, out, W, scratch);
        if (FBP(small_gemm)(rows, in, out, dZ, out, 1, scratch, in, NULL, dX, in)) return;
    }
    FBP(gemm_rowmajor)(blas, 'N', 'T', rows, in, out, 1, dZ, out, W, out, 0, dX, in);
}

#endif /* REAL */
