/* vecmath.h -- exp, expm1 and tanh written so that the compiler can vectorize the loops that
 * call them. Included by the kernel files inside their template (REAL is float or double).
 *
 * Why by hand: libm's expf/exp/tanh are scalar calls, and a loop over them cannot be
 * vectorized without -ffast-math (which would also break isfinite and NaN handling); in the
 * softmax, sigmoid and tanh passes they cost more than the matrix products of a small network.
 * These are branch-free (selects only) so that each loop compiles to SIMD code.
 *
 * exp(x) = 2^n * e^r with n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2]; e^r by a
 * polynomial: Cephes' minimax for float (max relative error about 2e-7), the Taylor series to
 * r^13 for double (truncation below 1e-17 on that interval). Within the range where 2^n is a
 * normal number the result is computed; below it is 0 and above it inf (where the true value
 * is a denormal or overflows); NaN propagates. */
#include <string.h>

#ifndef FBP_VECMATH_CONSTANTS
#define FBP_VECMATH_CONSTANTS
#define FBP_LOG2E 1.4426950408889634
/* ln 2 split in a part exact in few bits and the rest, for an exact n * ln2_hi */
#define FBP_LN2_HI_F 0.693359375f
#define FBP_LN2_LO_F -2.12194440e-4f
#define FBP_LN2_HI_D 0.693147180369123816490
#define FBP_LN2_LO_D 1.90821492927058770002e-10
#endif

/* 2^n for an integral n with -126 <= n <= 127 (float) or -1022 <= n <= 1023 (double),
 * built from the exponent bits. */
static inline REAL FBP(pow2i)(REAL n)
{
#if REAL_IS_DOUBLE
    const int64_t bits = ((int64_t)n + 1023) << 52;
    double out;
#else
    const int32_t bits = ((int32_t)n + 127) << 23;
    float out;
#endif
    memcpy(&out, &bits, sizeof out);
    return out;
}

/* e^r - 1 for |r| <= ln2/2, as r + r^2 p(r): no cancellation for small r */
static inline REAL FBP(expm1_reduced)(REAL r)
{
#if REAL_IS_DOUBLE
    REAL p = 1.0 / 6227020800.0; /* 1/13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    return p * r * r + r;
#else
    REAL p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return p * r * r + r;
#endif
}

static inline REAL FBP(exp_v)(REAL x)
{
#if REAL_IS_DOUBLE
    const REAL lo = -708.0, hi = 709.0, ln2_hi = FBP_LN2_HI_D, ln2_lo = FBP_LN2_LO_D;
    const REAL shifter = 6755399441055744.0; /* 1.5 * 2^52: adding it rounds to an integer */
#else
    const REAL lo = -87.0f, hi = 88.0f, ln2_hi = FBP_LN2_HI_F, ln2_lo = FBP_LN2_LO_F;
    const REAL shifter = 12582912.0f; /* 1.5 * 2^23 */
#endif
    /* clamped into [lo, hi], NaN included (to lo): converting NaN to an integer in pow2i
     * would be undefined behaviour; the select below returns NaN for it */
    const REAL xc = x > hi ? hi : (x >= lo ? x : lo);
    const REAL n = (xc * (REAL)FBP_LOG2E + shifter) - shifter;
    const REAL r = (xc - n * ln2_hi) - n * ln2_lo;
    const REAL y = (FBP(expm1_reduced)(r) + (REAL)1) * FBP(pow2i)(n);
    /* beyond the clamps the true result underflows to 0 or overflows to inf; NaN stays NaN */
    return x < lo ? (REAL)0 : (x > hi ? (REAL)INFINITY : (x == x ? y : x));
}

/* e^y - 1 for 0 <= y <= 40 with one polynomial: with y = n ln2 + r,
 *   e^y - 1 = 2^n (e^r - 1) + (2^n - 1),
 * where both terms are >= 0, so nothing cancels (n = 0 is the series itself). */
static inline REAL FBP(expm1_nonneg)(REAL y)
{
#if REAL_IS_DOUBLE
    const REAL ln2_hi = FBP_LN2_HI_D, ln2_lo = FBP_LN2_LO_D, shifter = 6755399441055744.0;
#else
    const REAL ln2_hi = FBP_LN2_HI_F, ln2_lo = FBP_LN2_LO_F, shifter = 12582912.0f;
#endif
    const REAL n = (y * (REAL)FBP_LOG2E + shifter) - shifter;
    const REAL r = (y - n * ln2_hi) - n * ln2_lo;
    const REAL scale = FBP(pow2i)(n);
    return scale * FBP(expm1_reduced)(r) + (scale - (REAL)1);
}

/* tanh(x) = sign(x) e / (e + 2), e = expm1(2|x|); |x| clamped at 20, where tanh is 1 in double */
static inline REAL FBP(tanh_v)(REAL x)
{
    const REAL ax = x < 0 ? -x : x;
    const REAL e = FBP(expm1_nonneg)((REAL)2 * (ax < (REAL)20 ? ax : (REAL)20)); /* NaN -> 40 */
    const REAL t = e / (e + (REAL)2);
    return x < 0 ? -t : (x == x ? t : x);
}

/* 1 / (1 + e^-x) */
static inline REAL FBP(sigmoid_v)(REAL x) { return (REAL)1 / ((REAL)1 + FBP(exp_v)(-x)); }

/* The largest entry of a row (softmax and logsumexp subtract it so exp never overflows). */
static inline REAL FBP(row_max)(int cols, const REAL *z)
{
    REAL zmax = z[0];
    for (int j = 1; j < cols; j++) zmax = z[j] > zmax ? z[j] : zmax;
    return zmax;
}

/* Rows per call of softmax_exps: its callers keep one value per row on the stack. */
#define FBP_SOFTMAX_ROWS 64

/* The shifted exponentials of a row-wise softmax, for rows <= FBP_SOFTMAX_ROWS rows of Z
 * (rows x cols):
 *     maxes[r] = max_j Z[r][j];   E[r][j] = exp(Z[r][j] - maxes[r]);   sums[r] = sum_j E[r][j].
 * The exps run as one loop over all rows x cols entries, so they vectorize however short the
 * rows are (10 classes do not fill one AVX-512 vector; a loop per row would run them scalar).
 * E may be Z. */
static inline void FBP(softmax_exps)(int rows, int cols, const REAL *Z, REAL *E, REAL *maxes,
                                     REAL *sums)
{
    for (int r = 0; r < rows; r++) {
        const REAL *z = Z + (ptrdiff_t)r * cols;
        REAL *e = E + (ptrdiff_t)r * cols;
        const REAL zmax = FBP(row_max)(cols, z);
        maxes[r] = zmax;
        for (int j = 0; j < cols; j++) e[j] = z[j] - zmax;
    }
    const ptrdiff_t n = (ptrdiff_t)rows * cols;
#pragma omp simd
    for (ptrdiff_t i = 0; i < n; i++) E[i] = FBP(exp_v)(E[i]);
    for (int r = 0; r < rows; r++) {
        const REAL *e = E + (ptrdiff_t)r * cols;
        REAL sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < cols; j++) sum += e[j];
        sums[r] = sum;
    }
}

/* sum_j exp(z_j - shift) for one row, nothing stored. */
static inline REAL FBP(exp_sum)(int cols, const REAL *z, REAL shift)
{
    REAL sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < cols; j++) sum += FBP(exp_v)(z[j] - shift);
    return sum;
}
