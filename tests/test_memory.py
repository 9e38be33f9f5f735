"""Training allocates its memory once: after the first epoch, an epoch allocates nothing that
outlives it and nothing per mini-batch (issue 3, "Memory").

Measured with tracemalloc, which sees Python objects and numpy's array buffers (numpy reports
them to it); C code that called malloc itself would not show here, and fastbp's C code never
does (DESIGN.md). Self-contained (fastbp, numpy), so it can move to tests/ as it is.
"""
import tracemalloc

import numpy as np
import pytest

import fastbp as fb

SLACK = 2048  # bytes: interpreter free lists and small-object caches


def tiny_model(optimizer):
    model = fb.Sequential([fb.Dense(64, 32, activation="relu"), fb.Dense(32, 10)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer)
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((1797, 64)).astype(np.float32), rng.integers(0, 10, 1797)


def epoch_memory(model, X, y, batch_size, epochs=1):
    """(bytes still held after fit, peak bytes above the start during fit)."""
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0)
    current, peak = tracemalloc.get_traced_memory()
    return current - start, peak - start


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_an_epoch_allocates_nothing_after_the_first(data, optimizer):
    X, y = data
    model = tiny_model(optimizer)
    tracemalloc.start()
    try:
        model.fit(X, y, epochs=1, batch_size=32, verbose=0)  # the workspace is made here
        held, peaks = zip(*[epoch_memory(model, X, y, 32) for _ in range(5)])
        _, peak_online = epoch_memory(model, X, y, batch_size=1)  # 1797 steps, not 57
        _, peak_long = epoch_memory(model, X, y, 32, epochs=10)
    finally:
        tracemalloc.stop()
    assert max(held) <= SLACK, f"memory kept after each epoch (bytes): {held}"
    assert max(peaks) - min(peaks) <= SLACK, f"the peak moved across epochs: {peaks}"
    # nothing per step: 31x more steps (batch 1), or 10 epochs in one fit, peak no higher
    assert peak_online <= max(peaks) + SLACK, (peak_online, peaks)
    assert peak_long <= max(peaks) + SLACK, (peak_long, peaks)
