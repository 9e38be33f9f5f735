/* checks.c -- the one scan that finds values out of range: the entry checks for NaN/inf in
 * training data and for binary targets outside [0, 1] (fastbp/_validation.py, losses.py), and
 * the divergence check on gradients (train.c).
 * Formula: kernels.h. */
#include "fastbp.h"

#ifndef REAL

int fbp_labels_in_range(ptrdiff_t n, const int64_t *labels, int64_t n_classes)
{
    int bad = 0;
#pragma omp simd reduction(| : bad)
    for (ptrdiff_t i = 0; i < n; i++) bad |= (labels[i] < 0) | (labels[i] >= n_classes);
    return !bad;
}

#define FBP_TEMPLATE_FILE "checks.c"
#include "template.h"
#else

/* Elements per block: each block is one vectorized reduction, and the scan stops after the
 * first block holding a value out of range. */
#define FBP_CHECK_BLOCK 4096

FBP_DISPATCH
int FBP(all_in_range)(ptrdiff_t n, const REAL *x, REAL low, REAL high)
{
    for (ptrdiff_t start = 0; start < n; start += FBP_CHECK_BLOCK) {
        const ptrdiff_t stop = n - start < FBP_CHECK_BLOCK ? n : start + FBP_CHECK_BLOCK;
        int bad = 0;
#pragma omp simd reduction(| : bad)
        for (ptrdiff_t i = start; i < stop; i++) /* NaN fails both comparisons */
            bad |= !((x[i] >= low) & (x[i] <= high));
        if (bad) return 0;
    }
    return 1;
}

#endif /* REAL */
