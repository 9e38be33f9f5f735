"""Whole-epoch benchmarks of fastbp against the hand-written numpy loop, and fastbp training
several models at once in Python threads.

    pytest bench/test_bench_model.py                      # timed
    pytest bench --benchmark-disable -q                   # CI: each body once, assertions only

Every benchmark first checks its result: fastbp's weights after one epoch equal the numpy
loop's from the same start on the same sample order; threaded training equals sequential.
BLAS runs on one thread throughout (deterministic, and immune to the collapse of multithreaded
OpenBLAS on a busy machine); bench/compare_peers.py measures 2 threads.
"""
import dataclasses
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from peers import fastbp_model, numpy_loop
from workloads import WORKLOADS, initial_weights, make_data

PEERS = {"fastbp": fastbp_model, "numpy": numpy_loop}


def tolerance(workload):
    """How far one epoch of the two may drift apart. Only the BLAS summation order differs, so
    float64 agrees to ~1e-13. In float32, SGD stays within rounding; Adam steps every weight by
    up to lr whatever its gradient's size, so a rounding-sized gradient difference can move a
    weight by a fraction of lr (seen: 3e-5 with lr 1e-3 after 157 steps on small)."""
    if workload.dtype == "float64":
        return {"rtol": 1e-9, "atol": 1e-12}
    if workload.optimizer == "adam":
        return {"rtol": 1e-4, "atol": 0.1 * workload.opt_args["lr"]}
    return {"rtol": 1e-4, "atol": 1e-5}


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1):
        yield


def one_epoch(peer, workload, order):
    """The weights after one epoch from the shared start, visiting samples in `order`."""
    X, y = make_data(workload)
    trainer = PEERS[peer].Trainer(workload, X, y, initial_weights(workload))
    trainer.epoch(order)
    return trainer.get_weights()


def check_same_epoch(workload):
    order = np.random.default_rng(1).permutation(workload.n_samples)
    fast, ref = one_epoch("fastbp", workload, order), one_epoch("numpy", workload, order)
    for i, (a, b) in enumerate(zip(fast, ref)):
        np.testing.assert_allclose(a, b, **tolerance(workload), err_msg=(
            f"{workload.name} {workload.dtype}: parameter {i} after one epoch, fastbp vs numpy"))
        assert a.dtype == b.dtype == np.dtype(workload.dtype)


@pytest.mark.parametrize("name", ["tiny", "small"])
@pytest.mark.parametrize("peer", ["fastbp", "numpy"])
def test_epoch(benchmark, peer, name):
    workload = WORKLOADS[name]
    if peer == "fastbp":  # once per workload, in both precisions
        check_same_epoch(workload)
        check_same_epoch(dataclasses.replace(workload, dtype="float64"))

    X, y = make_data(workload)
    trainer = PEERS[peer].Trainer(workload, X, y, initial_weights(workload))
    benchmark.group = f"epoch: {name}"
    benchmark.extra_info["samples"] = workload.n_samples
    benchmark(trainer.epoch)  # each round one more epoch, the samples shuffled anew


# ---- several models at once -----------------------------------------------------------------
# Epochs per model. 100 epochs of tiny are about 16 ms of training; with 10 (1.6 ms) the
# measurement would be of Python's thread start and of the GIL hand-offs around fit's input
# checks (a few hundred microseconds on a 2-core VM), not of training.
PARALLEL_EPOCHS = 100
PARALLEL_SEEDS = (1, 2)
PARALLEL_MEDIANS = {}  # filled by the timed runs; conftest prints the speed-up


def tiny_models():
    workload = WORKLOADS["tiny"]
    return [fastbp_model.build(workload, initial_weights(workload, seed), seed=seed)
            for seed in PARALLEL_SEEDS]


def fit(model, data):
    model.fit(*data, epochs=PARALLEL_EPOCHS, batch_size=WORKLOADS["tiny"].batch_size, verbose=0)


def train_sequential(models, data):
    for model in models:
        fit(model, data)


def train_in_threads(models, data):
    threads = [threading.Thread(target=fit, args=(model, data)) for model in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.fixture(scope="module")
def tiny_data():
    return make_data(WORKLOADS["tiny"])


def test_threads_equal_sequential(tiny_data):
    """Two models trained in two Python threads end exactly as when trained one by one."""
    expected = tiny_models()
    train_sequential(expected, tiny_data)
    for _ in range(3):
        models = tiny_models()
        train_in_threads(models, tiny_data)
        for seed, model, reference in zip(PARALLEL_SEEDS, models, expected):
            for a, b in zip(model.get_weights(), reference.get_weights()):
                np.testing.assert_array_equal(a, b, err_msg=f"model with seed {seed}")


@pytest.mark.parametrize("how", ["sequential", "threads"])
def test_parallel_models(benchmark, tiny_data, how):
    """2 tiny models x PARALLEL_EPOCHS epochs, in 2 Python threads (1 BLAS thread each) or one
    by one."""
    train = train_sequential if how == "sequential" else train_in_threads
    benchmark.group = "parallel models"
    benchmark.pedantic(train, setup=lambda: ((tiny_models(), tiny_data), {}), rounds=20)
    if benchmark.stats is not None:  # None with --benchmark-disable
        PARALLEL_MEDIANS[how] = benchmark.stats.stats.median
        if len(PARALLEL_MEDIANS) == 2:
            benchmark.extra_info["speedup"] = (PARALLEL_MEDIANS["sequential"]
                                               / PARALLEL_MEDIANS["threads"])
