"""Property-based tests of every public function of fastbp.ops.

Each test draws whole calls: arrays of every numpy dtype, 0-d to 3-d shapes with zero-size
sides, every layout (C, Fortran, transposed, strided, reversed, read-only, unaligned, lists),
NaN/inf/huge values, ``None``, sizes that must agree drawn independently (so that they often
do not), labels out of range, hyper-parameters of every wrong type. The model of the documented
conventions in fuzz_helpers says whether the call must succeed; then:

- it succeeds, and the result equals tests/numpy_reference.py (values are compared when the
  inputs are finite and moderate; with NaN/inf the element-wise kernels are compared too);
- or it raises TypeError/ValueError with a message, and every output keeps its contents;
- either way no input changes and the guard bytes around every output are intact.

The number of examples per test is fuzz_helpers.EXAMPLES (FASTBP_FUZZ_EXAMPLES overrides it).
"""
import math
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpy_reference as ref
from fastbp import ops
from fuzz_helpers import (FLOATS, FUZZ, VALID, Guarded, array_spec, as_array, assert_unchanged,
                          converted, input_ok, make, output_ok, perturb, primary_dtype,
                          raises_or_returns, same, snapshot, tolerance)

ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "softmax")
SIZES = st.integers(0, 5)

# Hyper-parameters: values every real-valued one accepts, and values none may accept.
GOOD_REALS = (0.0, 0.1, 1, 0.5, np.float32(0.25), np.float64(0.75), np.int64(1), Fraction(1, 3))
BAD_REALS = (None, "0.1", [0.1], 1j, math.nan, math.inf, -math.inf, -1.0, -1, 10**400, -10**400,
             True, Decimal("0.1"), object(), np.array([0.1, 0.2]))
GOOD_BOOLS = (True, False, np.bool_(True), np.bool_(False))
BAD_BOOLS = (None, 1, 0, "yes", 1.0, [True])


def bool_ok(value):
    return isinstance(value, (bool, np.bool_))


def real_ok(value, low=0.0, high=None, low_open=False):
    """Whether a scalar hyper-parameter is accepted: a finite real (not bool) in range."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        return False
    if isinstance(value, (Decimal, str, list, complex, np.ndarray)) or \
            not isinstance(value, (int, float, Fraction, np.integer, np.floating)):
        return False
    try:
        x = float(value)
    except OverflowError:
        return False
    if not math.isfinite(x) or x < low or (low_open and x == low):
        return False
    return high is None or x < high


def draw_validity(draw):
    """Draw `valid` (fuzz_helpers.VALID) and return (valid, keep, good): the p_keep for
    perturb and the p_good for array_spec, 1.0 for a valid call (every argument acceptable),
    else 0.8."""
    valid = draw(VALID)
    chance = 1.0 if valid else 0.8
    return valid, chance, chance


@st.composite
def real_param(draw, valid, good=GOOD_REALS):
    bad = not valid and draw(st.booleans())
    return draw(st.sampled_from(good + BAD_REALS) if bad else st.sampled_from(good))


@st.composite
def bool_param(draw, valid):
    return draw(st.sampled_from(GOOD_BOOLS if valid else GOOD_BOOLS + BAD_BOOLS))


@st.composite
def activation_name(draw, valid):
    bad = () if valid else ("softplus", "ReLU", 3, b"relu")
    return draw(st.sampled_from(ACTIVATIONS + (None,) + bad))


@st.composite
def output_arg(draw, rng, shape, dtype, valid):
    """An output argument: None, a guarded array (mostly of the right dtype and shape) or a
    bad one (read-only, non-contiguous, a list, another dtype). Returns (argument, Guarded)."""
    kind = draw(st.sampled_from(["none", "ok", "ok"] if valid else
                                ["none", "ok", "ok", "ok", "shape", "dtype", "bad"]))
    if kind == "none":
        return None, None
    if kind in ("ok", "shape", "dtype"):
        if kind == "shape":
            shape = perturb(draw, shape, p_keep=0.0)
        if kind == "dtype":
            dtype = draw(st.sampled_from([np.float16, np.float32, np.float64, np.int64,
                                          np.complex128, ">f8", ">f4"]))
        if np.dtype(dtype).kind != "f" or np.dtype(dtype).itemsize not in (4, 8) \
                or not np.dtype(dtype).isnative:
            return make(rng, shape, (np.dtype(dtype), "C", False)), None
        g = Guarded(shape, dtype, rng=rng)
        return g.array, g
    layout = draw(st.sampled_from(["F", "transposed", "strided", "reversed", "readonly",
                                   "unaligned", "list"]))
    return make(rng, shape, (np.dtype(dtype), layout, False)), None


def dtype_of(spec_dtype):
    """A dtype a valid primary has (native), for outputs that follow it."""
    return spec_dtype.newbyteorder("=") if spec_dtype.kind == "f" else np.dtype(np.float64)


def finite_moderate(*arrays):
    """Whether value comparisons make sense: every input finite and of moderate size."""
    for a in arrays:
        arr = as_array(a)
        if arr.dtype.kind in "fc" and arr.size and not (np.abs(arr.astype(np.complex128))
                                                         < 1e6).all():
            return False
    return True


def expect(call, ok, outputs=(), inputs=(), names=()):
    """Run call(); if ok it must return (the result is returned for checking), else raise
    TypeError/ValueError with a message and leave the outputs alone. Inputs never change and
    guard bytes never move. Returns (result, raised)."""
    before = snapshot(*inputs)
    result, raised = raises_or_returns(call, ok)
    if raised is not None:
        for g in outputs:
            if g is not None:
                assert g.unchanged(), "a rejected call wrote into an output"
    for g in outputs:
        if g is not None:
            assert g.guards_intact(), "a write outside an output (guard bytes changed)"
    assert_unchanged(before, inputs, names or [f"input {i}" for i in range(len(inputs))])
    return result, raised


def assert_close(got, want, dtype, equal_nan=False):
    rtol, atol = tolerance(dtype)
    scale = max(1.0, float(np.max(np.abs(want[np.isfinite(want)]))) if np.size(want) and
                np.isfinite(want).any() else 1.0)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol * scale,
                               equal_nan=equal_nan)


def slope_ok(name, slope):
    return name != "leaky_relu" or real_ok(slope, low=0.0, low_open=True)


def act_ok(name):
    return name is None or (isinstance(name, str) and name in ACTIVATIONS)


# ==== dense layers ============================================================================
@FUZZ
@given(data=st.data(), rows=SIZES, n_in=SIZES, n_out=SIZES, seed=st.integers(0, 2**32 - 1))
def test_dense_forward(data, rows, n_in, n_out, seed):
    draw, rng = data.draw, np.random.default_rng(seed)
    valid, keep, good = draw_validity(draw)
    w_spec, x_spec, b_spec = draw(array_spec(p_good=good)), draw(array_spec(p_good=good)), draw(array_spec(p_good=good))
    W = make(rng, perturb(draw, (n_in, n_out), keep), w_spec)
    X = make(rng, perturb(draw, (rows, n_in), keep), x_spec)
    b = make(rng, perturb(draw, draw(st.sampled_from([(n_out,), (1, n_out)])), keep), b_spec)
    name, slope = draw(activation_name(valid)), draw(real_param(valid, (0.01, 0.2, 3.0)))
    dtype = primary_dtype(W)
    out, g = draw(output_arg(rng, (as_array(X).shape[0] if as_array(X).ndim else 0, n_out),
                             dtype_of(w_spec[0]), valid))
    Wa, Xa, ba = as_array(W), as_array(X), as_array(b)
    ok = (dtype is not None and input_ok(X, dtype) and input_ok(b, dtype) and act_ok(name)
          and slope_ok(name, slope) and Wa.ndim == 2 and Xa.ndim == 2
          and Xa.shape[1] == Wa.shape[0] and ba.shape in ((Wa.shape[1],), (1, Wa.shape[1]))
          and (out is None or output_ok(out, dtype, (Xa.shape[0], Wa.shape[1]))))
    result, _ = expect(lambda: ops.dense_forward(X, W, b, name, out=out, negative_slope=slope),
                       ok, [g], [X, W, b], ["X", "W", "b"])
    if ok:
        assert result.dtype == dtype and result.shape == (Xa.shape[0], Wa.shape[1])
        assert out is None or result is out
        if finite_moderate(X, W, b):
            want = ref.dense_forward(converted(X, dtype), converted(W, dtype),
                                     converted(b, dtype), name,
                                     float(slope) if name == "leaky_relu" else 0.01)
            assert_close(result, want, dtype)


@FUZZ
@given(data=st.data(), rows=SIZES, n_in=SIZES, n_out=SIZES, seed=st.integers(0, 2**32 - 1))
def test_dense_backward(data, rows, n_in, n_out, seed):
    draw, rng = data.draw, np.random.default_rng(seed)
    valid, keep, good = draw_validity(draw)
    w_spec = draw(array_spec(p_good=good))
    W = make(rng, perturb(draw, (n_in, n_out), keep), w_spec)
    X = make(rng, perturb(draw, (rows, n_in), keep), draw(array_spec(p_good=good)))
    dZ = make(rng, perturb(draw, (rows, n_out), keep), draw(array_spec(p_good=good)))
    need_dX = draw(bool_param(valid)) if draw(st.booleans()) else True
    dtype, odt = primary_dtype(W), dtype_of(w_spec[0])
    dX, gX = draw(output_arg(rng, (rows, n_in), odt, valid))
    dW, gW = draw(output_arg(rng, (n_in, n_out), odt, valid))
    db, gb = draw(output_arg(rng, draw(st.sampled_from([(n_out,), (1, n_out)])), odt, valid))
    Wa, Xa, dZa = as_array(W), as_array(X), as_array(dZ)
    ok = (dtype is not None and input_ok(X, dtype) and input_ok(dZ, dtype)
          and bool_ok(need_dX) and Wa.ndim == 2 and Xa.ndim == 2
          and Xa.shape[1] == Wa.shape[0] and dZa.shape == (Xa.shape[0], Wa.shape[1])
          and (dW is None or output_ok(dW, dtype, Wa.shape))
          and (db is None or output_ok(db, dtype, (Wa.shape[1],))
               or output_ok(db, dtype, (1, Wa.shape[1])))
          and (dX is None or (bool(need_dX) and output_ok(dX, dtype, (Xa.shape[0], n_in)))))
    result, _ = expect(lambda: ops.dense_backward(X, W, dZ, dX, dW, db, need_dX=need_dX),
                       ok, [gX, gW, gb], [X, W, dZ], ["X", "W", "dZ"])
    if ok:
        got_dX, got_dW, got_db = result
        assert (got_dX is None) == (not need_dX)
        for given_, got in ((dX, got_dX), (dW, got_dW), (db, got_db)):
            assert given_ is None or got is given_
        if finite_moderate(X, W, dZ):
            want = ref.dense_backward(converted(X, dtype), converted(W, dtype),
                                      converted(dZ, dtype))
            for got, w in zip(result, want):
                if got is not None:
                    assert got.dtype == dtype
                    assert_close(got.reshape(w.shape), w, dtype)


# ==== activations =============================================================================
def backward_from_output(A, dA, name, slope):
    """The documented derivative, computed from the activation output A (ops docstring)."""
    if name in (None, "identity"):
        return dA.copy()
    if name == "relu":
        return dA * (A > 0)
    if name == "leaky_relu":
        return dA * np.where(A > 0, 1.0, slope)
    if name == "sigmoid":
        return dA * A * (1 - A)
    if name == "tanh":
        return dA * (1 - A * A)
    return A * (dA - np.sum(dA * A, axis=-1, keepdims=True))  # softmax


@st.composite
def any_shape(draw):
    return tuple(draw(st.lists(SIZES, max_size=3)))


NAMED = {"relu": ops.relu, "sigmoid": ops.sigmoid, "tanh": ops.tanh, "softmax": ops.softmax}


@FUZZ
@given(data=st.data(), shape=any_shape(), seed=st.integers(0, 2**32 - 1))
def test_activation_forward(data, shape, seed):
    draw, rng = data.draw, np.random.default_rng(seed)
    valid, _, good = draw_validity(draw)
    spec = draw(array_spec(p_good=good))
    Z = make(rng, shape, spec)
    name, slope = draw(activation_name(valid)), draw(real_param(valid, (0.01, 0.2, 3.0)))
    dtype = primary_dtype(Z)
    Za = as_array(Z)
    out, g = draw(output_arg(rng, Za.shape, dtype_of(spec[0]), valid))
    how = draw(st.sampled_from(["generic", "named"]))
    ok = (dtype is not None and act_ok(name) and slope_ok(name, slope)
          and not (name == "softmax" and Za.ndim == 0)
          and (out is None or output_ok(out, dtype, Za.shape)))
    if how == "named" and name in NAMED:
        call = lambda: NAMED[name](Z, out=out)  # noqa: E731
    elif how == "named" and name == "leaky_relu":
        call = lambda: ops.leaky_relu(Z, slope, out=out)  # noqa: E731
    else:
        call = lambda: ops.activation_forward(Z, name, out, slope)  # noqa: E731
    result, _ = expect(call, ok, [g], [Z], ["Z"])
    if ok:
        assert result.dtype == dtype and result.shape == Za.shape
        assert out is None or result is out
        Z64 = converted(Z, dtype)
        with np.errstate(all="ignore"):
            want = ref.activation(Z64, name, float(slope) if name == "leaky_relu" else 0.01)
        # element-wise activations must propagate NaN and map inf as numpy does; softmax rows
        # holding NaN/inf are NaN in numpy and may be NaN here (compared only when finite)
        if name == "softmax" and not finite_moderate(Z):
            rows = np.isfinite(Z64).all(axis=-1) if Z64.ndim else np.array(True)
            assert_close(result[rows], want[rows], dtype)
        else:
            assert_close(result, want, dtype, equal_nan=True)


@FUZZ
@given(data=st.data(), shape=any_shape(), seed=st.integers(0, 2**32 - 1))
def test_activation_backward(data, shape, seed):
    draw, rng = data.draw, np.random.default_rng(seed)
    valid, keep, good = draw_validity(draw)
    spec = draw(array_spec(p_good=good))
    name, slope = draw(activation_name(valid)), draw(real_param(valid, (0.01, 0.2, 3.0)))
    A = make(rng, shape, spec)
    if act_ok(name) and primary_dtype(A) is not None and as_array(A).ndim and \
            not (name == "softmax" and as_array(A).ndim == 0):
        # a realistic A: the forward output of random Z
        Zv = rng.standard_normal(as_array(A).shape)
        A = make(rng, as_array(A).shape, spec)
        if isinstance(A, np.ndarray) and A.flags.writeable:
            A[...] = ref.activation(Zv, name, float(slope) if real_ok(slope, 0, None, True)
                                    else 0.01)
    dA = make(rng, perturb(draw, as_array(A).shape, keep), draw(array_spec(p_good=good)))
    dtype = primary_dtype(A)
    Aa = as_array(A)
    out, g = draw(output_arg(rng, Aa.shape, dtype_of(spec[0]), valid))
    ok = (dtype is not None and input_ok(dA, dtype) and act_ok(name) and slope_ok(name, slope)
          and not (name == "softmax" and Aa.ndim == 0) and as_array(dA).shape == Aa.shape
          and (out is None or output_ok(out, dtype, Aa.shape)))
    result, _ = expect(lambda: ops.activation_backward(A, dA, name, out, slope), ok, [g],
                       [A, dA], ["A", "dA"])
    if ok:
        assert result.dtype == dtype and result.shape == Aa.shape
        if finite_moderate(A, dA):
            want = backward_from_output(converted(A, dtype), converted(dA, dtype), name,
                                        float(slope) if name == "leaky_relu" else 0.01)
            assert_close(result, want, dtype)


# ==== losses ==================================================================================
LOSSES = {"mse": (ops.mse, ref.mse), "binary_crossentropy": (ops.binary_crossentropy,
                                                             ref.bce_logits)}


@FUZZ
@given(data=st.data(), shape=any_shape(), which=st.sampled_from(sorted(LOSSES)),
       seed=st.integers(0, 2**32 - 1))
def test_elementwise_losses(data, shape, which, seed):
    draw, rng = data.draw, np.random.default_rng(seed)
    valid, keep, good = draw_validity(draw)
    spec = draw(array_spec(p_good=good))
    P = make(rng, shape, spec)
    T = make(rng, perturb(draw, as_array(P).shape, keep), draw(array_spec(p_good=good)))
    dtype = primary_dtype(P)
    Pa = as_array(P)
    out, g = draw(output_arg(rng, Pa.shape, dtype_of(spec[0]), valid))
    ok = (dtype is not None and input_ok(T, dtype) and as_array(T).shape == Pa.shape
          and (out is None or output_ok(out, dtype, Pa.shape)))
    fn, reference = LOSSES[which]
    result, _ = expect(lambda: fn(P, T, out), ok, [g], [P, T], ["pred", "target"])
    if ok:
        loss, grad = result
        assert isinstance(loss, float) and grad.dtype == dtype and grad.shape == Pa.shape
        if Pa.size == 0:
            assert math.isnan(loss)
        elif finite_moderate(P, T):
            want_loss, want_grad = reference(converted(P, dtype), converted(T, dtype))
            assert_close(np.array(loss), np.array(want_loss), dtype)
            assert_close(grad, want_grad, dtype)


def xent_target_ok(target, La, dtype):
    """1-d targets are class indices (any integer dtype, in range), others rows like logits."""
    t = as_array(target)
    if np.ndim(target) == 1:
        n, k = (La.shape[0], La.shape[-1]) if La.ndim == 2 else (-1, 0)
        return (t.dtype.kind in "iu" and t.shape == (n,)
                and (n == 0 or (t.min() >= 0 and t.max() < k)))
    return (dtype is not None and input_ok(target, dtype) and t.ndim == 2
            and t.shape == La.shape)


@FUZZ
@given(data=st.data(), rows=SIZES, k=SIZES, seed=st.integers(0, 2**32 - 1))
def test_softmax_cross_entropy(data, rows, k, seed):
    draw, rng = data.draw, np.random.default_rng(seed)
    valid, keep, good = draw_validity(draw)
    spec = draw(array_spec(p_good=good))
    logits = make(rng, perturb(draw, (rows, k), keep), spec)
    dtype = primary_dtype(logits)
    La = as_array(logits)
    n = La.shape[0] if La.ndim else 0
    if draw(st.booleans()):  # class indices, a targeted size and range
        n_labels = n if valid else draw(st.sampled_from([n, draw(SIZES)]))
        int_dtypes = [np.int64, np.int64, np.int32, np.uint8, np.uint64, np.int8]
        ldtype = draw(st.sampled_from(int_dtypes if valid else
                                      int_dtypes + [np.float64, np.bool_]))
        high = La.shape[-1] if La.ndim else 1
        low = -1 if not valid and draw(st.booleans()) else 0
        beyond = 2 if not valid and draw(st.booleans()) else 0
        labels = rng.integers(low, max(low + 1, high + beyond), size=n_labels)
        if np.dtype(ldtype).kind == "u":
            labels = np.abs(labels)
        if not valid and draw(st.booleans()) and n_labels and np.dtype(ldtype) == np.uint64:
            labels = labels.astype(np.uint64)
            labels[0] = np.uint64(2**63 + 5)  # beyond int64
        target = make(rng, (n_labels,), (np.dtype(ldtype), draw(st.sampled_from(
            ["C", "strided", "reversed", "readonly", "list"])), False))
        if isinstance(target, np.ndarray) and target.flags.writeable:
            target[...] = labels.astype(ldtype)
        elif isinstance(target, list):
            target = labels.astype(ldtype).tolist()
    else:  # rows of probabilities
        target = make(rng, perturb(draw, La.shape, keep), draw(array_spec(p_good=good)))
        if isinstance(target, np.ndarray) and target.flags.writeable and target.size and \
                target.dtype.kind == "f" and finite_moderate(target):
            target[...] = np.abs(target)
    target_ok = xent_target_ok(target, La, dtype)
    out, g = draw(output_arg(rng, La.shape, dtype_of(spec[0]), valid))
    ok = (dtype is not None and La.ndim == 2 and target_ok and not (La.shape[0] > 0 and
                                                                   La.shape[1] == 0)
          and (out is None or output_ok(out, dtype, La.shape)))
    result, _ = expect(lambda: ops.softmax_cross_entropy(logits, target, out), ok, [g],
                       [logits, target], ["logits", "target"])
    if ok:
        loss, grad = result
        assert isinstance(loss, float) and grad.dtype == dtype and grad.shape == La.shape
        if La.shape[0] == 0:
            assert math.isnan(loss)
        elif finite_moderate(logits, target):
            t = as_array(target)
            t = t.astype(np.int64) if t.ndim == 1 else converted(t, dtype)
            want_loss, want_grad = ref.softmax_xent(converted(logits, dtype), t)
            assert_close(np.array(loss), np.array(want_loss), dtype)
            assert_close(grad, want_grad, dtype)


# ==== optimizer steps =========================================================================
@st.composite
def param_arg(draw, rng, shape, valid):
    """The array an optimizer updates in place: mostly a guarded float array."""
    kind = draw(st.sampled_from(["ok"] if valid else ["ok", "ok", "ok", "ok", "bad"]))
    dtype = draw(st.sampled_from(FLOATS))
    if kind == "ok":
        g = Guarded(shape, dtype, rng=rng)
        return g.array, g
    return make(rng, shape, draw(array_spec(p_good=0.5))), None


class StepArgs(NamedTuple):
    """The arguments both optimizer-step tests draw first (see draw_step_args)."""
    valid: bool
    param: object  # the array the step updates in place, or a bad argument
    param_guard: object  # param's Guarded, or None
    dtype: object  # the call's dtype, None when param must be rejected
    state_dtype: object  # the dtype for state buffers: dtype, or float64 when there is none
    shape: tuple  # param's shape, which grad and the state buffers follow
    grad: object


def draw_step_args(draw, rng, shape):
    """Draw `valid`, then param (param_arg) and grad, mostly (when valid: always) of param's
    shape and of a float dtype."""
    valid, keep, good = draw_validity(draw)
    param, param_guard = draw(param_arg(rng, shape, valid))
    dtype = primary_dtype(param) if isinstance(param, np.ndarray) else None
    state_dtype = dtype if dtype is not None else np.dtype(np.float64)
    pshape = as_array(param).shape
    grad = make(rng, perturb(draw, pshape, keep), draw(array_spec(p_good=good)))
    return StepArgs(valid, param, param_guard, dtype, state_dtype, pshape, grad)


def param_and_grad_ok(param, grad, dtype):
    """Whether an optimizer step accepts param (a float32/float64 array it may write: as an
    output) and grad (an input of param's shape)."""
    param_ok = isinstance(param, np.ndarray) and param.dtype in FLOATS and \
        output_ok(param, param.dtype, param.shape)
    return param_ok and input_ok(grad, dtype) and as_array(grad).shape == param.shape


def state_arg(rng, shape, dtype, valid):
    """A state buffer an optimizer step requires (output_arg), never None when valid."""
    arg = output_arg(rng, shape, dtype, valid)
    return arg.filter(lambda a: a[0] is not None) if valid else arg


def expect_step(call, ok, param, outputs, grad):
    """expect() for an optimizer step, which updates param in place and returns it: grad
    never changes, a rejected step leaves param as it was, an accepted one returns param
    itself. Returns param's values before the step (None when param is not an array)."""
    before = param.copy() if isinstance(param, np.ndarray) else None
    result, _ = expect(call, ok, outputs, [grad], ["grad"])
    if ok:
        assert result is param
    elif before is not None:
        assert same(param, before), "a rejected call changed param"
    return before


@FUZZ
@given(data=st.data(), shape=any_shape(), seed=st.integers(0, 2**32 - 1))
def test_sgd_step(data, shape, seed):
    draw, rng = data.draw, np.random.default_rng(seed)
    valid, param, gp, dtype, odt, pshape, grad = draw_step_args(draw, rng, shape)
    lr, wd = draw(real_param(valid)), draw(real_param(valid))
    momentum = draw(real_param(valid, (0.0, 0.0, 0.5, 0.9)))
    nesterov = draw(bool_param(valid)) if draw(st.booleans()) else False
    velocity, gv = draw(output_arg(rng, pshape, odt, valid))
    mom_ok = real_ok(momentum)
    ok = (param_and_grad_ok(param, grad, dtype)
          and real_ok(lr) and real_ok(wd) and mom_ok and bool_ok(nesterov)
          and not (nesterov and float(momentum) == 0)
          and (float(momentum) == 0 or output_ok(velocity, dtype, pshape)))
    v0 = velocity.copy() if isinstance(velocity, np.ndarray) else None
    p0 = expect_step(lambda: ops.sgd_step(param, grad, lr, momentum, velocity, nesterov, wd),
                     ok, param, [gp, gv], grad)
    if not ok:
        return
    if float(momentum) == 0 and v0 is not None:
        assert np.array_equal(velocity, v0, equal_nan=True), "velocity used without momentum"
    if finite_moderate(grad):
        p = p0.astype(np.float64)
        buf = v0.astype(np.float64) if float(momentum) else None
        ref.sgd_step(p, converted(grad, dtype), float(lr), float(momentum), buf,
                     bool(nesterov), float(wd))
        # param may hold NaN/inf (a bare drawn array): they must land where torch's would
        assert_close(param, p, dtype, equal_nan=True)
        if buf is not None:
            assert_close(velocity, buf, dtype, equal_nan=True)


@FUZZ
@given(data=st.data(), shape=any_shape(), seed=st.integers(0, 2**32 - 1))
def test_adam_step(data, shape, seed):
    draw, rng = data.draw, np.random.default_rng(seed)
    valid, param, gp, dtype, odt, pshape, grad = draw_step_args(draw, rng, shape)
    m, gm = draw(state_arg(rng, pshape, odt, valid))
    v, gv = draw(state_arg(rng, pshape, odt, valid))
    if gv is not None:
        v[...] = np.abs(v)
        gv.before = v.copy()
    good_steps, good_betas = [1, 2, 10, np.int64(3)], [(0.9, 0.999), [0.5, 0.5], (0.0, 0.0),
                                                       (np.float32(0.8), 0.99)]
    step = draw(st.sampled_from(good_steps if valid else
                                good_steps + [0, -1, 2**63, 1.0, True, None, "1"]))
    lr, eps, wd = draw(real_param(valid)), draw(real_param(valid)), draw(real_param(valid))
    betas = draw(st.sampled_from(good_betas if valid else
                                 good_betas + [(1.0, 0.9), (0.9,), (0.9, -0.1), (0.9, math.nan),
                                               None, 0.9, (0.9, "0.9")]))
    decoupled = draw(bool_param(valid)) if draw(st.booleans()) else False
    step_ok = isinstance(step, (int, np.integer)) and not isinstance(step, bool) and \
        1 <= step < 2**63
    betas_ok = isinstance(betas, (tuple, list)) and len(betas) == 2 and \
        all(real_ok(b, 0.0, 1.0) for b in betas)
    ok = (param_and_grad_ok(param, grad, dtype)
          and output_ok(m, dtype, pshape) and output_ok(v, dtype, pshape) and step_ok
          and real_ok(lr) and real_ok(eps) and real_ok(wd) and betas_ok
          and bool_ok(decoupled))
    m0 = m.copy() if isinstance(m, np.ndarray) else None
    v0 = v.copy() if isinstance(v, np.ndarray) else None
    p0 = expect_step(lambda: ops.adam_step(param, grad, m, v, step, lr, betas, eps, wd,
                                           decoupled), ok, param, [gp, gm, gv], grad)
    if not ok:
        return
    if finite_moderate(grad) and float(eps) > 0:
        p, mm, vv = p0.astype(np.float64), m0.astype(np.float64), v0.astype(np.float64)
        ref.adam_step(p, converted(grad, dtype), mm, vv, int(step), float(lr),
                      (float(betas[0]), float(betas[1])), float(eps), float(wd),
                      bool(decoupled))
        assert_close(m, mm, dtype, equal_nan=True)
        assert_close(v, vv, dtype, equal_nan=True)
        assert_close(param, p, dtype, equal_nan=True)


# ==== aliasing: outputs that may share memory with an input ====================================
@FUZZ
@given(n=st.integers(1, 12), shift=st.integers(-3, 3), name=st.sampled_from(ACTIVATIONS),
       dtype=st.sampled_from(FLOATS), seed=st.integers(0, 2**32 - 1))
def test_activation_out_may_overlap_input(n, shift, name, dtype, seed):
    """activation_forward: out may be Z or overlap it in any way; the result is act(Z as it
    was), and nothing beyond out is written."""
    rng = np.random.default_rng(seed)
    g = Guarded((n + 6,), dtype, rng=rng)
    Z = g.array[3:3 + n]
    out = g.array[3 + shift:3 + shift + n]
    want = ref.activation(Z.astype(np.float64), name)
    result = ops.activation_forward(Z, name, out)
    assert result is out and g.guards_intact()
    assert_close(out, want, dtype)


@FUZZ
@given(n=st.integers(2, 8), dtype=st.sampled_from(FLOATS), which=st.sampled_from(
    ["sgd grad", "sgd velocity", "adam m", "adam v", "adam grad", "dense out",
     "backward out=A", "loss out~target", "loss partial"]), seed=st.integers(0, 2**32 - 1))
def test_forbidden_sharing_is_rejected(n, dtype, which, seed):
    """Arguments that share memory where the kernel's aliasing rule forbids it: ValueError,
    and nothing is written."""
    rng = np.random.default_rng(seed)
    g = Guarded((4 * n + 2,), dtype, rng=rng)
    buf = g.array
    a, b, c = buf[:n], buf[n:2 * n], buf[2 * n:3 * n]
    overlap = buf[n // 2:n // 2 + n]
    with pytest.raises(ValueError, match="share memory|itself"):
        if which == "sgd grad":
            ops.sgd_step(a, overlap, 0.1)
        elif which == "sgd velocity":
            ops.sgd_step(a, b, 0.1, momentum=0.9, velocity=overlap)
        elif which == "adam m":
            ops.adam_step(a, b, overlap, c, 1)
        elif which == "adam v":
            ops.adam_step(a, b, c, a, 1)
        elif which == "adam grad":
            ops.adam_step(a, overlap, b, c, 1)
        elif which == "dense out":
            W = buf[:n].reshape(1, n)
            ops.dense_forward(np.ones((1, 1), dtype), W, np.zeros(n, dtype), out=overlap
                              .reshape(1, n))
        elif which == "backward out=A":
            ops.activation_backward(a, b, "tanh", out=overlap)
        elif which == "loss out~target":
            ops.mse(a, b, out=b)
        else:
            ops.binary_crossentropy(a, b, out=overlap)
    assert g.unchanged() and g.guards_intact()


# ==== sizes: zero-size arrays with huge sides, int limits =======================================
@pytest.mark.parametrize("call", [
    lambda: ops.relu(np.empty((2**40, 0))),
    lambda: ops.softmax(np.empty((2**40, 0), np.float32)),
    lambda: ops.softmax(np.empty((0, 2**40))),
    lambda: ops.mse(np.empty((0, 2**40)), np.empty((0, 2**40))),
    lambda: ops.softmax_cross_entropy(np.empty((0, 2**40)), np.empty(0, np.int64)),
    lambda: ops.dense_forward(np.empty((0, 2**33)), np.empty((2**33, 0)), np.empty(0)),
    lambda: ops.dense_forward(np.empty((2**33, 0)), np.empty((0, 0)), np.zeros(0)),
    lambda: ops.dense_backward(np.empty((2**33, 0)), np.empty((0, 0)), np.empty((2**33, 0))),
    lambda: ops.sgd_step(np.empty((2**40, 0)), np.empty((2**40, 0)), 0.1),
    lambda: ops.adam_step(np.empty((0, 2**40)), np.empty((0, 2**40)),
                          np.empty((0, 2**40)), np.empty((0, 2**40)), 1),
])
def test_zero_size_arrays_with_huge_sides(call):
    """Zero-size arrays whose other sides exceed the kernels' int: a result (empty, or NaN
    for a mean) or a ValueError that says so; never a crash or an attempt to allocate."""
    try:
        result = call()
    except ValueError as exc:
        assert "limit" in str(exc) or "shape" in str(exc), exc
    except MemoryError:  # pragma: no cover - would be a bug: nothing here needs memory
        pytest.fail("a zero-size call tried to allocate")
    else:
        assert result is not None


@pytest.mark.parametrize("value", [10**400, -10**400, 2**1024])
@pytest.mark.parametrize("name", ["lr", "momentum", "weight_decay"])
def test_huge_integer_hyper_parameters_are_value_errors(name, value):
    """An integer too large for a float is a ValueError naming it (was: OverflowError)."""
    with pytest.raises(ValueError, match=name):
        ops.sgd_step(np.zeros(2), np.zeros(2), **{"lr": 0.1, name: value},
                     velocity=np.zeros(2))
    with pytest.raises(ValueError, match="negative_slope"):
        ops.leaky_relu(np.zeros(2), value)
    with pytest.raises(ValueError, match="lr"):
        ops.adam_step(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), 1, lr=value)


def test_relu_propagates_nan_as_numpy_and_torch():
    """relu(NaN) is NaN (numpy.maximum, torch.relu); it was 0, hiding NaN from the caller."""
    for dtype in FLOATS:
        Z = np.array([np.nan, -1.0, 0.0, 2.0, np.inf, -np.inf], dtype)
        np.testing.assert_array_equal(ops.relu(Z), np.maximum(Z, 0))
        np.testing.assert_array_equal(ops.dense_forward(np.ones((1, 1), dtype), Z[None, :],
                                                        np.zeros(6, dtype), "relu")[0],
                                      np.maximum(Z, 0))

def test_exp_of_nan_is_nan_without_undefined_behaviour():
    """NaN through every kernel that calls the vectorized exp (softmax, sigmoid, tanh, BCE,
    softmax cross-entropy) gives NaN. Under tools/run_sanitized.sh (UBSan with
    float-cast-overflow) this reported "-nan is outside the range of representable values of
    type 'long int'" in vecmath.h's pow2i until exp_v clamped NaN before converting it."""
    for dtype in FLOATS:
        Z = np.array([[np.nan, 0.0, 1.0], [0.5, np.nan, -np.inf]], dtype)
        assert np.isnan(ops.softmax(Z)).all()
        assert np.isnan(ops.sigmoid(Z)[0, 0]) and np.isnan(ops.tanh(Z)[0, 0])
        loss, grad = ops.binary_crossentropy(Z, np.ones_like(Z))
        assert math.isnan(loss) and np.isnan(grad[0, 0])
        loss, grad = ops.softmax_cross_entropy(Z, np.array([1, 0]))
        assert math.isnan(loss) and np.isnan(grad).all()

