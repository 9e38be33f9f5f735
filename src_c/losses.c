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
    for (int r = 0; r < rows; r++) {
        const REAL *z = Z + (ptrdiff_t)r * cols;
        const int64_t label = labels[r];
        const REAL zmax = FBP(row_max)(cols, z), z_label = z[label];
        if (!grad) {
            total += (double)(log(FBP(exp_sum)(cols, z, zmax)) + zmax - z_label);
            continue;
        }
        /* g = (softmax(z) - onehot(label)) / rows, with the exps stored in g (g may be z) */
        REAL *g = grad + (ptrdiff_t)r * cols;
        const REAL sum = FBP(exp_shifted)(cols, z, zmax, g);
        total += (double)(log(sum) + zmax - z_label);
        const REAL weight = scale / sum;
        for (int j = 0; j < cols; j++) g[j] *= weight;
        g[label] -= scale;
    }
    return total / (double)rows;
}

FBP_DISPATCH
double FBP(softmax_xent_probs)(int rows, int cols, const REAL *Z, const REAL *Y, REAL *grad)
{
    const REAL scale = (REAL)(1.0 / (double)rows);
    double total = 0;
    for (int r = 0; r < rows; r++) {
        const REAL *z = Z + (ptrdiff_t)r * cols;
        const REAL *y = Y + (ptrdiff_t)r * cols;
        const REAL zmax = FBP(row_max)(cols, z);
        REAL ysum = 0, yz = 0;
        for (int j = 0; j < cols; j++) {
            ysum += y[j];
            yz += y[j] * z[j];
        }
        /* loss = sum_j y_j (logsumexp - z_j) = ysum * logsumexp - sum_j y_j z_j */
        REAL *g = grad ? grad + (ptrdiff_t)r * cols : NULL;
        const REAL sum = g ? FBP(exp_shifted)(cols, z, zmax, g) : FBP(exp_sum)(cols, z, zmax);
        total += (double)(ysum * (log(sum) + zmax) - yz);
        if (g) { /* g = (softmax(z) * ysum - y) / rows */
            const REAL weight = scale * ysum / sum;
            for (int j = 0; j < cols; j++) g[j] = g[j] * weight - scale * y[j];
        }
    }
    return total / (double)rows;
}

#endif /* REAL */
