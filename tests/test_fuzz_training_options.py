"""Property-based tests of the training options and the model file: fit's sample_weight,
class_weight, steps_per_execution, n_threads and callbacks; lr_find's arguments; load_model on
damaged files. Each call returns the right thing or raises TypeError/ValueError with a message,
and a call that raises leaves the model as it was (lr_find leaves it as it was in any case)."""
import math
import os
import tempfile

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import fastbp as fb
from fuzz_helpers import ALL_DTYPES, FUZZ, LAYOUTS, VALID, make, raises_or_returns

TASKS = ("labels", "onehot", "binary", "regression")
LOSS = {"labels": "categorical_crossentropy", "onehot": "categorical_crossentropy",
        "binary": "binary_crossentropy", "regression": "mse"}


def real_ok(v, low=0.0):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return False
    try:
        x = float(v)
    except OverflowError:
        return False
    return math.isfinite(x) and x >= low


def int_ok(v, low):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v >= low


def problem(task, n, rng):
    X = rng.standard_normal((n, 3))
    k = 1 if task == "binary" else 3
    if task == "labels":
        y = rng.integers(0, 3, n)
    elif task == "onehot":
        y = np.eye(3)[rng.integers(0, 3, n)]
    elif task == "binary":
        y = (rng.random((n, 1)) < 0.5).astype(float)
    else:
        y = rng.standard_normal((n, 3))
    model = fb.Sequential([fb.Dense(3, 4, activation="tanh"), fb.Dense(4, k)], seed=0)
    model.compile(LOSS[task], fb.SGD(lr=0.05, momentum=0.5))
    return model, X, y, k


def state(model):
    net = model._network
    return [net.params.copy(), net.state1.copy(), net.state2.copy(), net.step,
            model._rng.bit_generator.state, model.optimizer.lr]


def same_state(a, b):
    return all(np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
               for x, y in zip(a, b))


@FUZZ
@given(valid=VALID, task=st.sampled_from(TASKS), n=st.integers(1, 10), data=st.data(),
       seed=st.integers(0, 2**32 - 1))
def test_fit_options(valid, task, n, data, seed):
    draw, rng = data.draw, np.random.default_rng(seed)
    model, X, y, k = problem(task, n, rng)
    # sample_weight: a targeted length, any dtype and layout, negative and non-finite values
    sw, sw_ok = None, True
    if draw(st.booleans()):
        length = n if valid else draw(st.sampled_from([n, n, n - 1, n + 1, 0]))
        shape = draw(st.sampled_from([(length,), (length, 1)] + ([] if valid else [(length, 2),
                                                                                   ()])))
        dtype = np.dtype(draw(st.sampled_from([np.float64, np.float32, np.int64, np.bool_])
                              if valid else st.sampled_from(ALL_DTYPES)))
        sw = make(rng, shape, (dtype, draw(st.sampled_from(LAYOUTS)), False))
        if isinstance(sw, np.ndarray) and sw.flags.writeable and sw.dtype.kind in "fi" \
                and sw.size:
            sw[...] = np.abs(sw)
            if not valid and draw(st.booleans()):
                bad = [-1, np.nan, np.inf] if sw.dtype.kind == "f" else [-1]
                sw.reshape(-1)[0] = draw(st.sampled_from(bad))
        arr = np.asarray(sw)
        sw_ok = (arr.dtype.kind in "biuf" and (arr.shape == (n,) or arr.shape == (n, 1))
                 and bool(np.isfinite(arr.astype(np.float64)).all())
                 and bool((arr.astype(np.float64) >= 0).all()))
    cw, cw_ok = None, True
    if draw(st.booleans()):
        n_classes = 2 if task == "binary" else k
        keys = draw(st.lists(st.sampled_from([0, 1, 2] + ([] if valid else [-1, 3, 1.0, "a",
                                                                            True])),
                             max_size=3, unique_by=lambda key: (type(key), key)))
        values = [draw(st.sampled_from([0.0, 0.5, 2, np.float32(3.0)] + (
            [] if valid else [-1.0, math.nan, "x", None]))) for _ in keys]
        cw = dict(zip(keys, values)) if valid or draw(st.booleans()) else list(keys)
        cw_ok = (task != "regression" and isinstance(cw, dict)
                 and all(int_ok(key, 0) and key < n_classes for key in cw)
                 and all(real_ok(v) for v in cw.values()))
    spe = draw(st.sampled_from([None, 1, 3, 2**40] + ([] if valid else [0, -1, 1.5, "2"])))
    threads = draw(st.sampled_from([None, 1, 2] + ([] if valid else [0, -1, 1.5, "1"])))
    cbs = draw(st.sampled_from([None, [], [fb.callbacks.TerminateOnNaN()]] + (
        [] if valid else ["cb", [object()], fb.callbacks.TerminateOnNaN()])))
    ok = (sw_ok and cw_ok and (spe is None or int_ok(spe, 1))
          and (threads is None or int_ok(threads, 1))
          and (cbs is None or (isinstance(cbs, list)
                               and all(isinstance(c, fb.callbacks.Callback) for c in cbs))))
    before = state(model)
    history, _ = raises_or_returns(lambda: model.fit(X, y, epochs=2, batch_size=4, verbose=0,
                                                     sample_weight=sw, class_weight=cw,
                                                     steps_per_execution=spe, n_threads=threads,
                                                     callbacks=cbs), ok)
    if ok:
        assert len(history.history["loss"]) == 2
        assert all(np.isfinite(w).all() for w in model.get_weights())
    else:
        assert same_state(before, state(model)), "a rejected fit changed the model"


@FUZZ
@given(valid=VALID, data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_lr_find_always_puts_everything_back(valid, data, seed):
    """lr_find: any arguments; whether it returns or raises, the weights, optimizer state and
    step, learning rate and shuffling generator are as before."""
    draw, rng = data.draw, np.random.default_rng(seed)
    model, X, y, _ = problem(draw(st.sampled_from(TASKS)), 12, rng)
    model.fit(X, y, epochs=1, verbose=0)  # some optimizer state
    good = {"min_lr": [1e-6, 1e-3], "max_lr": [1.0, 10.0, 1e6], "steps": [2, 5],
            "batch_size": [1, 4, 100], "smoothing": [0.0, 0.9], "stop_factor": [1.5, 4.0]}
    bad = {"min_lr": [0, -1, math.nan, "a"], "max_lr": [1e-9, math.inf, 1e30], "steps": [1, 0,
                                                                                         2.5],
           "batch_size": [0, None], "smoothing": [1.0, -0.1], "stop_factor": [1.0, 0.5]}
    kwargs = {key: draw(st.sampled_from(good[key] + ([] if valid else bad[key])))
              for key in good}
    before = state(model)
    try:
        result = model.lr_find(X, y, **kwargs)
    except (TypeError, ValueError) as exc:
        event("rejected")
        assert str(exc)
    else:
        event("accepted")
        assert len(result.lrs) == len(result.losses) >= 1
    assert same_state(before, state(model)), "lr_find did not put the model back"
    if valid:
        model.lr_find(X, y, **{**kwargs, "max_lr": 1.0})  # valid arguments do run


@pytest.fixture(scope="module")
def saved_model():
    rng = np.random.default_rng(0)
    model, X, y, _ = problem("labels", 20, rng)
    model.fit(X, y, epochs=2, verbose=0)
    directory = tempfile.mkdtemp()
    path = os.path.join(directory, "model.npz")
    model.save(path)
    with open(path, "rb") as f:
        return model, f.read(), directory


@FUZZ
@given(data=st.data())
def test_load_model_on_damaged_files(saved_model, data):
    """A model file cut short, with bytes overwritten or with garbage appended: load_model
    returns the saved model exactly (when the damage missed everything it reads) or raises
    ModelFileError (a ValueError) saying so; never another exception, never a crash."""
    model, raw, directory = saved_model
    draw = data.draw
    damage = draw(st.sampled_from(["truncate", "overwrite", "append", "zero"]))
    blob = bytearray(raw)
    if damage == "truncate":
        blob = blob[:draw(st.integers(0, len(raw) - 1))]
    elif damage == "overwrite":
        for _ in range(draw(st.integers(1, 8))):
            blob[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    elif damage == "append":
        blob += bytes(draw(st.binary(min_size=1, max_size=64)))
    else:
        start = draw(st.integers(0, len(raw) - 1))
        blob[start:start + draw(st.integers(1, 256))] = bytes(min(256, len(raw) - start))
    path = os.path.join(directory, "damaged.npz")
    with open(path, "wb") as f:
        f.write(bytes(blob))
    try:
        loaded = fb.load_model(path)
    except fb.io.ModelFileError as exc:
        event("ModelFileError")
        assert str(exc)
    else:
        event("loaded")
        for a, b in zip(loaded.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert loaded._network.step == model._network.step
