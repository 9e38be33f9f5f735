"""When a call raises, nothing has changed: the model's weights, gradients buffer, optimizer
state (model._network.state1/state2/step), loss and optimizer configuration and random
generator, and the caller's arrays. Training then goes on exactly as if the call had not been
made: a twin model that never saw the failing calls ends with the same history and weights,
bit for bit."""
import numpy as np
import pytest

import fastbp as fb
from fastbp import ops

DTYPES = ("float32", "float64")
N, D, K = 40, 5, 3


def problem(task, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    if task == "labels":
        y = rng.integers(0, K, N)
    elif task == "onehot":
        y = np.eye(K)[rng.integers(0, K, N)]
    elif task == "binary":
        y = (rng.random((N, 1)) < 0.5).astype(np.float64)
    else:
        y = rng.standard_normal((N, K))
    return X, y


LOSS = {"labels": "categorical_crossentropy", "onehot": "categorical_crossentropy",
        "binary": "binary_crossentropy", "regression": "mse"}


def build(task, dtype, optimizer):
    out = 1 if task == "binary" else K
    last = {"labels": "softmax", "onehot": None, "binary": "sigmoid", "regression": "tanh"}[task]
    model = fb.Sequential([fb.Dense(D, 8, activation="relu"), fb.Dense(8, out, activation=last)],
                          dtype=dtype, seed=3)
    opt = {"sgd": lambda: fb.SGD(lr=0.05, momentum=0.9, nesterov=True),
           "adam": lambda: fb.Adam(lr=0.01), "adamw": lambda: fb.AdamW(lr=0.01)}[optimizer]()
    model.compile(loss=LOSS[task], optimizer=opt, metrics=["accuracy"])
    return model


def state(model):
    """Everything a failed call must leave alone."""
    net = model._network
    return {"params": net.params.copy(), "grads": net.grads.copy(),
            "state1": net.state1.copy(), "state2": net.state2.copy(), "step": net.step,
            "rng": model._rng.bit_generator.state, "loss": model.loss,
            "optimizer": model.optimizer, "config": repr(model.optimizer),
            "metrics": list(model.metrics)}


def assert_same_state(before, after, what):
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, after[key]), f"{what} changed {key}"
        else:
            assert value == after[key], f"{what} changed {key}"


def bad_calls(model, X, y, task):
    """(description, call) pairs, each of which must raise TypeError, ValueError or
    RuntimeError. The arrays they pass are the caller's and must not change."""
    n_out = model.layers[-1].out_features
    Xc = X.astype(np.complex128)
    Xnan = X.copy()
    Xnan[3, 2] = np.nan
    y_bad = y.copy()
    if task == "labels":
        y_bad[5] = K  # out of range
    elif task == "onehot":
        y_bad[5] = 0.5  # a row not summing to 1
    elif task == "binary":
        y_bad[5] = 2.0  # outside [0, 1]
    else:
        y_bad = y_bad.astype(np.float64)
        y_bad[5, 0] = np.inf
    weights = model.get_weights()
    bad_weights_last = [w.copy() for w in weights]
    bad_weights_last[-1] = np.full(n_out + 1, 0.5)  # wrong shape, after valid ones
    nan_weights_last = [w.copy() for w in weights]
    nan_weights_last[-1] = np.full(n_out, np.nan)
    bad_opt = fb.SGD(lr=0.1)
    bad_opt.lr = -1.0
    inputs = {"X complex": Xc, "X NaN": Xnan, "X 1-d": X[:, 0], "X 3-d": X[None], "X empty":
              X[:0], "X features": X[:, :-1], "X None": None, "X strings": np.full((N, D), "a")}
    targets = {"y out of range": y_bad, "y short": y[:-1], "y None": None,
               "y 3-d": np.asarray(y)[None]}
    calls = []
    for name, bad_X in inputs.items():
        calls += [(f"fit {name}", lambda b=bad_X: model.fit(b, y, epochs=1, verbose=0)),
                  (f"evaluate {name}", lambda b=bad_X: model.evaluate(b, y)),
                  (f"predict {name}", lambda b=bad_X: model.predict(b)),
                  (f"compute_gradients {name}", lambda b=bad_X: model.compute_gradients(b, y)),
                  (f"validation_data {name}", lambda b=bad_X: model.fit(
                      X, y, epochs=1, verbose=0, validation_data=(b, y)))]
    for name, bad_y in targets.items():
        calls += [(f"fit {name}", lambda b=bad_y: model.fit(X, b, epochs=1, verbose=0)),
                  (f"evaluate {name}", lambda b=bad_y: model.evaluate(X, b)),
                  (f"compute_gradients {name}", lambda b=bad_y: model.compute_gradients(X, b)),
                  (f"validation_data {name}", lambda b=bad_y: model.fit(
                      X, y, epochs=1, verbose=0, validation_data=(X, b)))]
    for kwargs in ({"epochs": -1}, {"epochs": "3"}, {"epochs": 2.0}, {"batch_size": 0},
                   {"batch_size": 1.5}, {"batch_size": None}, {"shuffle": "yes"},
                   {"validation_split": 1.0}, {"validation_split": -0.1},
                   {"validation_split": 0.001}, {"validation_data": "xy"},
                   {"validation_data": (X,)}, {"verbose": "loud"}, {"verbose": -1},
                   {"sample_weight": np.ones(N - 1)}, {"sample_weight": -np.ones(N)},
                   {"sample_weight": np.full(N, np.nan)}, {"class_weight": {-1: 1.0}},
                   {"class_weight": [1.0]}, {"steps_per_execution": 0}, {"n_threads": 0},
                   {"callbacks": "early stopping"}, {"callbacks": [object()]}):
        calls.append((f"fit {kwargs}", lambda k=kwargs: model.fit(X, y, **{"epochs": 1,
                                                                          "verbose": 0, **k})))
    calls += [
        ("lr_find bad max_lr", lambda: model.lr_find(X, y, min_lr=1.0, max_lr=0.5)),
        ("lr_find bad steps", lambda: model.lr_find(X, y, steps=1)),
        ("set_weights too few", lambda: model.set_weights(weights[:-1])),
        ("set_weights wrong last shape", lambda: model.set_weights(bad_weights_last)),
        ("set_weights NaN in the last", lambda: model.set_weights(nan_weights_last)),
        ("set_weights None", lambda: model.set_weights(None)),
        ("set_weights complex", lambda: model.set_weights([w.astype(complex) for w in weights])),
        ("compile unknown loss", lambda: model.compile(loss="hinge")),
        ("compile unknown optimizer", lambda: model.compile(loss=LOSS[task], optimizer="lbfgs")),
        ("compile bad metrics", lambda: model.compile(loss=LOSS[task], metrics=["auc"])),
        ("compile metrics str", lambda: model.compile(loss=LOSS[task], metrics="accuracy")),
        ("compile invalid optimizer", lambda: model.compile(
            loss="mse" if task != "regression" else "categorical_crossentropy",
            optimizer=bad_opt)),
        ("compile metrics not names", lambda: model.compile(loss=LOSS[task],
                                                             metrics=["accuracy", 3])),
    ]
    if model.layers[-1].activation != "identity":  # identity suits every loss
        calls.append(("compile mismatched loss", lambda: model.compile(
            loss="binary_crossentropy" if task != "binary" else "categorical_crossentropy")))
    return calls, [X, y, Xc, Xnan, y_bad, weights, bad_weights_last, nan_weights_last]


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("task", ["labels", "onehot", "binary", "regression"])
def test_failed_calls_change_nothing_and_training_continues(task, dtype, optimizer):
    X, y = problem(task)
    model, twin = build(task, dtype, optimizer), build(task, dtype, optimizer)
    for m in (model, twin):  # optimizer state that is not zero
        m.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert model._network.step > 0 and np.any(model._network.state1)
    calls, caller_arrays = bad_calls(model, X, y, task)
    copies = [[w.copy() for w in a] if isinstance(a, list) else a.copy() for a in caller_arrays]
    for what, call in calls:
        before = state(model)
        try:
            call()
        except (TypeError, ValueError, RuntimeError) as exc:
            assert str(exc), f"{what}: an exception without a message"
        else:
            pytest.fail(f"{what}: did not raise")
        assert_same_state(before, state(model), what)
    for original, copy in zip(caller_arrays, copies):
        for a, b in (zip(original, copy) if isinstance(original, list) else [(original, copy)]):
            np.testing.assert_array_equal(a, b, err_msg="a caller's array changed")
    # training goes on exactly as for the twin that never saw the failing calls
    h1 = model.fit(X, y, epochs=2, batch_size=8, verbose=0, validation_split=0.2).history
    h2 = twin.fit(X, y, epochs=2, batch_size=8, verbose=0, validation_split=0.2).history
    assert h1 == h2
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model._network.state2, twin._network.state2)
    assert model._network.step == twin._network.step


def test_compile_with_invalid_optimizer_changes_nothing():
    """Regression: compile() set the network's loss before it validated the optimizer, so a
    compile that raised (here: an optimizer whose lr was set to -1 after construction) left
    the C network training on the new loss while model.loss still named the old one; with
    one-hot targets the next fit silently trained on MSE."""
    X, y = problem("onehot")
    model, twin = build("onehot", "float64", "sgd"), build("onehot", "float64", "sgd")
    bad = fb.SGD(lr=0.1)
    bad.lr = -1.0
    with pytest.raises(ValueError, match="lr"):
        model.compile(loss="mse", optimizer=bad)
    assert isinstance(model.loss, fb.CategoricalCrossentropy)
    h1 = model.fit(X, y, epochs=3, batch_size=8, verbose=0).history
    h2 = twin.fit(X, y, epochs=3, batch_size=8, verbose=0).history
    assert h1 == h2


def test_invalid_optimizer_at_fit_changes_nothing():
    """An optimizer made invalid after compile is caught at the next fit, before any step;
    once repaired, training continues as for a twin."""
    X, y = problem("labels")
    model, twin = build("labels", "float32", "adam"), build("labels", "float32", "adam")
    for m in (model, twin):
        m.fit(X, y, epochs=1, verbose=0)
    before = state(model)
    for attribute, value in (("lr", -1.0), ("lr", float("nan")), ("betas", (0.9, 1.0)),
                             ("eps", 0.0), ("weight_decay", -1.0), ("betas", None)):
        saved = getattr(model.optimizer, attribute)
        setattr(model.optimizer, attribute, value)
        with pytest.raises((TypeError, ValueError)):
            model.fit(X, y, epochs=1, verbose=0)
        setattr(model.optimizer, attribute, saved)
        before["config"] = repr(model.optimizer)
        assert_same_state(before, state(model), f"fit with {attribute}={value!r}")
    assert model.fit(X, y, epochs=2, verbose=0).history == \
        twin.fit(X, y, epochs=2, verbose=0).history


@pytest.mark.parametrize("dtype", DTYPES)
def test_failed_ops_calls_leave_the_callers_arrays_alone(dtype):
    """Every check of fastbp.ops runs before anything is written: a call rejected for its
    last argument leaves the arrays it would have updated as they were."""
    rng = np.random.default_rng(0)
    W, g, m, v = (rng.standard_normal((4, 3)).astype(dtype) for _ in range(4))
    v = np.abs(v)
    X, out = rng.standard_normal((5, 4)).astype(dtype), np.zeros((5, 3), dtype)
    arrays = [W, g, m, v, X, out]
    copies = [a.copy() for a in arrays]
    calls = [
        lambda: ops.sgd_step(W, g, 0.1, momentum=0.9, velocity=m[:, :2]),
        lambda: ops.sgd_step(W, g, 0.1, momentum=0.9, velocity=m, weight_decay=-1),
        lambda: ops.adam_step(W, g, m, v.T, 1),
        lambda: ops.adam_step(W, g, m, v, 0),
        lambda: ops.adam_step(W, g, m, v, 1, betas=(0.9, 1.5)),
        lambda: ops.dense_forward(X, W, g[0], "relu", out=out[:, :2]),
        lambda: ops.dense_forward(X, W, g[0], "gelu", out=out),
        lambda: ops.dense_backward(X, W, out, dW=m, db=v[0, :2]),
        lambda: ops.softmax_cross_entropy(out, np.array([0, 1, 2, 3, 0]), out=out),
        lambda: ops.activation_backward(out, out, "tanh", out=out),
    ]
    for call in calls:
        with pytest.raises((TypeError, ValueError)):
            call()
        for a, c in zip(arrays, copies):
            np.testing.assert_array_equal(a, c)
