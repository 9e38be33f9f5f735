"""fit's output (verbose 0/1/2, terminal or not) and the chunked epoch: progress is shown
between C calls, and how an epoch is cut into calls never changes the training."""
import io

import numpy as np
import pytest

import fastbp as fb
from fastbp import progress


def blobs(n=300, n_features=6, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, n)
    return centers[y] + rng.normal(size=(n, n_features)), y


def classifier(seed=0, dtype="float32", optimizer="adam"):
    model = fb.Sequential([fb.Dense(6, 16, activation="relu"),
                           fb.Dense(16, 3, activation="softmax")], dtype=dtype, seed=seed)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


def same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class TTY(io.StringIO):
    def isatty(self):
        return True


# ---- what is printed --------------------------------------------------------------------------
def test_verbose_0_prints_nothing(capsys):
    classifier().fit(*blobs(), epochs=6, verbose=0)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("verbose", [1, 2])
def test_not_a_tty_prints_one_line_per_epoch_and_no_carriage_return(capsys, verbose):
    X, y = blobs()
    classifier().fit(X, y, epochs=6, validation_split=0.2, verbose=verbose)
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.splitlines()
    assert len(lines) == 7  # 6 epochs and the diagnosis
    for i, line in enumerate(lines[:6]):
        assert line.startswith(f"Epoch {i + 1}/6 - ")
        assert "loss: " in line and "val_loss: " in line and "val_accuracy: " in line
        assert ("samples/s" in line) == (verbose == 1)
    assert lines[6].startswith("Diagnosis: ")


def test_short_runs_print_no_diagnosis(capsys):
    classifier().fit(*blobs(), epochs=3, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and not any(line.startswith("Diagnosis") for line in lines)


def test_live_bar_in_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(progress, "is_interactive", lambda stream: True)
    X, y = blobs(n=2000)
    classifier().fit(X, y, epochs=2, batch_size=10, steps_per_execution=20, verbose=1)
    out = capsys.readouterr().out
    assert out.count("\n") == 2  # the two summary lines; the bar is redrawn in place
    first_epoch = out.split("\n")[0]
    frames = first_epoch.split("\r")
    assert frames[1].startswith("Epoch 1/2 [") and "0/200" in frames[1]
    assert frames[-1].strip().startswith("Epoch 1/2 - ") and "samples/s" in frames[-1]


def test_bar_content_and_refresh_rate():
    clock, stream = FakeClock(), TTY()
    bar = progress.make(1, epochs=3, n_samples=10_000, batch_size=100, stream=stream, clock=clock)
    assert isinstance(bar, progress.ProgressBar)
    bar.epoch_begin(0)
    # 1000 chunks, 1 ms apart: one second of training, at most ~10 redraws
    for i in range(1, 1001):
        clock.now = i * 0.001
        bar.update(i * 10, 0.5)
    assert 1 + 9 <= bar.renders <= 1 + 11
    frame = stream.getvalue().split("\r")[-1]
    assert "Epoch 1/3 [" in frame and "/100" in frame
    assert "samples/s" in frame and "loss: 0.5000" in frame and "ETA" in frame
    bar.epoch_end(0, {"loss": 0.5}, 1.0, 10_000)
    assert stream.getvalue().endswith("loss: 0.5000\n")


def test_bar_line_is_cut_to_the_terminal_width(monkeypatch):
    import os
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size",
                        lambda fallback=None: os.terminal_size((50, 20)))
    clock, stream = FakeClock(), TTY()
    bar = progress.ProgressBar(1, 1000, 10, stream, clock)
    bar.epoch_begin(0)
    clock.now = 1.0
    bar.update(500, 0.25)
    assert all(len(frame) <= 49 for frame in stream.getvalue().split("\r"))


def test_non_tty_stream_is_not_live():
    assert isinstance(progress.make(1, 1, 10, 1, stream=io.StringIO()), progress.EpochLines)
    assert isinstance(progress.make(0, 1, 10, 1, stream=TTY()), progress.Silent)
    assert isinstance(progress.make(2, 1, 10, 1, stream=TTY()), progress.EpochLines)


def test_interrupted_live_line_is_ended(monkeypatch, capsys):
    monkeypatch.setattr(progress, "is_interactive", lambda stream: True)

    class Interrupt(fb.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise KeyboardInterrupt

    model = classifier()
    with pytest.raises(KeyboardInterrupt):
        model.fit(*blobs(), epochs=2, batch_size=10, steps_per_execution=5, verbose=1,
                  callbacks=[Interrupt()])
    assert capsys.readouterr().out.endswith("\n")
    assert model.history is not None and not model._lock.locked()


def test_seconds_format():
    assert progress.format_seconds(3.25) == "3.2s"
    assert progress.format_seconds(42) == "42s"
    assert progress.format_seconds(125) == "2:05"
    assert progress.format_seconds(3725) == "1:02:05"


# ---- chunks never change training ------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_verbosity_changes_nothing(monkeypatch, capsys, dtype):
    X, y = blobs(n=3000)
    runs = []
    for verbose, live in [(0, False), (1, False), (2, False), (1, True)]:
        monkeypatch.setattr(progress, "is_interactive", lambda stream, live=live: live)
        model = classifier(dtype=dtype)
        history = model.fit(X, y, epochs=3, batch_size=16, validation_split=0.1,
                            verbose=verbose, steps_per_execution=7)
        runs.append((history.history, model))
    capsys.readouterr()
    for history, model in runs[1:]:
        assert history == runs[0][0]
        assert same_weights(model, runs[0][1])


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("steps", [None, 1, 3, 10_000])
def test_chunked_epochs_equal_one_call_per_epoch(optimizer, steps):
    """fit cuts each epoch into C calls of steps_per_execution batches over the same
    shuffled order: the weights are bit-identical to one train_epoch call per epoch."""
    X, y = blobs(n=997)
    chunked = classifier(optimizer=optimizer)
    history = chunked.fit(X, y, epochs=3, batch_size=8, verbose=0, steps_per_execution=steps)
    reference = classifier(optimizer=optimizer)
    Xp, yp = reference._prepare(X, y)
    reference.optimizer._configure(reference._network)
    losses = []
    for _ in range(3):
        perm = reference._rng.permutation(len(X)).astype(np.int64)
        losses.append(reference._network.train_epoch(Xp, yp, perm, 8)[0])
    assert same_weights(chunked, reference)
    assert chunked._network.step == reference._network.step == 3 * 125
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-12)
    if steps == 10_000:  # one chunk: the C mean is reported as is
        assert history.history["loss"] == losses


def test_default_chunks_follow_the_work_per_sample():
    model = fb.Sequential([fb.Dense(784, 128, activation="relu"), fb.Dense(128, 10)])
    # about 5e8 flops per call: 6 * (784*128 + 128*10) flops per sample -> 820 samples
    assert model._chunk_batches(32, 313, None) == 25
    assert model._chunk_batches(32, 313, 4) == 4
    assert model._chunk_batches(32, 10, 1000) == 10
    tiny = fb.Sequential([fb.Dense(4, 3)])
    assert tiny._chunk_batches(32, 50, None) == 50  # the whole epoch in one call
    huge = fb.Sequential([fb.Dense(2048, 2048), fb.Dense(2048, 10)])
    assert huge._chunk_batches(256, 50, None) == 1


def test_steps_per_execution_is_validated():
    with pytest.raises(ValueError, match="steps_per_execution must be >= 1"):
        classifier().fit(*blobs(), steps_per_execution=0, verbose=0)
    with pytest.raises(TypeError, match="steps_per_execution must be an integer"):
        classifier().fit(*blobs(), steps_per_execution=2.5, verbose=0)


def test_divergence_in_a_later_chunk_counts_all_samples():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5))
    y = 10 * rng.normal(size=(64, 2))
    model = fb.Sequential([fb.Dense(5, 16, activation="relu"), fb.Dense(16, 2)],
                          dtype="float64", seed=0)
    model.compile(loss="mse", optimizer=fb.SGD(lr=1e6))
    with pytest.warns(RuntimeWarning, match=r"after (\d+) of 64 samples") as record:
        history = model.fit(X, y, epochs=3, batch_size=8, shuffle=False, verbose=0,
                            steps_per_execution=1)
    n_trained = int(str(record[0].message).split(" after ")[1].split(" of ")[0])
    assert model._network.step == n_trained // 8
    assert history.stopped["samples_trained"] == n_trained
    assert all(np.isfinite(w).all() for w in model.get_weights())
