"""Callbacks: the protocol (order, arguments, batch hooks between chunks, stop_training) and
the built-ins, each against what it must do to the training."""
import csv
import math

import numpy as np
import pytest

import fastbp as fb
from fastbp.callbacks import (Callback, CSVLogger, EarlyStopping, LambdaCallback,
                              LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau,
                              TerminateOnNaN)


def blobs(n=200, n_features=6, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, n)
    return centers[y] + rng.normal(size=(n, n_features)), y


def classifier(seed=0, optimizer="adam", metrics=("accuracy",)):
    model = fb.Sequential([fb.Dense(6, 16, activation="relu"),
                           fb.Dense(16, 3, activation="softmax")], seed=seed)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=list(metrics))
    return model


def assert_same_weights(a, b):
    for x, y in zip(a if isinstance(a, list) else a.get_weights(),
                    b if isinstance(b, list) else b.get_weights()):
        np.testing.assert_array_equal(x, y)


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin",))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, dict(logs)))

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, dict(logs)))


class Script(Callback):
    """Puts a scripted value under `key` into each epoch's logs (for testing monitors)."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, values

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class WeightLog(Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


# ---- protocol ---------------------------------------------------------------------------------
def test_hook_order_and_chunked_batch_hooks():
    X, y = blobs(n=100)
    recorder = Recorder()
    model = classifier()
    history = model.fit(X, y, epochs=2, batch_size=10, verbose=0, steps_per_execution=4,
                        callbacks=[recorder])
    names = [call[0] for call in recorder.calls]
    # 10 batches per epoch in chunks of 4, 4, 2
    epoch = (["epoch_begin"] + ["batch_begin", "batch_end"] * 3 + ["epoch_end"])
    assert names == ["train_begin"] + epoch * 2 + ["train_end"]
    batches = [c for c in recorder.calls if c[0].startswith("batch")][:6]
    assert [c[1] for c in batches] == [0, 3, 4, 7, 8, 9]
    ends = [c[2] for c in batches if c[0] == "batch_end"]
    assert [(e["batches"], e["size"]) for e in ends] == [(4, 40), (4, 40), (2, 20)]
    assert ends[-1]["loss"] == pytest.approx(history.history["loss"][0], rel=1e-12)
    epoch_logs = [c[2] for c in recorder.calls if c[0] == "epoch_end"]
    assert epoch_logs == [{k: v[i] for k, v in history.history.items()} for i in range(2)]
    assert recorder.model is model
    assert recorder.params["epochs"] == 2 and recorder.params["steps"] == 10
    assert recorder.params["steps_per_execution"] == 4 and recorder.params["samples"] == 100


def test_callbacks_do_not_change_the_training():
    X, y = blobs()
    plain, watched = classifier(), classifier()
    h0 = plain.fit(X, y, epochs=3, batch_size=8, verbose=0)
    h1 = watched.fit(X, y, epochs=3, batch_size=8, verbose=0, steps_per_execution=1,
                     callbacks=[Recorder(), TerminateOnNaN()])
    assert_same_weights(plain, watched)
    np.testing.assert_allclose(h0.history["loss"], h1.history["loss"], rtol=1e-12)


def test_stop_training_from_a_batch_hook_ends_the_epoch_early():
    class StopAfter(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch >= 5:
                self.model.stop_training = True

    model = classifier()
    history = model.fit(*blobs(n=100), epochs=3, batch_size=10, verbose=0,
                        steps_per_execution=3, callbacks=[StopAfter()])
    assert model._network.step == 6  # two chunks of three batches
    assert len(history.history["loss"]) == 1


def test_stop_training_from_an_epoch_hook():
    stopper = LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(
        stopper.model, "stop_training", epoch == 1))
    history = classifier().fit(*blobs(), epochs=10, verbose=0, callbacks=[stopper])
    assert len(history.epoch) == 2


def test_a_callback_may_use_the_model_it_trains():
    seen = []
    cb = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
        (cb.model.predict(X[:5]).shape, cb.model.evaluate(X, y))))
    X, y = blobs()
    classifier().fit(X, y, epochs=2, verbose=0, callbacks=[cb])
    assert [s[0] for s in seen] == [(5, 3), (5, 3)]


def test_callbacks_argument_is_checked():
    with pytest.raises(TypeError, match="callbacks must be a list"):
        classifier().fit(*blobs(), verbose=0, callbacks=EarlyStopping())
    with pytest.raises(TypeError, match=r"callbacks\[1\] must be a Callback"):
        classifier().fit(*blobs(), verbose=0, callbacks=[EarlyStopping(), print])


# ---- EarlyStopping ----------------------------------------------------------------------------
def test_early_stopping_patience_and_restore_best_weights():
    scores = [5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 2.0]
    weights, stop = WeightLog(), EarlyStopping(monitor="score", patience=2,
                                               restore_best_weights=True)
    model = classifier()
    history = model.fit(*blobs(), epochs=7, verbose=0,
                        callbacks=[Script("score", scores), weights, stop])
    assert history.epoch == [0, 1, 2, 3]  # no improvement in epochs 2 and 3: stop
    assert stop.stopped_epoch == 3 and stop.best == 4.0 and stop.best_epoch == 1
    assert_same_weights(model.get_weights(), weights.weights[1])


def test_early_stopping_min_delta_and_mode():
    stop = EarlyStopping(monitor="score", min_delta=0.5, patience=1)
    history = classifier().fit(*blobs(), epochs=6, verbose=0,
                               callbacks=[Script("score", [5, 4.8, 4.6, 4, 3, 2]), stop])
    assert history.epoch == [0, 1]  # 4.8 is not better than 5 by more than 0.5
    stop = EarlyStopping(monitor="val_accuracy", patience=1)
    assert stop.mode == "max"
    history = classifier().fit(*blobs(), epochs=6, verbose=0,
                               callbacks=[Script("val_accuracy", [.5, .6, .6, .6, .7, .8]), stop])
    assert history.epoch == [0, 1, 2]


def test_early_stopping_on_an_overfitting_run_keeps_the_best_epoch():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(250, 10))
    y = ((X[:, 0] + rng.normal(scale=1.5, size=250)) > 0).astype(int)
    model = fb.Sequential([fb.Dense(10, 256, activation="relu"),
                           fb.Dense(256, 256, activation="relu"), fb.Dense(256, 2)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=fb.Adam(lr=1e-3))
    stop = EarlyStopping(patience=5, restore_best_weights=True)
    history = model.fit(X[:50], y[:50], epochs=200, batch_size=10, verbose=0,
                        validation_data=(X[50:], y[50:]), callbacks=[stop])
    val = history.history["val_loss"]
    assert len(val) < 200 and len(val) == stop.best_epoch + 5 + 1  # patience 5
    assert model.evaluate(X[50:], y[50:]) == pytest.approx(min(val), rel=1e-6)


def test_missing_monitor_warns():
    with pytest.warns(RuntimeWarning, match="'val_loss' is not in the logs"):
        classifier().fit(*blobs(), epochs=2, verbose=0, callbacks=[EarlyStopping()])


# ---- TerminateOnNaN ---------------------------------------------------------------------------
def test_terminate_on_nan(capsys):
    cb = TerminateOnNaN()
    history = classifier().fit(*blobs(), epochs=5, verbose=0,
                               callbacks=[Script("val_loss", [1.0, math.nan, 1, 1, 1]), cb])
    assert history.epoch == [0, 1]
    assert "invalid val_loss nan" in capsys.readouterr().out


def test_divergence_stops_with_or_without_terminate_on_nan():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 5)), 10 * rng.normal(size=(64, 2))
    model = fb.Sequential([fb.Dense(5, 16, activation="relu"), fb.Dense(16, 2)], seed=0)
    model.compile(loss="mse", optimizer=fb.SGD(lr=1e6))
    recorder = Recorder()
    with pytest.warns(RuntimeWarning, match="training stopped in epoch 1"):
        history = model.fit(X, y, epochs=5, verbose=0, callbacks=[recorder, TerminateOnNaN()])
    assert history.stopped is not None and len(history.epoch) == 1
    assert recorder.calls[-1] == ("train_end",)


# ---- ModelCheckpoint --------------------------------------------------------------------------
def test_model_checkpoint_every_epoch(tmp_path):
    X, y = blobs()
    model = classifier()
    pattern = str(tmp_path / "ckpt-{epoch:02d}-{loss:.3f}.npz")
    history = model.fit(X, y, epochs=3, verbose=0, callbacks=[ModelCheckpoint(pattern)])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"ckpt-{e + 1:02d}-{history.history['loss'][e]:.3f}.npz" for e in range(3)]
    last = fb.load_model(tmp_path / names[-1])
    assert_same_weights(model, last)


def test_model_checkpoint_save_best_only(tmp_path):
    path = tmp_path / "best.npz"
    weights = WeightLog()
    classifier().fit(*blobs(), epochs=5, verbose=0, callbacks=[
        Script("val_loss", [3, 2, 2.5, 1, 1.5]), weights,
        ModelCheckpoint(path, save_best_only=True)])
    assert_same_weights(fb.load_model(path), weights.weights[3])


# ---- ReduceLROnPlateau and LearningRateScheduler ---------------------------------------------
def train_with_lrs(lrs, X, y):
    """Reference: one fit per epoch with the given learning rates."""
    model = classifier(optimizer=fb.SGD(lr=lrs[0], momentum=0.9))
    for lr in lrs:
        model.optimizer.lr = lr
        model.fit(X, y, epochs=1, batch_size=16, verbose=0)
    return model


def test_reduce_lr_on_plateau_changes_the_rate_used_in_c():
    X, y = blobs()
    scores = [5, 4, 4, 4, 4, 4, 4, 3]
    reduce = ReduceLROnPlateau(monitor="score", factor=0.5, patience=2, min_delta=0)
    model = classifier(optimizer=fb.SGD(lr=0.1, momentum=0.9))
    history = model.fit(X, y, epochs=8, batch_size=16, verbose=0,
                        callbacks=[Script("score", scores), reduce])
    expected = [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    assert history.history["lr"] == expected
    assert_same_weights(model, train_with_lrs(expected, X, y))


def test_reduce_lr_on_plateau_respects_min_lr_and_cooldown():
    reduce = ReduceLROnPlateau(monitor="score", factor=0.1, patience=1, cooldown=2,
                               min_lr=0.005, min_delta=0)
    model = classifier(optimizer=fb.SGD(lr=0.1))
    history = model.fit(*blobs(), epochs=8, verbose=0,
                        callbacks=[Script("score", [1] * 8), reduce])
    # as Keras: the epoch whose decrement ends the cooldown already counts towards patience
    assert history.history["lr"] == pytest.approx([0.1, 0.1, 0.01, 0.01] + [0.005] * 4)


def test_reduce_lr_on_plateau_warns_when_a_schedule_owns_the_rate():
    model = classifier(optimizer=fb.SGD(lr=fb.schedules.ExponentialDecay(0.1, gamma=0.9)))
    with pytest.warns(RuntimeWarning, match="follows a schedule"):
        model.fit(*blobs(), epochs=1, verbose=0, callbacks=[ReduceLROnPlateau(monitor="loss")])


def test_learning_rate_scheduler_function_and_schedule():
    X, y = blobs()
    expected = [0.1, 0.05, 0.025, 0.0125]
    for schedule in (lambda epoch, lr: 0.1 * 0.5 ** epoch,
                     fb.schedules.ExponentialDecay(0.1, gamma=0.5)):
        model = classifier(optimizer=fb.SGD(lr=0.3, momentum=0.9))
        history = model.fit(X, y, epochs=4, batch_size=16, verbose=0,
                            callbacks=[LearningRateScheduler(schedule)])
        assert history.history["lr"] == pytest.approx(expected, rel=1e-15)
        assert_same_weights(model, train_with_lrs(history.history["lr"], X, y))


def test_learning_rate_scheduler_rejects_a_bad_rate():
    with pytest.raises(ValueError, match="learning rate returned by the schedule"):
        classifier().fit(*blobs(), epochs=1, verbose=0,
                         callbacks=[LearningRateScheduler(lambda epoch, lr: -1.0)])


# ---- CSVLogger --------------------------------------------------------------------------------
def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    X, y = blobs()
    history = classifier().fit(X, y, epochs=3, validation_split=0.2, verbose=0,
                               callbacks=[CSVLogger(path)])
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]
    assert [float(r[1]) for r in rows[1:]] == history.history["loss"]
    classifier().fit(X, y, epochs=2, validation_split=0.2, verbose=0,
                     callbacks=[CSVLogger(path, append=True)])
    rows = list(csv.reader(path.open()))
    assert len(rows) == 6 and rows.count(rows[0]) == 1  # one header
    classifier().fit(X, y, epochs=1, verbose=0, callbacks=[CSVLogger(path, separator=";")])
    assert path.read_text().splitlines() == [
        "epoch;loss;accuracy", path.read_text().splitlines()[1]]
