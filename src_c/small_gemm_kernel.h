/* small_gemm_kernel.h -- the kernel of small_gemm.c, included there once per instruction set
 * with ISA_NAME, ISA_TARGET, MR, NV, VLEN and the V_* SIMD macros defined; undefines them all
 * at the end. Never include it elsewhere. */

#define ISA_INLINE static inline __attribute__((always_inline, target(ISA_TARGET)))

/* acc[r][v] += A(r, p) * B[p][v] for one p: the step of the block below. */
ISA_INLINE void ISA_NAME(small_step)(const int mr, const int nv, V acc[MR][NV], const REAL *A,
                                     ptrdiff_t rsa, const REAL *b, V_MASK tail)
{
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++)
        bv[v] = v < nv - 1 ? V_LOADU(b + v * VLEN) : V_LOAD_TAIL(b + v * VLEN, tail);
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++) {
        const V a = V_SET1(A[r * rsa]);
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[r][v] = V_FMA(a, bv[v], acc[r][v]);
    }
}

/* One block of C, mr rows x nv vectors (mr <= MR, nv <= NV, both constants once inlined, so the
 * accumulators are registers), the last vector holding the lanes of `tail`:
 *     C[i][j] = sum_p A(i, p) B[p][j]  (+ bias[j] when bias is not NULL),
 * A(i, p) = A[i * rsa + p * csa]. With few accumulators (small nv) one FMA chain per
 * accumulator would wait on the FMA latency, so the sum is split into KSPLIT(nv) partial sums
 * over p = s, s + ks, s + 2 ks, ... (the remainder of P into the first), added at the end:
 * (s0 + s1) + (s2 + s3). The order depends on P and nv only, never on mr, so a row's result
 * does not depend on which other rows share its call. */
ISA_INLINE void ISA_NAME(small_block)(const int mr, const int nv, int P, const REAL *A,
                                      ptrdiff_t rsa, ptrdiff_t csa, const REAL *B, ptrdiff_t ldb,
                                      const REAL *bias, REAL *C, ptrdiff_t ldc, V_MASK tail)
{
    const int ks = KSPLIT(nv);
    V acc[4][MR][NV];
#pragma GCC unroll 4
    for (int s = 0; s < ks; s++)
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[s][r][v] = V_ZERO();
    int p = 0;
    for (; p + ks <= P; p += ks)
#pragma GCC unroll 4
        for (int s = 0; s < ks; s++)
            ISA_NAME(small_step)(mr, nv, acc[s], A + (p + s) * csa, rsa, B + (p + s) * ldb, tail);
    for (; p < P; p++) ISA_NAME(small_step)(mr, nv, acc[0], A + p * csa, rsa, B + p * ldb, tail);
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            if (ks == 4) {
                acc[0][r][v] = V_ADD(acc[0][r][v], acc[1][r][v]);
                acc[2][r][v] = V_ADD(acc[2][r][v], acc[3][r][v]);
                acc[0][r][v] = V_ADD(acc[0][r][v], acc[2][r][v]);
            } else if (ks == 2) {
                acc[0][r][v] = V_ADD(acc[0][r][v], acc[1][r][v]);
            }
        }
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) {
        const int last = v == nv - 1;
        if (bias) {
            const V bias_v = last ? V_LOAD_TAIL(bias + v * VLEN, tail) : V_LOADU(bias + v * VLEN);
#pragma GCC unroll 4
            for (int r = 0; r < mr; r++) acc[0][r][v] = V_ADD(acc[0][r][v], bias_v);
        }
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++) {
            REAL *c = C + r * ldc + v * VLEN;
            if (last)
                V_STORE_TAIL(c, tail, acc[0][r][v]);
            else
                V_STOREU(c, acc[0][r][v]);
        }
    }
}

/* One panel of C (all M rows x nv vectors): blocks of MR rows, then one block of the M % MR
 * rows left. nv is a constant once inlined, and so is each block's mr. */
ISA_INLINE void ISA_NAME(small_panel)(const int nv, int M, int P, const REAL *A, ptrdiff_t rsa,
                                      ptrdiff_t csa, const REAL *B, ptrdiff_t ldb,
                                      const REAL *bias, REAL *C, ptrdiff_t ldc, V_MASK tail)
{
    int i0 = 0;
    for (; i0 + MR <= M; i0 += MR)
        ISA_NAME(small_block)(MR, nv, P, A + i0 * rsa, rsa, csa, B, ldb, bias, C + i0 * ldc,
                              ldc, tail);
    const REAL *A_rest = A + i0 * rsa;
    REAL *C_rest = C + i0 * ldc;
    switch (M - i0) { /* MR is 4 */
    case 3: ISA_NAME(small_block)(3, nv, P, A_rest, rsa, csa, B, ldb, bias, C_rest, ldc, tail);
        break;
    case 2: ISA_NAME(small_block)(2, nv, P, A_rest, rsa, csa, B, ldb, bias, C_rest, ldc, tail);
        break;
    case 1: ISA_NAME(small_block)(1, nv, P, A_rest, rsa, csa, B, ldb, bias, C_rest, ldc, tail);
        break;
    default: break;
    }
}

/* The panel for a run-time nv: one case per width, so that every block's sizes are constants. */
__attribute__((target(ISA_TARGET))) static void
ISA_NAME(small_panel_any)(int nv, int M, int P, const REAL *A, ptrdiff_t rsa, ptrdiff_t csa,
                          const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc,
                          V_MASK tail)
{
    switch (nv) {
    case 1: ISA_NAME(small_panel)(1, M, P, A, rsa, csa, B, ldb, bias, C, ldc, tail); break;
    case 2: ISA_NAME(small_panel)(2, M, P, A, rsa, csa, B, ldb, bias, C, ldc, tail); break;
#if NV == 4
    case 3: ISA_NAME(small_panel)(3, M, P, A, rsa, csa, B, ldb, bias, C, ldc, tail); break;
    case 4: ISA_NAME(small_panel)(4, M, P, A, rsa, csa, B, ldb, bias, C, ldc, tail); break;
#endif
    default: break; /* unreachable: 1 <= nv <= NV */
    }
}

/* fbp_small_gemm for this instruction set: C in panels of NV vectors of columns, each panel in
 * blocks of MR rows (the panel of B, P x NV vectors, is reused by every block). */
__attribute__((target(ISA_TARGET))) static void
ISA_NAME(small_gemm)(int M, int N, int P, const REAL *A, ptrdiff_t rsa, ptrdiff_t csa,
                     const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc)
{
    const int panel = NV * VLEN;
    for (int j0 = 0; j0 < N; j0 += panel) {
        const int width = N - j0 < panel ? N - j0 : panel;
        const int nv = (width + VLEN - 1) / VLEN;
        ISA_NAME(small_panel_any)(nv, M, P, A, rsa, csa, B + j0, ldb, bias ? bias + j0 : NULL,
                                  C + j0, ldc, V_TAIL(width - (nv - 1) * VLEN));
    }
}

#undef ISA_INLINE
#undef ISA_NAME
#undef ISA_TARGET
#undef MR
#undef NV
#undef VLEN
#undef V
#undef V_MASK
#undef V_TAIL
#undef V_ZERO
#undef V_SET1
#undef V_LOADU
#undef V_LOAD_TAIL
#undef V_STOREU
#undef V_STORE_TAIL
#undef V_FMA
#undef V_ADD
#undef KSPLIT
