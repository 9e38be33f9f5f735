"""Property-based tests of the model API: the Dense, SGD/Adam/AdamW and Sequential constructors
and every Sequential method (compile, fit, evaluate, predict, compute_gradients, get_weights,
set_weights) with arguments of every dtype, layout and shape, NaN/inf, None, sizes that must
agree drawn independently, labels out of range, huge and negative sizes and hyper-parameters of
every wrong type.

A model of the documented rules says whether each call must succeed. Then it succeeds with the
right answer (predict and evaluate against a numpy forward pass from get_weights), or raises
TypeError/ValueError with a message and leaves the model (weights, optimizer state, step)
unchanged; the caller's arrays never change.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastbp as fb
import numpy_reference as ref
from fuzz_helpers import (ALL_DTYPES, FUZZ, LAYOUTS, VALID, as_array, assert_unchanged, make,
                          perturb, raises_or_returns, snapshot, tolerance)

ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "softmax")
INITS = ("glorot_uniform", "he_uniform", "torch")
INTS_GOOD = (1, 2, 5, np.int64(3), np.uint8(4))
INTS_BAD = (0, -1, 1.0, 2.5, True, None, "3", np.float64(3), [2], 1j)
REALS_BAD = (None, "0.1", [0.1], 1j, math.nan, math.inf, -1.0, 10**400, True)


def int_ok(value, minimum):
    return (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
            and value >= minimum)


def real_ok(value, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        return False
    try:
        x = float(value)
    except OverflowError:
        return False
    if not math.isfinite(x):
        return False
    if low is not None and (x <= low if low_open else x < low):
        return False
    return high is None or (x < high if high_open else x <= high)


# ==== constructors ============================================================================
@FUZZ
@given(valid=VALID, data=st.data())
def test_dense_constructor(valid, data):
    draw = data.draw
    pick_int = st.sampled_from(INTS_GOOD if valid else INTS_GOOD + INTS_BAD + (2**31, 10**30))
    n_in, n_out = draw(pick_int), draw(pick_int)
    activation = draw(st.sampled_from(ACTIVATIONS + (None,) + (() if valid else
                                                               ("gelu", 3, "RELU"))))
    slope = draw(st.sampled_from((0.01, 0.3, 2) + (() if valid else REALS_BAD + (0, -0.1))))
    init = draw(st.sampled_from(INITS + (() if valid else ("xavier", None, 1))))
    ok = (int_ok(n_in, 1) and int_ok(n_out, 1)
          and (activation is None or activation in ACTIVATIONS)
          and not (activation == "softmax" and int_ok(n_out, 1) and n_out < 2)
          and real_ok(slope, 0, low_open=True) and init in INITS)
    layer, _ = raises_or_returns(lambda: fb.Dense(n_in, n_out, activation, slope, init), ok)
    if ok:
        assert (layer.in_features, layer.out_features) == (int(n_in), int(n_out))
        assert layer.activation == (activation or "identity")


@FUZZ
@given(valid=VALID, data=st.data())
def test_optimizer_constructors(valid, data):
    draw = data.draw
    kind = draw(st.sampled_from(["SGD", "Adam", "AdamW"]))
    reals = st.sampled_from((1e-3, 0.1, 1, np.float32(0.5)) + (() if valid else REALS_BAD
                                                                + (0.0, -0.1)))
    if kind == "SGD":
        lr, wd = draw(reals), draw(reals)
        momentum = draw(st.sampled_from((0.0, 0.5, 0.9) + (() if valid else (1.0, -0.5, "x"))))
        nesterov = draw(st.sampled_from((False, True) + (() if valid else (np.bool_(True), 1,
                                                                           None))))
        if valid and nesterov:
            momentum = 0.9
        ok = (real_ok(lr, 0, low_open=True) and real_ok(momentum, 0, 1, high_open=True)
              and isinstance(nesterov, bool) and not (nesterov and float(momentum) == 0)
              and real_ok(wd, 0))
        raises_or_returns(lambda: fb.SGD(lr, momentum, nesterov, wd), ok)
    else:
        lr, eps, wd = draw(reals), draw(reals), draw(st.sampled_from((None, 0.0, 0.01)) | reals)
        betas = draw(st.sampled_from([(0.9, 0.999), [0.5, 0.0]] + ([] if valid else [
            (0.9,), (1.0, 0.9), (0.9, -1), None, "ab", (0.9, math.nan)])))
        ok = (real_ok(lr, 0, low_open=True) and isinstance(betas, (tuple, list))
              and len(betas) == 2 and all(real_ok(b, 0, 1, high_open=True) for b in betas)
              and real_ok(eps, 0, low_open=True) and (wd is None or real_ok(wd, 0)))
        opt, _ = raises_or_returns(lambda: getattr(fb, kind)(lr, betas, eps, wd), ok)
        if ok and wd is None:
            assert opt.weight_decay == (0.01 if kind == "AdamW" else 0.0)


@FUZZ
@given(valid=VALID, data=st.data())
def test_sequential_constructor(valid, data):
    draw = data.draw
    n_layers = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 4)) for _ in range(n_layers + 1)]
    layers = [fb.Dense(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    how = "ok" if valid else draw(st.sampled_from(
        ["ok", "mismatch", "repeat", "not dense", "empty", "tuple", "none", "used"]))
    if how == "mismatch" and n_layers > 1:
        layers[1] = fb.Dense(sizes[1] + 1, sizes[2])
    elif how == "repeat" and n_layers > 1:
        layers[1] = layers[0] if sizes[0] == sizes[1] == sizes[2] else fb.Dense(sizes[1] + 1, 1)
    elif how == "not dense":
        layers[-1] = "Dense"
    elif how == "empty":
        layers = []
    elif how == "tuple":
        layers = tuple(layers)
    elif how == "none":
        layers = None
    elif how == "used":
        fb.Sequential([layers[0]])
    good_dtypes = ["float32", "float64", np.float32, np.dtype("float64")]
    dtype = draw(st.sampled_from(good_dtypes + (
        [] if valid else ["float16", "int32", None, 3, "f4junk", np.complex64, object])))
    seed = draw(st.sampled_from([None, 0, 7, np.int64(5), 2**70] + (
        [] if valid else [-1, 1.5, "a"])))
    ok = (how in ("ok", "tuple") or (how in ("mismatch", "repeat") and n_layers == 1))
    ok = ok and any(dtype is d for d in good_dtypes)
    ok = ok and (seed is None or (int_ok(seed, 0)))
    model, _ = raises_or_returns(lambda: fb.Sequential(layers, dtype, seed), ok)
    if ok:
        assert model.count_params() == sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def test_models_too_large_to_address_are_value_errors():
    """Layer sizes whose parameter count does not fit in 64 bits: ValueError before any C code
    adds them up. Regression: the count (here exactly 2**64 + 5, wrapping to 5) overflowed in
    fbp_weight_offset (UBSan: signed integer overflow) and the error that followed was
    numpy's about a reshape or an allocation."""
    M = 2**31 - 1
    sizes = [M, M, M, M, M, 4, 1]
    with pytest.raises(ValueError, match="parameters"):
        fb.Sequential([fb.Dense(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
    with pytest.raises(ValueError, match=r"2\*\*31 - 1"):
        fb.Sequential([fb.Dense(2**31, 1)])
    with pytest.raises((ValueError, MemoryError)):  # 2**60 parameters: too big, not corrupt
        fb.Sequential([fb.Dense(2**30, 2**30)])


# ==== Sequential methods =======================================================================
TASKS = ("labels", "onehot", "binary", "regression")
LOSS = {"labels": "categorical_crossentropy", "onehot": "categorical_crossentropy",
        "binary": "binary_crossentropy", "regression": "mse"}


def numpy_forward(model, X):
    """(logits, output) of the model for X, from get_weights, in float64."""
    A = np.asarray(X, dtype=np.float64)
    weights = model.get_weights()
    Z = A
    for layer, W, b in zip(model.layers, weights[0::2], weights[1::2]):
        Z = A @ W.astype(np.float64) + b.astype(np.float64)
        A = ref.activation(Z, layer.activation, layer.negative_slope)
    return Z, A


def numpy_loss(model, task, X, y):
    Z, A = numpy_forward(model, X)
    if task in ("labels", "onehot"):
        return ref.softmax_xent(Z, y)[0]
    if task == "binary":
        return ref.bce_logits(Z, np.asarray(y, np.float64).reshape(Z.shape))[0]
    return ref.mse(A, np.asarray(y, np.float64).reshape(A.shape))[0]


def build(draw, task, dtype):
    n_in, hidden = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    k = 1 if task == "binary" else draw(st.integers(2, 4))
    last = {"labels": ("softmax", None), "onehot": ("softmax", None),
            "binary": ("sigmoid", None), "regression": ACTIVATIONS}[task]
    layers = [fb.Dense(n_in, hidden, activation=draw(st.sampled_from(ACTIVATIONS[:5]))),
              fb.Dense(hidden, k, activation=draw(st.sampled_from(last)))]
    model = fb.Sequential(layers, dtype=dtype, seed=draw(st.integers(0, 100)))
    opt = draw(st.sampled_from([lambda: fb.SGD(0.05, momentum=0.9), lambda: fb.Adam(0.01),
                                lambda: fb.AdamW(0.01)]))()
    model.compile(LOSS[task], opt, metrics=draw(st.sampled_from([[], ["accuracy"]])))
    return model, n_in, k


def targets(rng, task, n, k):
    if task == "labels":
        return rng.integers(0, k, n)
    if task == "onehot":
        return np.eye(k)[rng.integers(0, k, n)]
    if task == "binary":
        return (rng.random((n, 1)) < 0.5).astype(np.float64)
    return rng.standard_normal((n, k))


def fuzz_targets(draw, rng, task, n, k, valid):
    """Targets for n samples: right ones, or broken in the ways that must be caught."""
    y = targets(rng, task, n, k)
    if valid:
        how = draw(st.sampled_from(["as is", "list", "int32", "F"]))
    else:
        how = draw(st.sampled_from(["as is", "length", "range", "nan", "negative", "dtype",
                                    "None", "3-d", "float labels", "width"]))
    if how == "list":
        return y.tolist()
    if how == "int32":
        return y.astype(np.int32) if task == "labels" else y.astype(np.float32)
    if how == "F":
        return np.asfortranarray(y)
    if how == "length":
        return targets(rng, task, draw(st.integers(0, n + 2)), k)
    if how in ("range", "nan") and np.size(y) == 0:
        return y
    if how == "range":
        y = y.copy()
        if task == "labels":
            y[0] = draw(st.sampled_from([-1, k, 2**40]))
        elif task == "onehot":
            y[0] = 0.3
        elif task == "binary":
            y[0] = 1.5
        return y
    if how == "nan":
        y = y.astype(np.float64)
        y.reshape(-1)[0] = draw(st.sampled_from([np.nan, np.inf]))
        return y
    if how == "negative" and task != "labels":
        return -np.abs(y) - 0.5 if task != "regression" else y
    if how == "dtype":
        return make(rng, np.shape(y), (draw(st.sampled_from(ALL_DTYPES)), "C", False))
    if how == "None":
        return None
    if how == "3-d":
        return np.asarray(y)[None]
    if how == "float labels" and task == "labels":
        return y + draw(st.sampled_from([0.0, 0.5]))
    if how == "width":
        return np.zeros((n, k + 1))
    return y


def targets_ok(y, task, n, k, dtype):
    """The documented rules for targets (fastbp/losses.py)."""
    if y is None:
        return False
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        return False
    if task in ("labels", "onehot") and arr.ndim == 1:
        if arr.shape[0] != n:
            return False
        if arr.dtype.kind == "f" and (not np.isfinite(arr).all() or (arr != np.round(arr)).any()):
            return False
        return bool(arr.size == 0 or (arr.min() >= 0 and arr.max() < k))
    with np.errstate(over="ignore"):
        a = arr.astype(dtype)
    if a.ndim == 1 and k == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2 or a.shape != (n, k) or not np.isfinite(a).all():
        return False
    if task == "binary":
        return bool(((a >= 0) & (a <= 1)).all())
    if task in ("labels", "onehot"):
        return bool((a >= 0).all() and np.allclose(a.sum(axis=1), 1.0, rtol=0, atol=1e-3))
    return True


def fuzz_inputs(draw, rng, n, n_in, valid):
    spec = (np.dtype(draw(st.sampled_from([np.float32, np.float64, np.int64, np.bool_]))),
            draw(st.sampled_from(LAYOUTS)), False)
    if not valid and draw(st.booleans()):
        spec = (draw(st.sampled_from(ALL_DTYPES)), spec[1], draw(st.booleans()))
    shape = perturb(draw, (n, n_in), 1.0 if valid else 0.6)
    if not valid and draw(st.floats(0, 1)) < 0.1:
        return None
    return make(rng, shape, spec)


def inputs_ok(X, n_in, dtype):
    if X is None:
        return False
    arr = np.asarray(X)
    if arr.dtype.kind not in "biuf" or arr.ndim != 2 or arr.shape[0] == 0 or \
            arr.shape[1] != n_in:
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(arr.astype(dtype)).all())


def fuzz_problem(draw, rng, task, dtype, valid, max_samples):
    """A compiled model for `task` (build) and fuzzed data for it: X for 1 to max_samples
    samples (fuzz_inputs) and targets for as many rows as X really has (fuzz_targets).
    Returns (model, n_in, k, X, y, rows); rows is 0 when X is None or 0-d."""
    model, n_in, k = build(draw, task, dtype)
    n = draw(st.integers(1, max_samples))
    X = fuzz_inputs(draw, rng, n, n_in, valid)
    rows = np.asarray(X).shape[0] if X is not None and np.asarray(X).ndim else 0
    y = fuzz_targets(draw, rng, task, rows, k, valid)
    return model, n_in, k, X, y, rows


def model_state(model):
    net = model._network
    return [net.params.copy(), net.state1.copy(), net.state2.copy(), net.step]


def assert_model_unchanged(before, model):
    after = model_state(model)
    for a, b in zip(before[:3], after[:3]):
        assert np.array_equal(a, b), "a rejected call changed the model"
    assert before[3] == after[3], "a rejected call stepped the optimizer"


@FUZZ
@given(valid=VALID, task=st.sampled_from(TASKS), dtype=st.sampled_from(["float32", "float64"]),
       method=st.sampled_from(["predict", "evaluate", "compute_gradients"]),
       data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_predict_evaluate_gradients(valid, task, dtype, method, data, seed):
    draw, rng = data.draw, np.random.default_rng(seed)
    model, n_in, k, X, y, rows = fuzz_problem(draw, rng, task, dtype, valid, max_samples=6)
    before, caller = model_state(model), snapshot(X, y)
    x_ok = inputs_ok(X, n_in, dtype)
    if method == "predict":
        result, _ = raises_or_returns(lambda: model.predict(X), x_ok)
        if x_ok:
            assert result.dtype == np.dtype(dtype) and result.shape == (rows, k)
            want = numpy_forward(model, np.asarray(X, dtype).astype(np.float64))[1]
            rtol, atol = tolerance(dtype)
            np.testing.assert_allclose(result, want, rtol=rtol * 10, atol=atol * 10)
    else:
        ok = x_ok and targets_ok(y, task, rows, k, dtype)
        call = (lambda: model.evaluate(X, y)) if method == "evaluate" else \
            (lambda: model.compute_gradients(X, y))
        result, _ = raises_or_returns(call, ok)
        if ok:
            loss = result if isinstance(result, float) else result[0]
            Xc = np.asarray(X, dtype).astype(np.float64)
            yc = np.asarray(y).astype(np.int64) if np.ndim(y) == 1 and task in (
                "labels", "onehot") else np.asarray(y, dtype).astype(np.float64)
            rtol, atol = tolerance(dtype)
            assert loss == pytest.approx(numpy_loss(model, task, Xc, yc), rel=rtol * 10,
                                         abs=atol * 10)
            if method == "compute_gradients":
                assert [g.shape for g in result[1]] == [w.shape for w in model.get_weights()]
                assert all(np.isfinite(g).all() for g in result[1])
    assert_model_unchanged(before, model)
    assert_unchanged(caller, [X, y], ["X", "y"])


@FUZZ
@given(valid=VALID, task=st.sampled_from(TASKS), dtype=st.sampled_from(["float32", "float64"]),
       data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_fit(valid, task, dtype, data, seed):
    draw, rng = data.draw, np.random.default_rng(seed)
    model, n_in, k, X, y, rows = fuzz_problem(draw, rng, task, dtype, valid, max_samples=12)
    good_ints = (0, 1, 2, np.int64(2))
    epochs = draw(st.sampled_from(good_ints + (() if valid else INTS_BAD + (-5,))))
    batch_size = draw(st.sampled_from((1, 3, 32, 2**62, 10**30, np.uint16(4)) + (
        () if valid else INTS_BAD)))
    shuffle = draw(st.sampled_from((True, False, np.bool_(False)) + (() if valid else (
        "yes", 1, None))))
    split = draw(st.sampled_from((0.0, 0.0, 0.25, 0.5) + (() if valid else (1.0, -0.1, "0.2",
                                                                           math.nan, 0.01)))
                 ) if draw(st.booleans()) else 0.0
    vdata = None
    vhow = draw(st.sampled_from(["none", "none", "ok"] + ([] if valid else ["bad X", "bad y",
                                                                          "shape", "str"])))
    if vhow != "none":
        m = draw(st.integers(1, 4))
        Xv, yv = rng.standard_normal((m, n_in)), targets(rng, task, m, k)
        vdata = {"ok": (Xv, yv), "bad X": (Xv[:, :0], yv), "bad y": (Xv, yv[:-1]),
                 "shape": (Xv,), "str": "validation"}[vhow]
    verbose = draw(st.sampled_from((0, False) + (() if valid else ("loud", -1, None))))
    before, caller = model_state(model), snapshot(X, y)
    hyper_ok = (int_ok(epochs, 0) and int_ok(batch_size, 1)
                and isinstance(shuffle, (bool, np.bool_)) and real_ok(split, 0, 1, high_open=True)
                and (isinstance(verbose, bool) or int_ok(verbose, 0)))
    data_ok = inputs_ok(X, n_in, dtype) and targets_ok(y, task, rows, k, dtype)
    if vhow != "none":
        data_ok = data_ok and vhow == "ok"
    elif hyper_ok and data_ok and float(split) > 0:
        n_val = int(rows * float(split))
        data_ok = 1 <= n_val < rows
    ok = hyper_ok and data_ok
    history, _ = raises_or_returns(lambda: model.fit(X, y, epochs, batch_size, shuffle, vdata,
                                                     split, verbose), ok)
    if ok:
        assert history.epoch == list(range(int(epochs)))
        assert all(math.isfinite(v) for v in history.history.get("loss", []))
        assert all(np.isfinite(w).all() for w in model.get_weights())
        if int(epochs):
            assert model._network.step > before[3]
    else:
        assert_model_unchanged(before, model)
    assert_unchanged(caller, [X, y], ["X", "y"])


@FUZZ
@given(valid=VALID, dtype=st.sampled_from(["float32", "float64"]), data=st.data(),
       seed=st.integers(0, 2**32 - 1))
def test_set_and_get_weights(valid, dtype, data, seed):
    draw, rng = data.draw, np.random.default_rng(seed)
    model, n_in, k = build(draw, "regression", dtype)
    shapes = [w.shape for w in model.get_weights()]
    weights = [make(rng, perturb(draw, s, 1.0 if valid else 0.8), (
        np.dtype(draw(st.sampled_from([np.float32, np.float64, np.int8]))),
        draw(st.sampled_from(LAYOUTS)), False)) for s in shapes]
    how = "ok" if valid else draw(st.sampled_from(["ok", "short", "long", "nan", "dtype",
                                                   "None", "dict"]))
    if how == "short":
        weights = weights[:-1]
    elif how == "long":
        weights = weights + [np.zeros(1)]
    elif how == "nan" and isinstance(weights[-1], np.ndarray) and weights[-1].size and \
            weights[-1].flags.writeable and weights[-1].dtype.kind == "f":
        weights[-1].reshape(-1)[0] = np.nan
    elif how == "dtype":
        weights[0] = make(rng, shapes[0], (draw(st.sampled_from(ALL_DTYPES)), "C", False))
    elif how == "None":
        weights = None
    elif how == "dict":
        weights = dict(enumerate(weights))
    before, caller = model_state(model), snapshot(*(weights if isinstance(weights, list)
                                                    else []))
    ok = isinstance(weights, list) and len(weights) == len(shapes) and all(
        np.asarray(w).dtype.kind in "biuf" and np.asarray(w).shape == s
        and np.isfinite(np.asarray(w, dtype)).all() for w, s in zip(weights, shapes))
    raises_or_returns(lambda: model.set_weights(weights), ok)
    if ok:
        for got, w in zip(model.get_weights(), weights):
            np.testing.assert_array_equal(got, np.asarray(w, dtype))
        assert model._network.step == before[3]
    else:
        assert_model_unchanged(before, model)
    if isinstance(weights, list):
        assert_unchanged(caller, weights, [f"weights[{i}]" for i in range(len(weights))])
