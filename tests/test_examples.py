"""The examples run and say what they claim: the digits demo learns as well as scikit-learn's
MLPClassifier, and examples/numpy_to_fastbp.py trains the same network with a plain numpy
loop and with fastbp.ops to the same final weights."""
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


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    return load_example("digits")


def test_digits_reaches_scikit_learn_accuracy(digits):
    """Median test accuracy over 5 seeds, fastbp (defaults: Glorot init, Adam, batch 32,
    60 epochs) against MLPClassifier((100,)) over 5 random states, on the same split. One test
    sample is 0.0022 of accuracy, so medians keep a single lucky or unlucky seed out of it."""
    from sklearn.neural_network import MLPClassifier

    X_train, X_test, y_train, y_test = digits.load_split()
    ours, theirs = [], []
    for seed in range(5):
        model = digits.build(seed)
        model.fit(X_train, y_train, epochs=60, batch_size=32, verbose=0)
        ours.append(model.evaluate(X_test, y_test)[1])
        reference = MLPClassifier((100,), random_state=seed, max_iter=500)
        theirs.append(reference.fit(X_train, y_train).score(X_test, y_test))
    print(f"digits test accuracy: fastbp {ours}, scikit-learn {theirs}")
    assert np.median(ours) >= np.median(theirs) - 1e-12
    assert min(ours) > 0.96


def test_digits_same_seed_same_history(digits):
    X_train, _, y_train, _ = digits.load_split()
    runs = []
    for _ in range(2):
        model = digits.build(seed=3)
        history = model.fit(X_train, y_train, epochs=3, validation_split=0.2, verbose=0)
        runs.append((history.history, model.get_weights()))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_digits_demo_runs(digits, capsys):
    history, accuracy = digits.main(epochs=2, verbose=1)
    printed = capsys.readouterr().out
    assert "Epoch 2/2" in printed and "val_loss" in printed and "test accuracy" in printed
    assert len(history.history["val_accuracy"]) == 2
    assert accuracy > 0.8


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
