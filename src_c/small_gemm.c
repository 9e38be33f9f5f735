/* small_gemm.c -- register-blocked products of small matrices, without BLAS's call overhead
 * and packing (formula and contract: kernels.h, fbp_small_gemm).
 *
 * Why by hand: for the products of a small network (a few rows of a mini-batch times weights
 * that fit in L1), OpenBLAS's fixed cost per call (argument checks, kernel choice, packing of
 * both operands) is larger than the arithmetic; the benchmark workloads `online` (batch 1)
 * and `binary` (30-16-1, batch 16) spend most of their BLAS time there. This is not a general
 * GEMM: no cache blocking, one pass over B per block of rows of C; dense.c sends only small
 * products here (FBP_SMALL_*), everything else to BLAS.
 *
 * The kernel: C is cut into blocks of up to MR rows x NV vectors of columns; a block's
 * accumulators stay in registers while p runs over the inner dimension, each step loading NV
 * vectors of row p of B and broadcasting MR entries of column p of A. The last vector of a
 * row is masked, so no element beyond a row is read or written. Written once with the SIMD
 * operations as macros, instantiated for AVX-512 and for AVX2+FMA (each function compiled for
 * its instruction set by a target attribute) and picked at run time by what the CPU has; on
 * other CPUs fbp_small_gemm returns 0 and the caller uses BLAS. */
#include "fastbp.h"

#ifndef FBP_SMALL_GEMM_SIMD
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(FBP_NO_SMALL_GEMM)
#define FBP_SMALL_GEMM_SIMD 1
#include <immintrin.h>
#else
#define FBP_SMALL_GEMM_SIMD 0
#endif
#endif

#ifndef REAL

int fbp_small_gemm_level = FBP_SMALL_GEMM_BEST;

int fbp_small_gemm_isa(void)
{
#if FBP_SMALL_GEMM_SIMD
    const int level = fbp_small_gemm_level;
    if (level >= FBP_SMALL_GEMM_AVX512 && __builtin_cpu_supports("avx512f"))
        return FBP_SMALL_GEMM_AVX512;
    if (level >= FBP_SMALL_GEMM_AVX2 && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
        return FBP_SMALL_GEMM_AVX2;
#endif
    return FBP_SMALL_GEMM_NONE;
}

int fbp_small_gemm_available(void) { return fbp_small_gemm_isa() != FBP_SMALL_GEMM_NONE; }

#define FBP_TEMPLATE_FILE "small_gemm.c"
#include "template.h"
#else

#if FBP_SMALL_GEMM_SIMD

/* ---- AVX-512: 16 floats or 8 doubles per vector; 32 registers: blocks up to 4 x 4 ---------- */
#define ISA_NAME(name) FBP(name##_avx512)
#define ISA_TARGET "avx512f"
#define MR 4
#define NV 4
#define KSPLIT(nv) ((nv) == 1 ? 4 : (nv) == 2 ? 2 : 1) /* partial sums: >= 8 FMA chains */
#if REAL_IS_DOUBLE
#define VLEN 8
#define V __m512d
#define V_MASK __mmask8
#define V_TAIL(n) ((__mmask8)((1u << (n)) - 1u))
#define V_ZERO() _mm512_setzero_pd()
#define V_SET1(x) _mm512_set1_pd(x)
#define V_LOADU(p) _mm512_loadu_pd(p)
#define V_LOAD_TAIL(p, m) _mm512_maskz_loadu_pd(m, p)
#define V_STOREU(p, v) _mm512_storeu_pd(p, v)
#define V_STORE_TAIL(p, m, v) _mm512_mask_storeu_pd(p, m, v)
#define V_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define V_ADD(a, b) _mm512_add_pd(a, b)
#else
#define VLEN 16
#define V __m512
#define V_MASK __mmask16
#define V_TAIL(n) ((__mmask16)((1u << (n)) - 1u))
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_LOAD_TAIL(p, m) _mm512_maskz_loadu_ps(m, p)
#define V_STOREU(p, v) _mm512_storeu_ps(p, v)
#define V_STORE_TAIL(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#endif
#include "small_gemm_kernel.h"

/* ---- AVX2 + FMA: 8 floats or 4 doubles per vector; 16 registers: blocks up to 4 x 2 -------- */
#define ISA_NAME(name) FBP(name##_avx2)
#define ISA_TARGET "avx2,fma"
#define MR 4
#define NV 2
#define KSPLIT(nv) ((nv) == 1 ? 2 : 1) /* at most 8 accumulators of 16 registers */
#if REAL_IS_DOUBLE
#define VLEN 4
#define V __m256d
#define V_MASK __m256i
/* lanes 0 .. n-1 set: a window into 4 all-ones then 4 zero 64-bit words */
#define V_TAIL(n) _mm256_loadu_si256((const __m256i *)(fbp_tail_words64 + 4 - (n)))
#define V_ZERO() _mm256_setzero_pd()
#define V_SET1(x) _mm256_set1_pd(x)
#define V_LOADU(p) _mm256_loadu_pd(p)
#define V_LOAD_TAIL(p, m) _mm256_maskload_pd(p, m)
#define V_STOREU(p, v) _mm256_storeu_pd(p, v)
#define V_STORE_TAIL(p, m, v) _mm256_maskstore_pd(p, m, v)
#define V_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define V_ADD(a, b) _mm256_add_pd(a, b)
#ifndef FBP_TAIL_WORDS64
#define FBP_TAIL_WORDS64
static const int64_t fbp_tail_words64[8] = {-1, -1, -1, -1, 0, 0, 0, 0};
#endif
#else
#define VLEN 8
#define V __m256
#define V_MASK __m256i
#define V_TAIL(n) _mm256_loadu_si256((const __m256i *)(fbp_tail_words32 + 8 - (n)))
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_LOADU(p) _mm256_loadu_ps(p)
#define V_LOAD_TAIL(p, m) _mm256_maskload_ps(p, m)
#define V_STOREU(p, v) _mm256_storeu_ps(p, v)
#define V_STORE_TAIL(p, m, v) _mm256_maskstore_ps(p, m, v)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#ifndef FBP_TAIL_WORDS32
#define FBP_TAIL_WORDS32
static const int32_t fbp_tail_words32[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                             0,  0,  0,  0,  0,  0,  0,  0};
#endif
#endif
#include "small_gemm_kernel.h"

int FBP(small_gemm)(int M, int N, int P, const REAL *A, ptrdiff_t rsa, ptrdiff_t csa,
                    const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc)
{
    switch (fbp_small_gemm_isa()) {
    case FBP_SMALL_GEMM_AVX512:
        FBP(small_gemm_avx512)(M, N, P, A, rsa, csa, B, ldb, bias, C, ldc);
        return 1;
    case FBP_SMALL_GEMM_AVX2:
        FBP(small_gemm_avx2)(M, N, P, A, rsa, csa, B, ldb, bias, C, ldc);
        return 1;
    default:
        return 0;
    }
}

#else /* no x86-64 SIMD intrinsics: the callers use BLAS */

int FBP(small_gemm)(int M, int N, int P, const REAL *A, ptrdiff_t rsa, ptrdiff_t csa,
                    const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc)
{
    (void)M, (void)N, (void)P, (void)A, (void)rsa, (void)csa, (void)B, (void)ldb, (void)bias,
        (void)C, (void)ldc;
    return 0;
}

#endif
#endif /* REAL */
