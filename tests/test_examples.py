"""The examples run and say what they claim: examples/numpy_to_fastbp.py trains the same
network with a plain numpy loop and with fastbp.ops, and the final weights agree."""
import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# float64: the two loops differ by rounding only; float32: rounding of a 2-epoch run
AGREEMENT = {"float64": 1e-10, "float32": 1e-4}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numpy_to_fastbp_example_agrees(dtype, capsys):
    example = load_example("numpy_to_fastbp")
    result = example.main(epochs=2, quick=True, dtype=dtype, verbose=True)
    printed = capsys.readouterr().out
    assert "max relative difference" in printed and "speed-up" in printed
    assert result["max_rel_weight_diff"] < AGREEMENT[dtype]
    assert result["last_loss"] < result["first_loss"]  # it trains
    assert np.isfinite(result["speedup"]) and result["speedup"] > 0


def test_numpy_to_fastbp_loops_see_the_same_batches():
    example = load_example("numpy_to_fastbp")
    X, y = example.load_data("float64")
    X, y = X[:100], y[:100]
    params = example.init_params(64, 16, 10, "float64")
    batches = example.make_batches(len(X), 7, 2)  # a short last batch each epoch
    (W1, b1, W2, b2), losses = example.train_numpy(params, X, y, batches)
    p_fastbp, losses_fastbp = example.train_fastbp(params, X, y, batches)
    assert len(losses) == len(losses_fastbp) == len(batches)
    np.testing.assert_allclose(losses_fastbp, losses, rtol=1e-12)
    for a, b in zip((W1, b1, W2, b2), p_fastbp):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-13)
    assert not np.array_equal(W1, params[0])  # the caller's initial weights are untouched
    assert np.array_equal(params[0], example.init_params(64, 16, 10, "float64")[0])
