# The one place where the C names of src_c/fastbp.h enter Cython. Formulas and aliasing rules
# are in src_c/kernels.h beside each prototype.
from libc.stdint cimport int64_t, uint64_t

cdef extern from "fastbp.h" nogil:
    enum:
        FBP_IDENTITY
        FBP_RELU
        FBP_LEAKY_RELU
        FBP_SIGMOID
        FBP_TANH
        FBP_SOFTMAX
        FBP_MSE
        FBP_BCE
        FBP_CCE_LABELS
        FBP_CCE_PROBS
        FBP_SGD
        FBP_ADAM

    ctypedef void (*fbp_sgemm_fn)(char *, char *, int *, int *, int *, float *, float *, int *,
                                  float *, int *, float *, float *, int *) noexcept nogil
    ctypedef void (*fbp_dgemm_fn)(char *, char *, int *, int *, int *, double *, double *, int *,
                                  double *, int *, double *, double *, int *) noexcept nogil

    ctypedef struct fbp_blas:
        fbp_sgemm_fn sgemm
        fbp_dgemm_fn dgemm

    ctypedef struct fbp_net:
        int n_layers
        const int *sizes
        const int *activations
        const double *slopes
        int loss
        void *params
        void *grads
        int max_batch
        void *work
        int64_t *batch_labels
        void *batch_weights
        fbp_blas blas

    ctypedef struct fbp_optimizer:
        int kind
        double lr
        double momentum
        int nesterov
        double weight_decay
        int decoupled_weight_decay
        double beta1, beta2, eps
        int64_t step
        void *state1
        void *state2

    ctypedef struct fbp_rng:
        uint64_t (*interval)(void *state, uint64_t max) noexcept nogil
        void *state

    void fbp_shuffle(const fbp_rng *rng, ptrdiff_t n, int64_t *perm)
    int fbp_labels_in_range(ptrdiff_t n, const int64_t *labels, int64_t n_classes)

    ptrdiff_t fbp_n_params(const fbp_net *net)
    ptrdiff_t fbp_weight_offset(const fbp_net *net, int layer)
    ptrdiff_t fbp_workspace_len(const fbp_net *net)
    int fbp_target_width(const fbp_net *net)
    int fbp_small_gemm_isa()
    int fbp_small_gemm_level

    void fbp_activation_forward_f32(int act, double slope, int rows, int cols, float *Z)
    void fbp_activation_forward_f64(int act, double slope, int rows, int cols, double *Z)
    void fbp_activation_backward_f32(int act, double slope, int rows, int cols,
                                     const float *A, float *dA)
    void fbp_activation_backward_f64(int act, double slope, int rows, int cols,
                                     const double *A, double *dA)

    double fbp_mse_f32(int rows, int cols, const float *P, const float *Y, float *grad)
    double fbp_mse_f64(int rows, int cols, const double *P, const double *Y, double *grad)
    double fbp_bce_logits_f32(int rows, int cols, const float *Z, const float *Y, float *grad)
    double fbp_bce_logits_f64(int rows, int cols, const double *Z, const double *Y, double *grad)
    double fbp_softmax_xent_labels_f32(int rows, int cols, const float *Z, const int64_t *labels,
                                       float *grad)
    double fbp_softmax_xent_labels_f64(int rows, int cols, const double *Z,
                                       const int64_t *labels, double *grad)
    double fbp_softmax_xent_probs_f32(int rows, int cols, const float *Z, const float *Y,
                                      float *grad)
    double fbp_softmax_xent_probs_f64(int rows, int cols, const double *Z, const double *Y,
                                      double *grad)

    int fbp_all_in_range_f32(ptrdiff_t n, const float *x, float low, float high)
    int fbp_all_in_range_f64(ptrdiff_t n, const double *x, double low, double high)

    void fbp_dense_forward_f32(const fbp_blas *blas, int rows, int n_in, int n_out,
                               const float *X, const float *W, const float *b, int act,
                               double slope, float *Y)
    void fbp_dense_forward_f64(const fbp_blas *blas, int rows, int n_in, int n_out,
                               const double *X, const double *W, const double *b, int act,
                               double slope, double *Y)
    void fbp_dense_backward_f32(const fbp_blas *blas, int rows, int n_in, int n_out,
                                const float *X, const float *W, const float *dZ, float *dW,
                                float *db, float *dX, float *scratch)
    void fbp_dense_backward_f64(const fbp_blas *blas, int rows, int n_in, int n_out,
                                const double *X, const double *W, const double *dZ, double *dW,
                                double *db, double *dX, double *scratch)
    int fbp_transpose_scratch_len(int n_in, int n_out)

    void fbp_sgd_step_f32(ptrdiff_t n, float *param, const float *grad, float *velocity,
                          double lr, double momentum, int nesterov, double weight_decay)
    void fbp_sgd_step_f64(ptrdiff_t n, double *param, const double *grad, double *velocity,
                          double lr, double momentum, int nesterov, double weight_decay)
    void fbp_adam_step_f32(ptrdiff_t n, float *param, const float *grad, float *m, float *v,
                           int64_t t, double lr, double beta1, double beta2, double eps,
                           double weight_decay, int decoupled)
    void fbp_adam_step_f64(ptrdiff_t n, double *param, const double *grad, double *m, double *v,
                           int64_t t, double lr, double beta1, double beta2, double eps,
                           double weight_decay, int decoupled)

    void fbp_optimizer_step_f32(fbp_optimizer *opt, ptrdiff_t n, float *param, const float *grad)
    void fbp_optimizer_step_f64(fbp_optimizer *opt, ptrdiff_t n, double *param,
                                const double *grad)

    double fbp_train_epoch_f32(const fbp_net *net, fbp_optimizer *opt, const float *X,
                               const float *Y, const int64_t *labels, const float *sample_weight,
                               const int64_t *perm, ptrdiff_t n, int batch_size,
                               ptrdiff_t *n_trained)
    double fbp_train_epoch_f64(const fbp_net *net, fbp_optimizer *opt, const double *X,
                               const double *Y, const int64_t *labels, const double *sample_weight,
                               const int64_t *perm, ptrdiff_t n, int batch_size,
                               ptrdiff_t *n_trained)
    int fbp_train_epochs_f32(const fbp_net *net, fbp_optimizer *opt, const float *X,
                             const float *Y, const int64_t *labels, const float *sample_weight,
                             const fbp_rng *rng, int64_t *perm, ptrdiff_t n, int batch_size,
                             int epochs, double *losses, ptrdiff_t *n_trained)
    int fbp_train_epochs_f64(const fbp_net *net, fbp_optimizer *opt, const double *X,
                             const double *Y, const int64_t *labels, const double *sample_weight,
                             const fbp_rng *rng, int64_t *perm, ptrdiff_t n, int batch_size,
                             int epochs, double *losses, ptrdiff_t *n_trained)
    double fbp_evaluate_f32(const fbp_net *net, const float *X, const float *Y,
                            const int64_t *labels, ptrdiff_t n, float *out)
    double fbp_evaluate_f64(const fbp_net *net, const double *X, const double *Y,
                            const int64_t *labels, ptrdiff_t n, double *out)
    void fbp_predict_f32(const fbp_net *net, const float *X, ptrdiff_t n, float *out)
    void fbp_predict_f64(const fbp_net *net, const double *X, ptrdiff_t n, double *out)
    double fbp_loss_and_grad_f32(const fbp_net *net, const float *X, const float *Y,
                                 const int64_t *labels, const float *weights, int rows)
    double fbp_loss_and_grad_f64(const fbp_net *net, const double *X, const double *Y,
                                 const int64_t *labels, const double *weights, int rows)
