"""Bad input is rejected at the Python boundary with an exception whose type and message name
the argument and what was expected, before anything is written: the weights, the optimizer
state (moments and step count) and the compiled loss/optimizer are those from before the call,
and the model trains normally afterwards. Good input in unusual layouts (int, Fortran order,
strided views, read-only, other float dtype, lists) is converted and gives exactly the result
of its plain C-contiguous float copy."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp as fb

N, IN = 10, 4


def data(kind, n=N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, IN))
    if kind == "mse":
        y = rng.normal(size=(n, 2))
    elif kind == "bce":
        y = rng.integers(0, 2, size=(n, 2)).astype(np.float64)
    else:
        y = np.arange(n) % 3  # every class present
    return X, y


def trained_model(kind, dtype="float64"):
    """A compiled model that has already taken Adam steps, so its optimizer state is not
    all zeros and a reset would show."""
    output = {"mse": ("identity", 2), "bce": ("sigmoid", 2), "cce": ("softmax", 3)}[kind]
    model = fb.Sequential([fb.Dense(IN, 5, activation="tanh"),
                           fb.Dense(5, output[1], activation=output[0])], dtype=dtype, seed=1)
    loss = {"mse": "mse", "bce": "binary_crossentropy", "cce": "categorical_crossentropy"}[kind]
    model.compile(loss=loss, optimizer=fb.Adam(lr=0.01), metrics=["accuracy"])
    model.fit(*data(kind), epochs=2, batch_size=4, verbose=0)
    return model


def snapshot(model):
    net = model._network
    return {"weights": model.get_weights(), "state1": net.state1.copy(),
            "state2": net.state2.copy(), "step": net.step, "loss": model.loss,
            "optimizer": model.optimizer, "metrics": list(model.metrics)}


def assert_unchanged(model, before):
    after = snapshot(model)
    assert after["step"] == before["step"], "the optimizer step count changed"
    for key in ("loss", "optimizer"):
        assert after[key] is before[key], f"model.{key} changed"
    assert after["metrics"] == before["metrics"], "model.metrics changed"
    for w0, w1 in zip(before["weights"], after["weights"]):
        np.testing.assert_array_equal(w0, w1, err_msg="a weight changed")
    np.testing.assert_array_equal(before["state1"], after["state1"], err_msg="state1 changed")
    np.testing.assert_array_equal(before["state2"], after["state2"], err_msg="state2 changed")


def assert_trains(model, kind):
    """Training continues after the error: one more epoch takes steps and moves the weights."""
    step, weights = model._network.step, model.get_weights()
    history = model.fit(*data(kind), epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model._network.step == step + 3
    assert any(not np.array_equal(w0, w1) for w0, w1 in zip(weights, model.get_weights()))


def with_nan(a, index=(3, 1), value=np.nan):
    a = np.array(a, dtype=np.float64)
    a[index] = value
    return a


def fit(**changes):
    """A call fit(X, y, ...) with some arguments replaced (X and y by functions of the
    good ones)."""
    def call(model, X, y):
        kwargs = dict(epochs=1, batch_size=4, verbose=0)
        kwargs.update({k: v for k, v in changes.items() if k not in ("X", "y")})
        X2 = changes["X"](X, y) if "X" in changes else X
        y2 = changes["y"](X, y) if "y" in changes else y
        model.fit(X2, y2, **kwargs)
    return call


# (id, model kind, call(model, X, y), exception type, message regex)
BAD_CALLS = [
    # ---- X ----
    ("X-1d", "mse", fit(X=lambda X, y: X[:, 0]), ValueError,
     r"X must be 2-d \(n_samples, 4\), got shape \(10,\)"),
    ("X-3d", "mse", fit(X=lambda X, y: X[:, :, None]), ValueError, r"X must be 2-d"),
    ("X-features", "mse", fit(X=lambda X, y: X[:, :3]), ValueError,
     r"X must have 4 features \(columns\) for this model, got 3"),
    ("X-empty", "mse", fit(X=lambda X, y: X[:0], y=lambda X, y: y[:0]), ValueError,
     r"X is empty: it must have at least one sample"),
    ("X-nan", "mse", fit(X=lambda X, y: with_nan(X)), ValueError,
     r"X contains NaN or infinity"),
    ("X-inf", "cce", fit(X=lambda X, y: with_nan(X, value=-np.inf)), ValueError,
     r"X contains NaN or infinity"),
    ("X-None", "mse", fit(X=lambda X, y: None), TypeError, r"X must be an array, got None"),
    ("X-strings", "mse", fit(X=lambda X, y: X.astype(str)), TypeError,
     r"X must hold real numbers, got dtype <U"),
    ("X-complex", "mse", fit(X=lambda X, y: X.astype(complex)), TypeError,
     r"X must hold real numbers, got dtype complex128"),
    # ---- y ----
    ("y-width", "mse", fit(y=lambda X, y: np.zeros((N, 3))), ValueError,
     r"y must have shape \(n_samples, 2\), got \(10, 3\)"),
    ("y-1d-for-2-outputs", "mse", fit(y=lambda X, y: y[:, 0]), ValueError,
     r"y must have shape \(n_samples, 2\), got \(10,\)"),
    ("y-3d", "bce", fit(y=lambda X, y: y[:, :, None]), ValueError,
     r"y must have shape \(n_samples, 2\), got \(10, 2, 1\)"),
    ("y-length", "mse", fit(y=lambda X, y: y[:9]), ValueError,
     r"y has 9 samples but X has 10"),
    ("y-nan", "mse", fit(y=lambda X, y: with_nan(y)), ValueError,
     r"y contains NaN or infinity"),
    ("y-inf", "bce", fit(y=lambda X, y: with_nan(y, value=np.inf)), ValueError,
     r"y contains NaN or infinity"),
    ("y-None", "mse", fit(y=lambda X, y: None), TypeError, r"y must be an array, got None"),
    ("bce-target-above-1", "bce", fit(y=lambda X, y: with_nan(y, value=2.0)), ValueError,
     r"y must hold targets in \[0, 1\] for binary_crossentropy"),
    ("bce-target-negative", "bce", fit(y=lambda X, y: with_nan(y, value=-0.5)), ValueError,
     r"y must hold targets in \[0, 1\] for binary_crossentropy"),
    ("cce-label-too-large", "cce", fit(y=lambda X, y: np.where(y == 2, 3, y)), ValueError,
     r"y holds class labels out of range: expected integers in \[0, 3\) for a model with "
     r"3 outputs, got values in \[0, 3\]"),
    ("cce-label-negative", "cce", fit(y=lambda X, y: np.where(y == 0, -1, y)), ValueError,
     r"y holds class labels out of range: expected integers in \[0, 3\)"),
    ("cce-label-non-integer", "cce", fit(y=lambda X, y: y + 0.5), ValueError,
     r"y must hold integer class indices, got non-integer values"),
    ("cce-label-nan", "cce", fit(y=lambda X, y: with_nan(y, index=3)), ValueError,
     r"y contains NaN or infinity"),
    ("cce-label-strings", "cce", fit(y=lambda X, y: y.astype(str)), TypeError,
     r"y must hold integer class indices, got dtype <U"),
    ("cce-label-length", "cce", fit(y=lambda X, y: y[:9]), ValueError,
     r"y has 9 samples but X has 10"),
    ("cce-rows-not-summing-to-1", "cce", fit(y=lambda X, y: np.eye(3)[y] * 0.5), ValueError,
     r"y rows must be one-hot or probabilities \(non-negative, summing to 1\)"),
    ("cce-rows-negative", "cce",
     fit(y=lambda X, y: np.tile([1.5, -0.5, 0.0], (N, 1))), ValueError,
     r"y rows must be one-hot or probabilities"),
    ("cce-rows-width", "cce", fit(y=lambda X, y: np.eye(4)[y]), ValueError,
     r"y must have shape \(n_samples, 3\), got \(10, 4\)"),
    # ---- fit's other arguments ----
    ("batch_size-0", "mse", fit(batch_size=0), ValueError, r"batch_size must be >= 1, got 0"),
    ("batch_size-negative", "mse", fit(batch_size=-4), ValueError,
     r"batch_size must be >= 1, got -4"),
    ("batch_size-float", "mse", fit(batch_size=4.0), TypeError,
     r"batch_size must be an integer, got float"),
    ("batch_size-bool", "mse", fit(batch_size=True), TypeError,
     r"batch_size must be an integer, got bool"),
    ("epochs-negative", "mse", fit(epochs=-1), ValueError, r"epochs must be >= 0, got -1"),
    ("epochs-float", "mse", fit(epochs=1.5), TypeError, r"epochs must be an integer, got float"),
    ("validation_split-1", "mse", fit(validation_split=1.0), ValueError,
     r"validation_split must be in \[0, 1\), got 1.0"),
    ("validation_split-negative", "mse", fit(validation_split=-0.1), ValueError,
     r"validation_split must be in \[0, 1\), got -0.1"),
    ("validation_split-str", "mse", fit(validation_split="0.2"), TypeError,
     r"validation_split must be a real number, got str"),
    ("validation_split-leaves-none", "mse", fit(validation_split=0.05), ValueError,
     r"validation_split=0.05 of 10 samples leaves 0 for validation"),
    ("validation_data-not-pair", "mse", fit(validation_data=(np.zeros((2, IN)),)), ValueError,
     r"validation_data must be a tuple \(X_val, y_val\)"),
    ("validation_data-X-nan", "mse",
     fit(validation_data=(with_nan(np.zeros((5, IN))), np.zeros((5, 2)))), ValueError,
     r"validation_data\[0\] contains NaN or infinity"),
    ("validation_data-y-inf", "mse",
     fit(validation_data=(np.zeros((5, IN)), with_nan(np.zeros((5, 2)), value=np.inf))),
     ValueError, r"validation_data\[1\] contains NaN or infinity"),
    ("validation_data-X-features", "mse",
     fit(validation_data=(np.zeros((5, 3)), np.zeros((5, 2)))), ValueError,
     r"validation_data\[0\] must have 4 features \(columns\) for this model, got 3"),
    ("validation_data-y-length", "cce",
     fit(validation_data=(np.zeros((5, IN)), np.zeros(4, int))), ValueError,
     r"validation_data\[1\] has 4 samples"),
    ("validation_data-labels-range", "cce",
     fit(validation_data=(np.zeros((3, IN)), np.array([0, 1, 7]))), ValueError,
     r"validation_data\[1\] holds class labels out of range"),
    ("validation_data-bce-range", "bce",
     fit(validation_data=(np.zeros((2, IN)), np.full((2, 2), 1.5))), ValueError,
     r"validation_data\[1\] must hold targets in \[0, 1\]"),
    ("shuffle-str", "mse", fit(shuffle="yes"), TypeError, r"shuffle must be a bool, got str"),
    ("verbose-negative", "mse", fit(verbose=-1), ValueError, r"verbose must be >= 0, got -1"),
    # ---- predict / evaluate / compute_gradients ----
    ("predict-features", "mse", lambda m, X, y: m.predict(X[:, :2]), ValueError,
     r"X must have 4 features"),
    ("predict-nan", "cce", lambda m, X, y: m.predict(with_nan(X)), ValueError,
     r"X contains NaN or infinity"),
    ("predict-empty", "mse", lambda m, X, y: m.predict(np.zeros((0, IN))), ValueError,
     r"X is empty"),
    ("evaluate-length", "mse", lambda m, X, y: m.evaluate(X, y[:7]), ValueError,
     r"y has 7 samples but X has 10"),
    ("evaluate-labels", "cce", lambda m, X, y: m.evaluate(X, y + 3), ValueError,
     r"y holds class labels out of range"),
    ("gradients-nan", "bce", lambda m, X, y: m.compute_gradients(X, with_nan(y)), ValueError,
     r"y contains NaN or infinity"),
    # ---- compile: a failed compile keeps the previous configuration and state ----
    ("compile-unknown-loss", "mse", lambda m, X, y: m.compile(loss="hinge"), ValueError,
     r"loss must be a Loss or one of \[.*'mse'.*\], got 'hinge'"),
    ("compile-unknown-optimizer", "mse",
     lambda m, X, y: m.compile(loss="mse", optimizer="rmsprop"), ValueError,
     r"optimizer must be an Optimizer or one of \['adam', 'adamw', 'sgd'\], got 'rmsprop'"),
    ("compile-unknown-metric", "mse",
     lambda m, X, y: m.compile(loss="mse", metrics=["f1"]), ValueError,
     r"metrics must name some of \[.*'accuracy'.*\], got 'f1'"),
    ("compile-metrics-str", "mse",
     lambda m, X, y: m.compile(loss="mse", metrics="accuracy"), TypeError,
     r"metrics must be a list of names, got 'accuracy'"),
    ("compile-bce-on-softmax", "cce",
     lambda m, X, y: m.compile(loss="binary_crossentropy"), ValueError,
     r"loss 'binary_crossentropy' needs a last layer with activation in "
     r"\['sigmoid', 'identity'\], got 'softmax'"),
    ("compile-cce-on-sigmoid", "bce",
     lambda m, X, y: m.compile(loss=fb.CategoricalCrossentropy()), ValueError,
     r"loss 'categorical_crossentropy' needs a last layer with activation in "
     r"\['softmax', 'identity'\], got 'sigmoid'"),
    # ---- set_weights: checked entirely before anything is written ----
    ("set_weights-length", "mse", lambda m, X, y: m.set_weights(m.get_weights()[:3]),
     ValueError, r"weights must be a list of 4 arrays \[W0, b0, W1, b1, \.\.\.\], got 3"),
    ("set_weights-not-list", "mse", lambda m, X, y: m.set_weights(np.zeros(4)), ValueError,
     r"weights must be a list of 4 arrays .*got ndarray"),
    ("set_weights-shape", "cce",
     lambda m, X, y: m.set_weights([w.T if w.ndim == 2 else w for w in m.get_weights()]),
     ValueError, r"weights\[0\] must have shape \(4, 5\), got \(5, 4\)"),
    ("set_weights-nan-last", "mse",
     lambda m, X, y: m.set_weights([w + 1 for w in m.get_weights()[:3]]
                                   + [np.array([0.0, np.nan])]),
     ValueError, r"weights\[3\] contains NaN or infinity"),
    ("set_weights-strings", "mse",
     lambda m, X, y: m.set_weights(m.get_weights()[:3] + [np.array(["a", "b"])]), TypeError,
     r"weights\[3\] must hold real numbers"),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind,call,exc,match", [case[1:] for case in BAD_CALLS],
                         ids=[case[0] for case in BAD_CALLS])
def test_bad_call_raises_before_any_change(kind, call, exc, match, dtype):
    model = trained_model(kind, dtype)
    X, y = data(kind)
    before = snapshot(model)
    with pytest.raises(exc, match=match):
        call(model, X, y)
    assert_unchanged(model, before)
    assert_trains(model, kind)


def test_validation_data_length_message_names_validation_x():
    model = trained_model("mse")
    with pytest.raises(ValueError, match=r"validation_data\[1\] has 4 samples but "
                                         r"validation_data\[0\] has 5"):
        model.fit(*data("mse"), validation_data=(np.zeros((5, IN)), np.zeros((4, 2))),
                  verbose=0)


def test_huge_batch_size_is_one_full_batch():
    model = trained_model("mse")
    reference = trained_model("mse")
    X, y = data("mse")
    model.fit(X, y, epochs=1, batch_size=2**31, shuffle=False, verbose=0)
    reference.fit(X, y, epochs=1, batch_size=N, shuffle=False, verbose=0)
    for w0, w1 in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(w0, w1)


@pytest.mark.parametrize("method", ["fit", "evaluate", "compute_gradients"])
def test_uncompiled_model(method):
    model = fb.Sequential([fb.Dense(IN, 2)], seed=0)
    X, y = data("mse")
    weights = model.get_weights()
    with pytest.raises(RuntimeError, match=r"call model.compile\(loss, optimizer\) before fit"):
        getattr(model, method)(X, y)
    for w0, w1 in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    model.predict(X)  # predicting needs no loss
    model.compile(loss="mse", optimizer="sgd")
    getattr(model, method)(X, y)


# ---- construction -----------------------------------------------------------------------
def test_dense_layer_reused_in_a_second_model():
    shared = fb.Dense(3, 2)
    first = fb.Sequential([fb.Dense(4, 3), shared], seed=0)
    weights = first.get_weights()
    with pytest.raises(ValueError, match=r"layers\[1\] already belongs to another model; "
                                         r"create a new Dense layer"):
        fb.Sequential([fb.Dense(4, 3), shared], seed=1)
    # the first model still owns the layer: its views and weights are untouched
    assert shared._model is first
    assert np.shares_memory(shared.W, first._network.params)
    for w0, w1 in zip(weights, first.get_weights()):
        np.testing.assert_array_equal(w0, w1)


def test_same_dense_twice_in_one_model_is_rejected():
    layer = fb.Dense(3, 3, activation="tanh")
    with pytest.raises(ValueError, match=r"layers\[1\]"):
        fb.Sequential([layer, layer], seed=0)


def test_failed_construction_leaves_layers_reusable():
    a, b = fb.Dense(4, 3), fb.Dense(3, 2)
    with pytest.raises(ValueError, match=r"dtype must be 'float32' or 'float64', got 'float16'"):
        fb.Sequential([a, b], dtype="float16")
    model = fb.Sequential([a, b], seed=0)
    assert a._model is model and a.W.shape == (4, 3)


@pytest.mark.parametrize("layers,exc,match", [
    ([fb.Dense(4, 3), fb.Dense(4, 2)], ValueError,
     r"layers\[1\].in_features is 4 but layers\[0\] has out_features 3"),
    ([fb.Dense(4, 3), fb.Dense(3, 5), fb.Dense(6, 2)], ValueError,
     r"layers\[2\].in_features is 6 but layers\[1\] has out_features 5"),
    ([], TypeError, r"layers must be a non-empty list of Dense layers"),
    (fb.Dense(4, 3), TypeError, r"layers must be a non-empty list of Dense layers"),
    ([fb.Dense(4, 3), "relu"], TypeError, r"layers\[1\] must be a Dense layer, got str"),
])
def test_bad_layer_lists(layers, exc, match):
    with pytest.raises(exc, match=match):
        fb.Sequential(layers)


@pytest.mark.parametrize("dtype", ["float16", "int32", "complex128", None, "float 32"])
def test_bad_dtype(dtype):
    with pytest.raises(ValueError, match=r"dtype must be 'float32' or 'float64', got"):
        fb.Sequential([fb.Dense(2, 2)], dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_dtype_types_accepted(dtype):
    model = fb.Sequential([fb.Dense(2, 2)], dtype=dtype)
    assert model.predict(np.ones((1, 2))).dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", [np.dtype("float32"), np.dtype("float64")])
def test_numpy_dtype_instances_accepted(dtype):
    model = fb.Sequential([fb.Dense(2, 2)], dtype=dtype)
    assert model.predict(np.ones((1, 2))).dtype == dtype


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(activation="gelu"), ValueError,
     r"activation must be one of \['identity', 'relu', 'leaky_relu', 'sigmoid', 'tanh', "
     r"'softmax'\] or None, got 'gelu'"),
    (dict(activation="ReLU"), ValueError, r"activation must be one of .* got 'ReLU'"),
    (dict(in_features=0), ValueError, r"in_features must be >= 1, got 0"),
    (dict(out_features=-2), ValueError, r"out_features must be >= 1, got -2"),
    (dict(in_features=2.5), TypeError, r"in_features must be an integer, got float"),
    (dict(out_features=1, activation="softmax"), ValueError,
     r"activation 'softmax' needs out_features >= 2; for one output use 'sigmoid'"),
    (dict(activation="leaky_relu", negative_slope=0), ValueError,
     r"negative_slope must be in \(0, inf\], got 0.0"),
    (dict(activation="leaky_relu", negative_slope=-0.1), ValueError,
     r"negative_slope must be in \(0, inf\], got -0.1"),
    (dict(negative_slope="0.1"), TypeError, r"negative_slope must be a real number, got str"),
])
def test_bad_dense_arguments(kwargs, exc, match):
    arguments = dict(in_features=3, out_features=2)
    arguments.update(kwargs)
    with pytest.raises(exc, match=match):
        fb.Dense(**arguments)


@pytest.mark.parametrize("make,exc,match", [
    (lambda: fb.SGD(lr=-0.1), ValueError, r"lr must be in \(0, inf\], got -0.1"),
    (lambda: fb.SGD(lr=0), ValueError, r"lr must be in \(0, inf\], got 0.0"),
    (lambda: fb.SGD(lr=float("nan")), ValueError, r"lr must be finite, got nan"),
    (lambda: fb.SGD(lr=float("inf")), ValueError, r"lr must be finite, got inf"),
    (lambda: fb.SGD(lr="0.1"), TypeError, r"lr must be a real number, got str"),
    (lambda: fb.SGD(momentum=1.0), ValueError, r"momentum must be in \[0, 1\), got 1.0"),
    (lambda: fb.SGD(momentum=-0.5), ValueError, r"momentum must be in \[0, 1\), got -0.5"),
    (lambda: fb.SGD(nesterov=True), ValueError, r"nesterov=True needs momentum > 0"),
    (lambda: fb.SGD(momentum=0.9, nesterov=1), TypeError, r"nesterov must be a bool, got int"),
    (lambda: fb.SGD(weight_decay=-1e-4), ValueError,
     r"weight_decay must be in \[0, inf\], got -0.0001"),
    (lambda: fb.Adam(lr=-1e-3), ValueError, r"lr must be in \(0, inf\], got -0.001"),
    (lambda: fb.Adam(betas=(1.0, 0.999)), ValueError,
     r"betas\[0\] must be in \[0, 1\), got 1.0"),
    (lambda: fb.Adam(betas=(0.9, 1.5)), ValueError, r"betas\[1\] must be in \[0, 1\), got 1.5"),
    (lambda: fb.Adam(betas=(-0.1, 0.999)), ValueError, r"betas\[0\] must be in \[0, 1\)"),
    (lambda: fb.Adam(betas=(0.9,)), TypeError, r"betas must be a pair of floats, got \(0.9,\)"),
    (lambda: fb.Adam(betas=0.9), TypeError, r"betas must be a pair of floats, got 0.9"),
    (lambda: fb.Adam(eps=0), ValueError, r"eps must be in \(0, inf\], got 0.0"),
    (lambda: fb.Adam(eps=-1e-8), ValueError, r"eps must be in \(0, inf\]"),
    (lambda: fb.Adam(weight_decay=-0.1), ValueError, r"weight_decay must be in \[0, inf\]"),
    (lambda: fb.AdamW(weight_decay=-0.01), ValueError, r"weight_decay must be in \[0, inf\]"),
    (lambda: fb.AdamW(lr=None), TypeError, r"lr must be a real number, got NoneType"),
])
def test_bad_optimizer_hyper_parameters(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


# ---- inputs that are fine but unusual: converted once, same result as a plain copy -------
def fitted(kind, X, y, dtype="float64", **kwargs):
    model = trained_model(kind, dtype)
    history = model.fit(X, y, epochs=2, batch_size=4, verbose=0, **kwargs)
    return model, history


def assert_same_model(a, b):
    for w0, w1 in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(w0, w1)


def test_int_X_is_converted():
    X = np.random.default_rng(0).integers(-3, 4, size=(N, IN))
    y = data("mse")[1]
    a, ha = fitted("mse", X, y)
    b, hb = fitted("mse", X.astype(np.float64), y)
    assert ha.history == hb.history
    assert_same_model(a, b)
    np.testing.assert_array_equal(a.predict(X), b.predict(X.astype(np.float64)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", ["strided", "fortran", "readonly", "transposed-view",
                                    "list"])
def test_non_contiguous_X_same_as_contiguous_copy(layout, dtype):
    rng = np.random.default_rng(3)
    wide = rng.normal(size=(N, 2 * IN))
    X = np.ascontiguousarray(wide[:, ::2])
    if layout == "strided":
        odd = wide[:, ::2]
    elif layout == "fortran":
        odd = np.asfortranarray(X)
    elif layout == "readonly":
        odd = X.copy()
        odd.flags.writeable = False
    elif layout == "transposed-view":
        odd = np.ascontiguousarray(X.T).T
    else:
        odd = X.tolist()
    if layout != "list":
        assert not (odd.flags.c_contiguous and odd.flags.writeable)
    y = data("cce")[1]
    a, ha = fitted("cce", odd, y, dtype, validation_data=(odd, y))
    b, hb = fitted("cce", X, y, dtype, validation_data=(X, y))
    assert ha.history == hb.history
    assert_same_model(a, b)
    np.testing.assert_array_equal(a.predict(odd), b.predict(X))
    assert a.evaluate(odd, y) == b.evaluate(X, y)
    ga, gb = a.compute_gradients(odd, y)[1], b.compute_gradients(X, y)[1]
    for g0, g1 in zip(ga, gb):
        np.testing.assert_array_equal(g0, g1)


def test_float64_X_into_float32_model():
    X, y = data("mse")
    a, ha = fitted("mse", X, y, "float32")
    b, hb = fitted("mse", X.astype(np.float32), y.astype(np.float32), "float32")
    assert ha.history == hb.history
    assert_same_model(a, b)
    out = a.predict(X)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, b.predict(X.astype(np.float32)))


@pytest.mark.parametrize("labels", [
    lambda y: y.astype(np.int32), lambda y: y.astype(np.uint8), lambda y: y.astype(np.float64),
    lambda y: np.repeat(y, 2)[::2], lambda y: list(y)])
def test_label_dtypes_and_layouts(labels):
    X, y = data("cce")
    a, ha = fitted("cce", X, labels(y))
    b, hb = fitted("cce", X, y.astype(np.int64))
    assert ha.history == hb.history
    assert_same_model(a, b)


def test_strided_target_rows():
    X, y = data("mse")
    wide = np.repeat(y, 2, axis=1)  # columns 0, 0, 1, 1
    a, _ = fitted("mse", X, wide[:, ::2])
    b, _ = fitted("mse", X, y)
    assert_same_model(a, b)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.integers(-5, 8), min_size=N, max_size=N))
def test_labels_accepted_exactly_when_in_range(labels):
    model = trained_model("cce")
    X, _ = data("cce")
    labels = np.array(labels)
    before = snapshot(model)
    if labels.min() >= 0 and labels.max() < 3:
        model.fit(X, labels, epochs=1, verbose=0)
        assert model._network.step == before["step"] + 1
    else:
        with pytest.raises(ValueError, match=r"y holds class labels out of range"):
            model.fit(X, labels, epochs=1, verbose=0)
        assert_unchanged(model, before)


# ---- the finite and range scans (fastbp/_validation.py -> _core.all_in_range, src_c/checks.c)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 4095, 4096, 4097, 3 * 4096 + 5])
def test_the_finite_scan_finds_any_bad_value_in_any_block(dtype, n):
    """A NaN or an infinity anywhere, in the first, a middle or the last (partial) block of the
    C scan, is found; an array without one passes. numpy.isfinite is the reference."""
    from fastbp import _core

    rng = np.random.default_rng(n)
    a = rng.standard_normal(n).astype(dtype)
    assert _core.all_finite(a)
    for where in sorted({0, n // 2, n - 1, min(4096, n - 1)}):
        for bad in (np.nan, np.inf, -np.inf):
            b = a.copy()
            b[where] = bad
            assert not _core.all_finite(b), (where, bad)
            with pytest.raises(ValueError, match="X contains NaN or infinity"):
                fb._validation.check_finite(b, "X")
    extremes = np.array([np.finfo(dtype).max, -np.finfo(dtype).max, np.finfo(dtype).tiny, 0.0,
                         -0.0], dtype)
    assert _core.all_finite(extremes)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_range_scan(dtype):
    from fastbp import _core

    a = np.array([0.0, 0.25, 1.0], dtype)
    assert _core.all_in_range(a, 0.0, 1.0)
    assert not _core.all_in_range(a, 0.0, 0.99)
    assert not _core.all_in_range(a, 0.01, 1.0)
    assert not _core.all_in_range(np.array([np.nan], dtype), -np.inf, np.inf)
    assert _core.all_in_range(np.array([np.inf], dtype), -np.inf, np.inf)
    # bounds beyond float32's range: every finite float32 lies within, infinities do not
    assert _core.all_in_range(np.array([3e38, -3e38], dtype), -1e300, 1e300)
    assert not _core.all_in_range(np.array([np.inf], dtype), -1e300, 1e300)
    assert _core.all_in_range(np.zeros(0, dtype), 0.0, 1.0)


def test_binary_targets_outside_0_1_and_nan_get_their_own_messages():
    model = fb.Sequential([fb.Dense(IN, 2, activation="sigmoid")], seed=0)
    model.compile("binary_crossentropy", "sgd")
    X, y = data("bce")
    for value, match in ((1.5, r"targets in \[0, 1\]"), (-0.1, r"targets in \[0, 1\]"),
                         (np.nan, "y contains NaN or infinity")):
        bad = y.copy()
        bad[3, 1] = value
        with pytest.raises(ValueError, match=match):
            model.fit(X, bad, epochs=1, verbose=0)


def test_a_seeded_shuffle_is_numpys_permutation():
    """fit shuffles into one buffer per call (no allocation per epoch) with the draws of
    Generator.permutation: the orders are those of rng.permutation(n), epoch after epoch."""
    X, y = data("cce", n=37)
    model = fb.Sequential([fb.Dense(IN, 3)], dtype="float64", seed=7)
    model.compile("categorical_crossentropy", "sgd")
    twin = fb.Sequential([fb.Dense(IN, 3)], dtype="float64", seed=7)
    twin.compile("categorical_crossentropy", "sgd")
    model.fit(X, y, epochs=3, batch_size=5, verbose=0)
    order = np.random.default_rng(7)
    fb.Sequential([fb.Dense(IN, 3)], seed=order)  # takes the initialisation's draws from order
    for _ in range(3):
        perm = order.permutation(len(X))
        twin.fit(X[perm], y[perm], epochs=1, batch_size=5, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
