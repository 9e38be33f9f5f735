"""Metrics by name, computed in numpy on a model's outputs once per epoch (never per batch).

Each function takes ``(output, targets, task)``: ``output`` is what ``predict`` returns,
``targets`` what the loss was given (class indices, or rows), ``task`` tells how to read them:
``"categorical"`` (argmax), ``"binary"`` (threshold) or ``"regression"``."""
import numpy as np


def accuracy(output, targets, task, threshold=0.5):
    """Fraction of correct predictions: argmax for categorical tasks, ``output > threshold``
    against ``targets > 0.5`` element-wise for binary ones."""
    if task == "categorical" or (task == "regression" and output.shape[1] > 1):
        predicted = output.argmax(axis=1)
        truth = targets if targets.ndim == 1 else targets.argmax(axis=1)
        return float(np.mean(predicted == truth))
    return float(np.mean((output > threshold) == (targets > 0.5)))


def mae(output, targets, task, threshold=None):
    """Mean absolute error over all elements."""
    return float(np.mean(np.abs(output - _rows(targets, output))))


def mse(output, targets, task, threshold=None):
    """Mean squared error over all elements."""
    return float(np.mean((output - _rows(targets, output)) ** 2))


def _rows(targets, output):
    """Targets as rows like output (class indices become one-hot rows)."""
    if targets.ndim == 1:
        onehot = np.zeros_like(output)
        onehot[np.arange(len(targets)), targets] = 1
        return onehot
    return targets


METRICS = {"accuracy": accuracy, "acc": accuracy, "mae": mae, "mse": mse}


def get(name):
    if not isinstance(name, str) or name not in METRICS:
        raise ValueError(f"metrics must name some of {sorted(METRICS)}, got {name!r}")
    return METRICS[name]
