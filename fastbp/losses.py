"""Losses: which output activations each accepts and how targets are checked and converted.
The arithmetic (loss and gradient, fused with the output activation for cross-entropies) is in
src_c/losses.c; see fastbp.ops for the kernels on plain arrays."""
import numpy as np

from . import _core
from ._validation import as_real_array, check_finite


class Loss:
    """Base class. ``name`` is the C loss the network trains on; ``output_activations`` the
    last-layer activations this loss accepts."""

    name = None
    output_activations = None
    advice = ""

    def check_output_activation(self, activation):
        if self.output_activations is not None and activation not in self.output_activations:
            raise ValueError(
                f"loss {self.name!r} needs a last layer with activation in "
                f"{list(self.output_activations)}, got {activation!r}: {self.advice}")

    def prepare_targets(self, y, n_samples, n_outputs, dtype, name="y", name_X="X"):
        """Check y against n_samples predictions of n_outputs values (from the array called
        name_X); return the array the C loss takes."""
        y = as_real_array(y, name, dtype)
        if y.ndim == 1 and n_outputs == 1:
            y = y.reshape(-1, 1)
        if y.ndim != 2 or y.shape[1] != n_outputs:
            raise ValueError(
                f"{name} must have shape (n_samples, {n_outputs})"
                + (" or (n_samples,)" if n_outputs == 1 else "") + f", got {y.shape}")
        _check_length(y, n_samples, name, name_X)
        check_finite(y, name)
        return y

    def __repr__(self):
        return f"{type(self).__name__}()"


def _check_length(y, n_samples, name, name_X):
    if y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} samples but {name_X} has {n_samples}")


class MeanSquaredError(Loss):
    """Mean squared error over all elements, ``mean((y_pred - y)**2)`` (torch.nn.MSELoss).
    Takes the output after the last layer's activation, whatever it is."""

    name = "mse"


class BinaryCrossentropy(Loss):
    """Binary cross-entropy of ``sigmoid(z)`` against targets in [0, 1], mean over all elements,
    computed from the logit ``z``: ``max(z, 0) - z*y + log1p(exp(-|z|))``
    (torch.nn.BCEWithLogitsLoss). The last layer has ``activation="sigmoid"`` (predict returns
    probabilities) or none (predict returns logits); training is the same either way."""

    name = "binary_crossentropy"
    output_activations = ("sigmoid", "identity")
    advice = "use activation='sigmoid' (or None for logits) on the output layer"

    def prepare_targets(self, y, n_samples, n_outputs, dtype, name="y", name_X="X"):
        y = super().prepare_targets(y, n_samples, n_outputs, dtype, name, name_X)
        if not _core.all_in_range(y, 0.0, 1.0):
            raise ValueError(f"{name} must hold targets in [0, 1] for binary_crossentropy")
        return y


class CategoricalCrossentropy(Loss):
    """Softmax + categorical cross-entropy, mean over samples (torch.nn.CrossEntropyLoss).

    Targets are class indices, shape ``(n_samples,)`` with integer values in
    ``[0, n_classes)``, or rows of shape ``(n_samples, n_classes)``: one-hot or probabilities
    (non-negative, summing to 1). The last layer has ``activation="softmax"`` (predict returns
    probabilities) or none (predict returns logits); training is the same either way."""

    name = "categorical_crossentropy"
    output_activations = ("softmax", "identity")
    advice = "use activation='softmax' (or None for logits) on the output layer"

    def prepare_targets(self, y, n_samples, n_outputs, dtype, name="y", name_X="X"):
        arr = np.asarray(y) if y is not None else None
        if arr is not None and arr.ndim == 1:
            return _class_indices(arr, n_samples, n_outputs, name, name_X)
        y = super().prepare_targets(y, n_samples, n_outputs, dtype, name, name_X)
        if (y < 0).any() or not np.allclose(y.sum(axis=1), 1.0, rtol=0, atol=1e-3):
            raise ValueError(
                f"{name} rows must be one-hot or probabilities (non-negative, summing to 1); "
                "or pass class indices of shape (n_samples,)")
        return y


def _class_indices(y, n_samples, n_classes, name, name_X):
    """y as int64 class indices in [0, n_classes)."""
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    _check_length(y, n_samples, name, name_X)
    if y.dtype.kind == "f":
        check_finite(y, name)
        if (y != np.round(y)).any():
            raise ValueError(f"{name} must hold integer class indices, got non-integer values")
    if y.dtype.kind == "f":  # range-checked before the cast to int64, which could overflow
        in_range = y.size == 0 or (0 <= y.min() and y.max() < n_classes)
        labels = np.asarray(y, dtype=np.int64, order="C") if in_range else None
    else:  # one C scan (numpy's min and max would each release and retake the GIL)
        labels = np.asarray(y, dtype=np.int64, order="C")
        in_range = _core.labels_in_range(labels, n_classes)
    if not in_range:
        raise ValueError(
            f"{name} holds class labels out of range: expected integers in [0, {n_classes}) "
            f"for a model with {n_classes} outputs, got values in [{y.min()}, {y.max()}]")
    return labels


LOSSES = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": CategoricalCrossentropy,
    "cross_entropy": CategoricalCrossentropy,
}


def get(loss):
    """A Loss from a name or a Loss instance."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]()
    raise ValueError(f"loss must be a Loss or one of {sorted(LOSSES)}, got {loss!r}")
