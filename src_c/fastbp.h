/* fastbp.h -- the one header of fastbp's C kernels. Plain C99, no Python.h.
 *
 * Conventions (said once here, true for every kernel):
 *  - Every kernel exists for float (fbp_<op>_f32) and double (fbp_<op>_f64), generated from one
 *    template: the prototypes live once in kernels.h with REAL as the element type, and each
 *    kernel file is instantiated twice by template.h.
 *  - Arrays are C-contiguous and row-major. Shape letters follow the names: X is rows x in,
 *    W is in x out (so a dense layer is Z = X.W + b), b has out entries.
 *  - Inputs are validated at the Cython boundary (fastbp/_core.pyx): kernels never check,
 *    never allocate and never touch Python. Sizes are >= 1 and fit in int (checked there), flat lengths
 *    are ptrdiff_t.
 *  - Matrix products go through BLAS gemm, handed in as function pointers (fbp_blas) so that
 *    this code never links a BLAS itself.
 */
#ifndef FASTBP_H
#define FASTBP_H

#include <stddef.h>
#include <stdint.h>

/* Activations, by the codes fastbp/_core.pyx maps names to (ACTIVATIONS). */
enum fbp_activation {
    FBP_IDENTITY = 0,
    FBP_RELU = 1,
    FBP_LEAKY_RELU = 2,
    FBP_SIGMOID = 3,
    FBP_TANH = 4,
    FBP_SOFTMAX = 5
};

/* Losses. Cross-entropies take the output layer's pre-activation (logits) and fuse the
 * output activation (sigmoid / softmax) into their gradient; MSE takes the activated output. */
enum fbp_loss {
    FBP_MSE = 0,
    FBP_BCE = 1,         /* binary cross-entropy from logits */
    FBP_CCE_LABELS = 2,  /* softmax + categorical cross-entropy, class indices */
    FBP_CCE_PROBS = 3    /* softmax + categorical cross-entropy, one-hot / probability rows */
};

enum fbp_optimizer_kind { FBP_SGD = 0, FBP_ADAM = 1 };

/* Column-major BLAS gemm, the reference Fortran signature (as in scipy.linalg.cython_blas):
 * C := alpha * op(A) . op(B) + beta * C. */
typedef void (*fbp_sgemm_fn)(char *transa, char *transb, int *m, int *n, int *k, float *alpha,
                             float *a, int *lda, float *b, int *ldb, float *beta, float *c,
                             int *ldc);
typedef void (*fbp_dgemm_fn)(char *transa, char *transb, int *m, int *n, int *k, double *alpha,
                             double *a, int *lda, double *b, int *ldb, double *beta, double *c,
                             int *ldc);

typedef struct {
    fbp_sgemm_fn sgemm;
    fbp_dgemm_fn dgemm;
} fbp_blas;

/* A Sequential network of dense layers, as the training drivers see it. The arrays belong to
 * the Python model; the struct only points at them.
 *  params/grads: flat buffers, layer by layer W_l (sizes[l] x sizes[l+1], row-major) then b_l.
 *  work:         fbp_workspace_len_*(net) elements for batches of up to max_batch rows.
 *  batch_labels: max_batch entries, used with FBP_CCE_LABELS.
 *  batch_weights: max_batch REALs, the gathered sample weights of a batch (when weighted). */
typedef struct {
    int n_layers;
    const int *sizes;          /* n_layers + 1 widths: sizes[0] inputs ... sizes[n_layers] outputs */
    const int *activations;    /* n_layers codes from enum fbp_activation */
    const double *slopes;      /* n_layers leaky_relu negative slopes (ignored for others) */
    int loss;                  /* enum fbp_loss */
    void *params;
    void *grads;
    int max_batch;
    void *work;
    int64_t *batch_labels;
    void *batch_weights;
    fbp_blas blas;
} fbp_net;

/* Uniform random integers for shuffling: interval(state, max) is uniform in [0, max]. The
 * Cython boundary fills it with numpy's random_interval on a Generator's bit generator, so a
 * shuffle here draws exactly what Generator.permutation would. */
typedef struct {
    uint64_t (*interval)(void *state, uint64_t max);
    void *state;
} fbp_rng;

/* perm = a random permutation of 0 .. n-1, numpy's Generator.permutation(n) draw for draw:
 * arange, then Fisher-Yates from the end (swap i with j = interval(i), i = n-1 .. 1). */
void fbp_shuffle(const fbp_rng *rng, ptrdiff_t n, int64_t *perm);

/* Hyper-parameters and state of one optimizer over a flat buffer (torch.optim semantics).
 * state1 is SGD's momentum buffer or Adam's first moment m; state2 is Adam's second moment v. */
typedef struct {
    int kind;                  /* enum fbp_optimizer_kind */
    double lr;
    double momentum;
    int nesterov;
    double weight_decay;
    int decoupled_weight_decay; /* 1 for AdamW */
    double beta1, beta2, eps;
    int64_t step;               /* optimizer steps taken so far */
    void *state1;
    void *state2;
} fbp_optimizer;

/* Total number of parameters (weights and biases) of the network. */
ptrdiff_t fbp_n_params(const fbp_net *net);
/* Offset of W_l in the flat buffer; b_l follows W_l immediately. */
ptrdiff_t fbp_weight_offset(const fbp_net *net, int layer);
/* Elements of workspace that net->work must hold for batches of up to net->max_batch rows. */
ptrdiff_t fbp_workspace_len(const fbp_net *net);
/* 1 when every label is a class index, 0 <= labels[i] < n_classes (checks.c). */
int fbp_labels_in_range(ptrdiff_t n, const int64_t *labels, int64_t n_classes);
/* Number of values a target row holds: the output width, or 1 for class indices. */
int fbp_target_width(const fbp_net *net);
/* 1 when fbp_small_gemm_* has a SIMD kernel for this CPU (AVX-512, or AVX2 with FMA). */
int fbp_small_gemm_available(void);
/* The kernel fbp_small_gemm_* uses: the best the CPU has, at most fbp_small_gemm_level. */
int fbp_small_gemm_isa(void);
/* The best kernel fbp_small_gemm_* may use (default FBP_SMALL_GEMM_BEST); tests lower it to
 * run the AVX2 kernel, or BLAS alone, on a CPU that has AVX-512. Not thread-safe: set it only
 * while nothing trains. */
enum { FBP_SMALL_GEMM_NONE = 0, FBP_SMALL_GEMM_AVX2 = 1, FBP_SMALL_GEMM_AVX512 = 2,
       FBP_SMALL_GEMM_BEST = 2 };
extern int fbp_small_gemm_level;
/* Elements of scratch fbp_dense_backward_* uses for a layer in x out (W^T for the small-matrix
 * kernel): in * out when the layer is small enough for it, else 0. By shape alone, whatever
 * kernel the CPU (or fbp_small_gemm_level) allows, so a workspace sized once stays large
 * enough when the level changes. */
int fbp_transpose_scratch_len(int in, int out);

#define REAL float
#define FBP(name) fbp_##name##_f32
#include "kernels.h"
#undef REAL
#undef FBP

#define REAL double
#define FBP(name) fbp_##name##_f64
#include "kernels.h"
#undef REAL
#undef FBP

#endif /* FASTBP_H */
