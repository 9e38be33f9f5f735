"""fastbp.layers.Dense: attributes, initialisation (Glorot uniform by default, He uniform and
torch's default by init=) and each activation's values, checked against math-module
values through a one-unit layer with W = 1, b = 0."""
import math

import numpy as np
import pytest

import fastbp as fb

ACTIVATIONS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"]
DTYPES = ["float64", "float32"]


def test_attributes_and_repr():
    layer = fb.Dense(3, 5)
    assert (layer.in_features, layer.out_features) == (3, 5)
    assert layer.activation == "identity" and layer.negative_slope == 0.01
    assert layer.W is None and layer.b is None
    assert repr(layer) == "Dense(3, 5, activation='identity')"
    assert fb.Dense(2, 2, activation="identity").activation == "identity"
    leaky = fb.Dense(2, 2, activation="leaky_relu", negative_slope=0.2)
    assert leaky.negative_slope == 0.2 and type(leaky.negative_slope) is float
    assert type(fb.Dense(np.int64(2), np.int32(3)).in_features) is int


def test_views_appear_when_the_layer_joins_a_model():
    first, second = fb.Dense(3, 4), fb.Dense(4, 2)
    model = fb.Sequential([first, second], dtype="float32")
    assert first.W.shape == (3, 4) and first.b.shape == (4,)
    assert second.W.shape == (4, 2) and second.b.shape == (2,)
    assert first.W.dtype == np.float32
    assert not np.shares_memory(first.W, second.W)
    assert model.layers == [first, second]


FAN_IN, FAN_OUT = 300, 200
LIMITS = {
    "glorot_uniform": math.sqrt(6 / (FAN_IN + FAN_OUT)),  # variance 2 / (in + out)
    "he_uniform": math.sqrt(6 / FAN_IN),  # variance 2 / fan_in
    "torch": 1 / math.sqrt(FAN_IN),  # torch.nn.Linear's kaiming_uniform(a=sqrt(5))
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("init", [None] + sorted(LIMITS))
def test_initialisation_bounds(init, activation, dtype):
    kwargs = {} if init is None else {"init": init}
    model = fb.Sequential([fb.Dense(FAN_IN, FAN_OUT, activation=activation, **kwargs)],
                          dtype=dtype, seed=0)
    W, b = model.get_weights()
    limit = LIMITS[init or "glorot_uniform"]
    if init == "torch":  # torch draws biases from the same interval
        assert np.abs(b).max() <= limit and np.abs(b).max() > 0.9 * limit
    else:
        np.testing.assert_array_equal(b, 0)
    assert np.abs(W).max() <= limit
    assert np.abs(W).max() > 0.999 * limit  # 60 000 draws fill the interval
    assert abs(W.mean()) < 0.01 * limit
    assert W.std() == pytest.approx(limit / math.sqrt(3), rel=0.01)  # uniform(-a, a)


def test_layers_get_independent_draws():
    model = fb.Sequential([fb.Dense(4, 4), fb.Dense(4, 4)], seed=0)
    W0, _, W1, _ = model.get_weights()
    assert not np.array_equal(W0, W1)


def test_reset_parameters_redraws_and_zeroes_biases():
    model = fb.Sequential([fb.Dense(4, 3, activation="relu"), fb.Dense(3, 2)], seed=0)
    model.compile(loss="mse", optimizer=fb.SGD(lr=0.1))
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(20, 4)), rng.normal(size=(20, 2)), epochs=2, verbose=0)
    trained = model.get_weights()
    assert np.any(trained[1] != 0)
    model.reset_parameters()
    fresh = model.get_weights()
    np.testing.assert_array_equal(fresh[1], 0)
    np.testing.assert_array_equal(fresh[3], 0)
    assert not np.array_equal(fresh[0], trained[0])
    assert np.abs(fresh[0]).max() <= math.sqrt(6 / (4 + 3))


def test_unknown_init_is_rejected():
    with pytest.raises(ValueError, match="init must be one of"):
        fb.Dense(2, 2, init="zeros")


def unit(activation, dtype, slope=0.01):
    model = fb.Sequential([fb.Dense(1, 1, activation=activation, negative_slope=slope)],
                          dtype=dtype)
    model.set_weights([[[1.0]], [0.0]])
    return model


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation,z,expected", [
    ("identity", -2.5, -2.5),
    ("relu", -2.0, 0.0), ("relu", 3.0, 3.0), ("relu", 0.0, 0.0),
    ("leaky_relu", -2.0, -0.02), ("leaky_relu", 3.0, 3.0),
    ("sigmoid", 0.0, 0.5), ("sigmoid", 2.0, 1 / (1 + math.exp(-2.0))),
    ("sigmoid", -1000.0, 0.0), ("sigmoid", 1000.0, 1.0),
    ("tanh", 1.0, math.tanh(1.0)), ("tanh", -0.5, math.tanh(-0.5)), ("tanh", 50.0, 1.0),
])
def test_activation_values(activation, z, expected, dtype):
    out = unit(activation, dtype).predict([[z]])
    assert out[0, 0] == pytest.approx(expected, rel=1e-6 if dtype == "float32" else 1e-15,
                                      abs=1e-300)


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_negative_slope_forward_and_backward(dtype):
    """slope 0.3, z = -2 (x = -2, W = 1, b = 0): output -0.6; MSE against 0 is 0.36;
    dL/dout = 2 * (-0.6) = -1.2, times the slope 0.3: dz = -0.36; dW = x dz = 0.72, db = -0.36.
    """
    model = unit("leaky_relu", dtype, slope=0.3)
    assert model.predict([[-2.0]])[0, 0] == pytest.approx(-0.6, rel=1e-6)
    model.compile(loss="mse", optimizer="sgd")
    loss, (dW, db) = model.compute_gradients([[-2.0]], [0.0])
    assert loss == pytest.approx(0.36, rel=1e-6)
    assert dW[0, 0] == pytest.approx(0.72, rel=1e-6)
    assert db[0] == pytest.approx(-0.36, rel=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_values(dtype):
    model = fb.Sequential([fb.Dense(3, 3, activation="softmax")], dtype=dtype)
    model.set_weights([np.eye(3), np.zeros(3)])
    e = [math.exp(1), math.exp(2), math.exp(3)]
    expected = [v / sum(e) for v in e]
    out = model.predict([[1.0, 2.0, 3.0], [1001.0, 1002.0, 1003.0], [-1000.0, 0.0, 1000.0]])
    rtol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(out[0], expected, rtol=rtol)
    np.testing.assert_allclose(out[1], expected, rtol=rtol)  # shift-invariant, no overflow
    np.testing.assert_allclose(out[2], [0.0, 0.0, 1.0], atol=1e-300)


def test_hidden_softmax_is_allowed():
    model = fb.Sequential([fb.Dense(2, 3, activation="softmax"), fb.Dense(3, 1)], seed=0)
    out = model.predict(np.ones((4, 2)))
    assert out.shape == (4, 1) and np.all(np.isfinite(out))
