"""The hand-written numpy baseline: the training loop a careful tutorial would write.

Forward ``Z = A @ W + b``, the activation, the fused softmax/sigmoid gradient at the output,
``dW = A.T @ dZ`` backward, and torch.optim's SGD/Adam updated in place, one parameter at a
time. Everything stays in the workload's dtype (numpy 2 keeps float32 with Python scalars).

Each step allocates its temporaries anew, as such a loop does. In a fresh process glibc's
malloc hands the large ones (above its mmap/trim thresholds) back to the OS at every free, so
every step page-faults them in again: on "small" this loop ran 3-6x faster with
MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000 (fastbp and PyTorch did
not change). The benchmark leaves malloc as a user's script finds it.
"""
import numpy as np

REQUIRES = ["numpy"]


def versions():
    return {"numpy": np.__version__}


class Trainer:
    def __init__(self, workload, X, y, weights, seed=0):
        self.w = workload
        self.X, self.y = X, y
        self.params = [p.copy() for p in weights]
        self.state = [[np.zeros_like(p), np.zeros_like(p)] for p in self.params]
        self.t = 0
        self.rng = np.random.default_rng(seed)

    def epoch(self, order=None):
        n, B = len(self.X), self.w.batch_size
        if order is None:
            order = self.rng.permutation(n)
        for i in range(0, n, B):
            idx = order[i:i + B]
            self.step(self.X[idx], self.y[idx])

    def step(self, X, y):
        grads = self.gradients(X, y)
        if self.w.optimizer == "sgd":
            self.sgd(grads)
        else:
            self.adam(grads)

    def gradients(self, X, y):
        """Backpropagation for one batch: [dW0, db0, dW1, db1, ...] of the mean loss."""
        Ws, bs = self.params[0::2], self.params[1::2]
        activations = [X]
        for i, (W, b) in enumerate(zip(Ws, bs)):
            Z = activations[-1] @ W + b
            if i < len(Ws) - 1:
                Z = np.maximum(Z, 0) if self.w.hidden == "relu" else np.tanh(Z)
            activations.append(Z)
        dZ = self.output_gradient(activations[-1], y)
        grads = []
        for i in range(len(Ws) - 1, -1, -1):
            A = activations[i]
            grads[:0] = [A.T @ dZ, dZ.sum(axis=0)]
            if i > 0:
                dA = dZ @ Ws[i].T
                dZ = dA * (A > 0) if self.w.hidden == "relu" else dA * (1 - A * A)
        return grads

    def output_gradient(self, Z, y):
        """d(mean loss)/dZ at the last layer's pre-activation."""
        batch = len(Z)
        if self.w.loss == "categorical_crossentropy":
            P = np.exp(Z - Z.max(axis=1, keepdims=True))
            P /= P.sum(axis=1, keepdims=True)
            P[np.arange(batch), y] -= 1
            return P / batch
        if self.w.loss == "binary_crossentropy":
            return (1 / (1 + np.exp(-Z)) - y) / batch
        return 2 * (Z - y) / Z.size

    def sgd(self, grads):
        lr, momentum = self.w.opt_args["lr"], self.w.opt_args.get("momentum", 0.0)
        for p, g, (v, _) in zip(self.params, grads, self.state):
            if momentum:
                v *= momentum
                v += g
                g = v
            p -= lr * g

    def adam(self, grads):
        lr, (beta1, beta2), eps = (self.w.opt_args[k] for k in ("lr", "betas", "eps"))
        self.t += 1
        step_size = lr / (1 - beta1 ** self.t)
        root_correction = np.sqrt(1 - beta2 ** self.t)
        for p, g, (m, v) in zip(self.params, grads, self.state):
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            p -= step_size * m / (np.sqrt(v) / root_correction + eps)

    def get_weights(self):
        return [p.copy() for p in self.params]
