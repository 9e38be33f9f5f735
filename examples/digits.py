"""Train a 64-100-10 network on scikit-learn's bundled digits (1797 8x8 images, 10 classes).

    pip install ".[examples]" && python examples/digits.py

Prints, per epoch, the training loss, the validation loss and both accuracies, then the test
loss and accuracy. tests/test_examples.py checks that this network reaches scikit-learn's
MLPClassifier((100,)) accuracy on the same split.
"""
import argparse
import time

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastbp as fb


def load_split(seed=0):
    """A stratified 75/25 split of digits, standardised with the training statistics."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def build(seed=0, dtype="float32"):
    """64 inputs -> 100 relu units -> 10 softmax outputs, Adam with torch's defaults."""
    model = fb.Sequential([fb.Dense(64, 100, activation="relu"),
                           fb.Dense(100, 10, activation="softmax")], dtype=dtype, seed=seed)
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def main(epochs=60, seed=0, verbose=1):
    X_train, X_test, y_train, y_test = load_split()
    model = build(seed)
    started = time.perf_counter()
    history = model.fit(X_train, y_train, epochs=epochs, batch_size=32, validation_split=0.1,
                        verbose=verbose)
    seconds = time.perf_counter() - started
    test_loss, test_accuracy = model.evaluate(X_test, y_test)
    print(f"trained {epochs} epochs in {seconds:.2f} s")
    print(f"test loss {test_loss:.4f}, test accuracy {test_accuracy:.4f}")
    return history, test_accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.epochs, args.seed)
