"""fastbp.losses: name lookup, accepted output activations, target preparation, and loss values
and gradients at points that can be checked by hand (including extreme logits, where a naive
formula overflows).

The logits are fed straight through a Dense(k, k) layer with W = I and b = 0, so the network
output is X itself; for a one-row batch the bias gradient db is d(loss)/d(logits)."""
import math

import numpy as np
import pytest

import fastbp as fb
from fastbp import losses

DTYPES = ["float64", "float32"]
TOL = {"float64": 1e-12, "float32": 1e-6}


@pytest.mark.parametrize("name,cls", [
    ("mse", fb.MeanSquaredError), ("mean_squared_error", fb.MeanSquaredError),
    ("binary_crossentropy", fb.BinaryCrossentropy),
    ("categorical_crossentropy", fb.CategoricalCrossentropy),
    ("sparse_categorical_crossentropy", fb.CategoricalCrossentropy),
    ("cross_entropy", fb.CategoricalCrossentropy)])
def test_lookup_by_name(name, cls):
    assert type(losses.get(name)) is cls


def test_instance_passes_through():
    loss = fb.BinaryCrossentropy()
    assert losses.get(loss) is loss


@pytest.mark.parametrize("bad", ["MSE", "hinge", "", None, 3, fb.MeanSquaredError])
def test_unknown_loss(bad):
    with pytest.raises(ValueError, match=r"loss must be a Loss or one of \[.*\], got"):
        losses.get(bad)


def test_output_activations_and_compile():
    assert fb.MeanSquaredError.output_activations is None
    assert fb.BinaryCrossentropy.output_activations == ("sigmoid", "identity")
    assert fb.CategoricalCrossentropy.output_activations == ("softmax", "identity")
    for act in ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"):
        fb.MeanSquaredError().check_output_activation(act)  # MSE takes any output
    for loss, rejected in [("binary_crossentropy", ["softmax", "relu", "tanh", "leaky_relu"]),
                           ("categorical_crossentropy", ["sigmoid", "relu", "tanh"])]:
        for act in rejected:
            model = fb.Sequential([fb.Dense(2, 2, activation=act)])
            with pytest.raises(ValueError, match=rf"loss '{loss}' needs a last layer"):
                model.compile(loss=loss)


def test_repr():
    assert repr(fb.CategoricalCrossentropy()) == "CategoricalCrossentropy()"


# ---- target preparation ----------------------------------------------------------------
def test_mse_column_targets():
    y = fb.MeanSquaredError().prepare_targets([1, 2, 3], 3, 1, np.float32)
    assert y.shape == (3, 1) and y.dtype == np.float32 and y.flags.c_contiguous
    with pytest.raises(ValueError, match=r"y must have shape \(n_samples, 1\) or \(n_samples,\)"):
        fb.MeanSquaredError().prepare_targets(np.zeros((3, 2)), 3, 1, np.float64)


def test_bce_bounds_are_inclusive():
    y = fb.BinaryCrossentropy().prepare_targets([0.0, 1.0, 0.5], 3, 1, np.float64)
    np.testing.assert_array_equal(y.ravel(), [0, 1, 0.5])
    for bad in (1.0000001, -1e-12):
        with pytest.raises(ValueError, match=r"in \[0, 1\]"):
            fb.BinaryCrossentropy().prepare_targets([0.0, bad, 0.5], 3, 1, np.float64)


def test_cce_labels_become_int64():
    for y in (np.array([0, 2, 1], np.int8), np.array([0.0, 2.0, 1.0]), [0, 2, 1],
              np.array([False, True, True])):
        labels = fb.CategoricalCrossentropy().prepare_targets(y, 3, 3, np.float32)
        assert labels.dtype == np.int64 and labels.shape == (3,)


def test_cce_row_sum_tolerance():
    loss = fb.CategoricalCrossentropy()
    rows = np.array([[0.5, 0.5 + 5e-4, 0.0], [0.2, 0.3, 0.5]])
    np.testing.assert_array_equal(loss.prepare_targets(rows, 2, 3, np.float64), rows)
    rows[0, 1] = 0.5 + 5e-3
    with pytest.raises(ValueError, match=r"rows must be one-hot or probabilities"):
        loss.prepare_targets(rows, 2, 3, np.float64)


# ---- values and gradients at hand-checkable points ---------------------------------------
def logit_model(k, loss, output, dtype):
    model = fb.Sequential([fb.Dense(k, k, activation=output)], dtype=dtype)
    model.set_weights([np.eye(k), np.zeros(k)])
    model.compile(loss=loss, optimizer="sgd")
    return model


def dloss_dlogits(model, z, y):
    """(loss, d loss / d z) for one row of logits z."""
    loss, grads = model.compute_gradients(np.atleast_2d(z), y)
    return loss, grads[1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["sigmoid", "identity"])
def test_bce_at_zero_logit_is_log2(output, dtype):
    model = logit_model(1, "binary_crossentropy", output, dtype)
    loss, grad = dloss_dlogits(model, [0.0], [1.0])
    assert loss == pytest.approx(math.log(2), rel=TOL[dtype])
    assert grad[0] == pytest.approx(-0.5, rel=TOL[dtype])  # sigmoid(0) - 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_is_stable_for_extreme_logits(dtype):
    model = logit_model(2, "binary_crossentropy", "identity", dtype)
    # z = 1000 with y = 0 costs 1000 (naively: -log(1 - sigmoid(1000)) = -log(0) = inf);
    # z = -1000 with y = 0 costs log1p(exp(-1000)) = 0. Mean over the 2 elements: 500.
    loss, grad = dloss_dlogits(model, [1000.0, -1000.0], [[0.0, 0.0]])
    assert loss == pytest.approx(500.0, rel=TOL[dtype])
    # d/dz = (sigmoid(z) - y) / 2 = (1/2, 0)
    np.testing.assert_allclose(grad, [0.5, 0.0], atol=TOL[dtype])
    loss, grad = dloss_dlogits(model, [1000.0, -1000.0], [[1.0, 1.0]])
    assert loss == pytest.approx(500.0, rel=TOL[dtype])
    np.testing.assert_allclose(grad, [0.0, -0.5], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_is_the_mean_over_all_elements(dtype):
    """2 rows x 2 columns of zero logits, targets (1, 0), (0, 1): every element costs log 2;
    each gradient entry is (0.5 - y) / 4."""
    model = logit_model(2, "binary_crossentropy", "sigmoid", dtype)
    loss, grads = model.compute_gradients(np.zeros((2, 2)), [[1.0, 0.0], [0.0, 1.0]])
    assert loss == pytest.approx(math.log(2), rel=TOL[dtype])
    # db sums over the rows: ((0.5 - 1) + 0.5, 0.5 + (0.5 - 1)) / 4 = (0, 0)
    np.testing.assert_allclose(grads[1], [0.0, 0.0], atol=TOL[dtype])
    # targets (1, 0) twice: db = ((0.5 - 1) * 2, 0.5 * 2) / 4 = (-0.25, 0.25)
    loss, grads = model.compute_gradients(np.zeros((2, 2)), [[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(grads[1], [-0.25, 0.25], rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["softmax", "identity"])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_cce_of_equal_logits_is_log_k(k, output, dtype):
    model = logit_model(k, "categorical_crossentropy", output, dtype)
    onehot = np.eye(k)[1]
    uniform = np.full(k, 1 / k)
    # (targets as passed, the same targets as a row): the gradient is softmax - row = 1/k - row
    for target, row in [([1], onehot), ([onehot], onehot), ([uniform], uniform)]:
        loss, grad = dloss_dlogits(model, np.full(k, 3.0), np.array(target))
        assert loss == pytest.approx(math.log(k), rel=TOL[dtype])
        np.testing.assert_allclose(grad, 1 / k - row, atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cce_is_stable_for_extreme_logits(dtype):
    model = logit_model(3, "categorical_crossentropy", "softmax", dtype)
    # logsumexp(1000, 0, -1000) = 1000; label 1 costs 1000 - 0 = 1000
    loss, grad = dloss_dlogits(model, [1000.0, 0.0, -1000.0], [1])
    assert loss == pytest.approx(1000.0, rel=TOL[dtype])
    np.testing.assert_allclose(grad, [1.0, -1.0, 0.0], atol=TOL[dtype])
    probs = model.predict([[1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(probs, [[1.0, 0.0, 0.0]], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cce_is_the_mean_over_samples(dtype):
    """Two samples: logits (0, 0) with label 0 cost log 2; logits (log 3, 0) with label 1 cost
    log(3 + 1) - 0 = log 4. Mean (log 2 + log 4) / 2 = 1.5 log 2."""
    model = logit_model(2, "categorical_crossentropy", "identity", dtype)
    X = [[0.0, 0.0], [math.log(3), 0.0]]
    assert model.evaluate(X, [0, 1]) == pytest.approx(1.5 * math.log(2), rel=TOL[dtype])
    assert model.evaluate(X, [[1, 0], [0, 1]]) == pytest.approx(1.5 * math.log(2),
                                                                rel=TOL[dtype])
    # db = mean over samples of (softmax - onehot) = ((0.5 - 1) + 0.75, 0.5 + (0.25 - 1)) / 2
    _, grads = model.compute_gradients(X, [0, 1])
    np.testing.assert_allclose(grads[1], [0.125, -0.125], rtol=10 * TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cce_soft_targets(dtype):
    """Logits (0, log 3): softmax (1/4, 3/4). Targets (0.3, 0.7): loss
    0.3 * (log 4 - 0) + 0.7 * (log 4 - log 3) = log 4 - 0.7 log 3; gradient p - y =
    (-0.05, 0.05)."""
    model = logit_model(2, "categorical_crossentropy", "softmax", dtype)
    loss, grad = dloss_dlogits(model, [0.0, math.log(3)], [[0.3, 0.7]])
    assert loss == pytest.approx(math.log(4) - 0.7 * math.log(3), rel=TOL[dtype])
    np.testing.assert_allclose(grad, [-0.05, 0.05], rtol=10 * TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_mean_over_all_elements(dtype):
    """Outputs (1, 2), (3, 4) against zeros: mean of 1, 4, 9, 16 = 7.5; the gradient of the
    output is 2 (P - Y) / 4, so db = (1 + 3, 2 + 4) / 2 = (2, 3)."""
    model = logit_model(2, "mse", "identity", dtype)
    loss, grads = model.compute_gradients([[1.0, 2.0], [3.0, 4.0]], np.zeros((2, 2)))
    assert loss == pytest.approx(7.5, rel=TOL[dtype])
    np.testing.assert_allclose(grads[1], [2.0, 3.0], rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_chains_through_the_output_activation(dtype):
    """MSE takes the activated output: tanh(0) = 0 against y = 1 costs 1; the gradient is
    2 (0 - 1) * tanh'(0) = -2 (a fused formula would give a different number)."""
    model = logit_model(1, "mse", "tanh", dtype)
    loss, grad = dloss_dlogits(model, [0.0], [1.0])
    assert loss == pytest.approx(1.0, rel=TOL[dtype])
    assert grad[0] == pytest.approx(-2.0, rel=TOL[dtype])
    # sigmoid output: sigmoid(0) = 0.5 against 1 costs 0.25; gradient 2 (-0.5) * 0.25 = -0.25
    model = logit_model(1, "mse", "sigmoid", dtype)
    loss, grad = dloss_dlogits(model, [0.0], [1.0])
    assert loss == pytest.approx(0.25, rel=TOL[dtype])
    assert grad[0] == pytest.approx(-0.25, rel=TOL[dtype])
