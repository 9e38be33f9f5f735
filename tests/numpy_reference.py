"""Plain-numpy reference implementations (the test oracle) for fastbp.ops.

Written for clarity, not speed, and independently of the C kernels: activation derivatives are
computed from the pre-activation Z (the kernels use the output A), losses through numpy's
log-sum-exp, the optimizers transcribed from torch.optim's single-tensor code paths
(``_single_tensor_sgd``, ``_single_tensor_adam``). Everything is computed in float64 and cast
to the dtype asked for at the end.
"""
import numpy as np


def _f64(a):
    return np.asarray(a, dtype=np.float64)


# ---- activations, forward from Z and derivative dA * act'(Z) ---------------------------------
def _softmax(Z):
    Z = _f64(Z)
    if Z.size == 0:
        return Z.copy()
    E = np.exp(Z - Z.max(axis=-1, keepdims=True))
    return E / E.sum(axis=-1, keepdims=True)


def activation(Z, name, slope=0.01):
    Z = _f64(Z)
    if name in (None, "identity"):
        return Z.copy()
    if name == "relu":
        return np.maximum(Z, 0)
    if name == "leaky_relu":
        return np.where(Z > 0, Z, slope * Z)
    if name == "sigmoid":
        return 0.5 * (1 + np.tanh(0.5 * Z))  # = 1 / (1 + exp(-Z)), without overflow
    if name == "tanh":
        return np.tanh(Z)
    if name == "softmax":
        return _softmax(Z)
    raise ValueError(name)


def activation_grad(Z, dA, name, slope=0.01):
    """dZ = dA * act'(Z), the derivative taken at the pre-activation."""
    Z, dA = _f64(Z), _f64(dA)
    if name in (None, "identity"):
        return dA.copy()
    if name == "relu":
        return dA * (Z > 0)
    if name == "leaky_relu":
        return dA * np.where(Z > 0, 1.0, slope)
    if name == "sigmoid":
        s = activation(Z, "sigmoid")
        return dA * s * (1 - s)
    if name == "tanh":
        return dA / np.cosh(Z) ** 2
    if name == "softmax":  # J^T dA with J = diag(p) - p p^T, row by row
        p = _softmax(Z)
        return p * dA - p * np.sum(p * dA, axis=-1, keepdims=True)
    raise ValueError(name)


# ---- dense layer -----------------------------------------------------------------------------
def dense_forward(X, W, b, name=None, slope=0.01):
    return activation(_f64(X) @ _f64(W) + _f64(b).reshape(-1), name, slope)


def dense_backward(X, W, dZ):
    """(dX, dW, db) of Z = X W + b."""
    X, W, dZ = _f64(X), _f64(W), _f64(dZ)
    return dZ @ W.T, X.T @ dZ, dZ.sum(axis=0)


# ---- losses: (mean loss, gradient w.r.t. the input), torch's mean reduction --------------------
def mse(P, Y):
    P, Y = _f64(P), _f64(Y)
    return np.mean((P - Y) ** 2), 2 * (P - Y) / P.size


def bce_logits(Z, Y):
    Z, Y = _f64(Z), _f64(Y)
    # -[y log s + (1-y) log(1-s)] with log s = -log(1+e^-z), log(1-s) = -log(1+e^z)
    loss = Y * np.logaddexp(0, -Z) + (1 - Y) * np.logaddexp(0, Z)
    return np.mean(loss), (activation(Z, "sigmoid") - Y) / Z.size


def _log_softmax(Z):
    Z = _f64(Z)
    m = Z.max(axis=1, keepdims=True)
    return Z - m - np.log(np.exp(Z - m).sum(axis=1, keepdims=True))


def softmax_xent(Z, target):
    """target: class indices (n,) or rows (n, k). Gradient as torch: softmax * sum(y) - y."""
    Z = _f64(Z)
    n, k = Z.shape
    target = np.asarray(target)
    Y = np.eye(k)[target] if target.ndim == 1 else _f64(target)
    logp = _log_softmax(Z)
    loss = -np.sum(Y * logp) / n
    grad = (np.exp(logp) * Y.sum(axis=1, keepdims=True) - Y) / n
    return loss, grad


# ---- optimizers: torch.optim's single-tensor updates, in place ---------------------------------
def sgd_step(p, g, lr, momentum=0.0, buf=None, nesterov=False, weight_decay=0.0, first=False):
    """torch.optim.SGD (dampening 0). `first`: torch clones the gradient into the buffer on
    the first step instead of blending; with a zero buffer that is the same number."""
    g = g + weight_decay * p if weight_decay else g.copy()
    if momentum:
        if first:
            buf[...] = g
        else:
            buf *= momentum
            buf += g
        g = g + momentum * buf if nesterov else buf
    p -= lr * g
    return p


def adam_step(p, g, m, v, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
              decoupled=False):
    """torch.optim.Adam / AdamW (amsgrad off), as _single_tensor_adam writes it."""
    beta1, beta2 = betas
    if decoupled:
        p *= 1 - lr * weight_decay
    elif weight_decay:
        g = g + weight_decay * p
    m += (g - m) * (1 - beta1)             # exp_avg.lerp_(grad, 1 - beta1)
    v *= beta2
    v += (1 - beta2) * g * g               # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1-beta2)
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    step_size = lr / bias_correction1
    denom = np.sqrt(v) / np.sqrt(bias_correction2) + eps
    p -= step_size * m / denom
    return p
