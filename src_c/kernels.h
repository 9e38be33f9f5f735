/* kernels.h -- prototypes of every kernel, written once with REAL as the element type.
 * Included twice by fastbp.h (float -> fbp_*_f32, double -> fbp_*_f64); never include it
 * directly. Each prototype's comment is its formula and its aliasing rule. */

/* ---- activations.c ------------------------------------------------------------------- */

/* A = act(Z), in place on Z (rows x cols).
 *   identity: z;  relu: max(z, 0);  leaky_relu: z > 0 ? z : slope * z;
 *   sigmoid: 1 / (1 + exp(-z));  tanh: tanh(z);
 *   softmax (per row): exp(z_j - max_k z_k) / sum_k exp(z_k - max_k z_k). */
void FBP(activation_forward)(int act, double slope, int rows, int cols, REAL *Z);

/* dA <- dZ = dA * act'(z), in place on dA, with act' computed from the OUTPUT A = act(Z):
 *   relu: A > 0;  leaky_relu: A > 0 ? 1 : slope;  sigmoid: A (1 - A);  tanh: 1 - A^2;
 *   softmax (per row, the Jacobian-vector product): dZ_j = A_j (dA_j - sum_k dA_k A_k).
 * A and dA must not overlap. */
void FBP(activation_backward)(int act, double slope, int rows, int cols,
                              const REAL *restrict A, REAL *restrict dA);

/* ---- losses.c -------------------------------------------------------------------------
 * Each returns the mean loss over the rows (MSE and BCE: over all rows x cols elements, as
 * torch's reduction="mean") and, when grad is not NULL, writes d(loss)/d(input) into grad
 * (rows x cols). grad may be the same array as the input (each row is read before it is
 * written); it must not overlap the targets. */

/* mean((P - Y)^2); grad = 2 (P - Y) / (rows * cols). */
double FBP(mse)(int rows, int cols, const REAL *P, const REAL *Y, REAL *grad);

/* Binary cross-entropy of sigmoid(Z) against Y in [0, 1], computed stably from the logit:
 *   l = max(z, 0) - z y + log1p(exp(-|z|));  grad = (sigmoid(z) - y) / (rows * cols). */
double FBP(bce_logits)(int rows, int cols, const REAL *Z, const REAL *Y, REAL *grad);

/* Softmax + categorical cross-entropy of logits Z against class indices (0 <= label < cols):
 *   l_i = logsumexp(z_i) - z_i[label_i];  grad_i = (softmax(z_i) - onehot(label_i)) / rows. */
double FBP(softmax_xent_labels)(int rows, int cols, const REAL *Z, const int64_t *labels,
                                REAL *grad);

/* Softmax + categorical cross-entropy of logits Z against target rows Y (one-hot or
 * probabilities):  l_i = sum_j y_ij (logsumexp(z_i) - z_ij);
 *   grad_i = (softmax(z_i) * sum_j y_ij - y_i) / rows   (= (p - y) / rows for rows summing to 1). */
double FBP(softmax_xent_probs)(int rows, int cols, const REAL *Z, const REAL *Y, REAL *grad);

/* ---- checks.c ------------------------------------------------------------------------ */

/* 1 when low <= x_i <= high for every i, else 0 (NaN is in no range, so with low, high = -+ the
 * largest REAL it is "every x_i is finite"). Stops after the first block holding one outside. */
int FBP(all_in_range)(ptrdiff_t n, const REAL *x, REAL low, REAL high);

/* ---- small_gemm.c: register-blocked products of small matrices -------------------------- */

/* C (M x N, row stride ldc) = A . B (+ bias on every row when bias is not NULL), where
 * A(i, p) = A[i * rsa + p * csa] (so A may be a row-major matrix or the transpose of one),
 * B is P x N with row stride ldb, bias has N entries. Each C[i][j] is the sum over p in order,
 * plus bias[j] last. Returns 0, writing nothing, when this CPU has no SIMD kernel for it
 * (x86-64 without AVX2+FMA, or another architecture): the caller then uses BLAS.
 * C must not overlap A, B or bias. Meant for operands that fit in L1 (see dense.c). */
int FBP(small_gemm)(int M, int N, int P, const REAL *A, ptrdiff_t rsa, ptrdiff_t csa,
                    const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc);

/* ---- dense.c ------------------------------------------------------------------------- */

/* Y = act(X.W + b): X rows x in, W in x out, b out, Y rows x out. Y must not overlap X, W, b. */
void FBP(dense_forward)(const fbp_blas *blas, int rows, int in, int out, const REAL *X,
                        const REAL *W, const REAL *b, int act, double slope, REAL *Y);

/* Backward pass of Z = X.W + b given dZ (rows x out):
 *   dW = X^T . dZ (in x out);  db = sum over rows of dZ (out);  dX = dZ . W^T (rows x in).
 * dX may be NULL (the first layer needs no input gradient). scratch, when not NULL, holds
 * fbp_transpose_scratch_len(in, out) REALs: small products then compute dX from a copy of W^T
 * (small_gemm's B is row-major); NULL sends dX to BLAS. Outputs and scratch must not overlap
 * inputs or each other. */
void FBP(dense_backward)(const fbp_blas *blas, int rows, int in, int out, const REAL *X,
                         const REAL *W, const REAL *dZ, REAL *dW, REAL *db, REAL *dX,
                         REAL *scratch);

/* ---- optim.c: one in-place pass over n parameters, torch.optim semantics ------------------ */

/* SGD:  g = grad + weight_decay * p;
 *       with momentum: v = momentum * v + g;  g = nesterov ? g + momentum * v : v;
 *       p -= lr * g.
 * velocity may be NULL when momentum == 0. param, grad, velocity must not overlap. */
void FBP(sgd_step)(ptrdiff_t n, REAL *restrict param, const REAL *restrict grad,
                   REAL *restrict velocity, double lr, double momentum, int nesterov,
                   double weight_decay);

/* Adam (decoupled = 0) / AdamW (decoupled = 1), step t >= 1 (the step being taken):
 *   Adam:  g = grad + weight_decay * p;      AdamW: p *= 1 - lr * weight_decay;  g = grad
 *   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 *   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
 * param, grad, m, v must not overlap. */
void FBP(adam_step)(ptrdiff_t n, REAL *restrict param, const REAL *restrict grad,
                    REAL *restrict m, REAL *restrict v, int64_t t, double lr, double beta1,
                    double beta2, double eps, double weight_decay, int decoupled);

/* One step of the optimizer opt over the flat buffers (increments opt->step first). */
void FBP(optimizer_step)(fbp_optimizer *opt, ptrdiff_t n, REAL *param, const REAL *grad);

/* ---- train.c: drivers over a whole network ---------------------------------------------- */

/* One epoch of mini-batch training: for each batch of rows perm[s .. s+batch_size) (the last
 * one may be shorter): gather, forward, fused loss gradient, backward, optimizer step.
 * X is n_rows x sizes[0]; targets are Y (n_rows x target width) or labels (n_rows) for
 * FBP_CCE_LABELS. perm holds n indices into X's rows (n may be less than n_rows).
 * sample_weight (n_rows entries, or NULL for none) weights each sample's loss and gradient:
 * a batch's loss is sum_i w_i l_i / rows (Keras's sample_weight).
 * Returns the mean training loss over the samples trained. Stops before the step of the first
 * batch whose loss is not finite or whose gradient holds an entry that is not finite or exceeds
 * sqrt(largest REAL) (divergence), and returns that loss (NaN if only the gradient failed); *n_trained receives the number of samples trained (n when the epoch completed). */
double FBP(train_epoch)(const fbp_net *net, fbp_optimizer *opt, const REAL *X, const REAL *Y,
                        const int64_t *labels, const REAL *sample_weight, const int64_t *perm,
                        ptrdiff_t n, int batch_size, ptrdiff_t *n_trained);

/* `epochs` epochs of train_epoch over all n rows of X, each over a fresh shuffle of the rows
 * (fbp_shuffle into perm, n entries, before it starts) when rng is not NULL, else over perm as
 * given. losses[e] receives epoch e's return value. Returns the number of epochs completed:
 * when epoch e stops early (divergence, see train_epoch) it returns e, with *n_trained and
 * losses[e] as train_epoch left them. One call for many epochs of a small network, so that
 * its Python caller holds the GIL once per call rather than per epoch. */
int FBP(train_epochs)(const fbp_net *net, fbp_optimizer *opt, const REAL *X, const REAL *Y,
                      const int64_t *labels, const REAL *sample_weight, const fbp_rng *rng,
                      int64_t *perm, ptrdiff_t n, int batch_size, int epochs, double *losses,
                      ptrdiff_t *n_trained);

/* Mean loss over the n rows of X against Y / labels, in chunks of max_batch rows. When out is
 * not NULL it receives the network's output (n x sizes[n_layers]) with the last layer's
 * activation applied. */
double FBP(evaluate)(const fbp_net *net, const REAL *X, const REAL *Y, const int64_t *labels,
                     ptrdiff_t n, REAL *out);

/* out = the network's output for the n rows of X (n x sizes[n_layers]), last activation applied. */
void FBP(predict)(const fbp_net *net, const REAL *X, ptrdiff_t n, REAL *out);

/* Loss and the gradient of every parameter (into net->grads) for one batch of rows <= max_batch,
 * without an optimizer step; weights (rows entries, or NULL) weight each row as in train_epoch.
 * Used by train_epoch, gradient checks and fastbp.ops. */
double FBP(loss_and_grad)(const fbp_net *net, const REAL *X, const REAL *Y, const int64_t *labels,
                          const REAL *weights, int rows);
