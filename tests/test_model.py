"""Sequential's behaviour: reproducibility, parameter views, batching, the training loop against
a numpy loop over compute_gradients, validation, history, outputs, divergence and threads."""
import threading
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

import fastbp as fb

DTYPES = ["float64", "float32"]


def blobs(n=60, n_features=5, n_classes=3, seed=0):
    X, y = make_classification(n_samples=n, n_features=n_features, n_informative=3,
                               n_redundant=0, n_classes=n_classes, n_clusters_per_class=1,
                               random_state=seed)
    return X, y


def regression(n=40, n_features=5, n_targets=2, seed=0):
    X, y = make_regression(n_samples=n, n_features=n_features, n_targets=n_targets,
                           noise=0.1, random_state=seed)
    return X, y / np.abs(y).max()


def classifier(seed=0, dtype="float64", output="softmax", n_in=5, n_classes=3):
    return fb.Sequential([fb.Dense(n_in, 8, activation="relu"),
                          fb.Dense(8, n_classes, activation=output)], dtype=dtype, seed=seed)


def regressor(seed=0, dtype="float64"):
    return fb.Sequential([fb.Dense(5, 6, activation="tanh"), fb.Dense(6, 2)], dtype=dtype,
                         seed=seed)


def assert_same_weights(a, b):
    for w0, w1 in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(w0, w1)


def weights_differ(a, b):
    return any(not np.array_equal(w0, w1) for w0, w1 in zip(a.get_weights(), b.get_weights()))


# ---- seeds ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_same_seed_same_run(dtype):
    X, y = blobs()
    runs = []
    for _ in range(2):
        model = classifier(seed=42, dtype=dtype)
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        history = model.fit(X, y, epochs=4, batch_size=7, validation_split=0.2, verbose=0)
        runs.append((model, history))
    (a, ha), (b, hb) = runs
    assert ha.history == hb.history
    assert_same_weights(a, b)


def test_different_seeds_differ():
    assert weights_differ(classifier(seed=1), classifier(seed=2))
    # same initial weights, different seeds: only the shuffle order differs, and it shows
    X, y = blobs()
    a, b = classifier(seed=1), classifier(seed=2)
    b.set_weights(a.get_weights())
    for model in (a, b):
        model.compile(loss="categorical_crossentropy", optimizer=fb.SGD(lr=0.1))
        model.fit(X, y, epochs=1, batch_size=5, verbose=0)
    assert weights_differ(a, b)


def test_seed_none_draws_fresh_weights():
    assert weights_differ(classifier(seed=None), classifier(seed=None))


# ---- parameters: live views and copies -------------------------------------------------------
def test_layer_W_and_b_are_live_views():
    model = classifier()
    X = blobs()[0]
    before = model.predict(X)
    assert np.shares_memory(model.layers[0].W, model._network.params)
    assert np.shares_memory(model.layers[1].b, model._network.params)
    model.layers[1].b[...] = [5.0, 0.0, 0.0]  # class 0 now dominates
    after = model.predict(X)
    assert not np.allclose(before, after)
    assert (after.argmax(axis=1) == 0).mean() > (before.argmax(axis=1) == 0).mean()
    model.layers[0].W[...] = 0
    model.layers[1].b[...] = 0
    np.testing.assert_allclose(model.predict(X), 1 / 3)  # zero hidden units, equal logits


def test_set_weights_updates_the_views_in_place():
    model = classifier()
    W0 = model.layers[0].W
    new = [np.full_like(w, 0.25) for w in model.get_weights()]
    model.set_weights(new)
    assert model.layers[0].W is W0  # the same view, now holding the new values
    np.testing.assert_array_equal(W0, 0.25)
    np.testing.assert_array_equal(model.layers[1].b, 0.25)


def test_fit_updates_the_views():
    model = classifier()
    W0 = model.layers[0].W
    start = W0.copy()
    model.compile(loss="categorical_crossentropy", optimizer=fb.SGD(lr=0.1))
    model.fit(*blobs(), epochs=1, verbose=0)
    assert not np.array_equal(W0, start)
    np.testing.assert_array_equal(W0, model.get_weights()[0])


def test_get_weights_returns_copies():
    model = classifier()
    weights = model.get_weights()
    for w in weights:
        assert not np.shares_memory(w, model._network.params)
        w[...] = 123.0
    assert not np.any(model.get_weights()[0] == 123.0)
    assert [w.shape for w in weights] == [(5, 8), (8,), (8, 3), (3,)]


def test_count_params():
    assert classifier().count_params() == 5 * 8 + 8 + 8 * 3 + 3


# ---- batching and the training loop --------------------------------------------------------
@pytest.mark.parametrize("n,batch_size,steps_per_epoch", [(10, 4, 3), (10, 5, 2), (10, 10, 1),
                                                          (10, 64, 1), (10, 1, 10), (7, 3, 3)])
def test_partial_last_batch_is_trained(n, batch_size, steps_per_epoch):
    X, y = regression(n=n)
    model = regressor()
    model.compile(loss="mse", optimizer="sgd")
    model.fit(X, y, epochs=2, batch_size=batch_size, verbose=0)
    assert model._network.step == 2 * steps_per_epoch


def sgd_reference(model, X, y, epochs, batch_size, lr, momentum=0.0, nesterov=False,
                  weight_decay=0.0):
    """torch.optim.SGD's update written in numpy, driven by compute_gradients over the batches
    in order. Returns the per-epoch mean loss (weighted by batch size)."""
    velocity = [np.zeros_like(w) for w in model.get_weights()]
    dtype = model.dtype.type
    lr_, mu, wd = dtype(lr), dtype(momentum), dtype(weight_decay)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for start in range(0, len(X), batch_size):
            Xb, yb = X[start:start + batch_size], y[start:start + batch_size]
            loss, grads = model.compute_gradients(Xb, yb)
            total += loss * len(Xb)
            new = []
            for p, g, v in zip(model.get_weights(), grads, velocity):
                g = g + wd * p
                if momentum:
                    v[...] = mu * v + g
                    g = g + mu * v if nesterov else v.copy()
                new.append(p - lr_ * g)
            model.set_weights(new)
        losses.append(total / len(X))
    return losses


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", [dict(), dict(momentum=0.9),
                                     dict(momentum=0.8, nesterov=True, weight_decay=0.01)],
                         ids=["plain", "momentum", "nesterov-wd"])
@pytest.mark.parametrize("task", ["cce", "mse"])
def test_unshuffled_fit_equals_numpy_loop(task, options, dtype):
    if task == "cce":
        X, y = blobs(n=10)
        make, loss = classifier, "categorical_crossentropy"
    else:
        X, y = regression(n=10)
        make, loss = regressor, "mse"
    X, y = X.astype(dtype), (y if task == "cce" else y.astype(dtype))
    model, reference = make(dtype=dtype), make(dtype=dtype)
    for m in (model, reference):
        m.compile(loss=loss, optimizer=fb.SGD(lr=0.05, **options))
    # 10 samples in batches of 4: 4 + 4 + 2, the last partial batch included
    history = model.fit(X, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    losses = sgd_reference(reference, X, y, epochs=3, batch_size=4, lr=0.05, **options)
    tol = dict(rtol=1e-12, atol=1e-15) if dtype == "float64" else dict(rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(history.history["loss"], losses, **tol)
    for w, r in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(w, r, **tol)
    assert model._network.step == 9


@pytest.mark.parametrize("shuffle", [False, True])
def test_two_fits_continue_one_run(shuffle):
    """The optimizer state and the shuffling generator carry over between fit calls."""
    X, y = blobs()
    a, b = classifier(seed=3), classifier(seed=3)
    for m in (a, b):
        m.compile(loss="categorical_crossentropy", optimizer="adam")
    ha = a.fit(X, y, epochs=3, batch_size=8, shuffle=shuffle, verbose=0)
    hb = [b.fit(X, y, epochs=1, batch_size=8, shuffle=shuffle, verbose=0) for _ in range(3)]
    assert ha.history["loss"] == [h.history["loss"][0] for h in hb]
    assert_same_weights(a, b)
    assert a._network.step == b._network.step == 3 * 8


def test_shuffle_changes_the_order():
    X, y = blobs()
    a, b = classifier(seed=3), classifier(seed=3)
    for m in (a, b):
        m.compile(loss="categorical_crossentropy", optimizer=fb.SGD(lr=0.1))
    a.fit(X, y, epochs=1, batch_size=8, shuffle=True, verbose=0)
    b.fit(X, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert weights_differ(a, b)


def test_compile_resets_the_optimizer_state():
    model = classifier()
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    model.fit(*blobs(), epochs=1, verbose=0)
    assert model._network.step > 0 and np.any(model._network.state2)
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    assert model._network.step == 0
    assert not np.any(model._network.state1) and not np.any(model._network.state2)


def test_epochs_zero_trains_nothing():
    model = classifier()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    weights = model.get_weights()
    history = model.fit(*blobs(), epochs=0, validation_split=0.2, verbose=0)
    assert history.history == {} and history.epoch == []
    assert model._network.step == 0
    assert not weights_differ(model, classifier())
    for w0, w1 in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(w0, w1)


# ---- validation and history ---------------------------------------------------------------
def test_validation_split_takes_the_last_fraction():
    X, y = blobs(n=50)
    a, b = classifier(seed=5), classifier(seed=5)
    for m in (a, b):
        m.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    ha = a.fit(X, y, epochs=3, batch_size=8, validation_split=0.3, verbose=0)
    hb = b.fit(X[:35], y[:35], epochs=3, batch_size=8, validation_data=(X[35:], y[35:]),
               verbose=0)
    assert ha.history == hb.history
    assert_same_weights(a, b)


def test_validation_data_overrides_validation_split():
    X, y = blobs(n=50)
    a, b = classifier(seed=5), classifier(seed=5)
    for m in (a, b):
        m.compile(loss="categorical_crossentropy", optimizer="adam")
    ha = a.fit(X, y, epochs=2, validation_data=(X[:10], y[:10]), validation_split=0.5,
               verbose=0)
    hb = b.fit(X, y, epochs=2, validation_data=(X[:10], y[:10]), verbose=0)
    assert ha.history == hb.history


def test_history_keys_lengths_and_values():
    X, y = blobs(n=50)
    model = classifier()
    model.compile(loss="categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy", "mae"])
    history = model.fit(X[:40], y[:40], epochs=4, validation_data=(X[40:], y[40:]), verbose=0)
    assert set(history.history) == {"loss", "accuracy", "mae", "val_loss", "val_accuracy",
                                    "val_mae"}
    assert all(len(v) == 4 for v in history.history.values())
    assert history.epoch == [0, 1, 2, 3]
    assert all(isinstance(v, float) for vs in history.history.values() for v in vs)
    # the last epoch's metrics are those of the final weights
    val_loss, val_accuracy, val_mae = model.evaluate(X[40:], y[40:])
    assert history.history["val_loss"][-1] == val_loss
    assert history.history["val_accuracy"][-1] == val_accuracy
    assert history.history["val_mae"][-1] == val_mae
    p = model.predict(X[40:])
    assert history.history["val_accuracy"][-1] == np.mean(p.argmax(axis=1) == y[40:])
    onehot = np.eye(3)[y[40:]]
    assert history.history["val_mae"][-1] == pytest.approx(np.abs(p - onehot).mean(), 1e-12)
    train_accuracy = np.mean(model.predict(X[:40]).argmax(axis=1) == y[:40])
    assert history.history["accuracy"][-1] == train_accuracy

    plain = classifier()
    plain.compile(loss="categorical_crossentropy", optimizer="adam")
    history = plain.fit(X, y, epochs=2, verbose=0)
    assert list(history.history) == ["loss"] and len(history.history["loss"]) == 2


def test_verbose_prints_one_line_per_epoch(capsys):
    model = classifier()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(*blobs(), epochs=3, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(*blobs(), epochs=3, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Epoch 1/3") and "loss:" in lines[0] and "accuracy:" in lines[0]


# ---- outputs ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_outputs_keep_the_model_dtype(dtype):
    X, y = blobs()
    model = classifier(dtype=dtype)
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    model.fit(X, y, epochs=1, verbose=0)
    for X_in in (X, X.astype(np.float32), X.astype(np.int64)):
        assert model.predict(X_in).dtype == np.dtype(dtype)
    assert all(w.dtype == np.dtype(dtype) for w in model.get_weights())
    assert all(g.dtype == np.dtype(dtype) for g in model.compute_gradients(X, y)[1])
    assert isinstance(model.evaluate(X, y), float)


def softmax(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def assert_train_identically(a, b, X, y, loss):
    """Compile models a and b alike (loss, Adam, accuracy) and fit both on X, y (3 epochs,
    batches of 8, 20% for validation): their histories and their weights must be equal."""
    histories = []
    for m in (a, b):
        m.compile(loss=loss, optimizer="adam", metrics=["accuracy"])
        histories.append(m.fit(X, y, epochs=3, batch_size=8, validation_split=0.2,
                               verbose=0).history)
    assert histories[0] == histories[1]
    assert_same_weights(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("targets", ["labels", "onehot"])
def test_softmax_and_identity_outputs_train_identically_under_cce(targets, dtype):
    X, y = blobs()
    if targets == "onehot":
        y = np.eye(3)[y]
    probs, logits = classifier(seed=9, dtype=dtype), classifier(seed=9, dtype=dtype,
                                                               output="identity")
    assert_train_identically(probs, logits, X, y, "categorical_crossentropy")
    P, Z = probs.predict(X), logits.predict(X)
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-6)
    assert np.all(P >= 0) and np.any(Z < 0)
    np.testing.assert_allclose(P, softmax(Z.astype(np.float64)),
                               rtol=1e-5 if dtype == "float32" else 1e-12)
    assert probs.evaluate(X, y) == logits.evaluate(X, y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_and_identity_outputs_train_identically_under_bce(dtype):
    X, y = blobs(n_classes=2)
    probs = classifier(seed=4, dtype=dtype, output="sigmoid", n_classes=1)
    logits = classifier(seed=4, dtype=dtype, output="identity", n_classes=1)
    # the accuracy of logits is thresholded at 0, that of probabilities at 0.5: the same
    assert_train_identically(probs, logits, X, y, "binary_crossentropy")
    P, Z = probs.predict(X), logits.predict(X)
    assert np.all((P > 0) & (P < 1)) and np.any(Z < 0)
    np.testing.assert_allclose(P, 1 / (1 + np.exp(-Z.astype(np.float64))),
                               rtol=1e-5 if dtype == "float32" else 1e-12)
    assert probs.evaluate(X, y) == logits.evaluate(X, y)


def test_evaluate_returns_float_or_list():
    X, y = blobs()
    model = classifier()
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    loss = model.evaluate(X, y)
    assert isinstance(loss, float)
    assert model.evaluate(X, y, return_dict=True) == {"loss": loss}
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    result = model.evaluate(X, y)
    assert isinstance(result, list) and len(result) == 2
    assert result[0] == loss
    assert result[1] == np.mean(model.predict(X).argmax(axis=1) == y)
    assert model.evaluate(X, y, return_dict=True) == {"loss": loss, "accuracy": result[1]}


def test_evaluate_loss_is_the_mean_negative_log_likelihood():
    X, y = blobs()
    model = classifier()
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    P = model.predict(X)
    assert model.evaluate(X, y) == pytest.approx(-np.mean(np.log(P[np.arange(len(y)), y])),
                                                 rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_inputs_are_processed_in_chunks(dtype):
    """evaluate and predict work through more rows than the workspace holds at once (256):
    the result equals one whole batch (compute_gradients) and row-wise predictions."""
    X, y = blobs(n=700)
    model = classifier(dtype=dtype)
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    whole = model.predict(X)
    pieces = np.concatenate([model.predict(X[i:i + 1]) for i in (0, 255, 256, 511, 699)])
    np.testing.assert_array_equal(whole[[0, 255, 256, 511, 699]], pieces)
    rtol = 1e-12 if dtype == "float64" else 1e-6
    assert model.evaluate(X, y) == pytest.approx(model.compute_gradients(X, y)[0], rel=rtol)


def test_metrics_mse_and_mae_in_regression():
    X, y = regression()
    model = regressor()
    model.compile(loss="mse", optimizer="adam", metrics=["mse", "mae"])
    loss, mse, mae = model.evaluate(X, y)
    P = model.predict(X)
    assert mse == pytest.approx(np.mean((P - y) ** 2), rel=1e-12)
    assert loss == pytest.approx(mse, rel=1e-12)
    assert mae == pytest.approx(np.mean(np.abs(P - y)), rel=1e-12)


def test_learns_a_separable_problem():
    X, y = blobs(n=200)
    model = classifier(seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=fb.Adam(lr=0.02),
                  metrics=["accuracy"])
    history = model.fit(X, y, epochs=30, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.85


# ---- divergence ---------------------------------------------------------------------------
def diverging(dtype, lr):
    X, y = regression(n=64)
    model = fb.Sequential([fb.Dense(5, 16, activation="relu"), fb.Dense(16, 2)], dtype=dtype,
                          seed=0)
    model.compile(loss="mse", optimizer=fb.SGD(lr=lr))
    return model, X, 10 * y


@pytest.mark.parametrize("lr", [1e6, 1e12])
def test_divergence_stops_with_warning_and_finite_weights(lr):
    model, X, y = diverging("float64", lr)
    with pytest.warns(RuntimeWarning, match=r"training stopped in epoch 1: the loss or its "
                                            r"gradient became (nan|inf) after (\d+) of 64 samples") as record:
        history = model.fit(X, y, epochs=5, batch_size=8, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 1 and not np.isfinite(history.history["loss"][0])
    assert all(np.isfinite(w).all() for w in model.get_weights())
    # the weights are those after the steps before the failing batch
    n_trained = int(str(record[0].message).split(" after ")[1].split(" of ")[0])
    assert model._network.step == n_trained // 8
    replay, _, _ = diverging("float64", lr)
    if n_trained:
        replay.fit(X[:n_trained], y[:n_trained], epochs=1, batch_size=8, shuffle=False,
                   verbose=0)
    assert_same_weights(model, replay)


def test_divergence_float32_keeps_finite_weights():
    model, X, y = diverging("float32", 1e3)
    with pytest.warns(RuntimeWarning, match=r"training stopped"):
        model.fit(X, y, epochs=5, batch_size=8, shuffle=False, verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights()), model.get_weights()


# ---- threads ------------------------------------------------------------------------------
def thread_problem(seed):
    X, y = blobs(n=3000, n_features=20, n_classes=4, seed=seed)
    model = fb.Sequential([fb.Dense(20, 64, activation="relu"),
                           fb.Dense(64, 4, activation="softmax")], seed=seed)
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model, X, y


def train(model, X, y):
    return model.fit(X, y, epochs=4, batch_size=32, validation_split=0.1, verbose=0).history


def test_two_models_in_two_threads_equal_sequential_training():
    sequential = []
    for seed in (1, 2):
        model, X, y = thread_problem(seed)
        sequential.append((train(model, X, y), model.get_weights()))

    problems = [thread_problem(seed) for seed in (1, 2)]
    results, errors = [None, None], []
    barrier = threading.Barrier(2)

    def worker(i):
        try:
            barrier.wait()
            results[i] = train(*problems[i])
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(2):
        assert results[i] == sequential[i][0]
        for w0, w1 in zip(problems[i][0].get_weights(), sequential[i][1]):
            np.testing.assert_array_equal(w0, w1)


def test_second_thread_on_a_busy_model_gets_runtime_error():
    """While one thread holds the model (here: a thread holding the model's lock, as fit does
    for its whole run), every call from another thread raises at once and changes nothing."""
    model, X, y = thread_problem(1)
    model.fit(X[:100], y[:100], epochs=1, verbose=0)
    weights, step = model.get_weights(), model._network.step
    holding, release = threading.Event(), threading.Event()

    def hold():
        with model._lock:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        message = r"this model is already in use by another thread .*use one model per thread"
        with pytest.raises(RuntimeError, match=message):
            model.fit(X, y, epochs=1, verbose=0)
        with pytest.raises(RuntimeError, match=message):
            model.predict(X)
        with pytest.raises(RuntimeError, match=message):
            model.evaluate(X, y)
        with pytest.raises(RuntimeError, match=message):
            model.compute_gradients(X[:10], y[:10])
    finally:
        release.set()
        holder.join()
    assert model._network.step == step
    for w0, w1 in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    # once released, the model trains again
    model.fit(X[:100], y[:100], epochs=1, verbose=0)
    assert model._network.step > step


def test_fit_error_releases_the_model():
    """An exception raised inside training still releases the model for the next call."""
    model, X, y = thread_problem(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model.compile(loss="categorical_crossentropy", optimizer=fb.SGD(lr=1e10))
        with pytest.raises(RuntimeWarning):
            model.fit(X * 1e100, y, epochs=3, verbose=0)
    assert not model._lock.locked()
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    model.fit(X[:50], y[:50], epochs=1, verbose=0)


# ---- several epochs per C call (Sequential._epochs_per_call) -------------------------------
class _EveryEpoch(fb.callbacks.Callback):
    """A callback that does nothing: its presence makes fit call C once per epoch."""


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_epochs_grouped_in_one_call_train_as_one_call_each(shuffle, dtype):
    """With nothing to run between epochs, fit trains several epochs per C call, shuffling in
    C with numpy's draws. Weights, per-epoch losses and the generator's state afterwards equal
    those of a fit that calls C once per epoch (a callback forces that), bit for bit."""
    X, y = blobs(n=97)
    grouped, single = classifier(seed=4, dtype=dtype), classifier(seed=4, dtype=dtype)
    for m in (grouped, single):
        m.compile("categorical_crossentropy", fb.SGD(lr=0.05, momentum=0.9))
    assert grouped._epochs_per_call(97, 97, 0, fb.callbacks.CallbackList(None, grouped, {}),
                                    None, False) > 30, "the test must group epochs"
    h1 = grouped.fit(X, y, epochs=30, batch_size=8, shuffle=shuffle, verbose=0)
    h2 = single.fit(X, y, epochs=30, batch_size=8, shuffle=shuffle, verbose=0,
                    callbacks=[_EveryEpoch()])
    assert h1.history["loss"] == h2.history["loss"]
    assert h1.epoch == h2.epoch == list(range(30))
    assert_same_weights(grouped, single)
    assert grouped._rng.bit_generator.state == single._rng.bit_generator.state
    assert grouped._network.step == single._network.step
    assert grouped._epochs_trained == single._epochs_trained == 30


def test_divergence_inside_a_group_of_epochs_stops_as_one_call_per_epoch():
    """Epochs grouped in one C call that diverge in the middle stop exactly as epoch by epoch:
    the same stopped epoch and sample, the same history, weights before the failing step."""
    X, y = blobs(n=64)
    X = X * 1e3
    results = []
    for callbacks in (None, [_EveryEpoch()]):
        model = classifier(seed=5, dtype="float32")
        model.compile("categorical_crossentropy", fb.SGD(lr=5.0, momentum=0.9))
        with pytest.warns(RuntimeWarning, match="training stopped"):
            history = model.fit(X, y, epochs=50, batch_size=16, verbose=0, callbacks=callbacks)
        results.append((history, model))
    (h1, m1), (h2, m2) = results
    assert h1.stopped is not None and h1.stopped["epoch"] > 0, "must stop inside the group"
    for key in ("epoch", "samples_trained", "samples"):
        assert h1.stopped[key] == h2.stopped[key], key
    np.testing.assert_array_equal(h1.stopped["value"], h2.stopped["value"])  # NaN == NaN here
    np.testing.assert_array_equal(h1.history["loss"], h2.history["loss"])
    assert_same_weights(m1, m2)
    assert m1._rng.bit_generator.state == m2._rng.bit_generator.state


@pytest.mark.parametrize("n", [0, 1, 2, 3, 100, 20000])
def test_the_c_shuffle_draws_what_numpy_draws(n):
    """fit shuffles in C (src_c/train.c, fbp_shuffle) with numpy's random_interval on the
    model's generator: the same permutations as Generator.permutation and the same generator
    state after, so seeds, saved models and continued fits reproduce numpy's shuffles."""
    ours, numpys = np.random.default_rng(11), np.random.default_rng(11)
    perm = np.empty(n, np.int64)
    for _ in range(3):
        fb._core.shuffle(perm, ours)
        np.testing.assert_array_equal(perm, numpys.permutation(n))
    assert ours.bit_generator.state == numpys.bit_generator.state
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        fb._core.shuffle(perm, np.random.RandomState(0))
