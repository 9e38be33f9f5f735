"""Learning-rate schedules: their formulas (against torch.optim.lr_scheduler's, written out),
warm-up, validation, and their effect on training from the optimizer or as a callback."""
import math

import numpy as np
import pytest

import fastbp as fb
from fastbp.schedules import CosineDecay, ExponentialDecay, StepDecay, from_config


def test_step_decay_is_torch_steplr():
    s = StepDecay(0.1, step_size=3, gamma=0.5)
    assert [s(e) for e in range(8)] == [0.1 * 0.5 ** (e // 3) for e in range(8)]


def test_exponential_decay_is_torch_exponentiallr():
    s = ExponentialDecay(0.2, gamma=0.9)
    assert [s(e) for e in range(5)] == [0.2 * 0.9 ** e for e in range(5)]


def test_cosine_decay_is_torch_cosineannealinglr_without_restart():
    s = CosineDecay(0.1, epochs=10, min_lr=0.001)
    expected = [0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(11)]
    assert [s(e) for e in range(11)] == pytest.approx(expected, rel=1e-15)
    assert s(10) == s(25) == pytest.approx(0.001)


def test_cosine_to_zero_stays_positive():
    s = CosineDecay(0.1, epochs=4)
    assert 0 < s(4) < 1e-12 and s(100) == s(4)


@pytest.mark.parametrize("schedule", [StepDecay(0.1, 2, warmup_epochs=3),
                                      ExponentialDecay(0.1, 0.5, warmup_epochs=3),
                                      CosineDecay(0.1, 5, warmup_epochs=3)])
def test_warmup_rises_linearly_then_the_decay_starts_from_lr(schedule):
    assert [schedule(e) for e in range(3)] == pytest.approx([0.025, 0.05, 0.075])
    assert schedule(3) == pytest.approx(0.1)
    assert schedule(4) < 0.1 + 1e-15


@pytest.mark.parametrize("make, message", [
    (lambda: StepDecay(0, 2), r"lr must be in \(0"),
    (lambda: StepDecay(0.1, 0), "step_size must be >= 1"),
    (lambda: ExponentialDecay(0.1, gamma=-1), "gamma must be in"),
    (lambda: CosineDecay(0.1, epochs=0), "epochs must be >= 1"),
    (lambda: CosineDecay(0.1, epochs=5, min_lr=0.2), "min_lr .* must not exceed lr"),
    (lambda: CosineDecay(0.1, epochs=5, warmup_epochs=-1), "warmup_epochs must be >= 0"),
    (lambda: StepDecay(0.1, 2)(-1), "epoch must be >= 0"),
])
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_config_round_trip_and_unknown_names():
    for s in (StepDecay(0.1, 3, 0.5, 2), ExponentialDecay(0.1, 0.9), CosineDecay(0.1, 9, 1e-4, 1)):
        assert from_config(type(s).__name__, s.get_config()) == s
    with pytest.raises(ValueError, match="unknown schedule 'os.system'"):
        from_config("os.system", {})


# ---- in training ------------------------------------------------------------------------------
def blobs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2, size=(3, 6))
    y = rng.integers(0, 3, n)
    return centers[y] + rng.normal(size=(n, 6)), y


def classifier(optimizer):
    model = fb.Sequential([fb.Dense(6, 16, activation="relu"),
                           fb.Dense(16, 3, activation="softmax")], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer)
    return model


def manual(lrs, X, y, make_optimizer):
    model = classifier(make_optimizer(lrs[0]))
    for lr in lrs:
        model.optimizer.lr = lr
        model.fit(X, y, epochs=1, batch_size=16, verbose=0)
    return model


def assert_same_weights(a, b):
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("make_optimizer", [lambda lr: fb.SGD(lr=lr, momentum=0.9),
                                            lambda lr: fb.Adam(lr=lr)])
def test_schedule_from_the_optimizer(make_optimizer):
    X, y = blobs()
    schedule = CosineDecay(0.05, epochs=4, warmup_epochs=1)
    model = classifier(make_optimizer(schedule))
    assert model.optimizer.schedule is schedule and model.optimizer.lr == schedule(0)
    history = model.fit(X, y, epochs=6, batch_size=16, verbose=0)
    assert history.history["lr"] == [schedule(e) for e in range(6)]
    assert_same_weights(model, manual(history.history["lr"], X, y, make_optimizer))


def test_optimizer_schedule_continues_across_fits_and_restarts_at_compile():
    X, y = blobs()
    schedule = StepDecay(0.1, step_size=2, gamma=0.5)
    model = classifier(fb.SGD(lr=schedule))
    first = model.fit(X, y, epochs=3, verbose=0).history["lr"]
    second = model.fit(X, y, epochs=2, verbose=0).history["lr"]
    assert first + second == [schedule(e) for e in range(5)]
    model.compile(loss="categorical_crossentropy", optimizer=model.optimizer)
    assert model.fit(X, y, epochs=1, verbose=0).history["lr"] == [schedule(0)]


def test_schedule_as_callback_equals_schedule_on_the_optimizer():
    X, y = blobs()
    schedule = ExponentialDecay(0.1, gamma=0.7, warmup_epochs=2)
    a = classifier(fb.SGD(lr=schedule))
    ha = a.fit(X, y, epochs=5, verbose=0)
    b = classifier(fb.SGD(lr=1.0))
    hb = b.fit(X, y, epochs=5, verbose=0,
               callbacks=[fb.callbacks.LearningRateScheduler(schedule)])
    assert ha.history == hb.history
    assert_same_weights(a, b)


def test_optimizer_repr_and_validation_with_a_schedule():
    opt = fb.Adam(lr=StepDecay(0.01, 5))
    assert "schedule=StepDecay(lr=0.01" in repr(opt)
    with pytest.raises(TypeError, match="lr must be a real number"):
        fb.Adam(lr="0.01")
