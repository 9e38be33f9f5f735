"""Analytic gradients (``Sequential.compute_gradients``) against float64 central differences.

Every hidden activation x every loss with each output activation it accepts (MSE after any
output activation; BCE from sigmoid or identity; CCE from softmax or identity, with class
indices, one-hot rows and probability rows) x both dtypes, for a 3-layer net 3-4-3-3.

The numerical gradient is always taken on a float64 model. The float32 model gets the same
weights and data (rounded to float32 first, so both models compute the same function) and its
float32 analytic gradient is compared with the float64 central differences. On a mismatch the
assertion prints both gradients entry by entry, as torch.autograd.gradcheck does.

ReLU-family kinks: every pre-activation of a relu/leaky_relu layer is checked to be at least
KINK_MARGIN away from 0, far more than the finite-difference step can move it, so the loss is
smooth around the point; data seeds are tried in order until the margin holds.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastbp as fb

SIZES = (3, 4, 3, 3)
N_SAMPLES = 5  # odd, so a wrong 1/n in the mean shows
STEP = 1e-6  # central-difference step in float64
KINK_MARGIN = 1e-3
# |analytic - numerical| <= RTOL * scale + ATOL, scale = the gradient array's largest entry
# (floored at a fraction of the largest gradient in the whole net)
TOLERANCE = {"float64": (1e-6, 1e-9), "float32": (1e-4, 1e-6)}

HIDDEN = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"]
# (loss, output activation, target form)
HEADS = [
    ("mse", "identity", "real"),
    ("mse", "relu", "real"),
    ("mse", "leaky_relu", "real"),
    ("mse", "sigmoid", "unit"),
    ("mse", "tanh", "unit"),
    ("mse", "softmax", "unit"),
    ("binary_crossentropy", "sigmoid", "unit"),
    ("binary_crossentropy", "identity", "unit"),
    ("categorical_crossentropy", "softmax", "labels"),
    ("categorical_crossentropy", "softmax", "onehot"),
    ("categorical_crossentropy", "softmax", "probs"),
    ("categorical_crossentropy", "identity", "labels"),
    ("categorical_crossentropy", "identity", "onehot"),
    ("categorical_crossentropy", "identity", "probs"),
]
DTYPES = ["float64", "float32"]


# ---- numpy helpers (used only to find the kinks and to draw data, never as the oracle) ----
def _act(name, Z, slope=0.01):
    if name == "relu":
        return np.maximum(Z, 0)
    if name == "leaky_relu":
        return np.where(Z > 0, Z, slope * Z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-Z))
    if name == "tanh":
        return np.tanh(Z)
    if name == "softmax":
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True)
    return Z


def smallest_kink_distance(weights, activations, X):
    """min |Z| over the pre-activations of relu/leaky_relu layers (inf if there are none)."""
    A, margin = X, np.inf
    for (W, b, act) in zip(weights[0::2], weights[1::2], activations):
        Z = A @ W + b
        if act in ("relu", "leaky_relu"):
            margin = min(margin, float(np.abs(Z).min()))
        A = _act(act, Z)
    return margin


def make_targets(form, rng, n, k):
    if form == "real":
        return rng.normal(size=(n, k))
    if form == "unit":
        return rng.uniform(0.05, 0.95, size=(n, k))
    labels = rng.integers(0, k, size=n)
    if form == "labels":
        return labels
    if form == "onehot":
        return np.eye(k)[labels]
    return rng.dirichlet(np.ones(k), size=n)  # probability rows


def round_to_float32(a):
    a = np.asarray(a)
    return a.astype(np.float32).astype(np.float64) if a.dtype.kind == "f" else a


def build(sizes, activations, loss, dtype, weights):
    model = fb.Sequential([fb.Dense(sizes[i], sizes[i + 1], activation=activations[i])
                           for i in range(len(activations))], dtype=dtype)
    model.set_weights(weights)
    model.compile(loss=loss, optimizer="sgd")
    return model


def problem(sizes, activations, target_form, seed0=0):
    """Weights, X, y (all float32-representable) with every relu kink at least KINK_MARGIN
    away; tries seeds seed0, seed0 + 1, ... in order, so the result is deterministic."""
    for seed in range(seed0, seed0 + 100):
        rng = np.random.default_rng(seed)
        weights = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            weights.append(rng.uniform(-1, 1, size=(fan_in, fan_out)))
            weights.append(rng.normal(0, 0.5, size=fan_out))
        X = rng.normal(size=(N_SAMPLES, sizes[0]))
        y = make_targets(target_form, rng, N_SAMPLES, sizes[-1])
        weights = [round_to_float32(w) for w in weights]
        X, y = round_to_float32(X), round_to_float32(y)
        if smallest_kink_distance(weights, activations, X) > KINK_MARGIN:
            return weights, X, y
    raise AssertionError("no seed keeps the relu pre-activations away from 0")


def numerical_gradients(model, X, y, step=STEP):
    """Central differences of model.evaluate(X, y) with respect to every parameter, by
    perturbing the live views layer.W / layer.b of a float64 model in place."""
    assert model.dtype == np.float64
    grads = []
    for layer in model.layers:
        for param in (layer.W, layer.b):
            grad = np.zeros(param.shape)
            for index in np.ndindex(param.shape):
                original = param[index]
                param[index] = original + step
                plus = model.evaluate(X, y)
                param[index] = original - step
                minus = model.evaluate(X, y)
                param[index] = original
                grad[index] = (plus - minus) / (2 * step)
            grads.append(grad)
    return grads


def gradcheck_report(names, analytic, numerical, rtol, atol):
    """None if every entry agrees, else a gradcheck-style listing of both gradients."""
    global_scale = max(float(np.abs(g).max()) for g in numerical)
    lines = []
    for name, a, n in zip(names, analytic, numerical):
        a = np.asarray(a, np.float64)
        scale = max(float(np.abs(n).max()), 1e-3 * global_scale)
        bad = np.abs(a - n) > rtol * scale + atol
        if bad.any():
            lines.append(f"{name}: {int(bad.sum())} of {bad.size} entries differ "
                         f"(tolerance {rtol:g} * {scale:.3g} + {atol:g})")
            lines.append(f"  {'index':>10} {'analytical':>16} {'numerical':>16} {'diff':>11}")
            for index in np.ndindex(a.shape):
                mark = " <--" if bad[index] else ""
                lines.append(f"  {str(index):>10} {a[index]:16.9g} {n[index]:16.9g} "
                             f"{a[index] - n[index]:11.3g}{mark}")
    if not lines:
        return None
    return "gradient mismatch, analytical vs numerical (float64 central differences):\n" + \
        "\n".join(lines)


def param_names(n_layers):
    return [f"{p}{i}" for i in range(n_layers) for p in ("W", "b")]


def check_gradients(sizes, activations, loss, target_form, dtype, seed0=0):
    weights, X, y = problem(sizes, activations, target_form, seed0)
    reference = build(sizes, activations, loss, "float64", weights)
    numerical = numerical_gradients(reference, X, y)
    model = reference if dtype == "float64" else build(sizes, activations, loss, dtype, weights)
    before = model.get_weights()
    loss_value, analytic = model.compute_gradients(X, y)
    for a, w in zip(analytic, before):
        assert a.dtype == np.dtype(dtype) and a.shape == w.shape
    # compute_gradients changes no weight, and reports the loss evaluate reports
    for w0, w1 in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    assert loss_value == pytest.approx(reference.evaluate(X, y),
                                       rel=1e-12 if dtype == "float64" else 1e-5)
    # the gradient is not trivially zero: the check would then prove nothing
    assert max(float(np.abs(g).max()) for g in numerical) > 1e-4
    report = gradcheck_report(param_names(len(activations)), analytic, numerical,
                              *TOLERANCE[dtype])
    assert report is None, report


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss,output,target_form", HEADS,
                         ids=[f"{l}-{o}-{t}" for l, o, t in HEADS])
@pytest.mark.parametrize("hidden", HIDDEN)
def test_gradients_match_central_differences(hidden, loss, output, target_form, dtype):
    activations = (hidden, hidden, output)
    check_gradients(SIZES, activations, loss, target_form, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_single_output_bce_and_mse(dtype):
    """One output unit: y of shape (n,) is accepted and the gradient is still right."""
    check_gradients((2, 3, 1), ("tanh", "sigmoid"), "binary_crossentropy", "unit", dtype)
    check_gradients((2, 3, 1), ("leaky_relu", "identity"), "mse", "real", dtype)


def test_report_shows_both_gradients_with_indices():
    """The failure listing itself: a wrong entry is marked with its index and both values."""
    numerical = [np.array([[1.0, 2.0]]), np.array([0.5])]
    analytic = [np.array([[1.0, 2.5]]), np.array([0.5])]
    report = gradcheck_report(["W0", "b0"], analytic, numerical, 1e-6, 1e-9)
    assert "W0: 1 of 2 entries differ" in report
    assert "(0, 1)" in report and "2.5" in report and "<--" in report
    assert "b0" not in report
    assert gradcheck_report(["W0", "b0"], numerical, numerical, 1e-6, 1e-9) is None


ACTIVATION_NAMES = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"]


@st.composite
def networks(draw):
    """A random small net: 1-3 layers of widths 1-4, a loss and an output activation it
    accepts, a target form, a dtype and a data seed."""
    n_layers = draw(st.integers(1, 3))
    loss = draw(st.sampled_from(["mse", "binary_crossentropy", "categorical_crossentropy"]))
    sizes = [draw(st.integers(1, 4)) for _ in range(n_layers)]
    if loss == "categorical_crossentropy":
        out, form = draw(st.sampled_from(["softmax", "identity"])), draw(
            st.sampled_from(["labels", "onehot", "probs"]))
        k = draw(st.integers(2, 4))
    elif loss == "binary_crossentropy":
        out, form, k = draw(st.sampled_from(["sigmoid", "identity"])), "unit", draw(
            st.integers(1, 3))
    else:
        out = draw(st.sampled_from(ACTIVATION_NAMES))
        form = "unit" if out in ("sigmoid", "softmax") else "real"
        k = draw(st.integers(2 if out == "softmax" else 1, 4))
    hidden = [draw(st.sampled_from([a for a in ACTIVATION_NAMES if a != "softmax"] +
                                   (["softmax"] if width >= 2 else [])))
              for width in sizes[1:]]
    return (tuple(sizes + [k]), tuple(hidden + [out]), loss, form,
            draw(st.sampled_from(DTYPES)), draw(st.integers(0, 10_000)))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(networks())
def test_gradients_random_architectures(net):
    sizes, activations, loss, form, dtype, seed = net
    try:
        weights, X, y = problem(sizes, activations, form, seed)
    except AssertionError:
        assume(False)
    reference = build(sizes, activations, loss, "float64", weights)
    numerical = numerical_gradients(reference, X, y)
    # a net whose every gradient vanishes (all relu units dead) checks nothing; skip it
    assume(max(float(np.abs(g).max()) for g in numerical) > 1e-4)
    model = reference if dtype == "float64" else build(sizes, activations, loss, dtype, weights)
    _, analytic = model.compute_gradients(X, y)
    report = gradcheck_report(param_names(len(activations)), analytic, numerical,
                              *TOLERANCE[dtype])
    assert report is None, report
