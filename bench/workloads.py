"""The benchmark workloads of issue 3: network, loss, optimizer, batch size and data size,
plus what every peer shares so that they train the same thing.

Shared by all peers (bench/peers/*) and by the pytest benchmarks:
  - ``make_data``: synthetic, seeded data of the workload's shape and dtype (labels from a
    random "teacher", so there is something to learn);
  - ``initial_weights``: one seeded Glorot-uniform start, ``[W0, b0, W1, b1, ...]`` with
    ``W`` of shape (in, out) as fastbp's ``get_weights``; every peer loads it;
  - ``reference_loss``: the mean training loss of a weight list on the data, in numpy, so the
    peers' results are judged by one formula.
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Workload:
    name: str
    sizes: tuple            # layer widths, input first: (64, 32, 10) is 64-32-10
    hidden: str             # hidden-layer activation: "relu" or "tanh"
    loss: str               # "categorical_crossentropy", "binary_crossentropy" or "mse"
    optimizer: str          # "sgd" or "adam"
    opt_args: dict = field(hash=False)  # torch.optim's names: lr, momentum, betas, eps
    batch_size: int = 32
    n_samples: int = 1000
    dtype: str = "float32"
    epochs: int = 10        # measured epochs by default (after one warm-up epoch)

    @property
    def n_weights(self):
        """Entries of the weight matrices (biases not counted)."""
        return sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def flop_per_epoch(self):
        """6 x weights x samples: forward 2, backward 4 (dW and dA) flop per weight and sample."""
        return 6 * self.n_weights * self.n_samples

    @property
    def steps_per_epoch(self):
        return -(-self.n_samples // self.batch_size)

    def describe(self):
        arch = "-".join(str(s) for s in self.sizes)
        out = {"categorical_crossentropy": "softmax+CE", "binary_crossentropy": "sigmoid+BCE",
               "mse": "MSE"}[self.loss]
        opt = self.optimizer.upper() if self.optimizer == "sgd" else "Adam"
        if self.opt_args.get("momentum"):
            opt += f" momentum {self.opt_args['momentum']}"
        return (f"{self.name}: {arch} {self.hidden}, {out}, {opt} lr {self.opt_args['lr']}, "
                f"batch {self.batch_size}, {self.n_samples} samples, {self.dtype}")


SGD_MOMENTUM = {"lr": 0.01, "momentum": 0.9}
ADAM = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8}

WORKLOADS = {w.name: w for w in [
    Workload("tiny", (64, 32, 10), "relu", "categorical_crossentropy", "sgd", SGD_MOMENTUM,
             batch_size=32, n_samples=1797, epochs=20),
    Workload("online", (64, 32, 10), "relu", "categorical_crossentropy", "sgd", SGD_MOMENTUM,
             batch_size=1, n_samples=1797, epochs=3),
    Workload("small", (784, 128, 10), "relu", "categorical_crossentropy", "adam", ADAM,
             batch_size=64, n_samples=10000, epochs=5),
    Workload("medium", (784, 512, 512, 10), "relu", "categorical_crossentropy", "adam", ADAM,
             batch_size=128, n_samples=10000, epochs=5),
    Workload("large", (2048, 2048, 2048, 10), "relu", "categorical_crossentropy", "adam", ADAM,
             batch_size=256, n_samples=8192, epochs=3),
    Workload("regression", (10, 64, 64, 1), "tanh", "mse", "sgd", {"lr": 0.01},
             batch_size=32, n_samples=20000, dtype="float64", epochs=3),
    Workload("binary", (30, 16, 1), "relu", "binary_crossentropy", "adam", ADAM,
             batch_size=16, n_samples=569, epochs=20),
]}


def make_data(workload, seed=0, n_samples=None):
    """(X, y) for the workload: X standard normal; y int64 class indices (CE), a (n, 1) 0/1
    column (BCE) or a (n, 1) smooth function of X (MSE), in the workload's dtype."""
    rng = np.random.default_rng(seed)
    n = workload.n_samples if n_samples is None else n_samples
    d, k = workload.sizes[0], workload.sizes[-1]
    X = rng.standard_normal((n, d)).astype(workload.dtype)
    teacher = rng.standard_normal((d, k)) / np.sqrt(d)
    scores = X.astype(np.float64) @ teacher
    if workload.loss == "categorical_crossentropy":
        y = np.argmax(scores + 0.3 * rng.standard_normal(scores.shape), axis=1).astype(np.int64)
    elif workload.loss == "binary_crossentropy":
        y = (scores + 0.3 * rng.standard_normal(scores.shape) > 0).astype(workload.dtype)
    else:
        y = (np.sin(2 * scores) + 0.1 * rng.standard_normal(scores.shape)).astype(workload.dtype)
    return X, y


def initial_weights(workload, seed=0):
    """Glorot-uniform W (in, out), zero b, in the workload's dtype: ``[W0, b0, W1, b1, ...]``."""
    rng = np.random.default_rng(seed + 1000)
    weights = []
    for n_in, n_out in zip(workload.sizes[:-1], workload.sizes[1:]):
        limit = np.sqrt(6.0 / (n_in + n_out))
        weights.append(rng.uniform(-limit, limit, (n_in, n_out)).astype(workload.dtype))
        weights.append(np.zeros(n_out, dtype=workload.dtype))
    return weights


def forward_logits(workload, weights, X):
    """The last layer's pre-activation (for MSE: the output), in float64."""
    A = X.astype(np.float64)
    n_layers = len(weights) // 2
    for i in range(n_layers):
        Z = A @ weights[2 * i].astype(np.float64) + weights[2 * i + 1]
        A = Z if i == n_layers - 1 else (np.maximum(Z, 0) if workload.hidden == "relu"
                                        else np.tanh(Z))
    return A


def reference_loss(workload, weights, X, y):
    """Mean loss (torch.nn's reduction) of the network with these weights on (X, y)."""
    Z = forward_logits(workload, weights, X)
    if workload.loss == "categorical_crossentropy":
        Z = Z - Z.max(axis=1, keepdims=True)
        log_p = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(len(y)), y].mean())
    if workload.loss == "binary_crossentropy":
        t = y.astype(np.float64)
        return float(np.mean(np.maximum(Z, 0) - Z * t + np.log1p(np.exp(-np.abs(Z)))))
    return float(np.mean((Z - y) ** 2))


def select(names):
    """Workloads by a comma-separated string or list of names, in the order given."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    return [WORKLOADS[n] for n in names]
