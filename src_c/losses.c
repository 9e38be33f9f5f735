/* losses.c -- losses fused with their gradient, numerically stable. Formulas: see kernels.h.
 * Sums are accumulated in double in both precisions, so the float32 mean over a large batch
 * loses no digits to the order of summation. */
#include "fastbp.h"

#ifndef REAL
#define FBP_TEMPLATE_FILE "losses.c"
#include "template.h"
#else

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
        const REAL e = exp(-fabs(z));
        total += (double)((z > 0 ? z : (REAL)0) - z * y + log1p(e));
        if (grad) {
            /* sigmoid(z) from the same e = exp(-|z|): 1/(1+e) for z >= 0, e/(1+e) otherwise */
            const REAL s = z >= 0 ? (REAL)1 / ((REAL)1 + e) : e / ((REAL)1 + e);
            grad[i] = scale * (s - y);
        }
    }
    return total / (double)n;
}

/* log(sum_j exp(z_j)) of one row, with the maximum subtracted: m + log(sum exp(z_j - m)). */
static REAL FBP(logsumexp_row)(int cols, const REAL *z)
{
    REAL zmax = z[0];
    for (int j = 1; j < cols; j++)
        if (z[j] > zmax) zmax = z[j];
    REAL sum = 0;
    for (int j = 0; j < cols; j++) sum += exp(z[j] - zmax);
    return zmax + log(sum);
}

/* g = (softmax(z) * weight - target) * scale for one row, target given as a dense row or as a
 * class index (target_row NULL). lse is the row's logsumexp; z and g may be the same row. */
static void FBP(softmax_xent_grad_row)(int cols, const REAL *z, REAL lse, REAL weight,
                                       const REAL *target_row, int64_t label, REAL scale,
                                       REAL *g)
{
    for (int j = 0; j < cols; j++) {
        const REAL p = exp(z[j] - lse);
        const REAL t = target_row ? target_row[j] : (REAL)(j == label);
        g[j] = scale * (p * weight - t);
    }
}

double FBP(softmax_xent_labels)(int rows, int cols, const REAL *Z, const int64_t *labels,
                                REAL *grad)
{
    const REAL scale = (REAL)(1.0 / (double)rows);
    double total = 0;
    for (int r = 0; r < rows; r++) {
        const REAL *z = Z + (ptrdiff_t)r * cols;
        const REAL lse = FBP(logsumexp_row)(cols, z);
        total += (double)(lse - z[labels[r]]);
        if (grad)
            FBP(softmax_xent_grad_row)(cols, z, lse, (REAL)1, NULL, labels[r], scale,
                                       grad + (ptrdiff_t)r * cols);
    }
    return total / (double)rows;
}

double FBP(softmax_xent_probs)(int rows, int cols, const REAL *Z, const REAL *Y, REAL *grad)
{
    const REAL scale = (REAL)(1.0 / (double)rows);
    double total = 0;
    for (int r = 0; r < rows; r++) {
        const REAL *z = Z + (ptrdiff_t)r * cols;
        const REAL *y = Y + (ptrdiff_t)r * cols;
        const REAL lse = FBP(logsumexp_row)(cols, z);
        REAL ysum = 0, row_loss = 0;
        for (int j = 0; j < cols; j++) {
            ysum += y[j];
            row_loss += y[j] * (lse - z[j]);
        }
        total += (double)row_loss;
        if (grad)
            FBP(softmax_xent_grad_row)(cols, z, lse, ysum, y, 0, scale,
                                       grad + (ptrdiff_t)r * cols);
    }
    return total / (double)rows;
}

#endif /* REAL */
