"""fastbp.ops: every function against the plain-numpy oracle (tests/numpy_reference.py) in both
dtypes, gradients by float64 central differences, whole training steps against the PyTorch
fixture and against Sequential, then the boundary: out= and aliasing (copy-equivalence where
allowed, rejection where not), layouts (non-contiguous, Fortran, read-only, byte-swapped),
dtypes, scalars, labels and zero-size arrays. Every rejection is matched by its message, and the
caller's arrays are checked unchanged after it."""
import doctest
import json
import pathlib
import zlib

import numpy as np
import pytest

import fastbp as fb
import numpy_reference as ref
from fastbp import ops

DTYPES = [np.float32, np.float64]
# max |actual - expected| relative to the largest |expected|, per dtype
RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}
ACTS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"]


def assert_close(actual, expected, dtype, what="", rtol=None, scale=None):
    """max |actual - expected| <= rtol * scale, scale being the largest |expected| unless
    given (a derivative computed from an activation's output, such as tanh's 1 - A**2, loses
    digits to cancellation where it is small: its error scales with the incoming gradient)."""
    actual = np.asarray(actual)
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype}, expected {dtype}"
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if expected.size == 0:
        return
    if scale is None:
        scale = np.max(np.abs(expected))
    scale = max(scale, 1e-30)
    err = np.max(np.abs(actual.astype(np.float64) - expected)) / scale
    tol = RTOL[np.dtype(dtype)] if rtol is None else rtol
    assert err <= tol, f"{what}: relative deviation {err:.3g} > {tol:.3g}"


def rng_for(*key):
    """A generator seeded by the test's own key: the same data in every run."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


# ==== the oracle: values ======================================================================
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (5, 4), (2, 3, 4), ()])
@pytest.mark.parametrize("name", ACTS)
def test_activation_forward_and_backward(name, shape, dtype):
    if name == "softmax" and shape == ():
        with pytest.raises(ValueError, match="softmax needs an array of at least 1 dimension"):
            ops.activation_forward(np.zeros((), dtype), name)
        return
    rng = rng_for(name, shape)
    Z = randn(rng, shape, dtype, 3.0)
    dA = randn(rng, shape, dtype)
    A = ops.activation_forward(Z, name)
    assert_close(A, ref.activation(Z, name), dtype, "forward")
    dZ = ops.activation_backward(A, dA, name)
    assert_close(dZ, ref.activation_grad(Z, dA, name), dtype, "backward",
                 scale=np.max(np.abs(dA)) if dA.size else None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_slope_and_convenience_functions(dtype):
    Z = randn(rng_for("conv"), (6, 5), dtype, 2.0)
    for name, fn in [("relu", ops.relu), ("sigmoid", ops.sigmoid), ("tanh", ops.tanh),
                     ("softmax", ops.softmax)]:
        np.testing.assert_array_equal(fn(Z), ops.activation_forward(Z, name))
    A = ops.leaky_relu(Z, 0.2)
    assert_close(A, ref.activation(Z, "leaky_relu", 0.2), dtype)
    dA = np.ones_like(Z)
    assert_close(ops.activation_backward(A, dA, "leaky_relu", negative_slope=0.2),
                 ref.activation_grad(Z, dA, "leaky_relu", 0.2), dtype)
    np.testing.assert_array_equal(ops.activation_forward(Z, None), Z)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_extreme_inputs_stay_finite(dtype):
    Z = np.array([[-1e4, 0.0, 1e4], [80.0, 90.0, 100.0]], dtype)
    assert np.array_equal(ops.sigmoid(Z)[0], np.array([0, 0.5, 1], dtype))
    P = ops.softmax(Z)
    assert np.isfinite(P).all()
    assert_close(P.sum(axis=1), [1, 1], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("bias_shape", ["1d", "row"])
def test_dense_forward(name, bias_shape, dtype):
    rng = rng_for("dense", name)
    X, W = randn(rng, (9, 6), dtype), randn(rng, (6, 4), dtype)
    b = randn(rng, (4,), dtype)
    if bias_shape == "row":
        b = b.reshape(1, 4)
    out = ops.dense_forward(X, W, b, name)
    assert_close(out, ref.dense_forward(X, W, b, name), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_backward(dtype):
    rng = rng_for("dense_backward")
    X, W, dZ = randn(rng, (9, 6), dtype), randn(rng, (6, 4), dtype), randn(rng, (9, 4), dtype)
    dX, dW, db = ops.dense_backward(X, W, dZ)
    for got, want, what in zip((dX, dW, db), ref.dense_backward(X, W, dZ), "dX dW db".split()):
        assert_close(got, want, dtype, what)
    none, dW2, db2 = ops.dense_backward(X, W, dZ, need_dX=False)
    assert none is None
    np.testing.assert_array_equal(dW2, dW)
    np.testing.assert_array_equal(db2, db)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 3), (10,), (2, 3, 2), ()])
def test_mse_and_bce(shape, dtype):
    rng = rng_for("pointwise losses", shape)
    P, Y = randn(rng, shape, dtype, 3.0), rng.uniform(size=shape).astype(dtype)
    for fn, oracle in ((ops.mse, ref.mse), (ops.binary_crossentropy, ref.bce_logits)):
        loss, grad = fn(P, Y)
        want_loss, want_grad = oracle(P, Y)
        assert isinstance(loss, float)
        assert loss == pytest.approx(want_loss, rel=RTOL[np.dtype(dtype)])
        assert_close(grad, want_grad, dtype, fn.__name__)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("targets", ["indices", "int32 indices", "onehot", "probs", "unnormalised"])
def test_softmax_cross_entropy(targets, dtype):
    rng = rng_for("xent", targets)
    n, k = 8, 5
    Z = randn(rng, (n, k), dtype, 3.0)
    labels = rng.integers(0, k, n)
    T = {"indices": labels, "int32 indices": labels.astype(np.int32),
         "onehot": np.eye(k, dtype=dtype)[labels],
         "probs": rng.dirichlet(np.ones(k), n).astype(dtype),
         "unnormalised": rng.uniform(size=(n, k)).astype(dtype)}[targets]
    loss, grad = ops.softmax_cross_entropy(Z, T)
    want_loss, want_grad = ref.softmax_xent(Z, T)
    assert loss == pytest.approx(want_loss, rel=RTOL[np.dtype(dtype)])
    assert_close(grad, want_grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_are_stable_for_huge_logits(dtype):
    Z = np.array([[1e4, -1e4], [-1e4, 1e4]], dtype)
    loss, grad = ops.softmax_cross_entropy(Z, np.array([1, 0]))
    assert loss == pytest.approx(2e4, rel=1e-6) and np.isfinite(grad).all()
    loss, grad = ops.binary_crossentropy(Z, np.array([[0, 1], [1, 0]]))
    assert loss == pytest.approx(1e4, rel=1e-6) and np.isfinite(grad).all()


# ==== the oracle: optimizers, torch.optim transcribed ==========================================
SGD_CONFIGS = [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.9, nesterov=True),
               dict(lr=0.1, weight_decay=0.05), dict(lr=0.1, momentum=0.5, weight_decay=0.01)]
ADAM_CONFIGS = [dict(lr=0.01), dict(lr=0.01, betas=(0.8, 0.99), eps=1e-7, weight_decay=0.1),
                dict(lr=0.01, weight_decay=0.1, decoupled=True), dict(lr=0.3, betas=(0.0, 0.5))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", SGD_CONFIGS, ids=str)
def test_sgd_step_matches_torch_transcription(config, dtype):
    rng = rng_for("sgd", str(config))
    p = randn(rng, (4, 3), dtype)
    p_ref, buf_ref = p.astype(np.float64), np.zeros((4, 3))
    velocity = np.zeros_like(p)
    momentum = config.get("momentum", 0.0)
    for step in range(5):
        g = randn(rng, (4, 3), dtype)
        result = ops.sgd_step(p, g, velocity=velocity if momentum else None, **config)
        assert result is p
        ref.sgd_step(p_ref, g.astype(np.float64), config["lr"], momentum, buf_ref,
                     config.get("nesterov", False), config.get("weight_decay", 0.0),
                     first=step == 0)
        assert_close(p, p_ref, dtype, f"step {step + 1}", rtol=RTOL[np.dtype(dtype)] * 10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=str)
def test_adam_step_matches_torch_transcription(config, dtype):
    rng = rng_for("adam", str(config))
    p = randn(rng, (5,), dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    p_ref, m_ref, v_ref = p.astype(np.float64), np.zeros(5), np.zeros(5)
    for step in range(1, 6):
        g = randn(rng, (5,), dtype)
        assert ops.adam_step(p, g, m, v, step, **config) is p
        ref.adam_step(p_ref, g.astype(np.float64), m_ref, v_ref, step, **config)
        assert_close(p, p_ref, dtype, f"step {step}", rtol=RTOL[np.dtype(dtype)] * 10)
        assert_close(m, m_ref, dtype, "m", rtol=RTOL[np.dtype(dtype)] * 10)
        assert_close(v, v_ref, dtype, "v", rtol=RTOL[np.dtype(dtype)] * 10)


# ==== gradients by float64 central differences ===============================================
def numeric_grad(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + h
        up = f()
        x[i] = saved - h
        down = f()
        x[i] = saved
        grad[i] = (up - down) / (2 * h)
    return grad


@pytest.mark.parametrize("name", ACTS)
def test_activation_backward_is_the_derivative(name):
    rng = rng_for("gradcheck act", name)
    Z = rng.standard_normal((3, 4)) + 0.05  # relu kinks: |z| > 1e-6 almost surely
    w = rng.standard_normal((3, 4))
    analytic = ops.activation_backward(ops.activation_forward(Z, name), w, name)
    numeric = numeric_grad(lambda: np.sum(w * ops.activation_forward(Z, name)), Z)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def two_layer_loss_and_grads(X, y, params, hidden, loss_fn, out_act=None):
    """A two-layer network composed from ops; returns (loss, [dW0, db0, dW1, db1])."""
    W0, b0, W1, b1 = params
    A0 = ops.dense_forward(X, W0, b0, hidden)
    out = ops.dense_forward(A0, W1, b1, out_act)
    loss, d_out = loss_fn(out, y)
    dZ1 = ops.activation_backward(out, d_out, out_act) if out_act else d_out
    dA0, dW1, db1 = ops.dense_backward(A0, W1, dZ1)
    dZ0 = ops.activation_backward(A0, dA0, hidden, out=dA0)
    _, dW0, db0 = ops.dense_backward(X, W0, dZ0, need_dX=False)
    return loss, [dW0, db0, dW1, db1]


@pytest.mark.parametrize("hidden,loss_fn,out_act,target", [
    ("tanh", ops.softmax_cross_entropy, None, "indices"),
    ("sigmoid", ops.softmax_cross_entropy, None, "probs"),
    ("leaky_relu", ops.binary_crossentropy, None, "binary"),
    ("tanh", ops.mse, "softmax", "real"),
    ("relu", ops.mse, "sigmoid", "real"),
])
def test_composed_network_gradients(hidden, loss_fn, out_act, target):
    rng = rng_for("gradcheck net", hidden, target)
    X = rng.standard_normal((5, 4))
    params = [rng.standard_normal((4, 6)), rng.standard_normal(6) * 0.1,
              rng.standard_normal((6, 3)), rng.standard_normal(3) * 0.1]
    y = {"indices": rng.integers(0, 3, 5), "probs": rng.dirichlet(np.ones(3), 5),
         "binary": rng.integers(0, 2, (5, 3)).astype(float),
         "real": rng.standard_normal((5, 3))}[target]
    _, grads = two_layer_loss_and_grads(X, y, params, hidden, loss_fn, out_act)
    for name, param, grad in zip(["dW0", "db0", "dW1", "db1"], params, grads):
        numeric = numeric_grad(
            lambda: two_layer_loss_and_grads(X, y, params, hidden, loss_fn, out_act)[0], param)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8, err_msg=name)


# ==== PyTorch fixture and Sequential: the same kernels, the same numbers ========================
FIXTURE = pathlib.Path(__file__).parent / "reference" / "torch_reference.npz"
DATA = np.load(FIXTURE, allow_pickle=False)
META = json.loads(str(DATA["__meta__"]))
CASES = {case["name"]: case for case in META["cases"]}


def fixture(case, dtype, key):
    return DATA[f"{case}/{np.dtype(dtype).name}/{key}"]


def ops_loss_and_grads(case, X, y, weights):
    """Forward, loss and backward of a fixture case written with fastbp.ops, as a user would
    write it. Cross-entropies take the last layer's logits; MSE its activated output."""
    acts, loss_name = case["activations"], case["loss"]
    L = len(acts)
    inputs, A = [], X
    for l in range(L):
        inputs.append(A)
        act = acts[l] if (l < L - 1 or loss_name == "mse") else None
        A = ops.dense_forward(A, weights[2 * l], weights[2 * l + 1], act)
    if loss_name == "mse":
        loss, dA = ops.mse(A, y)
        dZ = ops.activation_backward(A, dA, acts[-1], out=dA)
    elif loss_name == "binary_crossentropy":
        loss, dZ = ops.binary_crossentropy(A, y)
    else:
        loss, dZ = ops.softmax_cross_entropy(A, y)
    grads = [None] * (2 * L)
    for l in reversed(range(L)):
        dX, grads[2 * l], grads[2 * l + 1] = ops.dense_backward(inputs[l], weights[2 * l], dZ,
                                                                need_dX=l > 0)
        if l:
            dZ = ops.activation_backward(inputs[l], dX, acts[l - 1], out=dX)
    return loss, grads


def ops_steps(case_name, dtype, optimizer, steps):
    case = CASES[case_name]
    spec = META["optimizers"][optimizer]
    X, y = fixture(case_name, dtype, "X"), fixture(case_name, dtype, "y")
    weights = [fixture(case_name, dtype, f"{p}{l}").copy()
               for l in range(len(case["activations"])) for p in "Wb"]
    state1 = [np.zeros_like(w) for w in weights]
    state2 = [np.zeros_like(w) for w in weights]
    for step in range(1, steps + 1):
        _, grads = ops_loss_and_grads(case, X, y, weights)
        for w, g, s1, s2 in zip(weights, grads, state1, state2):
            if spec["kind"] == "sgd":
                ops.sgd_step(w, g, spec["lr"], spec["momentum"], s1, spec["nesterov"],
                             spec["weight_decay"])
            else:
                ops.adam_step(w, g, s1, s2, step, spec["lr"], tuple(spec["betas"]), spec["eps"],
                              spec["weight_decay"], decoupled=spec["kind"] == "adamw")
    return weights


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case_name", sorted(CASES))
def test_ops_gradients_match_pytorch(case_name, dtype):
    case = CASES[case_name]
    X, y = fixture(case_name, dtype, "X"), fixture(case_name, dtype, "y")
    n = len(case["activations"])
    weights = [fixture(case_name, dtype, f"{p}{l}") for l in range(n) for p in "Wb"]
    loss, grads = ops_loss_and_grads(case, X, y, weights)
    assert loss == pytest.approx(float(fixture(case_name, dtype, "loss")),
                                 rel=RTOL[np.dtype(dtype)] * 10)
    names = [f"d{p}{l}" for l in range(n) for p in "Wb"]
    for name, grad in zip(names, grads):
        assert_close(grad, fixture(case_name, dtype, name), dtype, name, rtol=1e-5
                     if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", sorted(META["optimizers"]))
@pytest.mark.parametrize("case_name", sorted(CASES))
def test_ops_optimizer_steps_match_pytorch_and_sequential(case_name, optimizer, dtype):
    """Three full-batch steps through ops equal PyTorch's (the fixture) and Sequential.fit's,
    which runs the same kernels from its C epoch driver."""
    case = CASES[case_name]
    weights = ops_steps(case_name, dtype, optimizer, META["steps"])
    n = len(case["activations"])
    names = [f"{p}{l}" for l in range(n) for p in "Wb"]
    for name, w in zip(names, weights):
        start = fixture(case_name, dtype, name)
        expected = fixture(case_name, dtype, f"{optimizer}/{name}")
        scale = max(np.max(np.abs(expected)), np.max(np.abs(start)))
        err = np.max(np.abs(w.astype(np.float64) - expected)) / scale
        assert err <= (1e-5 if dtype == np.float32 else 1e-10), f"{name}: {err:.3g}"

    spec = META["optimizers"][optimizer]
    if spec["kind"] == "sgd":
        opt = fb.SGD(lr=spec["lr"], momentum=spec["momentum"], nesterov=spec["nesterov"],
                     weight_decay=spec["weight_decay"])
    else:
        cls = fb.AdamW if spec["kind"] == "adamw" else fb.Adam
        opt = cls(lr=spec["lr"], betas=tuple(spec["betas"]), eps=spec["eps"],
                  weight_decay=spec["weight_decay"])
    sizes, acts = case["sizes"], case["activations"]
    model = fb.Sequential([fb.Dense(sizes[i], sizes[i + 1], activation=acts[i])
                           for i in range(n)], dtype=np.dtype(dtype).name)
    model.set_weights([fixture(case_name, dtype, name) for name in names])
    model.compile(loss=case["loss"], optimizer=opt)
    X, y = fixture(case_name, dtype, "X"), fixture(case_name, dtype, "y")
    model.fit(X, y, epochs=META["steps"], batch_size=len(X), shuffle=False, verbose=0)
    for name, w, w_model in zip(names, weights, model.get_weights()):
        assert_close(w, w_model, dtype, f"{name} vs Sequential",
                     rtol=1e-6 if dtype == np.float32 else 1e-13)


# ==== out= and aliasing =======================================================================
def snapshot(*arrays):
    return [np.array(a, copy=True) for a in arrays]


def assert_unchanged(arrays, saved):
    for a, s in zip(arrays, saved):
        np.testing.assert_array_equal(a, s)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTS)
def test_activation_out_copy_equivalence(name, dtype):
    rng = rng_for("alias act", name)
    Z, dA = randn(rng, (4, 5), dtype, 2.0), randn(rng, (4, 5), dtype)
    expected = ops.activation_forward(Z.copy(), name)
    out = np.empty_like(Z)
    assert ops.activation_forward(Z, name, out=out) is out
    np.testing.assert_array_equal(out, expected)
    Z_inplace = Z.copy()
    assert ops.activation_forward(Z_inplace, name, out=Z_inplace) is Z_inplace
    np.testing.assert_array_equal(Z_inplace, expected)

    A = expected
    expected_dZ = ops.activation_backward(A, dA.copy(), name)
    dA_inplace = dA.copy()
    assert ops.activation_backward(A, dA_inplace, name, out=dA_inplace) is dA_inplace
    np.testing.assert_array_equal(dA_inplace, expected_dZ)


@pytest.mark.parametrize("shift", [1, -1, 3])
def test_elementwise_out_may_overlap_its_input_in_any_way(shift):
    buf = np.linspace(-2, 2, 30)
    Z, out = buf[4:24], buf[4 + shift:24 + shift]
    expected = ops.tanh(Z.copy())
    ops.tanh(Z, out=out)
    np.testing.assert_array_equal(out, expected)

    A = np.linspace(0.1, 0.9, 20)
    buf = np.linspace(-1, 1, 30)
    dA, out = buf[4:24], buf[4 + shift:24 + shift]
    expected = ops.activation_backward(A, dA.copy(), "sigmoid")
    ops.activation_backward(A, dA, "sigmoid", out=out)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["mse", "bce", "xent labels", "xent rows"])
def test_loss_out_may_be_its_input(loss, dtype):
    rng = rng_for("alias loss", loss)
    Z = randn(rng, (6, 4), dtype, 2.0)
    fn, target = {
        "mse": (ops.mse, randn(rng, (6, 4), dtype)),
        "bce": (ops.binary_crossentropy, rng.uniform(size=(6, 4)).astype(dtype)),
        "xent labels": (ops.softmax_cross_entropy, rng.integers(0, 4, 6)),
        "xent rows": (ops.softmax_cross_entropy, rng.dirichlet(np.ones(4), 6).astype(dtype)),
    }[loss]
    expected_loss, expected_grad = fn(Z.copy(), target)
    out = np.full_like(Z, np.nan)
    assert fn(Z, target, out=out)[1] is out
    np.testing.assert_array_equal(out, expected_grad)
    loss_value, grad = fn(Z, target, out=Z)
    assert grad is Z and loss_value == expected_loss
    np.testing.assert_array_equal(Z, expected_grad)


def test_optimizer_steps_are_copy_equivalent():
    rng = rng_for("alias optim")
    p, g = rng.standard_normal(7), rng.standard_normal(7)
    p2, v1, v2 = p.copy(), np.zeros(7), np.zeros(7)
    ops.sgd_step(p, g, 0.1, 0.9, v1)
    ops.sgd_step(p2.copy(), g, 0.1, 0.9, v2)  # a copy is updated, p2 stays
    assert not np.array_equal(p, p2)
    ops.sgd_step(p2, g, 0.1, 0.9, np.zeros(7))
    np.testing.assert_array_equal(p, p2)


def test_optimizer_steps_on_a_flat_buffer_equal_per_array_steps():
    """A flat parameter buffer with per-layer views, as Sequential keeps them: one call."""
    rng = rng_for("flat")
    flat, gflat = rng.standard_normal(20), rng.standard_normal(20)
    pieces = [(0, 12), (12, 16), (16, 20)]
    separate = [flat[a:b].copy() for a, b in pieces]
    m, v = np.zeros(20), np.zeros(20)
    ops.adam_step(flat, gflat, m, v, 1, lr=0.01)
    for (a, b), p in zip(pieces, separate):
        ops.adam_step(p, gflat[a:b], np.zeros(b - a), np.zeros(b - a), 1, lr=0.01)
        np.testing.assert_array_equal(flat[a:b], p)


def buffer_views(*sizes):
    """Views of one flat buffer: pieces of the given sizes, each overlapping the next by one
    element when sizes are positive."""
    buf = np.arange(1.0, 1.0 + sum(sizes))
    views, start = [], 0
    for size in sizes:
        views.append(buf[start:start + size])
        start += size - 1
    return views


REJECTED_ALIASES = {
    "activation_backward out=A": (
        lambda A, dA, out: ops.activation_backward(A, dA, "tanh", out=A),
        "out must not share memory with A"),
    "mse out overlaps pred": (
        lambda A, dA, out: ops.mse(A[1:], dA[1:], out=A[:-1]),
        "out must be pred itself or not share memory with it"),
    "mse out is target": (
        lambda A, dA, out: ops.mse(A, dA, out=dA), "out must not share memory with target"),
    "bce out is target": (
        lambda A, dA, out: ops.binary_crossentropy(A, dA, out=dA),
        "out must not share memory with target"),
    "xent out is target rows": (
        lambda A, dA, out: ops.softmax_cross_entropy(A.reshape(2, 3), dA.reshape(2, 3),
                                                     out=dA.reshape(2, 3)),
        "out must not share memory with target"),
}


@pytest.mark.parametrize("case", sorted(REJECTED_ALIASES))
def test_rejected_aliases_of_elementwise_functions(case):
    fn, message = REJECTED_ALIASES[case]
    A, dA, out = np.linspace(0.1, 0.9, 6), np.linspace(-1, 1, 6), np.zeros(6)
    saved = snapshot(A, dA, out)
    with pytest.raises(ValueError, match=message):
        fn(A, dA, out)
    assert_unchanged([A, dA, out], saved)


def test_dense_forward_out_must_not_overlap_inputs():
    X = np.arange(6.0).reshape(2, 3)
    W = np.arange(9.0).reshape(3, 3)
    b = np.zeros(3)
    for out, name in [(X[:, :], "X"), (W[:2], "W")]:
        saved = snapshot(X, W, b)
        with pytest.raises(ValueError, match=f"out and {name} must not share memory"):
            ops.dense_forward(X, W, b, out=out)
        assert_unchanged([X, W, b], saved)
    buf = np.zeros(9)
    ops.dense_forward(X, W, buf[:3], out=buf[3:].reshape(2, 3))  # adjacent: fine
    with pytest.raises(ValueError, match="out and b must not share memory"):
        ops.dense_forward(X, W, buf[:3], out=buf[2:8].reshape(2, 3))


def test_dense_backward_outputs_must_not_overlap():
    rng = rng_for("dense alias")
    X, W, dZ = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal((4, 2))
    flat = np.zeros(3 * 2 + 2)
    dW, db = flat[:6].reshape(3, 2), flat[6:]
    ops.dense_backward(X, W, dZ, dW=dW, db=db)  # adjacent, not overlapping: fine
    assert_close(dW, ref.dense_backward(X, W, dZ)[1], np.float64)
    cases = [
        (dict(dX=X), "dX and X must not share memory"),
        (dict(dW=W), "dW and W must not share memory"),
        (dict(db=dZ[0]), "db and dZ must not share memory"),
        (dict(dW=flat[:6].reshape(3, 2), db=flat[5:7]), "db and dW must not share memory"),
        (dict(dX=np.zeros((4, 3)), dW=flat[:6].reshape(3, 2), db=flat[6:]), None),
    ]
    for kwargs, message in cases:
        arrays = [X, W, dZ, flat] + list(kwargs.values())
        saved = snapshot(*arrays)
        if message is None:
            ops.dense_backward(X, W, dZ, **kwargs)
            continue
        with pytest.raises(ValueError, match=message):
            ops.dense_backward(X, W, dZ, **kwargs)
        assert_unchanged(arrays, saved)


def test_optimizer_arrays_must_not_overlap():
    p, g, v = np.ones(4), np.full(4, 0.5), np.zeros(4)
    buf = np.zeros(8)
    cases = [
        (lambda: ops.sgd_step(p, p, 0.1), "grad and param must not share memory"),
        (lambda: ops.sgd_step(p, g, 0.1, 0.9, velocity=p), "velocity and param must not share"),
        (lambda: ops.sgd_step(p, g, 0.1, 0.9, velocity=g), "velocity and grad must not share"),
        (lambda: ops.sgd_step(buf[:4], g, 0.1, 0.9, velocity=buf[3:7]),
         "velocity and param must not share"),
        (lambda: ops.adam_step(p, g, v, v, 1), "v and m must not share memory"),
        (lambda: ops.adam_step(p, g, p, v, 1), "m and param must not share memory"),
        (lambda: ops.adam_step(p, g, v, g, 1), "v and grad must not share memory"),
    ]
    for fn, message in cases:
        saved = snapshot(p, g, v, buf)
        with pytest.raises(ValueError, match=message):
            fn()
        assert_unchanged([p, g, v, buf], saved)


# ==== layouts =================================================================================
def layouts(a):
    """The same values as `a` (2-d) in layouts that are not C-contiguous (plus read-only)."""
    wide = np.zeros((a.shape[0], 2 * a.shape[1]), a.dtype)
    wide[:, ::2] = a
    readonly = a.copy()
    readonly.flags.writeable = False
    swapped = a.astype(a.dtype.newbyteorder())
    return {"strided": wide[:, ::2], "fortran": np.asfortranarray(a),
            "reversed": a[::-1].copy()[::-1], "readonly": readonly, "byteswapped": swapped}


INPUT_CALLS = {
    "dense_forward X": (lambda a, r: ops.dense_forward(a, r["W"], r["b"], "tanh"), "X"),
    "dense_forward W": (lambda a, r: ops.dense_forward(r["X"], a, r["b"], "tanh"), "W"),
    "dense_backward X": (lambda a, r: ops.dense_backward(a, r["W"], r["dZ"]), "X"),
    "dense_backward W": (lambda a, r: ops.dense_backward(r["X"], a, r["dZ"]), "W"),
    "dense_backward dZ": (lambda a, r: ops.dense_backward(r["X"], r["W"], a), "dZ"),
    "activation_forward Z": (lambda a, r: ops.softmax(a), "dZ"),
    "activation_backward A": (lambda a, r: ops.activation_backward(a, r["dZ"], "sigmoid"), "A"),
    "activation_backward dA": (lambda a, r: ops.activation_backward(r["A"], a, "softmax"), "dZ"),
    "mse pred": (lambda a, r: ops.mse(a, r["dZ"]), "A"),
    "bce target": (lambda a, r: ops.binary_crossentropy(r["dZ"], a), "A"),
    "xent logits": (lambda a, r: ops.softmax_cross_entropy(a, r["labels"]), "dZ"),
    "xent rows": (lambda a, r: ops.softmax_cross_entropy(r["dZ"], a), "A"),
    "sgd grad": (lambda a, r: ops.sgd_step(r["W"].copy(), a, 0.1), "W"),
    "adam grad": (lambda a, r: ops.adam_step(r["W"].copy(), a, np.zeros_like(r["W"]),
                                             np.zeros_like(r["W"]), 1), "W"),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("call", sorted(INPUT_CALLS))
def test_inputs_in_any_layout_give_the_same_result(call, dtype):
    rng = rng_for("layouts", call)
    arrays = {"X": randn(rng, (5, 4), dtype), "W": randn(rng, (4, 3), dtype),
              "b": randn(rng, (3,), dtype), "dZ": randn(rng, (5, 3), dtype),
              "A": rng.uniform(0.1, 0.9, (5, 3)).astype(dtype), "labels": rng.integers(0, 3, 5)}
    fn, which = INPUT_CALLS[call]
    expected = fn(arrays[which], arrays)
    for layout, a in layouts(arrays[which]).items():
        saved = snapshot(a)
        got = fn(a, arrays)
        for g, e in zip(got if isinstance(got, tuple) else (got,),
                        expected if isinstance(expected, tuple) else (expected,)):
            if isinstance(e, np.ndarray):
                np.testing.assert_array_equal(g, e, err_msg=layout)
                assert g.dtype == np.dtype(dtype)
            else:
                assert g == e
        assert_unchanged([a], saved)


def bad_outputs(shape, dtype):
    wide = np.zeros((shape[0], 2 * shape[1]), dtype)
    readonly = np.zeros(shape, dtype)
    readonly.flags.writeable = False
    return [
        (wide[:, ::2], ValueError, "must be C-contiguous: it is written in place"),
        (np.zeros(shape, dtype, order="F"), ValueError, "must be C-contiguous"),
        (readonly, ValueError, "is read-only, but it is written in place"),
        (np.zeros(shape, np.float32 if dtype == np.float64 else np.float64), TypeError,
         "must have dtype " + np.dtype(dtype).name),
        (np.zeros(shape, np.dtype(dtype).newbyteorder()), TypeError, "must have dtype"),
        (np.zeros((shape[0], shape[1] + 1), dtype), ValueError, "must have shape"),
        ([[0.0] * shape[1]] * shape[0], TypeError, "must be a numpy.ndarray"),
    ]


OUTPUT_CALLS = {
    "dense_forward out": lambda o, r: ops.dense_forward(r["X"], r["W"], r["b"], out=o),
    "dense_backward dX": lambda o, r: ops.dense_backward(r["X"], r["W"], r["dZ"],
                                                         dX=o.T if isinstance(o, np.ndarray)
                                                         and o.shape == (3, 4) else o),
    "dense_backward dW": lambda o, r: ops.dense_backward(r["X"], r["W"], r["dZ"], dW=o),
    "activation_forward out": lambda o, r: ops.relu(r["dZ"], out=o),
    "activation_backward out": lambda o, r: ops.activation_backward(r["A"], r["dZ"], "tanh",
                                                                    out=o),
    "mse out": lambda o, r: ops.mse(r["A"], r["dZ"], out=o),
    "bce out": lambda o, r: ops.binary_crossentropy(r["A"], r["dZ"], out=o),
    "xent out": lambda o, r: ops.softmax_cross_entropy(r["A"], r["labels"], out=o),
    "sgd param": lambda o, r: ops.sgd_step(o, r["W"], 0.1),
    "sgd velocity": lambda o, r: ops.sgd_step(r["W2"], r["W"], 0.1, 0.9, velocity=o),
    "adam m": lambda o, r: ops.adam_step(r["W2"], r["W"], o, np.zeros_like(r["W"]), 1),
    "adam v": lambda o, r: ops.adam_step(r["W2"], r["W"], np.zeros_like(r["W"]), o, 1),
}
OUTPUT_SHAPES = {"dense_forward out": (5, 3), "dense_backward dX": (5, 4),
                 "dense_backward dW": (4, 3)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("call", sorted(OUTPUT_CALLS))
def test_bad_outputs_are_rejected_before_anything_is_written(call, dtype):
    rng = rng_for("outputs", call)
    arrays = {"X": randn(rng, (5, 4), dtype), "W": randn(rng, (4, 3), dtype),
              "W2": randn(rng, (4, 3), dtype), "b": randn(rng, (3,), dtype),
              "dZ": randn(rng, (5, 3), dtype), "A": rng.uniform(0.1, 0.9, (5, 3)).astype(dtype),
              "labels": rng.integers(0, 3, 5)}
    if call.startswith("sgd param") or call.startswith("adam") or call.startswith("sgd vel"):
        shape = (4, 3)
    else:
        shape = OUTPUT_SHAPES.get(call, (5, 3))
    saved = snapshot(*arrays.values())
    for out, error, message in bad_outputs(shape, dtype):
        if call == "sgd param" and message.startswith("must have shape"):
            message = "grad must have shape"  # param's shape and dtype define the others'
        elif call == "sgd param" and message == "must have dtype " + np.dtype(dtype).name:
            message = "grad has dtype " + np.dtype(dtype).name
        out_saved = snapshot(out)
        with pytest.raises(error, match=message):
            OUTPUT_CALLS[call](out, arrays)
        assert_unchanged(list(arrays.values()) + [out], saved + out_saved)


# ==== dtypes ==================================================================================
def test_float32_stays_float32_and_results_keep_the_callers_dtype():
    rng = rng_for("f32")
    X, W, b = randn(rng, (4, 3), np.float32), randn(rng, (3, 2), np.float32), np.zeros(2, np.float32)
    A = ops.dense_forward(X, W, b, "sigmoid")
    assert A.dtype == np.float32
    loss, grad = ops.softmax_cross_entropy(A, [0, 1, 1, 0])
    assert grad.dtype == np.float32 and isinstance(loss, float)
    assert all(g.dtype == np.float32 for g in ops.dense_backward(X, W, grad))


def test_integer_inputs_are_converted_and_float_inputs_must_agree():
    W = np.arange(6, dtype=np.float32).reshape(3, 2)
    X_int = np.arange(12).reshape(4, 3)
    np.testing.assert_array_equal(ops.dense_forward(X_int, W, [0, 1]),
                                  ops.dense_forward(X_int.astype(np.float32), W,
                                                    np.array([0, 1], np.float32)))
    loss, _ = ops.binary_crossentropy(np.zeros(3, np.float32), np.array([True, False, True]))
    assert loss == pytest.approx(np.log(2))
    assert ops.mse(np.zeros(2, np.float32), [0.5, 0.5])[1].dtype == np.float32  # list: weak
    cases = [
        (lambda: ops.dense_forward(X_int.astype(np.float64), W, np.zeros(2, np.float32)),
         "X has dtype float64 but W has dtype float32: fastbp.ops does not mix precisions"),
        (lambda: ops.dense_forward(X_int.astype(np.float16), W, np.zeros(2, np.float32)),
         "X has dtype float16 but W has dtype float32"),
        (lambda: ops.relu(np.arange(3)), "Z must have dtype float32 or float64, got int64"),
        (lambda: ops.relu(np.zeros(3, np.float16)), "Z must have dtype float32 or float64"),
        (lambda: ops.mse(np.zeros(2), np.zeros(2, np.complex128)),
         "target must hold real numbers, got dtype complex128"),
        (lambda: ops.sgd_step(np.zeros(2, np.float32), np.zeros(2), 0.1),
         "grad has dtype float64 but param has dtype float32"),
        (lambda: ops.sgd_step(np.zeros(2, int), np.zeros(2, int), 0.1),
         "param must have dtype float32 or float64, got int64"),
        (lambda: ops.sgd_step([1.0, 2.0], [0.0, 0.0], 0.1), "param must be a numpy.ndarray"),
        (lambda: ops.softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0])),
         "must hold integer class indices, got dtype float64"),
    ]
    for fn, message in cases:
        with pytest.raises(TypeError, match=message):
            fn()


def test_byteswapped_inputs_are_converted():
    Z = np.linspace(-1, 1, 6).reshape(2, 3)
    np.testing.assert_array_equal(ops.softmax(Z.astype(">f8")), ops.softmax(Z))
    assert ops.softmax(Z.astype(">f4")).dtype == np.float32


# ==== scalars, names, labels ==================================================================
@pytest.mark.parametrize("call,error,message", [
    (lambda p, g: ops.sgd_step(p, g, float("nan")), ValueError, "lr must be finite, got nan"),
    (lambda p, g: ops.sgd_step(p, g, float("inf")), ValueError, "lr must be finite"),
    (lambda p, g: ops.sgd_step(p, g, -0.1), ValueError, r"lr must be in \[0.0, inf\], got -0.1"),
    (lambda p, g: ops.sgd_step(p, g, "0.1"), TypeError, "lr must be a real number, got str"),
    (lambda p, g: ops.sgd_step(p, g, True), TypeError, "lr must be a real number, got bool"),
    (lambda p, g: ops.sgd_step(p, g, 0.1, -0.9), ValueError, "momentum must be in"),
    (lambda p, g: ops.sgd_step(p, g, 0.1, 0.9), ValueError, "momentum > 0 needs a velocity"),
    (lambda p, g: ops.sgd_step(p, g, 0.1, nesterov=True), ValueError,
     "nesterov=True needs momentum > 0"),
    (lambda p, g: ops.sgd_step(p, g, 0.1, 0.9, np.zeros(3), nesterov=1), TypeError,
     "nesterov must be a bool"),
    (lambda p, g: ops.sgd_step(p, g, 0.1, weight_decay=np.nan), ValueError,
     "weight_decay must be finite"),
    (lambda p, g: ops.adam_step(p, g, np.zeros(3), np.zeros(3), 0), ValueError,
     "step must be >= 1, got 0"),
    (lambda p, g: ops.adam_step(p, g, np.zeros(3), np.zeros(3), 2**63), ValueError,
     "step must be < 2"),
    (lambda p, g: ops.adam_step(p, g, np.zeros(3), np.zeros(3), 1.0), TypeError,
     "step must be an integer"),
    (lambda p, g: ops.adam_step(p, g, np.zeros(3), np.zeros(3), 1, betas=(0.9, 1.0)),
     ValueError, r"betas\[1\] must be in \[0.0, 1.0\)"),
    (lambda p, g: ops.adam_step(p, g, np.zeros(3), np.zeros(3), 1, betas=0.9), TypeError,
     "betas must be a pair"),
    (lambda p, g: ops.adam_step(p, g, np.zeros(3), np.zeros(3), 1, eps=-1e-8), ValueError,
     "eps must be in"),
    (lambda p, g: ops.adam_step(p, g, np.zeros(3), np.zeros(3), 1, lr=np.float64("inf")),
     ValueError, "lr must be finite"),
    (lambda p, g: ops.adam_step(p, g, np.zeros(3), None, 1), TypeError,
     "v must be a numpy.ndarray, got NoneType"),
    (lambda p, g: ops.adam_step(p, g, np.zeros(3), np.zeros(3), 1, decoupled="yes"),
     TypeError, "decoupled must be a bool"),
    (lambda p, g: ops.activation_forward(p, "gelu"), ValueError, "activation must be one of"),
    (lambda p, g: ops.leaky_relu(p, 0.0), ValueError, r"negative_slope must be in \(0"),
    (lambda p, g: ops.activation_backward(p, g, "leaky_relu", negative_slope=-1.0),
     ValueError, "negative_slope must be in"),
    (lambda p, g: ops.softmax(p[0]), ValueError, "softmax needs an array of at least 1"),
    (lambda p, g: ops.dense_backward(p.reshape(1, 3), np.zeros((3, 1)), np.zeros((1, 1)),
                                     dX=np.zeros((1, 3)), need_dX=False),
     ValueError, "dX was given but need_dX is False"),
])
def test_rejected_scalars_and_names(call, error, message):
    p, g = np.ones(3), np.full(3, 0.5)
    saved = snapshot(p, g)
    with pytest.raises(error, match=message):
        call(p, g)
    assert_unchanged([p, g], saved)


def test_numpy_scalars_and_zero_learning_rate_are_accepted():
    p = np.ones(3)
    ops.sgd_step(p, np.ones(3), np.float32(0.0), momentum=np.float64(0.5), velocity=np.zeros(3))
    np.testing.assert_array_equal(p, np.ones(3))
    ops.adam_step(p, np.ones(3), np.zeros(3), np.zeros(3), np.int64(1), lr=0.5)
    np.testing.assert_allclose(p, 0.5)


@pytest.mark.parametrize("labels,message", [
    (np.array([0, 3]), r"expected integers in \[0, 3\) for 3 classes, got target\[1\] = 3"),
    (np.array([-1, 0]), r"got target\[0\] = -1"),
    (np.array([0, 2**63 + 5], dtype=np.uint64), "out of range"),
    (np.array([0, 1, 2]), r"target must have shape \(2,\)"),
])
def test_class_labels_out_of_range_or_wrong_length(labels, message):
    Z, out = np.zeros((2, 3)), np.zeros((2, 3))
    saved = snapshot(Z, out, labels)
    with pytest.raises(ValueError, match=message):
        ops.softmax_cross_entropy(Z, labels, out=out)
    assert_unchanged([Z, out, labels], saved)


def test_shape_mismatches():
    X, W, b = np.zeros((4, 3)), np.zeros((3, 2)), np.zeros(2)
    cases = [
        (lambda: ops.dense_forward(X, W.T, b), r"X must have shape \(n_samples, 2\)"),
        (lambda: ops.dense_forward(X, W, np.zeros(3)), r"b must have shape \(2,\) or \(1, 2\)"),
        (lambda: ops.dense_forward(X, np.zeros(3), b), "W must be 2-d"),
        (lambda: ops.dense_forward(X[0], W, b), r"X must have shape \(n_samples, 3\)"),
        (lambda: ops.dense_backward(X, W, np.zeros((4, 3))), r"dZ must have shape \(4, 2\)"),
        (lambda: ops.dense_backward(X, W, np.zeros((4, 2)), db=np.zeros(3)),
         r"db must have shape \(2,\)"),
        (lambda: ops.mse(np.zeros(3), np.zeros(4)), r"target must have shape \(3,\)"),
        (lambda: ops.activation_backward(np.zeros(3), np.zeros(4), "relu"),
         r"dA must have shape \(3,\)"),
        (lambda: ops.softmax_cross_entropy(np.zeros(3), np.array([0])), "logits must be 2-d"),
        (lambda: ops.softmax_cross_entropy(np.zeros((2, 3)), np.zeros((2, 3, 1))),
         "target must be class indices"),
        (lambda: ops.sgd_step(np.zeros(3), np.zeros((3, 1)), 0.1), r"grad must have shape \(3,\)"),
    ]
    for fn, message in cases:
        with pytest.raises(ValueError, match=message):
            fn()


# ==== zero-size arrays ========================================================================
@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_size_arrays(dtype, capfd):
    e = np.empty
    for shape in [(0,), (0, 4), (4, 0), (2, 0, 3)]:
        for name in ACTS:
            A = ops.activation_forward(e(shape, dtype), name)
            assert A.shape == shape and A.dtype == dtype
            assert ops.activation_backward(A, e(shape, dtype), name).shape == shape
        loss, grad = ops.mse(e(shape, dtype), e(shape, dtype))
        assert np.isnan(loss) and grad.shape == shape
        assert np.isnan(ops.binary_crossentropy(e(shape, dtype), e(shape, dtype))[0])
    loss, grad = ops.softmax_cross_entropy(e((0, 3), dtype), np.zeros(0, int))
    assert np.isnan(loss) and grad.shape == (0, 3)
    with pytest.raises(ValueError, match="logits must have at least one column"):
        ops.softmax_cross_entropy(e((2, 0), dtype), np.zeros((2, 0), dtype))
    with pytest.raises(ValueError, match="logits must have at least one column"):
        ops.softmax_cross_entropy(e((2, 0), dtype), np.zeros(2, int))

    rng = rng_for("zero dense")
    for rows, n_in, n_out in [(0, 3, 2), (4, 0, 2), (4, 3, 0), (0, 0, 0)]:
        X, W = randn(rng, (rows, n_in), dtype), randn(rng, (n_in, n_out), dtype)
        b, dZ = randn(rng, (n_out,), dtype), randn(rng, (rows, n_out), dtype)
        assert_close(ops.dense_forward(X, W, b, "sigmoid"), ref.dense_forward(X, W, b, "sigmoid"),
                     dtype)
        for got, want in zip(ops.dense_backward(X, W, dZ), ref.dense_backward(X, W, dZ)):
            assert_close(got, want, dtype)
        dW, db = np.full((n_in, n_out), np.nan, dtype), np.full(n_out, np.nan, dtype)
        ops.dense_backward(X, W, dZ, dW=dW, db=db, need_dX=False)
        assert_close(dW, ref.dense_backward(X, W, dZ)[1], dtype)

    p = e(0, dtype)
    ops.sgd_step(p, e(0, dtype), 0.1, 0.9, e(0, dtype))
    ops.adam_step(p, e(0, dtype), e(0, dtype), e(0, dtype), 1)
    out, err = capfd.readouterr()
    assert out == "" and err == "", "a kernel printed (BLAS parameter error?)"


# ==== property tests: any sizes, any layout, never a crash ====================================
try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    @settings(max_examples=60, deadline=None)
    @given(rows=st.integers(0, 7), n_in=st.integers(0, 7), n_out=st.integers(0, 7),
           dtype=st.sampled_from(DTYPES), act=st.sampled_from(ACTS),
           fortran=st.booleans(), seed=st.integers(0, 2**16))
    def test_dense_any_sizes(rows, n_in, n_out, dtype, act, fortran, seed):
        rng = np.random.default_rng(seed)
        X, W = randn(rng, (rows, n_in), dtype), randn(rng, (n_in, n_out), dtype)
        b, dZ = randn(rng, (n_out,), dtype), randn(rng, (rows, n_out), dtype)
        if fortran:
            X, W = np.asfortranarray(X), np.asfortranarray(W)
        assert_close(ops.dense_forward(X, W, b, act), ref.dense_forward(X, W, b, act), dtype,
                     rtol=RTOL[np.dtype(dtype)] * 10)
        for got, want in zip(ops.dense_backward(X, W, dZ), ref.dense_backward(X, W, dZ)):
            assert_close(got, want, dtype, rtol=RTOL[np.dtype(dtype)] * 10)

    @settings(max_examples=60, deadline=None)
    @given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=3),
           dtype=st.sampled_from(DTYPES), act=st.sampled_from(ACTS),
           step=st.sampled_from([1, 2, -1]), seed=st.integers(0, 2**16))
    def test_activations_any_shape_and_stride(shape, dtype, act, step, seed):
        rng = np.random.default_rng(seed)
        big = randn(rng, [s * abs(step) for s in shape], dtype, 3.0)
        Z = big[tuple(slice(None, None, step) for _ in shape)]
        A = ops.activation_forward(Z, act)
        assert_close(A, ref.activation(Z, act), dtype)
        dA = randn(rng, Z.shape, dtype)
        assert_close(ops.activation_backward(A, dA, act), ref.activation_grad(Z, dA, act), dtype,
                     scale=np.max(np.abs(dA)) if dA.size else None)


# ==== the docstring examples ==================================================================
def test_docstring_examples():
    result = doctest.testmod(ops, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 15 and result.failed == 0


# ==== no leaks, on success and on rejection ===================================================
@pytest.mark.skipif("asan" in __import__("os").environ.get("LD_PRELOAD", ""),
                    reason="ASan holds freed memory; RSS-based checks do not apply")
def test_no_leaks_in_repeated_calls():
    import gc
    import os
    import tracemalloc

    rng = rng_for("leaks")
    X, W, b = rng.standard_normal((8, 5)), rng.standard_normal((5, 4)), np.zeros(4)
    out, dX, dW, db = np.empty((8, 4)), np.empty((8, 5)), np.empty((5, 4)), np.empty(4)
    labels, m, v = rng.integers(0, 4, 8), np.zeros((5, 4)), np.zeros((5, 4))

    def calls():
        ops.dense_forward(X, W, b, "tanh", out=out)
        ops.dense_forward(X.T.copy().T, W, b)  # a copied input
        loss, g = ops.softmax_cross_entropy(out, labels, out=out)
        ops.dense_backward(X, W, g, dX, dW, db)
        ops.activation_backward(X, dX, "sigmoid", out=dX)
        ops.adam_step(W, dW, m, v, 1, lr=0.0)
        for bad in (lambda: ops.sgd_step(W, W, 0.1),
                    lambda: ops.softmax_cross_entropy(out, labels + 10),
                    lambda: ops.relu(X, out=X.T)):
            try:
                bad()
            except ValueError:
                pass

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    for _ in range(1000):
        calls()
    gc.collect()
    tracemalloc.start()
    rss_before, traced_before = rss(), tracemalloc.get_traced_memory()[0]
    for _ in range(5000):  # about 45k calls
        calls()
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - traced_before
    tracemalloc.stop()
    grown = rss() - rss_before
    assert traced < 64 * 1024, f"traced memory grew by {traced} bytes"
    assert grown < 8 * 2**20, f"RSS grew by {grown} bytes"
