"""Keep your numpy training loop; swap its slow pieces for fastbp.ops.

The same tutorial-style MLP (inputs -> dense + ReLU -> dense -> softmax cross-entropy, SGD with
momentum, mini-batches) is trained twice from the same initial weights on the same shuffled
batches:

  train_numpy   the loop as tutorials write it: ``Z = X @ W + b``, ``np.maximum``, a softmax
                and its cross-entropy by hand, backprop by hand, ``v = mu*v + g; W -= lr*v``;
  train_fastbp  the same loop, each piece replaced by one fastbp.ops call writing into
                buffers allocated once.

It prints how far apart the final weights are (float rounding only: the two loops do the same
arithmetic in a different order) and the measured speed-up, the median over repeated runs.

Data: scikit-learn's digits (1797 x 64, 10 classes, standardised), or random data when
scikit-learn is not installed.

    python examples/numpy_to_fastbp.py                      # float64, 20 epochs, 5 repeats
    python examples/numpy_to_fastbp.py --dtype float32 --epochs 5 --repeats 3
"""
import argparse
import statistics
import time

import numpy as np

from fastbp import ops


def load_data(dtype):
    """(X, y): standardised features in `dtype`, int64 class labels."""
    try:
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
    except ImportError:  # synthetic stand-in of the same shape
        rng = np.random.default_rng(1)
        centers = rng.normal(size=(10, 64))
        y = rng.integers(0, 10, 1797)
        X = centers[y] + rng.normal(size=(1797, 64))
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-8)
    return X.astype(dtype), y.astype(np.int64)


def init_params(n_in, n_hidden, n_out, dtype, seed=0):
    """He-initialised [W1, b1, W2, b2]."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n_in, n_hidden)) * np.sqrt(2 / n_in)).astype(dtype),
            np.zeros(n_hidden, dtype),
            (rng.standard_normal((n_hidden, n_out)) * np.sqrt(2 / n_hidden)).astype(dtype),
            np.zeros(n_out, dtype)]


def make_batches(n, batch_size, epochs, seed=0):
    """The shuffled mini-batches of every epoch, drawn once so both loops see the same."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(epochs):
        perm = rng.permutation(n)
        batches += [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    return batches


def train_numpy(params, X, y, batches, lr=0.05, momentum=0.9):
    """The hand-written numpy loop. Returns (final params, the loss of every batch)."""
    W1, b1, W2, b2 = [p.copy() for p in params]
    velocity = [np.zeros_like(p) for p in (W1, b1, W2, b2)]
    losses = []
    for idx in batches:
        xb, yb = X[idx], y[idx]
        n = len(idx)
        # forward
        Z1 = xb @ W1 + b1
        A1 = np.maximum(Z1, 0)
        Z2 = A1 @ W2 + b2
        # softmax + cross-entropy
        Z2 = Z2 - Z2.max(axis=1, keepdims=True)
        P = np.exp(Z2)
        P /= P.sum(axis=1, keepdims=True)
        losses.append(-np.mean(np.log(P[np.arange(n), yb])))
        # backward
        dZ2 = P
        dZ2[np.arange(n), yb] -= 1
        dZ2 /= n
        dW2 = A1.T @ dZ2
        db2 = dZ2.sum(axis=0)
        dA1 = dZ2 @ W2.T
        dZ1 = dA1 * (Z1 > 0)
        dW1 = xb.T @ dZ1
        db1 = dZ1.sum(axis=0)
        # SGD with momentum
        for p, g, v in zip((W1, b1, W2, b2), (dW1, db1, dW2, db2), velocity):
            v *= momentum
            v += g
            p -= lr * v
    return [W1, b1, W2, b2], losses


def train_fastbp(params, X, y, batches, lr=0.05, momentum=0.9):
    """The same loop with fastbp.ops: same math, one kernel per piece, no allocation in the
    loop except numpy's own gather X[idx] (kept to stay the same loop)."""
    W1, b1, W2, b2 = [p.copy() for p in params]
    velocity = [np.zeros_like(p) for p in (W1, b1, W2, b2)]
    grads = [np.empty_like(p) for p in (W1, b1, W2, b2)]
    dW1, db1, dW2, db2 = grads
    batch_size = max(len(idx) for idx in batches)
    A1_buf = np.empty((batch_size, W1.shape[1]), W1.dtype)
    Z2_buf = np.empty((batch_size, W2.shape[1]), W2.dtype)
    dA1_buf = np.empty_like(A1_buf)
    losses = []
    for idx in batches:
        xb, yb = X[idx], y[idx]
        n = len(idx)
        # forward: A1 = relu(xb @ W1 + b1); Z2 = A1 @ W2 + b2
        A1 = ops.dense_forward(xb, W1, b1, "relu", out=A1_buf[:n])
        Z2 = ops.dense_forward(A1, W2, b2, out=Z2_buf[:n])
        # softmax + cross-entropy, the gradient w.r.t. the logits written over them
        loss, dZ2 = ops.softmax_cross_entropy(Z2, yb, out=Z2)
        losses.append(loss)
        # backward
        dA1, _, _ = ops.dense_backward(A1, W2, dZ2, dX=dA1_buf[:n], dW=dW2, db=db2)
        dZ1 = ops.activation_backward(A1, dA1, "relu", out=dA1)
        ops.dense_backward(xb, W1, dZ1, dW=dW1, db=db1, need_dX=False)
        # SGD with momentum, in place
        for p, g, v in zip((W1, b1, W2, b2), grads, velocity):
            ops.sgd_step(p, g, lr, momentum=momentum, velocity=v)
    return [W1, b1, W2, b2], losses


def _blas_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "library default"
    counts = sorted({info["num_threads"] for info in threadpool_info()
                     if info["user_api"] == "blas"})
    return "/".join(map(str, counts)) or "unknown"


def max_relative_difference(params_a, params_b):
    """max over arrays of max|a - b| / max|a|."""
    return max(float(np.max(np.abs(a.astype(np.float64) - b)) / max(np.max(np.abs(a)), 1e-30))
               for a, b in zip(params_a, params_b))


def main(epochs=20, quick=False, dtype="float64", repeats=5, batch_size=32, hidden=128,
         blas_threads=None, verbose=True):
    """Train both loops, compare, time. `quick` runs one timed repeat of at most 2 epochs
    (for tests). `blas_threads` limits the BLAS threads of numpy and scipy alike (needs
    threadpoolctl; None leaves the libraries' defaults). Returns a dict of the measurements."""
    if blas_threads is not None:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(blas_threads):
            return main(epochs, quick, dtype, repeats, batch_size, hidden, None, verbose)
    if quick:
        epochs, repeats = min(epochs, 2), 1
    X, y = load_data(dtype)
    params = init_params(X.shape[1], hidden, int(y.max()) + 1, dtype)
    batches = make_batches(len(X), batch_size, epochs)

    # correctness: one run of each, same start, same batches
    p_numpy, loss_numpy = train_numpy(params, X, y, batches)
    p_fastbp, loss_fastbp = train_fastbp(params, X, y, batches)
    diff = max_relative_difference(p_numpy, p_fastbp)
    loss_diff = max(abs(a - b) for a, b in zip(loss_numpy, loss_fastbp))

    # speed: the median of `repeats` full runs of each, interleaved so both see the same noise
    times = {"numpy": [], "fastbp": []}
    for _ in range(repeats):
        for name, train in (("numpy", train_numpy), ("fastbp", train_fastbp)):
            start = time.perf_counter()
            train(params, X, y, batches)
            times[name].append(time.perf_counter() - start)
    t_numpy, t_fastbp = statistics.median(times["numpy"]), statistics.median(times["fastbp"])

    result = {"dtype": dtype, "epochs": epochs, "batches": len(batches),
              "max_rel_weight_diff": diff, "max_loss_diff": loss_diff,
              "first_loss": float(np.mean(loss_numpy[:len(batches) // epochs])),
              "last_loss": float(np.mean(loss_numpy[-(len(batches) // epochs):])),
              "numpy_seconds": t_numpy, "fastbp_seconds": t_fastbp,
              "speedup": t_numpy / t_fastbp}
    if verbose:
        print(f"MLP {X.shape[1]}-{hidden}-{params[2].shape[1]}, {dtype}, batch {batch_size}, "
              f"{epochs} epochs ({len(batches)} steps of SGD with momentum), "
              f"BLAS threads: {_blas_threads()}")
        print(f"mean batch loss: first epoch {result['first_loss']:.4f}, "
              f"last epoch {result['last_loss']:.4f}")
        print(f"final weights, numpy vs fastbp.ops: max relative difference {diff:.2e}; "
              f"batch losses differ by at most {loss_diff:.2e}")
        print(f"time per training run (median of {repeats}): numpy {t_numpy * 1e3:.1f} ms, "
              f"fastbp.ops {t_fastbp * 1e3:.1f} ms -> speed-up {result['speedup']:.2f}x")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="limit BLAS threads (numpy's and scipy's) with threadpoolctl")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    main(epochs=args.epochs, quick=args.quick, dtype=args.dtype, repeats=args.repeats,
         batch_size=args.batch_size, hidden=args.hidden, blas_threads=args.blas_threads)
