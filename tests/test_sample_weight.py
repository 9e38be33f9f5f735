"""fit(sample_weight=, class_weight=) as Keras: each batch's loss is sum_i w_i l_i / batch_size.
The weighting happens in C (src_c/train.c); here it is checked against per-sample gradients
computed one row at a time, and class_weight against the sample weights it stands for."""
import numpy as np
import pytest

import fastbp as fb

CASES = [("categorical_crossentropy", "softmax", 3, "labels"),
         ("categorical_crossentropy", None, 3, "onehot"),
         ("binary_crossentropy", "sigmoid", 2, "binary"),
         ("mse", "tanh", 2, "regression")]
TOL = {"float64": 1e-12, "float32": 2e-5}


def problem(loss, activation, k, targets, dtype="float64", n=12, seed=0):
    rng = np.random.default_rng(seed)
    model = fb.Sequential([fb.Dense(4, 5, activation="relu"),
                           fb.Dense(5, k, activation=activation)], dtype=dtype, seed=seed)
    model.compile(loss=loss, optimizer=fb.SGD(lr=0.1))
    X = rng.normal(size=(n, 4))
    if targets == "labels":
        y = rng.integers(0, k, n)
    elif targets == "onehot":
        y = np.eye(k)[rng.integers(0, k, n)]
    elif targets == "binary":
        y = rng.integers(0, 2, (n, k)).astype(float)
    else:
        y = rng.normal(size=(n, k))
    return model, X, y, rng.uniform(0, 3, n)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=[c[3] for c in CASES])
def test_weighted_gradient_is_the_weighted_mean_of_per_sample_gradients(case, dtype):
    model, X, y, w = problem(*case, dtype=dtype)
    loss, grads = model.compute_gradients(X, y, sample_weight=w)
    expected_loss, expected = 0.0, [np.zeros_like(g, dtype=np.float64) for g in grads]
    for i in range(len(X)):
        li, gi = model.compute_gradients(X[i:i + 1], y[i:i + 1])
        expected_loss += w[i] * li / len(X)
        for e, g in zip(expected, gi):
            e += w[i] * g / len(X)
    assert loss == pytest.approx(expected_loss, rel=TOL[dtype])
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(g, e, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(e).max())


@pytest.mark.parametrize("case", CASES, ids=[c[3] for c in CASES])
def test_unit_weights_train_as_unweighted(case):
    a, X, y, _ = problem(*case)
    b, *_ = problem(*case)
    ha = a.fit(X, y, epochs=3, batch_size=5, verbose=0)
    hb = b.fit(X, y, epochs=3, batch_size=5, verbose=0, sample_weight=np.ones(len(X)))
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-12)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-12, atol=1e-15)


def test_one_full_batch_sgd_step_uses_the_weighted_gradient():
    model, X, y, w = problem(*CASES[0])
    before = model.get_weights()
    loss, grads = model.compute_gradients(X, y, sample_weight=w)
    history = model.fit(X, y, epochs=1, batch_size=len(X), shuffle=False, verbose=0,
                        sample_weight=w)
    for b, g, a in zip(before, grads, model.get_weights()):
        np.testing.assert_allclose(a, b - 0.1 * g, rtol=1e-12, atol=1e-15)
    assert history.history["loss"] == [loss]  # the weighted loss is the one reported


def test_zero_weight_samples_do_not_move_the_weights():
    model, X, y, _ = problem(*CASES[0])
    w = np.zeros(len(X))
    before = model.get_weights()
    history = model.fit(X, y, epochs=2, batch_size=4, verbose=0, sample_weight=w)
    assert history.history["loss"] == [0.0, 0.0]
    for b, a in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_follow_the_shuffle_and_the_validation_split():
    """Weights belong to samples: permuting (X, y, w) together leaves unshuffled training
    identical, and validation_split drops the weights of the held-out tail."""
    model, X, y, w = problem(*CASES[0], n=40)
    twin, *_ = problem(*CASES[0], n=40)
    ha = model.fit(X, y, epochs=2, batch_size=40, shuffle=False, verbose=0, sample_weight=w,
                   validation_split=0.25)
    order = np.random.default_rng(1).permutation(30)
    hb = twin.fit(np.concatenate([X[order], X[30:]]), np.concatenate([y[order], y[30:]]),
                  epochs=2, batch_size=40, shuffle=False, verbose=0,
                  sample_weight=np.concatenate([w[order], np.full(10, 123.0)]),
                  validation_split=0.25)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-12)
    assert ha.history["val_loss"] == pytest.approx(hb.history["val_loss"], rel=1e-10)


@pytest.mark.parametrize("case", CASES[:3], ids=[c[3] for c in CASES[:3]])
def test_class_weight_is_the_sample_weight_of_each_class(case):
    loss, activation, k, targets = case
    if targets == "binary":
        k = 1
    a, X, y, w = problem(loss, activation, k, targets)
    b, *_ = problem(loss, activation, k, targets)
    class_weight = {0: 0.5, 1: 3.0}
    classes = (y if y.ndim == 1 else y.argmax(axis=1)) if k > 1 else y[:, 0].astype(int)
    per_sample = np.array([class_weight.get(c, 1.0) for c in classes])
    ha = a.fit(X, y, epochs=2, batch_size=5, verbose=0, class_weight=class_weight,
               sample_weight=w)
    hb = b.fit(X, y, epochs=2, batch_size=5, verbose=0, sample_weight=w * per_sample)
    assert ha.history == hb.history
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_class_weight_helps_the_minority_class():
    rng = np.random.default_rng(0)
    n = 1000
    y = (rng.uniform(size=n) < 0.1).astype(int)  # 10% positives, overlapping classes
    X = rng.normal(size=(n, 2)) + y[:, None] * 1.0
    recall = []
    for class_weight in (None, {0: 1.0, 1: 9.0}):
        model = fb.Sequential([fb.Dense(2, 2, activation="softmax")], seed=0)
        model.compile(loss="categorical_crossentropy", optimizer=fb.Adam(lr=0.05))
        model.fit(X, y, epochs=20, verbose=0, class_weight=class_weight)
        recall.append(np.mean(model.predict(X[y == 1]).argmax(axis=1) == 1))
    assert recall[1] > recall[0] + 0.3


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(sample_weight=np.ones(5)), ValueError,
     r"sample_weight must have shape \(n_samples,\) = \(12,\)"),
    (dict(sample_weight=-np.ones(12)), ValueError, "sample_weight must hold weights >= 0"),
    (dict(sample_weight=np.full(12, np.nan)), ValueError, "sample_weight contains NaN"),
    (dict(sample_weight=["a"] * 12), TypeError, "sample_weight must hold real numbers"),
    (dict(class_weight=[1, 2, 3]), TypeError, "class_weight must be a dict"),
    (dict(class_weight={3: 1.0}), ValueError,
     r"class_weight keys must be class indices in \[0, 3\)"),
    (dict(class_weight={True: 1.0}), ValueError, "class_weight keys must be class indices"),
    (dict(class_weight={0: -1.0}), ValueError, r"class_weight\[0\] must be in \[0"),
    (dict(validation_data=(np.ones((2, 4)), [0, 1], [1, 1])), ValueError,
     "validation sample weights are not supported"),
])
def test_bad_weights_are_named(kwargs, error, message):
    model, X, y, _ = problem(*CASES[0])
    before = model.get_weights()
    with pytest.raises(error, match=message):
        model.fit(X, y, verbose=0, **kwargs)
    for b, a in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_class_weight_needs_a_classification_loss():
    model, X, y, _ = problem(*CASES[3])
    with pytest.raises(ValueError, match="class_weight needs a classification loss"):
        model.fit(X, y, verbose=0, class_weight={0: 1.0})
    model, X, y, _ = problem(*CASES[2])  # two binary outputs: no single class per sample
    with pytest.raises(ValueError, match="one binary label per sample"):
        model.fit(X, y, verbose=0, class_weight={0: 1.0})
