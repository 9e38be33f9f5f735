"""Cost of fit's progress reporting around the C loop (issue 5).

One epoch of a 784-128-10 model on 10,000 samples, batch 32: the bare C call
(``Network.train_epoch`` once) and ``fit`` with verbose=0, verbose=1 writing to a non-terminal,
verbose=2, and verbose=0 in one C call per epoch, interleaved. For each fit it also reports the
time spent outside the C training calls. Run with one BLAS thread on a quiet machine:

    OPENBLAS_NUM_THREADS=1 python bench/verbose_overhead.py [repetitions]
"""
import io
import sys
import time

import numpy as np

import fastbp as fb

rng = np.random.default_rng(0)
X = rng.normal(size=(10000, 784)).astype(np.float32)
y = rng.integers(0, 10, 10000)


class TimedNetwork:
    """Forwards to a Network, adding up the time spent in train_epoch."""

    def __init__(self, network):
        self.network, self.c_seconds, self.calls = network, 0.0, 0

    def __getattr__(self, name):
        return getattr(self.network, name)

    def train_epoch(self, *args):
        started = time.perf_counter()
        result = self.network.train_epoch(*args)
        self.c_seconds += time.perf_counter() - started
        self.calls += 1
        return result


def build():
    model = fb.Sequential([fb.Dense(784, 128, activation="relu"), fb.Dense(128, 10)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    return model


def one_fit_epoch(model, verbose, **kwargs):
    """(seconds, seconds outside the C training calls, number of C calls)."""
    timed = TimedNetwork(model._network)
    model._network, stdout, sys.stdout = timed, sys.stdout, io.StringIO()
    try:
        started = time.perf_counter()
        model.fit(X, y, epochs=1, batch_size=32, verbose=verbose, **kwargs)
        seconds = time.perf_counter() - started
    finally:
        sys.stdout, model._network = stdout, timed.network
    return seconds, seconds - timed.c_seconds, timed.calls


def bare_epoch(model):
    Xp, yp = model._prepare(X, y)
    perm = model._rng.permutation(len(X)).astype(np.int64)
    model.optimizer._configure(model._network)
    started = time.perf_counter()
    model._network.train_epoch(Xp, yp, perm, 32)
    return time.perf_counter() - started


def main(repetitions=15):
    model = build()
    one_fit_epoch(model, 0)  # warm up
    runs = {"verbose=0": (0, {}), "verbose=1": (1, {}), "verbose=2": (2, {}),
            "verbose=0, 1 call": (0, {"steps_per_execution": 10**6})}
    seconds = {name: [] for name in ["bare C call"] + list(runs)}
    outside, calls = {name: [] for name in runs}, {}
    for _ in range(repetitions):
        seconds["bare C call"].append(bare_epoch(model))
        for name, (verbose, kwargs) in runs.items():
            total, python, n_calls = one_fit_epoch(model, verbose, **kwargs)
            seconds[name].append(total)
            outside[name].append(python)
            calls[name] = n_calls
    for name, values in seconds.items():
        line = (f"{name:18s} min {min(values) * 1e3:7.1f} ms  "
                f"median {np.median(values) * 1e3:7.1f} ms")
        if name in outside:
            line += (f"   outside C: median {np.median(outside[name]) * 1e3:5.2f} ms"
                     f" ({calls[name]} C calls)")
        print(line)
    v0, v1 = np.array(seconds["verbose=0"]), np.array(seconds["verbose=1"])
    print(f"verbose=1 / verbose=0: ratio of minima {v1.min() / v0.min():.4f}, "
          f"median of paired ratios {np.median(v1 / v0):.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
