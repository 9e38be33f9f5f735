"""Numerics under stress: extreme logits, all-equal inputs, saturated activations, tiny and huge
learning rates. Where the mathematics is finite the losses and gradients are finite (and equal
to a float64 numpy reference); where training diverges it stops clearly: a RuntimeWarning, a
history that ends, finite weights equal to those before the failing step."""
import re
import warnings

import numpy as np
import pytest

import fastbp as fb
import numpy_reference as ref
from fastbp import ops

DTYPES = ("float32", "float64")
RTOL = {"float32": 1e-4, "float64": 1e-10}


def finite(*arrays):
    return all(np.isfinite(np.asarray(a)).all() for a in arrays)


# ---- extreme logits ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1e4, -1e4, 1e4 * np.array([1, -1, 0.5])])
def test_cross_entropies_of_extreme_logits_are_finite(dtype, scale):
    """log-sum-exp with the row maximum subtracted, BCE from logits: a logit of +-1e4 gives
    the exact finite loss and gradient, never log(0) or inf - inf."""
    rng = np.random.default_rng(0)
    Z = (rng.choice([-1.0, 1.0], size=(6, 3)) * scale).astype(dtype)
    labels = rng.integers(0, 3, 6)
    loss, grad = ops.softmax_cross_entropy(Z, labels)
    want_loss, want_grad = ref.softmax_xent(Z.astype(np.float64), labels)
    assert finite(loss, grad)
    assert loss == pytest.approx(want_loss, rel=RTOL[dtype])
    np.testing.assert_allclose(grad, want_grad, rtol=RTOL[dtype], atol=1e-7)
    Y = (rng.random(Z.shape) < 0.5).astype(dtype)
    loss, grad = ops.binary_crossentropy(Z, Y)
    want_loss, want_grad = ref.bce_logits(Z.astype(np.float64), Y)
    assert finite(loss, grad)
    assert loss == pytest.approx(want_loss, rel=RTOL[dtype])
    np.testing.assert_allclose(grad, want_grad, rtol=RTOL[dtype], atol=1e-7)


def model_with_logits_of(scale, dtype, loss, last):
    """A one-layer model whose logits for X = I are +-scale."""
    k = 1 if loss == "binary_crossentropy" else 3
    model = fb.Sequential([fb.Dense(3, k, activation=last)], dtype=dtype, seed=0)
    W = np.where(np.arange(3 * k).reshape(3, k) % 2, scale, -scale)
    model.set_weights([W, np.zeros(k)])
    model.compile(loss, fb.SGD(lr=0.1))
    return model


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss,last", [("categorical_crossentropy", "softmax"),
                                       ("categorical_crossentropy", None),
                                       ("binary_crossentropy", "sigmoid"),
                                       ("binary_crossentropy", None)])
def test_model_with_extreme_logits_has_finite_loss_and_gradients(dtype, loss, last):
    X = np.eye(3)
    model = model_with_logits_of(1e4, dtype, loss, last)
    k = model.layers[-1].out_features
    y = np.array([0, 1, 2]) if k == 3 else np.array([[1.0], [0.0], [1.0]])
    value, grads = model.compute_gradients(X, y)
    Z = X @ model.get_weights()[0].astype(np.float64)
    want = ref.softmax_xent(Z, y)[0] if k == 3 else ref.bce_logits(Z, y)[0]
    assert np.isfinite(value) and value == pytest.approx(want, rel=RTOL[dtype])
    assert finite(*grads)
    assert model.evaluate(X, y) == pytest.approx(value, rel=RTOL[dtype])
    P = model.predict(X)
    assert finite(P) and ((P >= 0) & (P <= 1)).all() if last else finite(P)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no divergence stop here
        history = model.fit(X, y, epochs=3, batch_size=3, verbose=0)
    assert finite(history.history["loss"], *model.get_weights())


# ---- all-equal inputs and saturated activations -------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [0.0, 5.0, -1e3])
def test_all_equal_inputs(dtype, value):
    """Identical rows (and constant features): finite training, identical predictions."""
    X = np.full((32, 4), value)
    y = np.arange(32) % 3
    model = fb.Sequential([fb.Dense(4, 8, activation="tanh"), fb.Dense(8, 3)], dtype=dtype,
                          seed=1)
    model.compile("categorical_crossentropy", fb.Adam(lr=0.01))
    history = model.fit(X, y, epochs=5, batch_size=8, verbose=0)
    assert finite(history.history["loss"], *model.get_weights())
    P = model.predict(X)
    assert finite(P) and np.all(P == P[0])
    # the best a model can do on identical inputs is the class frequencies: log(3)
    loss = model.evaluate(X, y)
    assert loss >= np.log(3) - 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", ["sigmoid", "tanh"])
@pytest.mark.parametrize("loss", ["mse", "binary_crossentropy"])
def test_saturated_activations_give_finite_zero_gradients(dtype, hidden, loss):
    """Hidden units driven to +-1e3: their derivative is 0 (exactly or nearly), gradients are
    finite, training neither crashes nor diverges."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((20, 3))
    y = (rng.random((20, 1)) < 0.5).astype(np.float64)
    model = fb.Sequential([fb.Dense(3, 5, activation=hidden), fb.Dense(5, 1, activation="sigmoid")],
                          dtype=dtype, seed=2)
    W0, b0, W1, b1 = model.get_weights()
    model.set_weights([np.sign(W0) * 1e3, b0, W1 * 1e3, b1])  # saturated hidden and output
    model.compile(loss, fb.SGD(lr=0.1))
    value, grads = model.compute_gradients(X, y)
    assert np.isfinite(value) and finite(*grads)
    assert np.abs(grads[0]).max() < 1e-3  # the hidden layer is saturated
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model.fit(X, y, epochs=2, batch_size=5, verbose=0)
    assert finite(*model.get_weights())


# ---- learning rates ---------------------------------------------------------------------------------
def problem(n=64, scale=1.0):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((n, 5)) * scale
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)


OPTIMIZERS = {"sgd": lambda lr: fb.SGD(lr=lr), "momentum": lambda lr: fb.SGD(lr, momentum=0.99),
              "nesterov_wd": lambda lr: fb.SGD(lr, momentum=0.9, nesterov=True,
                                               weight_decay=1e-3),
              "adam": lambda lr: fb.Adam(lr=lr), "adamw": lambda lr: fb.AdamW(lr=lr,
                                                                             weight_decay=1e-3)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("lr", [1e-30, 1e-300])
def test_tiny_learning_rates_change_nearly_nothing(dtype, optimizer, lr):
    X, y = problem()
    model = fb.Sequential([fb.Dense(5, 8, activation="relu"), fb.Dense(8, 3)], dtype=dtype,
                          seed=4)
    before = model.get_weights()
    model.compile("categorical_crossentropy", OPTIMIZERS[optimizer](lr))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        history = model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert finite(history.history["loss"])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def fit_watching(model, X, y, **kwargs):
    """fit; returns (history, the divergence warning's message or None)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(X, y, verbose=0, **kwargs)
    stops = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)
             and "training stopped" in str(w.message)]
    return history, (stops[0] if stops else None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("lr", [10.0, 1e4, 1e10, "limit"])
def test_huge_learning_rates_train_or_stop_clearly(dtype, optimizer, lr):
    """Any accepted learning rate, up to the largest the dtype takes (1.8e19 in float32,
    1.3e154 in float64): training completes, or stops with a RuntimeWarning, a shorter
    history and finite weights. It never writes inf/NaN into the weights."""
    if lr == "limit":
        lr = float(np.sqrt(np.finfo(dtype).max)) * 0.99
    X, y = problem(scale=10.0)
    model = fb.Sequential([fb.Dense(5, 16, activation="relu"), fb.Dense(16, 3)], dtype=dtype,
                          seed=5)
    model.compile("categorical_crossentropy", OPTIMIZERS[optimizer](lr))
    history, stop = fit_watching(model, X, y, epochs=20, batch_size=8)
    assert finite(*model.get_weights()), "non-finite weights after training"
    if stop is None:
        assert len(history.history["loss"]) == 20 and finite(history.history["loss"])
    else:
        assert len(history.history["loss"]) <= 20
        assert "Lower the learning rate" in stop


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("lr", ["above limit", 1e300])
def test_learning_rates_the_dtype_cannot_take_are_refused(dtype, optimizer, lr):
    """Regression: SGD(lr=1e300) or Adam(lr=1e38) on a float32 model wrote inf/NaN into the
    weights in the first step (float32 rounds 1e300 to inf, and inf * 0 is NaN), before any
    loss could show it; the RuntimeWarning then claimed the weights were those before the
    failing step. Such a learning rate is now a ValueError at compile and at fit, naming lr,
    and the model is unchanged."""
    limit = float(np.sqrt(np.finfo(dtype).max))
    if lr == "above limit":
        lr = limit * 1.01
    if lr <= limit:
        pytest.skip("representable in this dtype")
    X, y = problem()
    model = fb.Sequential([fb.Dense(5, 4, activation="relu"), fb.Dense(4, 3)], dtype=dtype,
                          seed=6)
    before = model.get_weights()
    with pytest.raises(ValueError, match="lr"):
        model.compile("categorical_crossentropy", OPTIMIZERS[optimizer](lr))
    model.compile("categorical_crossentropy", OPTIMIZERS[optimizer](0.01))
    model.optimizer.lr = lr
    with pytest.raises(ValueError, match="lr"):
        model.fit(X, y, epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert model._network.step == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_divergence_stops_before_the_failing_step(dtype):
    """Inputs of 1e6 and lr 10: the loss overflows within a few batches. Training stops with a
    RuntimeWarning naming how many samples were trained, and the weights equal those of a twin
    that trained exactly those samples: the failing step was not taken."""
    X, y = problem(scale=1e6 if dtype == "float32" else 1e150)
    model, twin = (fb.Sequential([fb.Dense(5, 16, activation="relu"), fb.Dense(16, 3)],
                                 dtype=dtype, seed=7) for _ in range(2))
    for m in (model, twin):
        m.compile("categorical_crossentropy", fb.SGD(lr=10.0, momentum=0.9))
    history, stop = fit_watching(model, X, y, epochs=5, batch_size=8, shuffle=False)
    assert stop is not None, "training did not diverge: the test needs a larger scale"
    trained = int(re.search(r"after (\d+) of", stop).group(1))
    assert len(history.history["loss"]) == 1  # it stopped in the first epoch
    assert finite(*model.get_weights())
    if trained:
        twin.fit(X[:trained], y[:trained], epochs=1, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model._network.step == twin._network.step


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows, sizes", [(1, (40, 30, 2)), (3, (40, 30, 2)), (16, (40, 30, 2)),
                                         (64, (4, 3, 2))])
def test_the_divergence_check_decides_as_a_scan_of_every_gradient(dtype, rows, sizes):
    """An epoch stops before a step whose gradients hold a value beyond sqrt(largest value) of
    the dtype. For small batches through wide layers src_c/train.c decides that from each
    layer's factors (rows x max|A| x max|dZ| bounds dW = A^T dZ) instead of scanning every
    gradient; its decision must be the scan's, here computed in numpy from compute_gradients,
    on both sides of the limit: inputs of size s give outputs ~s and gradients ~s^2 (MSE
    against zeros), so s ~ sqrt(limit) straddles it while the loss (~s^2) stays finite."""
    limit = float(np.sqrt(np.finfo(dtype).max))
    rng = np.random.default_rng(rows)
    direction = rng.standard_normal((rows, sizes[0]))
    y = np.zeros((rows, sizes[-1]))
    outcomes = set()
    for factor in (1e-3, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 20.0, 1e3):
        model = fb.Sequential([fb.Dense(sizes[0], sizes[1]), fb.Dense(sizes[1], sizes[2])],
                              dtype=dtype, seed=8)
        model.compile("mse", fb.SGD(lr=1e-30))
        X = factor * np.sqrt(limit) * direction
        loss, grads = model.compute_gradients(X, y)
        assert np.isfinite(loss)
        beyond = not all(np.isfinite(g).all() and (np.abs(g) <= limit).all() for g in grads)
        history, stop = fit_watching(model, X, y, epochs=1, batch_size=rows, shuffle=False)
        assert (stop is not None) == beyond, (factor, max(np.abs(g).max() for g in grads))
        outcomes.add(beyond)
    assert outcomes == {True, False}, "the sweep must reach both sides of the limit"
