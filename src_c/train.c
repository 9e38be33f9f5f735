/* train.c -- gather, forward, fused loss, backward and optimizer step over a whole network:
 * the epoch, evaluate and predict drivers. Nothing here allocates: every buffer is the model's
 * flat parameter/gradient buffer or its workspace (net->work), laid out as:
 *     Xb      max_batch x sizes[0]            the gathered batch of inputs
 *     Yb      max_batch x sizes[L]            the gathered batch of targets
 *     out_l   max_batch x sizes[l+1], l < L   each layer's output
 *     delta0  max_batch x widest layer        gradients flowing backwards,
 *     delta1  max_batch x widest layer        two buffers used in turn
 *     Wt      the largest fbp_transpose_scratch_len of layers 1..L-1 (W^T for dense_backward) */
#include <string.h>

#include "fastbp.h"

#ifndef REAL

ptrdiff_t fbp_weight_offset(const fbp_net *net, int layer)
{
    ptrdiff_t offset = 0;
    for (int l = 0; l < layer; l++)
        offset += (ptrdiff_t)net->sizes[l] * net->sizes[l + 1] + net->sizes[l + 1];
    return offset;
}

ptrdiff_t fbp_n_params(const fbp_net *net) { return fbp_weight_offset(net, net->n_layers); }

int fbp_target_width(const fbp_net *net)
{
    return net->loss == FBP_CCE_LABELS ? 1 : net->sizes[net->n_layers];
}

static int widest_layer(const fbp_net *net)
{
    int widest = 0;
    for (int l = 1; l <= net->n_layers; l++)
        if (net->sizes[l] > widest) widest = net->sizes[l];
    return widest;
}

/* Offset of layer `layer`'s output buffer in the workspace (layer == n_layers: the deltas). */
static ptrdiff_t output_offset(const fbp_net *net, int layer)
{
    const ptrdiff_t B = net->max_batch;
    ptrdiff_t offset = B * net->sizes[0] + B * net->sizes[net->n_layers];
    for (int l = 0; l < layer; l++) offset += B * net->sizes[l + 1];
    return offset;
}

/* Offset of the transposed-weights scratch (after the two delta buffers) and its length. */
static ptrdiff_t scratch_offset(const fbp_net *net)
{
    return output_offset(net, net->n_layers) + 2 * (ptrdiff_t)net->max_batch * widest_layer(net);
}

static ptrdiff_t scratch_len(const fbp_net *net)
{
    ptrdiff_t len = 0;
    for (int l = 1; l < net->n_layers; l++) { /* layer 0 computes no input gradient */
        const ptrdiff_t n = fbp_transpose_scratch_len(net->sizes[l], net->sizes[l + 1]);
        len = n > len ? n : len;
    }
    return len;
}

ptrdiff_t fbp_workspace_len(const fbp_net *net) { return scratch_offset(net) + scratch_len(net); }

static int is_cross_entropy(int loss) { return loss != FBP_MSE; }

void fbp_shuffle(const fbp_rng *rng, ptrdiff_t n, int64_t *perm)
{
    for (ptrdiff_t i = 0; i < n; i++) perm[i] = i;
    for (ptrdiff_t i = n - 1; i >= 1; i--) {
        const ptrdiff_t j = (ptrdiff_t)rng->interval(rng->state, (uint64_t)i);
        const int64_t swap = perm[j];
        perm[j] = perm[i];
        perm[i] = swap;
    }
}

#define FBP_TEMPLATE_FILE "train.c"
#include "template.h"

#else /* the template, instantiated for float and double */

static REAL *FBP(layer_output)(const fbp_net *net, int layer)
{
    return (REAL *)net->work + output_offset(net, layer);
}

static REAL *FBP(delta)(const fbp_net *net, int which)
{
    return (REAL *)net->work + output_offset(net, net->n_layers) +
           (ptrdiff_t)which * net->max_batch * widest_layer(net);
}

static const REAL *FBP(weights)(const fbp_net *net, const REAL *buffer, int layer)
{
    return buffer + fbp_weight_offset(net, layer);
}

/* The activation the forward pass applies at `layer`: cross-entropy losses take the output
 * layer's logits and fuse its sigmoid/softmax into the loss gradient. */
static int FBP(forward_activation)(const fbp_net *net, int layer, int logits)
{
    return (logits && layer == net->n_layers - 1) ? FBP_IDENTITY : net->activations[layer];
}

/* Forward pass of `rows` rows of X; the last layer writes into `final` (rows x outputs) when
 * given, else into its workspace buffer. Returns the output, logits when `logits` is set. */
static REAL *FBP(forward)(const fbp_net *net, const REAL *X, int rows, int logits, REAL *final)
{
    const int L = net->n_layers;
    const REAL *A = X;
    REAL *Y = NULL;
    for (int l = 0; l < L; l++) {
        const REAL *W = FBP(weights)(net, (const REAL *)net->params, l);
        const REAL *b = W + (ptrdiff_t)net->sizes[l] * net->sizes[l + 1];
        Y = (l == L - 1 && final) ? final : FBP(layer_output)(net, l);
        FBP(dense_forward)(&net->blas, rows, net->sizes[l], net->sizes[l + 1], A, W, b,
                           FBP(forward_activation)(net, l, logits), net->slopes[l], Y);
        A = Y;
    }
    return Y;
}

/* Loss of the network output against the targets; d(loss)/d(output) into grad if not NULL. */
static double FBP(output_loss)(const fbp_net *net, int rows, const REAL *output, const REAL *Y,
                               const int64_t *labels, REAL *grad)
{
    const int k = net->sizes[net->n_layers];
    switch (net->loss) {
    case FBP_BCE: return FBP(bce_logits)(rows, k, output, Y, grad);
    case FBP_CCE_LABELS: return FBP(softmax_xent_labels)(rows, k, output, labels, grad);
    case FBP_CCE_PROBS: return FBP(softmax_xent_probs)(rows, k, output, Y, grad);
    default: return FBP(mse)(rows, k, output, Y, grad);
    }
}

/* As output_loss, with row i's loss and gradient scaled by weights[i] when weights is not NULL:
 * loss = sum_i w_i l_i / rows (Keras's sample_weight, reduced over the batch size). Each row is
 * its own one-row call, so l_i and its gradient come from the kernel unscaled and are scaled
 * here by w_i / rows. */
static double FBP(weighted_loss)(const fbp_net *net, int rows, const REAL *output, const REAL *Y,
                                 const int64_t *labels, const REAL *weights, REAL *grad)
{
    if (!weights) return FBP(output_loss)(net, rows, output, Y, labels, grad);
    const int k = net->sizes[net->n_layers], tw = fbp_target_width(net);
    double total = 0;
    for (int i = 0; i < rows; i++) {
        REAL *g = grad ? grad + (ptrdiff_t)i * k : NULL;
        const REAL *y = Y ? Y + (ptrdiff_t)i * tw : NULL;
        total += (double)weights[i] * FBP(output_loss)(net, 1, output + (ptrdiff_t)i * k, y,
                                                        labels ? labels + i : NULL, g);
        if (g) {
            const REAL scale = (REAL)((double)weights[i] / rows);
            for (int j = 0; j < k; j++) g[j] *= scale;
        }
    }
    return total / (double)rows;
}

/* The largest gradient train_epoch lets through: sqrt(largest REAL), about 1.8e19 in float32
 * and 1.3e154 in double. A larger gradient means training has diverged; stopping there also
 * keeps lr * g from overflowing in the update, which would write inf into the weights. */
#undef FBP_GRAD_LIMIT
#if REAL_IS_DOUBLE
#define FBP_GRAD_LIMIT 1.3407807929942596e154
#else
#define FBP_GRAD_LIMIT 1.8446742974197924e19f
#endif

/* max_i |x_i|, or NaN when x holds a NaN. */
FBP_DISPATCH
static REAL FBP(max_abs)(ptrdiff_t n, const REAL *x)
{
    REAL m = 0;
    int nan = 0;
#pragma omp simd reduction(max : m) reduction(| : nan)
    for (ptrdiff_t i = 0; i < n; i++) {
        const REAL a = fabs(x[i]);
        m = a > m ? a : m;
        nan |= a != a;
    }
    return nan ? (REAL)NAN : m;
}

/* 1 when a layer's gradients, dW = A^T dZ (in x out) and db = the column sums of dZ (db follows
 * dW in the flat buffer), are all finite and within FBP_GRAD_LIMIT. When the factors A
 * (rows x in) and dZ (rows x out) hold fewer values than the gradients (small batches, wide
 * layers), it is decided from them:
 *     |dW_ij| <= sum_r |A_ri| |dZ_rj| <= rows max|A| max|dZ| = bound,  |db_j| <= rows max|dZ|,
 * and a sum of `rows` rounded products lies within twice that (rows < 2^22), so 2 bound <=
 * limit proves every gradient within; otherwise (or with a NaN, whose bound is NaN) the
 * gradients are scanned. The answer is always the scan's, only cheaper. */
static int FBP(layer_grads_sane)(int rows, int in, int out, const REAL *A, const REAL *dZ,
                                 const REAL *dW)
{
    const ptrdiff_t n_grads = (ptrdiff_t)in * out + out;
    if ((ptrdiff_t)rows * (in + out) < n_grads && rows < (1 << 22)) {
        const double max_dZ = FBP(max_abs)((ptrdiff_t)rows * out, dZ);
        const double max_A = FBP(max_abs)((ptrdiff_t)rows * in, A);
        const double bound_dW = (double)rows * max_A * max_dZ, bound_db = (double)rows * max_dZ;
        if (2 * bound_dW <= (double)FBP_GRAD_LIMIT && 2 * bound_db <= (double)FBP_GRAD_LIMIT)
            return 1; /* (false for a NaN bound) */
    }
    return FBP(all_in_range)(n_grads, dW, -FBP_GRAD_LIMIT, FBP_GRAD_LIMIT);
}

/* loss_and_grad, and with sane not NULL, *sane = 1 when every gradient is finite and within
 * FBP_GRAD_LIMIT (checked layer by layer while each layer's factors are in cache), else 0. */
static double FBP(backprop)(const fbp_net *net, const REAL *X, const REAL *Y,
                            const int64_t *labels, const REAL *weights, int rows, int *sane)
{
    const int L = net->n_layers;
    const int ce = is_cross_entropy(net->loss);
    const REAL *output = FBP(forward)(net, X, rows, ce, NULL);
    REAL *dZ = FBP(delta)(net, 0);
    REAL *scratch = scratch_len(net) ? (REAL *)net->work + scratch_offset(net) : NULL;
    const double loss = FBP(weighted_loss)(net, rows, output, Y, labels, weights, dZ);
    if (!ce) /* MSE saw the activated output: chain through the output activation */
        FBP(activation_backward)(net->activations[L - 1], net->slopes[L - 1], rows,
                                 net->sizes[L], output, dZ);
    if (sane) *sane = 1;
    for (int l = L - 1; l >= 0; l--) {
        const int in = net->sizes[l], out = net->sizes[l + 1];
        const REAL *input = l ? FBP(layer_output)(net, l - 1) : X;
        const REAL *W = FBP(weights)(net, (const REAL *)net->params, l);
        REAL *dW = (REAL *)net->grads + fbp_weight_offset(net, l);
        REAL *db = dW + (ptrdiff_t)in * out;
        REAL *dX = l ? FBP(delta)(net, (L - l) % 2) : NULL;
        FBP(dense_backward)(&net->blas, rows, in, out, input, W, dZ, dW, db, dX, scratch);
        if (sane && *sane) *sane = FBP(layer_grads_sane)(rows, in, out, input, dZ, dW);
        if (l) { /* dZ of the layer below: its output gradient times its activation's slope */
            FBP(activation_backward)(net->activations[l - 1], net->slopes[l - 1], rows, in,
                                     input, dX);
            dZ = dX;
        }
    }
    return loss;
}

double FBP(loss_and_grad)(const fbp_net *net, const REAL *X, const REAL *Y, const int64_t *labels,
                          const REAL *weights, int rows)
{
    return FBP(backprop)(net, X, Y, labels, weights, rows, NULL);
}

/* Copy the rows idx[0..rows) of src (width cols) into dst, contiguously. */
static void FBP(gather_rows)(int rows, int cols, const REAL *src, const int64_t *idx, REAL *dst)
{
    const size_t row_bytes = (size_t)cols * sizeof(REAL);
    for (int i = 0; i < rows; i++)
        memcpy(dst + (ptrdiff_t)i * cols, src + (ptrdiff_t)idx[i] * cols, row_bytes);
}

double FBP(train_epoch)(const fbp_net *net, fbp_optimizer *opt, const REAL *X, const REAL *Y,
                        const int64_t *labels, const REAL *sample_weight, const int64_t *perm,
                        ptrdiff_t n, int batch_size, ptrdiff_t *n_trained)
{
    const int in = net->sizes[0], k = net->sizes[net->n_layers];
    const ptrdiff_t n_params = fbp_n_params(net);
    REAL *Xb = (REAL *)net->work;
    REAL *Yb = Xb + (ptrdiff_t)net->max_batch * in;
    double total = 0;
    for (ptrdiff_t start = 0; start < n; start += batch_size) {
        const int rows = (int)(n - start < batch_size ? n - start : batch_size);
        const int64_t *idx = perm + start;
        FBP(gather_rows)(rows, in, X, idx, Xb);
        if (net->loss == FBP_CCE_LABELS)
            for (int i = 0; i < rows; i++) net->batch_labels[i] = labels[idx[i]];
        else
            FBP(gather_rows)(rows, k, Y, idx, Yb);
        REAL *wb = sample_weight ? (REAL *)net->batch_weights : NULL;
        if (wb)
            for (int i = 0; i < rows; i++) wb[i] = sample_weight[idx[i]];
        int sane;
        const double loss = FBP(backprop)(net, Xb, Yb, net->batch_labels, wb, rows, &sane);
        /* Stop before a step that would write inf/NaN into the weights. The loss is summed in
         * double, so in float32 it can be finite while a gradient has overflowed: check both. */
        if (!isfinite(loss) || !sane) {
            *n_trained = start;
            return isfinite(loss) ? NAN : loss;
        }
        FBP(optimizer_step)(opt, n_params, (REAL *)net->params, (const REAL *)net->grads);
        total += loss * rows;
    }
    *n_trained = n;
    return n ? total / (double)n : 0.0;
}

int FBP(train_epochs)(const fbp_net *net, fbp_optimizer *opt, const REAL *X, const REAL *Y,
                      const int64_t *labels, const REAL *sample_weight, const fbp_rng *rng,
                      int64_t *perm, ptrdiff_t n, int batch_size, int epochs, double *losses,
                      ptrdiff_t *n_trained)
{
    for (int e = 0; e < epochs; e++) {
        if (rng) fbp_shuffle(rng, n, perm);
        losses[e] = FBP(train_epoch)(net, opt, X, Y, labels, sample_weight, perm, n, batch_size,
                                     n_trained);
        if (*n_trained < n) return e;
    }
    return epochs;
}

double FBP(evaluate)(const fbp_net *net, const REAL *X, const REAL *Y, const int64_t *labels,
                     ptrdiff_t n, REAL *out)
{
    const int L = net->n_layers, in = net->sizes[0], k = net->sizes[L];
    const int tw = fbp_target_width(net);
    const int ce = is_cross_entropy(net->loss);
    double total = 0;
    for (ptrdiff_t start = 0; start < n; start += net->max_batch) {
        const int rows = (int)(n - start < net->max_batch ? n - start : net->max_batch);
        REAL *final = out ? out + start * k : NULL;
        REAL *output = FBP(forward)(net, X + start * in, rows, ce, final);
        total += FBP(output_loss)(net, rows, output, Y ? Y + start * tw : NULL,
                                  labels ? labels + start : NULL, NULL) * rows;
        if (out && ce) /* the loss saw logits; the caller gets the declared output activation */
            FBP(activation_forward)(net->activations[L - 1], net->slopes[L - 1], rows, k, output);
    }
    return n ? total / (double)n : 0.0;
}

void FBP(predict)(const fbp_net *net, const REAL *X, ptrdiff_t n, REAL *out)
{
    const int in = net->sizes[0], k = net->sizes[net->n_layers];
    for (ptrdiff_t start = 0; start < n; start += net->max_batch) {
        const int rows = (int)(n - start < net->max_batch ? n - start : net->max_batch);
        FBP(forward)(net, X + start * in, rows, 0, out + start * k);
    }
}

#endif /* REAL */
