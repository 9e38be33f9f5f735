"""No leaks over long runs: repeated fit/predict/evaluate/compute_gradients/get_weights/
set_weights/compile and fastbp.ops calls, including calls that raise, and models built and
dropped, keep the process's memory flat.

Measured after a warm-up and gc.collect(): the resident set size (from /proc/self/statm: C
allocations, which tracemalloc does not see) and tracemalloc's traced memory (Python objects).
Thresholds, for tens of thousands of calls: traced memory may grow by 256 KiB and RSS by
16 MiB. A leak of one small Python object per call, or of one model's buffers (a few KiB) per
model, exceeds them many times over; on a clean build five runs stayed far below.

Skipped under the sanitizers (tools/run_sanitized.sh sets FASTBP_SANITIZED=1): ASan keeps
freed memory in quarantine, so RSS grows regardless; LeakSanitizer does the job there.
"""
import gc
import os
import tracemalloc

import numpy as np
import pytest

import fastbp as fb
from fastbp import ops

pytestmark = [
    pytest.mark.skipif(os.environ.get("FASTBP_SANITIZED") == "1" or
                       "asan" in os.environ.get("LD_PRELOAD", ""),
                       reason="sanitized run: ASan holds freed memory; LeakSanitizer checks"),
    pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm"),
]

TRACED_LIMIT = 256 * 1024
RSS_LIMIT = 16 * 2**20


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(step, warmup, repeats):
    """Run step() warmup times, then repeats times; return (traced growth, RSS growth)."""
    for _ in range(warmup):
        step()
    gc.collect()
    tracemalloc.start()
    try:
        rss_before, traced_before = rss(), tracemalloc.get_traced_memory()[0]
        for _ in range(repeats):
            step()
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] - traced_before
    finally:
        tracemalloc.stop()
    return traced, rss() - rss_before


def expect_error(call):
    try:
        call()
    except (TypeError, ValueError, RuntimeError):
        return
    raise AssertionError("the call was expected to raise")


def test_model_calls_do_not_leak():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 6))
    y = rng.integers(0, 3, 32)
    Xf32 = X.astype(np.float32)
    model = fb.Sequential([fb.Dense(6, 16, activation="relu"), fb.Dense(16, 3)], seed=0)
    model.compile("categorical_crossentropy", fb.Adam(lr=1e-3), metrics=["accuracy"])
    weights = model.get_weights()
    bad_opt = fb.SGD()
    bad_opt.lr = -1.0

    def step():
        model.fit(X, y, epochs=1, batch_size=8, verbose=0, validation_split=0.25)
        model.fit(np.asfortranarray(Xf32), y, epochs=1, batch_size=32, verbose=0,
                  sample_weight=np.ones(32), class_weight={0: 2.0})
        model.predict(X)
        model.evaluate(X, y)
        model.compute_gradients(X[:8], y[:8])
        model.set_weights(model.get_weights())
        expect_error(lambda: model.fit(X[:, :5], y, verbose=0))
        expect_error(lambda: model.evaluate(X, y + 3))
        expect_error(lambda: model.predict(np.full((2, 6), np.nan)))
        expect_error(lambda: model.set_weights(weights[:-1]))
        expect_error(lambda: model.compile("categorical_crossentropy", bad_opt))
        expect_error(lambda: model.fit(X, y, epochs=-1))

    traced, grown = measure(step, warmup=200, repeats=1000)  # 12k calls
    assert traced < TRACED_LIMIT, f"traced memory grew by {traced} bytes"
    assert grown < RSS_LIMIT, f"RSS grew by {grown} bytes"


def test_models_built_and_dropped_do_not_leak():
    """Each model owns C-visible buffers (parameters, gradients, optimizer state, workspace:
    about 500 KiB here); dropping a model must free them all. A model and its layers refer to
    each other (layer._model), so the cyclic collector frees them: collected after each model,
    RSS stays flat; without it the heap grows to a high-water mark first (not a leak)."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((16, 20)), rng.standard_normal((16, 4))

    def step():
        model = fb.Sequential([fb.Dense(20, 64, activation="tanh"), fb.Dense(64, 4)],
                              dtype="float64", seed=1)
        model.compile("mse", fb.SGD(lr=0.01, momentum=0.9))
        model.fit(X, y, epochs=1, batch_size=16, verbose=0)
        expect_error(lambda: fb.Sequential([fb.Dense(20, 4), fb.Dense(5, 4)]))
        del model
        gc.collect(1)  # the young generations: this model and its layers

    traced, grown = measure(step, warmup=50, repeats=600)
    assert traced < TRACED_LIMIT, f"traced memory grew by {traced} bytes"
    assert grown < RSS_LIMIT, f"RSS grew by {grown} bytes"


def test_ops_calls_including_rejected_ones_do_not_leak():
    rng = np.random.default_rng(2)
    X, W = rng.standard_normal((8, 5)).astype(np.float32), rng.standard_normal((5, 4))
    W32, b = W.astype(np.float32), np.zeros(4, np.float32)
    out, m, v = np.empty((8, 4), np.float32), np.zeros_like(W32), np.zeros_like(W32)
    labels = rng.integers(0, 4, 8)

    def step():
        A = ops.dense_forward(X, W32, b, "sigmoid", out=out)
        loss, g = ops.softmax_cross_entropy(A, labels)
        ops.binary_crossentropy(A, (A > 0.5).astype(np.float32))
        dX, dW, db = ops.dense_backward(X[::-1], W32, g)
        ops.activation_backward(A, g, "softmax", out=g)
        ops.adam_step(W32, dW, m, v, 1, lr=0.0)
        ops.sgd_step(W32, dW, 0.0, momentum=0.5, velocity=m)
        expect_error(lambda: ops.dense_forward(X, W, b))  # mixed precisions
        expect_error(lambda: ops.softmax_cross_entropy(A, labels + 4))
        expect_error(lambda: ops.sgd_step(W32, dW, 10**400))
        expect_error(lambda: ops.relu(X, out=np.empty((8, 5))))

    traced, grown = measure(step, warmup=300, repeats=2000)  # 22k calls
    assert traced < TRACED_LIMIT, f"traced memory grew by {traced} bytes"
    assert grown < RSS_LIMIT, f"RSS grew by {grown} bytes"
