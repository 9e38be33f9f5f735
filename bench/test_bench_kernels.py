"""One benchmark group per kernel of fastbp.ops, each with the plain-numpy code a user would
write for the same work beside it, on one float32 layer of the medium workload (a batch of 128
rows, 784 -> 512) or its parameters.

    pytest bench/test_bench_kernels.py                    # timed
    pytest bench --benchmark-disable -q                   # CI: each body once, assertions only

Each benchmark first checks that fastbp and numpy agree on the result, so a timed run can only
compare right answers. BLAS runs on one thread (see test_bench_model.py).
"""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fastbp import ops

ROWS, N_IN, N_OUT, N_CLASSES = 128, 784, 512, 10
RTOL = 1e-4  # float32, different summation orders


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    f32 = np.float32
    return {
        "X": rng.normal(size=(ROWS, N_IN)).astype(f32),
        "W": (rng.normal(size=(N_IN, N_OUT)) / np.sqrt(N_IN)).astype(f32),
        "b": rng.normal(size=N_OUT).astype(f32),
        "dZ": rng.normal(size=(ROWS, N_OUT)).astype(f32),
        "logits": rng.normal(size=(ROWS, N_CLASSES)).astype(f32),
        "labels": rng.integers(0, N_CLASSES, ROWS),
        "targets01": rng.integers(0, 2, (ROWS, N_CLASSES)).astype(f32),
        "grad": rng.normal(size=N_IN * N_OUT).astype(f32),
    }


# ---- the numpy code a user would write ---------------------------------------------------
def numpy_dense_forward(X, W, b):
    return np.maximum(X @ W + b, 0)


def numpy_dense_backward(X, W, dZ):
    return dZ @ W.T, X.T @ dZ, dZ.sum(axis=0)


def numpy_mse(P, Y):
    diff = P - Y
    return float(np.mean(diff ** 2)), 2 * diff / diff.size


def numpy_bce(Z, Y):
    loss = np.mean(np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z))))
    return float(loss), (1 / (1 + np.exp(-Z)) - Y) / Z.size


def numpy_softmax_xent(Z, labels):
    shifted = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(shifted)
    total = E.sum(axis=1, keepdims=True)
    rows = np.arange(len(Z))
    loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, labels]))
    grad = E / total
    grad[rows, labels] -= 1
    return loss, grad / len(Z)


def numpy_sgd(p, g, v, lr=0.01, momentum=0.9):
    v *= momentum
    v += g
    p -= lr * v


def numpy_adam(p, g, m, v, t, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    p -= lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)


# ---- groups --------------------------------------------------------------------------------
def run(benchmark, implementation, fastbp, numpy):
    """Check that both agree, then time the one this parametrisation names."""
    def as_tuple(result):
        return result if isinstance(result, tuple) else (result,)

    for a, b in zip(as_tuple(fastbp()), as_tuple(numpy()), strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-6)
    benchmark(fastbp if implementation == "fastbp" else numpy)


IMPLEMENTATIONS = pytest.mark.parametrize("implementation", ["fastbp", "numpy"])


@IMPLEMENTATIONS
@pytest.mark.benchmark(group="dense_forward")
def test_dense_forward(benchmark, implementation, data):
    out = np.empty((ROWS, N_OUT), np.float32)
    X, W, b = data["X"], data["W"], data["b"]
    run(benchmark, implementation, lambda: ops.dense_forward(X, W, b, "relu", out=out),
        lambda: numpy_dense_forward(X, W, b))


@IMPLEMENTATIONS
@pytest.mark.benchmark(group="dense_backward")
def test_dense_backward(benchmark, implementation, data):
    X, W, dZ = data["X"], data["W"], data["dZ"]
    dX, dW, db = (np.empty_like(X), np.empty_like(W), np.empty(N_OUT, np.float32))
    run(benchmark, implementation, lambda: ops.dense_backward(X, W, dZ, dX=dX, dW=dW, db=db),
        lambda: numpy_dense_backward(X, W, dZ))


@IMPLEMENTATIONS
@pytest.mark.benchmark(group="loss_mse")
def test_mse(benchmark, implementation, data):
    P, Y = data["logits"], data["targets01"]
    out = np.empty_like(P)
    run(benchmark, implementation, lambda: ops.mse(P, Y, out=out), lambda: numpy_mse(P, Y))


@IMPLEMENTATIONS
@pytest.mark.benchmark(group="loss_binary_crossentropy")
def test_binary_crossentropy(benchmark, implementation, data):
    Z, Y = data["logits"], data["targets01"]
    out = np.empty_like(Z)
    run(benchmark, implementation, lambda: ops.binary_crossentropy(Z, Y, out=out),
        lambda: numpy_bce(Z, Y))


@IMPLEMENTATIONS
@pytest.mark.benchmark(group="loss_softmax_cross_entropy")
def test_softmax_cross_entropy(benchmark, implementation, data):
    Z, labels = data["logits"], data["labels"]
    out = np.empty_like(Z)
    run(benchmark, implementation, lambda: ops.softmax_cross_entropy(Z, labels, out=out),
        lambda: numpy_softmax_xent(Z, labels))


def optimizer_state(data, n_states):
    p = (data["grad"] * 0.1).copy()
    return [p] + [np.zeros_like(p) for _ in range(n_states)]


@IMPLEMENTATIONS
@pytest.mark.benchmark(group="optimizer_sgd_momentum")
def test_sgd_step(benchmark, implementation, data):
    g = data["grad"]
    p1, v1 = optimizer_state(data, 1)
    p2, v2 = optimizer_state(data, 1)
    for _ in range(3):  # same updates, then compare
        ops.sgd_step(p1, g, 0.01, momentum=0.9, velocity=v1)
        numpy_sgd(p2, g, v2)
    np.testing.assert_allclose(p1, p2, rtol=RTOL, atol=1e-6)
    if implementation == "fastbp":
        benchmark(lambda: ops.sgd_step(p1, g, 0.01, momentum=0.9, velocity=v1))
    else:
        benchmark(lambda: numpy_sgd(p2, g, v2))


@IMPLEMENTATIONS
@pytest.mark.benchmark(group="optimizer_adam")
def test_adam_step(benchmark, implementation, data):
    g = data["grad"]
    p1, m1, v1 = optimizer_state(data, 2)
    p2, m2, v2 = optimizer_state(data, 2)
    for t in range(1, 4):
        ops.adam_step(p1, g, m1, v1, t)
        numpy_adam(p2, g, m2, v2, t)
    np.testing.assert_allclose(p1, p2, rtol=RTOL, atol=1e-6)
    step = [4]

    def fastbp_step():
        ops.adam_step(p1, g, m1, v1, step[0])
        step[0] += 1

    benchmark(fastbp_step if implementation == "fastbp" else (lambda: numpy_adam(p2, g, m2,
                                                                                 v2, 4)))
