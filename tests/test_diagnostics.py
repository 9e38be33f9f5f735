"""history.diagnose() on runs made to show each case, the rules on hand-made curves,
History.plot and model.lr_find."""
import sys
import warnings

import numpy as np
import pytest

import fastbp as fb
from fastbp import diagnostics
from fastbp.model import History


def classification(n=600, seed=0):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=10, n_informative=6, random_state=seed)
    return X, y


def mlp(optimizer, hidden=32, seed=0, n_features=10, n_outputs=2):
    model = fb.Sequential([fb.Dense(n_features, hidden, activation="relu"),
                           fb.Dense(hidden, n_outputs, activation="softmax")], seed=seed)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


def hand_made(loss, val_loss=None, **params):
    history = History()
    for epoch, value in enumerate(loss):
        logs = {"loss": value}
        if val_loss is not None:
            logs["val_loss"] = val_loss[epoch]
        history._record(epoch, logs)
    history.params.update(params)
    return history


# ---- each case provoked by a real run ---------------------------------------------------------
def test_lr_10_diverges():
    """SGD with lr=10 on a classification problem: the logits blow up within two epochs and
    the C loop stops on a NaN."""
    X, y = classification()
    with pytest.warns(RuntimeWarning, match="training stopped"):
        history = mlp(fb.SGD(lr=10)).fit(X, y, epochs=10, validation_split=0.2, verbose=0)
    d = history.diagnose()
    assert d.kind == "diverging"
    assert d.epoch == history.stopped["epoch"] + 1 == len(history.epoch)
    assert f"in epoch {d.epoch} after" in d.summary and "lr=10" in d.suggestion
    assert "lower the learning rate" in d.suggestion


def test_lr_10_regression_diverges_in_the_first_epoch():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    model = fb.Sequential([fb.Dense(3, 16, activation="relu"), fb.Dense(16, 1)], seed=0)
    model.compile(loss="mse", optimizer=fb.SGD(lr=10))
    with pytest.warns(RuntimeWarning):
        history = model.fit(X, (X ** 2).sum(axis=1), epochs=10, verbose=0)
    d = history.diagnose()
    assert (d.kind, d.epoch) == ("diverging", 1)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_lr_1e_7_is_not_learning():
    """SGD with lr=1e-7: ten epochs move the loss by a few thousandths of a percent, and it
    stays above the loss of predicting the class frequencies."""
    X, y = classification()
    history = mlp(fb.SGD(lr=1e-7)).fit(X, y, epochs=10, validation_split=0.2, verbose=0)
    d = history.diagnose()
    assert d.kind == "not learning"
    assert "in 10 epochs" in d.summary and "class frequencies" in d.summary
    assert "lr=1e-07" in d.suggestion and "too low" in d.suggestion


def test_big_network_on_50_samples_overfits():
    """Two layers of 256 units on 50 noisy samples (30% of the labels' signal is noise):
    validation loss bottoms out early and climbs while the training loss goes to ~0."""
    X, y = classification(n=400)
    model = fb.Sequential([fb.Dense(10, 256, activation="relu"),
                           fb.Dense(256, 256, activation="relu"), fb.Dense(256, 2)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=fb.Adam(lr=1e-3))
    history = model.fit(X[:50], y[:50], epochs=100, batch_size=10,
                        validation_data=(X[100:], y[100:]), verbose=0)
    d = history.diagnose()
    val = history.history["val_loss"]
    best = int(np.argmin(val)) + 1
    assert d.kind == "overfitting"
    assert d.epoch == best < 50
    assert f"lowest in epoch {best}" in d.summary and f"after epoch {best}" in d.summary
    assert "EarlyStopping" in d.suggestion and "weight decay" in d.suggestion
    assert history.history["loss"][-1] < 0.01


def test_linear_model_on_a_quadratic_target_plateaus():
    """A linear model fitted to a sum of squares: the loss falls to the best linear fit within
    ~8 epochs and then stays there."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    model = fb.Sequential([fb.Dense(3, 1)], seed=0)
    model.compile(loss="mse", optimizer=fb.SGD(lr=0.01))
    history = model.fit(X, (X ** 2).sum(axis=1), epochs=30, verbose=0)
    d = history.diagnose()
    assert d.kind == "plateau"
    assert 3 <= d.epoch <= 15 and f"improvement by epoch {d.epoch}" in d.summary
    assert "ReduceLROnPlateau" in d.suggestion


def test_a_sensible_run_is_healthy():
    X, y = classification()
    history = mlp(fb.SGD(lr=0.01)).fit(X, y, epochs=10, validation_split=0.2, verbose=0)
    d = history.diagnose()
    assert d.kind == "healthy" and d.conclusive
    assert "still improving" in d.summary and "validation loss" in d.summary


def test_fit_prints_the_diagnosis_when_verbose(capsys):
    X, y = classification()
    mlp(fb.SGD(lr=1e-7)).fit(X, y, epochs=6, verbose=2)
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("Diagnosis: not learning: ") and "Suggestion: " in last


# ---- the rules on hand-made curves ------------------------------------------------------------
def test_rising_loss_is_diverging():
    d = hand_made([1.0, 0.8, 1.5, 3.0], lr=0.5).diagnose()
    assert d.kind == "diverging" and "rose from 1 in epoch 1 to 3 in epoch 4" in d.summary
    assert "lowest 0.8 in epoch 2" in d.summary and "lr=0.5" in d.suggestion


def test_loss_giving_back_its_gain_is_diverging():
    d = hand_made([2.0, 1.0, 0.5, 0.6, 1.0, 1.4]).diagnose()
    assert (d.kind, d.epoch) == ("diverging", 3)
    assert "fell to 0.5 in epoch 3, then rose to 1.4 by epoch 6" in d.summary


def test_nan_in_a_hand_made_history_is_diverging():
    assert hand_made([1.0, float("nan")]).diagnose().kind == "diverging"


def test_short_and_empty_histories_are_inconclusive():
    d = hand_made([1.0, 0.9, 0.8]).diagnose()
    assert d.kind == "too few epochs" and not d.conclusive
    assert hand_made([]).diagnose().kind == "no epochs"


def test_flat_loss_far_below_the_baseline_is_a_plateau_not_stalling():
    """A model that is already good (loss far below the constant-prediction loss) and stops
    improving is on a plateau; it is not 'not learning'."""
    loss = [0.0500, 0.0499, 0.0499, 0.0498, 0.0498, 0.0498, 0.0498, 0.0498]
    assert hand_made(loss, baseline_loss=0.69).diagnose().kind == "plateau"
    assert hand_made(loss, baseline_loss=0.06).diagnose().kind == "not learning"


def test_still_falling_towards_zero_is_healthy():
    loss = [1.0 / 2 ** e for e in range(10)]
    assert hand_made(loss).diagnose().kind == "healthy"


def test_noisy_but_flat_validation_is_a_plateau_and_rising_is_overfitting():
    loss = list(np.linspace(1.0, 0.2, 12))
    val = [0.9, 0.7, 0.6, 0.55, 0.54, 0.545, 0.54, 0.542, 0.541, 0.543, 0.54, 0.542]
    assert hand_made(loss, val).diagnose().kind == "plateau"
    val = [0.9, 0.7, 0.6, 0.55, 0.56, 0.58, 0.6, 0.62, 0.63, 0.65, 0.66, 0.68]
    d = hand_made(loss, val).diagnose()
    assert (d.kind, d.epoch) == ("overfitting", 4)


def test_str_shows_kind_summary_and_suggestion():
    text = str(hand_made([1.0, 0.8, 1.5, 3.0]).diagnose())
    assert text.startswith("diverging: ") and "\nsuggestion: " in text


# ---- History.plot -----------------------------------------------------------------------------
@pytest.fixture
def pyplot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_history_plot_draws_loss_and_metrics(pyplot, tmp_path):
    X, y = classification()
    history = mlp("adam").fit(X, y, epochs=4, validation_split=0.2, verbose=0)
    path = tmp_path / "curve.png"
    fig = history.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loss_ax, accuracy_ax = fig.axes
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert labels[:2] == ["training loss", "validation loss"]
    np.testing.assert_array_equal(loss_ax.get_lines()[0].get_ydata(), history.history["loss"])
    np.testing.assert_array_equal(loss_ax.get_lines()[0].get_xdata(), [1, 2, 3, 4])
    assert accuracy_ax.get_ylabel() == "accuracy"
    assert len(history.plot(metrics=False).axes) == 1


def test_history_plot_marks_divergence(pyplot):
    X, y = classification()
    with pytest.warns(RuntimeWarning):
        history = mlp(fb.SGD(lr=10)).fit(X, y, epochs=5, verbose=0)
    fig = history.plot()
    assert "diverged" in [line.get_label() for line in fig.axes[0].get_lines()]


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'fastbp\[plot\]'"):
        hand_made([1.0, 0.5]).plot()


# ---- lr_find ----------------------------------------------------------------------------------
def state(model):
    net = model._network
    return (net.params.copy(), net.state1.copy(), net.state2.copy(), net.step,
            model.optimizer.lr, model._rng.bit_generator.state)


@pytest.mark.parametrize("optimizer", [lambda: fb.Adam(lr=1e-3),
                                       lambda: fb.SGD(lr=0.01, momentum=0.9)])
def test_lr_find_restores_everything(optimizer):
    X, y = classification()
    model, twin = mlp(optimizer()), mlp(optimizer())
    for m in (model, twin):
        m.fit(X, y, epochs=1, verbose=0)  # non-zero optimizer state to restore
    before = state(model)
    result = model.lr_find(X, y, steps=100)
    after = state(model)
    for a, b in zip(before[:3], after[:3]):
        np.testing.assert_array_equal(a, b)
    assert before[3:] == after[3:]
    assert len(result.lrs) > 10
    # the next fit is exactly the fit the model would have done without the test
    h1 = model.fit(X, y, epochs=2, verbose=0)
    h2 = twin.fit(X, y, epochs=2, verbose=0)
    assert h1.history == h2.history
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_lr_find_curve_and_suggestion():
    X, y = classification()
    X = (X - X.mean(0)) / X.std(0)
    model = mlp(fb.SGD(lr=1e-3))
    result = model.lr_find(X, y, min_lr=1e-5, max_lr=100, steps=150)
    assert np.all(np.diff(result.lrs) > 0) and result.lrs[0] == 1e-5
    assert result.diverged_at is not None and len(result.lrs) < 150  # stopped when it blew up
    assert result.suggested_lr == result.min_loss_lr / 10
    assert 1e-5 < result.suggested_lr < result.min_loss_lr < result.diverged_at
    # training 3 epochs at the suggested rate beats the bottom of the range by far
    good = mlp(fb.SGD(lr=result.suggested_lr)).fit(X, y, epochs=3, verbose=0)
    slow = mlp(fb.SGD(lr=1e-5)).fit(X, y, epochs=3, verbose=0)
    assert good.history["loss"][-1] < 0.7 * slow.history["loss"][-1]


def test_lr_find_plot(pyplot, tmp_path):
    X, y = classification()
    result = mlp("adam").lr_find(X, y, steps=60)
    fig = result.plot(tmp_path / "lr.png")
    assert fig.axes[0].get_xscale() == "log"
    assert (tmp_path / "lr.png").stat().st_size > 1000


def test_lr_find_validates_its_arguments():
    X, y = classification()
    model = mlp("adam")
    with pytest.raises(ValueError, match="max_lr must be in"):
        model.lr_find(X, y, min_lr=1.0, max_lr=0.5)
    with pytest.raises(ValueError, match="steps must be >= 2"):
        model.lr_find(X, y, steps=1)
    uncompiled = fb.Sequential([fb.Dense(10, 2)])
    with pytest.raises(RuntimeError, match="compile"):
        uncompiled.lr_find(X, y)


def test_lr_find_survives_nan_at_the_top_of_the_range():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 4))
    model = fb.Sequential([fb.Dense(4, 8, activation="relu"), fb.Dense(8, 1)],
                          dtype="float64", seed=0)
    model.compile(loss="mse", optimizer=fb.SGD(lr=0.01))
    before = state(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = model.lr_find(X, 100 * X.sum(axis=1), min_lr=1e-6, max_lr=1e12,
                               steps=100, stop_factor=1e300)
    assert result.diverged_at is not None and np.isnan(result.smoothed[-1])
    np.testing.assert_array_equal(model._network.params, before[0])
    assert diagnostics._suggest(np.array([1.0, 2.0]), np.array([np.nan, np.nan])) == (1.0, 1.0)
    assert diagnostics._suggest(np.array([1.0, 2.0, 4.0]), np.array([3, 1, np.nan])) == (2.0, 0.2)
