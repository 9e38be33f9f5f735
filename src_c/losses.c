/* losses.c -- losses fused with their gradient, numerically stable. Formulas: see kernels.h.
 * Sums are accumulated in double in both precisions, so the float32 mean over a large batch
 * loses no digits to the order of summation. */
#include "fastbp.h"

#ifndef REAL
#define FBP_TEMPLATE_FILE "losses.c"
#include "template.h"
#else

#include "vecmath.h"

double FBP(mse)(int rows, int cols, const REAL *P, const REAL *Y, REAL *grad)
{
    const ptrdiff_t n = (ptrdiff_t)rows * cols;
    const REAL scale = (REAL)(2.0 / (double)n);
    double total = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const REAL d = P[i] - Y[i];
        total += (double)d * d;
        if (grad) grad[i] = scale * d;
    }
    return total / (double)n;
}

double FBP(bce_logits)(int rows, int cols, const REAL *Z, const REAL *Y, REAL *grad)
{
    const ptrdiff_t n = (ptrdiff_t)rows * cols;
    const REAL scale = (REAL)(1.0 / (double)n);
    double total = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const REAL z = Z[i], y = Y[i];
        /* log(1 + exp(-|z|)) never overflows; max(z,0) - z y completes log(1+e^z) - z y. */
        const REAL e = FBP(exp_v)(-fabs(z));
        total += (double)((z > 0 ? z : (REAL)0) - z * y + log1p(e));
        if (grad) {
            /* sigmoid(z) from the same e = exp(-|z|): 1/(1+e) for z >= 0, e/(1+e) otherwise */
            const REAL s = z >= 0 ? (REAL)1 / ((REAL)1 + e) : e / ((REAL)1 + e);
            grad[i] = scale * (s - y);
        }
    }
    return total / (double)n;
}

FBP_DISPATCH
double FBP(softmax_xent_labels)(int rows, int cols, const REAL *Z, const int64_t *labels,
                                REAL *grad)
{
    const REAL scale = (REAL)(1.0 / (double)rows);
    double total = 0;
    if (!grad) {
        for (int r = 0; r < rows; r++) {
            const REAL *z = Z + (ptrdiff_t)r * cols;
            const REAL zmax = FBP(row_max)(cols, z);
            total += (double)(log(FBP(exp_sum)(cols, z, zmax)) + zmax - z[labels[r]]);
        }
        return total / (double)rows;
    }
    /* g = (softmax(z) - onehot(label)) / rows, with the exps stored in g (g may be z), in
     * blocks of rows so that the exps vectorize across rows */
    for (int r0 = 0; r0 < rows; r0 += FBP_SOFTMAX_ROWS) {
        const int block = rows - r0 < FBP_SOFTMAX_ROWS ? rows - r0 : FBP_SOFTMAX_ROWS;
        const REAL *z = Z + (ptrdiff_t)r0 * cols;
        REAL *g = grad + (ptrdiff_t)r0 * cols;
        REAL z_label[FBP_SOFTMAX_ROWS], maxes[FBP_SOFTMAX_ROWS], sums[FBP_SOFTMAX_ROWS];
        for (int r = 0; r < block; r++) z_label[r] = z[(ptrdiff_t)r * cols + labels[r0 + r]];
        FBP(softmax_exps)(block, cols, z, g, maxes, sums);
        for (int r = 0; r < block; r++) {
            REAL *g_r = g + (ptrdiff_t)r * cols;
            total += (double)(log(sums[r]) + maxes[r] - z_label[r]);
            const REAL weight = scale / sums[r];
            for (int j = 0; j < cols; j++) g_r[j] *= weight;
            g_r[labels[r0 + r]] -= scale;
        }
    }
    return total / (double)rows;
}

FBP_DISPATCH
double FBP(softmax_xent_probs)(int rows, int cols, const REAL *Z, const REAL *Y, REAL *grad)
{
    const REAL scale = (REAL)(1.0 / (double)rows);
    double total = 0;
    for (int r0 = 0; r0 < rows; r0 += FBP_SOFTMAX_ROWS) {
        const int block = rows - r0 < FBP_SOFTMAX_ROWS ? rows - r0 : FBP_SOFTMAX_ROWS;
        const REAL *z = Z + (ptrdiff_t)r0 * cols;
        const REAL *y = Y + (ptrdiff_t)r0 * cols;
        /* loss_r = sum_j y_j (logsumexp - z_j) = ysum * logsumexp - sum_j y_j z_j, with the
         * sums over y taken before g (which may be z) is written */
        REAL ysum[FBP_SOFTMAX_ROWS], yz[FBP_SOFTMAX_ROWS], maxes[FBP_SOFTMAX_ROWS],
            sums[FBP_SOFTMAX_ROWS];
        for (int r = 0; r < block; r++) {
            const REAL *z_r = z + (ptrdiff_t)r * cols, *y_r = y + (ptrdiff_t)r * cols;
            REAL s = 0, d = 0;
            for (int j = 0; j < cols; j++) {
                s += y_r[j];
                d += y_r[j] * z_r[j];
            }
            ysum[r] = s;
            yz[r] = d;
        }
        if (!grad) {
            for (int r = 0; r < block; r++) {
                const REAL *z_r = z + (ptrdiff_t)r * cols;
                maxes[r] = FBP(row_max)(cols, z_r);
                sums[r] = FBP(exp_sum)(cols, z_r, maxes[r]);
            }
        } else {
            FBP(softmax_exps)(block, cols, z, grad + (ptrdiff_t)r0 * cols, maxes, sums);
        }
        for (int r = 0; r < block; r++) {
            total += (double)(ysum[r] * (log(sums[r]) + maxes[r]) - yz[r]);
            if (grad) { /* g = (softmax(z) * ysum - y) / rows */
                REAL *g_r = grad + (ptrdiff_t)(r0 + r) * cols;
                const REAL *y_r = y + (ptrdiff_t)r * cols;
                const REAL weight = scale * ysum[r] / sums[r];
                for (int j = 0; j < cols; j++) g_r[j] = g_r[j] * weight - scale * y_r[j];
            }
        }
    }
    return total / (double)rows;
}

#endif /* REAL */
