"""The examples run, and the digits demo learns as well as scikit-learn's MLPClassifier."""
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
