"""Agreement with PyTorch 2.13 (CPU): forward outputs, loss, every parameter's gradient and
the weights after 3 optimizer steps, for every case in tests/reference/torch_reference.npz
(written by tests/reference/make_torch_reference.py; PyTorch is not needed to run this)."""
import json
import pathlib

import numpy as np
import pytest

import fastbp as fb

FIXTURE = pathlib.Path(__file__).parent / "reference" / "torch_reference.npz"
DATA = np.load(FIXTURE, allow_pickle=False)
META = json.loads(str(DATA["__meta__"]))
CASES = {case["name"]: case for case in META["cases"]}
RTOL = {"float32": 1e-5, "float64": 1e-10}
DTYPES = ["float32", "float64"]


def fixture(case, dtype, key):
    return DATA[f"{case}/{dtype}/{key}"]


def make_optimizer(spec):
    if spec["kind"] == "sgd":
        return fb.SGD(lr=spec["lr"], momentum=spec["momentum"], nesterov=spec["nesterov"],
                      weight_decay=spec["weight_decay"])
    cls = fb.AdamW if spec["kind"] == "adamw" else fb.Adam
    return cls(lr=spec["lr"], betas=tuple(spec["betas"]), eps=spec["eps"],
               weight_decay=spec["weight_decay"])


def build(case_name, dtype, optimizer="sgd"):
    case = CASES[case_name]
    sizes, acts = case["sizes"], case["activations"]
    model = fb.Sequential([fb.Dense(sizes[i], sizes[i + 1], activation=acts[i])
                           for i in range(len(acts))], dtype=dtype)
    n = len(acts)
    model.set_weights([fixture(case_name, dtype, f"{p}{i}") for i in range(n) for p in "Wb"])
    model.compile(loss=case["loss"], optimizer=optimizer)
    return model


def relative_deviation(actual, expected, reference=None):
    """max |actual - expected| relative to the array's scale (its largest magnitude, or that of
    `reference` if larger), so entries near 0 do not demand exact zeros. After optimizer steps
    the reference is the starting value: a bias that moves from 0.1 to 1e-4 has lost the
    leading digits to cancellation in any implementation."""
    scale = np.max(np.abs(expected))
    if reference is not None:
        scale = max(scale, np.max(np.abs(reference)))
    return np.max(np.abs(np.asarray(actual, np.float64) - expected)) / max(scale, 1e-30)


def assert_close(actual, expected, dtype, what, reference=None):
    err = relative_deviation(actual, expected, reference)
    DEVIATIONS[dtype] = max(DEVIATIONS[dtype], err)
    assert err <= RTOL[dtype], f"{what}: max relative deviation {err:.3g} > {RTOL[dtype]}"


# the largest deviation seen per dtype, printed at the end of the run (see conftest.py)
DEVIATIONS = {dtype: 0.0 for dtype in DTYPES}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_loss_and_gradients(case, dtype):
    model = build(case, dtype)
    X, y = fixture(case, dtype, "X"), fixture(case, dtype, "y")
    assert_close(model.predict(X), fixture(case, dtype, "output"), dtype, "output")
    loss, grads = model.compute_gradients(X, y)
    assert_close(loss, fixture(case, dtype, "loss"), dtype, "loss")
    assert model.evaluate(X, y) == pytest.approx(float(fixture(case, dtype, "loss")),
                                                 rel=RTOL[dtype])
    names = [f"d{p}{i}" for i in range(len(CASES[case]["activations"])) for p in "Wb"]
    for name, grad in zip(names, grads):
        assert grad.dtype == np.dtype(dtype)
        assert_close(grad, fixture(case, dtype, name), dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", sorted(META["optimizers"]))
@pytest.mark.parametrize("case", sorted(CASES))
def test_three_optimizer_steps(case, optimizer, dtype):
    model = build(case, dtype, make_optimizer(META["optimizers"][optimizer]))
    X, y = fixture(case, dtype, "X"), fixture(case, dtype, "y")
    # one batch holding every sample, no shuffle: each epoch is exactly one optimizer step
    model.fit(X, y, epochs=META["steps"], batch_size=len(X), shuffle=False, verbose=0)
    names = [f"{optimizer}/{p}{i}" for i in range(len(CASES[case]["activations"])) for p in "Wb"]
    initial = [fixture(case, dtype, name.split("/")[1]) for name in names]
    for name, weight, start in zip(names, model.get_weights(), initial):
        assert_close(weight, fixture(case, dtype, name), dtype, name, reference=start)
