"""Threads: every long C call runs with the GIL released, separate models train in threads
exactly as they do one after another, and a model used from two threads at once refuses the
second thread with a clear RuntimeError instead of sharing its buffers.

Whether the GIL is released is checked deterministically, not by timing: a build made with
FASTBP_DEBUG_GIL=1 (tools/run_sanitized.sh makes one) counts, at the start of each `with nogil:`
block of fastbp/_core.pyx, the calls during which PyGILState_Check() still saw the GIL held.
Those tests skip on a normal build; the source check below runs everywhere and keeps every
`with nogil:` block instrumented.
"""
import pathlib
import re
import threading

import numpy as np
import pytest

import fastbp as fb
from fastbp import _core, ops

PYX = pathlib.Path(__file__).resolve().parent.parent / "fastbp" / "_core.pyx"
debug_build = pytest.mark.skipif(
    not _core._debug_gil(),
    reason="needs the GIL-debug build (FASTBP_DEBUG_GIL=1; tools/run_sanitized.sh runs it)")


# ---- the instrumentation itself ---------------------------------------------------------------
def test_every_nogil_block_starts_with_a_gil_check():
    """Each `with nogil:` in _core.pyx begins with _gil_check(<its own site>), and the sites
    are the ones _core._GIL_SITES names (so a new C call cannot escape the check)."""
    if not PYX.exists():
        pytest.skip("the Cython source is not beside the tests")
    lines = PYX.read_text().splitlines()
    enum = re.search(r"cdef enum:\n((?:    GIL_\w+\n)+)", PYX.read_text()).group(1).split()
    sites = []
    for i, line in enumerate(lines):
        if line.strip() == "with nogil:":
            match = re.fullmatch(r"\s*_gil_check\((GIL_\w+)\)", lines[i + 1])
            assert match, f"_core.pyx:{i + 2}: a `with nogil:` block without _gil_check first"
            sites.append(match.group(1))
    assert len(sites) == len(set(sites)), "two nogil blocks share a site"
    assert sorted(sites + ["GIL_SELFTEST"]) == sorted(enum)
    names = [name.upper().replace("NETWORK.", "") for name in _core._GIL_SITES]
    assert ["GIL_" + n for n in names] == enum, "_GIL_SITES is not in the enum's order"


@debug_build
def test_the_check_sees_a_held_gil():
    """The counter works: called with the GIL held, it counts."""
    before = _core._gil_counts()["selftest"]
    _core._gil_selftest()
    after = _core._gil_counts()["selftest"]
    assert after == (before[0] + 1, before[1] + 1)


def exercise_every_entry_point(dtype):
    """One call into each nogil block of _core.pyx, through the public API."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4)).astype(dtype)
    y = rng.integers(0, 3, 40)
    model = fb.Sequential([fb.Dense(4, 6, activation="tanh"), fb.Dense(6, 3)], dtype=dtype,
                          seed=0)
    model.compile("categorical_crossentropy", "adam", metrics=["accuracy"])
    model.fit(X, y, epochs=1, batch_size=8, verbose=0, validation_split=0.25)
    plain = fb.Sequential([fb.Dense(4, 3)], dtype=dtype, seed=0)
    plain.compile("categorical_crossentropy", "sgd")
    plain.fit(X, y, epochs=3, batch_size=8, verbose=0)  # several epochs per C call
    # the scans and the shuffle keep the GIL for short arrays: long ones reach their nogil
    _core.all_finite(np.zeros(_core.SCAN_NOGIL_MIN, dtype))
    _core.labels_in_range(np.zeros(_core.SCAN_NOGIL_MIN, np.int64), 3)
    _core.shuffle(np.empty(_core.SHUFFLE_NOGIL_MIN, np.int64), np.random.default_rng(0))
    model.evaluate(X, y)
    model.predict(X)
    model.compute_gradients(X, y)
    model._network.optimizer_step()
    W, b = X[:4, :3].copy(), np.zeros(3, dtype)
    A = ops.dense_forward(X, W, b, "relu")
    ops.dense_backward(X, W, A)
    ops.activation_backward(A, A.copy(), "relu")
    ops.softmax(A, out=A)
    ops.mse(A, A.copy())
    ops.softmax_cross_entropy(A, y)
    ops.sgd_step(W, W.copy(), 0.1)
    ops.adam_step(W, W.copy(), np.zeros_like(W), np.zeros_like(W), 1)


@debug_build
@pytest.mark.parametrize("where", ["main thread", "worker thread"])
def test_every_c_call_runs_without_the_gil(where):
    before = _core._gil_counts()
    if where == "main thread":
        for dtype in ("float32", "float64"):
            exercise_every_entry_point(dtype)
    else:
        errors = []

        def work():
            try:
                for dtype in ("float32", "float64"):
                    exercise_every_entry_point(dtype)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        t = threading.Thread(target=work)
        t.start()
        t.join()
        assert not errors, errors
    after = _core._gil_counts()
    for site, (checked, held) in after.items():
        if site == "selftest":
            continue
        assert checked > before[site][0], f"{site} was not exercised"
        assert held == before[site][1], f"{site} ran C with the GIL held"
    assert _core._gil_held_count() == 0


# ---- separate models in threads --------------------------------------------------------------
def problem(seed, n=600):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 10))
    y = (X[:, :3] @ rng.standard_normal((3, 4))).argmax(axis=1)
    model = fb.Sequential([fb.Dense(10, 32, activation="relu"),
                           fb.Dense(32, 4, activation="softmax")], dtype="float32", seed=seed)
    model.compile("categorical_crossentropy", fb.Adam(lr=0.01), metrics=["accuracy"])
    return model, X, y


def workload(model, X, y):
    """fit, evaluate, predict, gradients and a few ops calls; returns everything computed."""
    history = model.fit(X, y, epochs=3, batch_size=16, verbose=0, validation_split=0.2).history
    loss, grads = model.compute_gradients(X[:50], y[:50])
    P = model.predict(X)
    W = model.get_weights()[0].copy()
    v = np.zeros_like(W)
    for _ in range(20):
        ops.sgd_step(W, np.ones_like(W), 0.01, momentum=0.9, velocity=v)
    return history, model.evaluate(X, y), loss, grads, P, model.get_weights(), W


def same_results(a, b):
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_results(x, z) for x, z in zip(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def test_separate_models_in_threads_equal_sequential_runs():
    seeds = (11, 12, 13)
    alone = [workload(*problem(s)) for s in seeds]
    problems = [problem(s) for s in seeds]
    results, errors = [None] * len(seeds), []
    barrier = threading.Barrier(len(seeds))

    def worker(i):
        try:
            barrier.wait()
            results[i] = workload(*problems[i])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(seeds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(len(seeds)):
        assert same_results(results[i], alone[i]), f"model {i} differs when run in a thread"


# ---- one model, two threads -------------------------------------------------------------------
BUSY = r"already in use by another thread .*use one model per thread"


def every_call(model, X, y, weights):
    return {
        "fit": lambda: model.fit(X, y, epochs=1, verbose=0),
        "evaluate": lambda: model.evaluate(X, y),
        "predict": lambda: model.predict(X),
        "compute_gradients": lambda: model.compute_gradients(X[:10], y[:10]),
        "compile": lambda: model.compile("mse", "sgd"),
        "get_weights": lambda: model.get_weights(),
        "set_weights": lambda: model.set_weights([w * 0 for w in weights]),
        "reset_parameters": lambda: model.reset_parameters(),
    }


def snapshot(model):
    net = model._network
    return [net.params.copy(), net.state1.copy(), net.state2.copy(), net.step, model.loss,
            model._rng.bit_generator.state]


def test_second_thread_is_refused_by_every_method():
    """While one thread holds the model, every method called from another thread raises a
    RuntimeError at once and changes nothing (compile, set_weights, get_weights and
    reset_parameters included: compile during fit used to change the loss C was reading)."""
    model, X, y = problem(1)
    model.fit(X, y, epochs=1, verbose=0)
    before, weights = snapshot(model), model.get_weights()
    holding, release = threading.Event(), threading.Event()

    def hold():
        with model._exclusive():
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        for name, call in every_call(model, X, y, weights).items():
            with pytest.raises(RuntimeError, match=BUSY):
                call()
    finally:
        release.set()
        holder.join()
    assert same_results(snapshot(model)[:4], before[:4]) and snapshot(model)[4:] == before[4:]
    model.fit(X, y, epochs=1, verbose=0)  # usable again


def test_calls_during_a_real_fit_are_refused_and_change_nothing():
    """A thread calls every method while another thread is inside fit (in C, most of the
    time): each is refused, and the fit ends exactly as for a twin trained alone. Before the
    fix, compile("mse") here switched the loss under the running C loop, which then read
    one-hot rows from the int64 label array (an out-of-bounds read; ASan: SEGV)."""
    model, X, y = problem(2, n=20000)
    twin, _, _ = problem(2, n=20000)
    weights = model.get_weights()
    done, errors = threading.Event(), []

    def train():
        try:
            model.fit(X, y, epochs=2, batch_size=32, verbose=0)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            done.set()

    t = threading.Thread(target=train)
    t.start()
    while not model._lock.locked() and not done.is_set():
        pass
    refused = 0
    for name, call in every_call(model, X, y, weights).items():
        if done.is_set():
            break
        try:
            call()
        except RuntimeError as exc:
            assert re.search(BUSY, str(exc)), exc
            refused += 1
        else:
            assert done.is_set(), f"{name} ran while fit was running in another thread"
    t.join()
    assert not errors, errors
    if refused == 0:
        pytest.skip("fit ended before the second thread could call (machine too fast)")
    twin.fit(X, y, epochs=2, batch_size=32, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_thread_holding_the_model_may_call_it_again():
    """Re-entry from the thread that holds the model (a callback inside fit reading or
    restoring weights) is allowed; it releases the model only at the outermost exit."""
    model, X, y = problem(3)
    with model._exclusive():
        weights = model.get_weights()
        model.set_weights(weights)
        model.predict(X[:5])
        assert model._lock.locked()
    assert not model._lock.locked()
    model.fit(X, y, epochs=1, verbose=0)
