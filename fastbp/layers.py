"""Layers. A layer declares its shape and activation; its parameters live in the model's flat
buffer, and ``W`` / ``b`` are views into it once the layer belongs to a Sequential."""
import numpy as np

from . import _core
from ._validation import check_float, check_int

ACTIVATIONS = tuple(_core.ACTIVATIONS)
RELU_FAMILY = ("relu", "leaky_relu")


class Dense:
    """A fully connected layer: ``A = activation(X @ W + b)``.

    Parameters
    ----------
    in_features, out_features : int
        Input and output widths; ``W`` has shape ``(in_features, out_features)``.
    activation : str or None
        One of ``"identity"`` (``None``), ``"relu"``, ``"leaky_relu"``, ``"sigmoid"``,
        ``"tanh"``, ``"softmax"``.
    negative_slope : float
        ``leaky_relu``'s slope for negative inputs (PyTorch's default 0.01).

    Attributes
    ----------
    W : ndarray of shape (in_features, out_features)
    b : ndarray of shape (out_features,)
        Live views into the model's parameter buffer (``None`` until the layer is in a model).

    Examples
    --------
    >>> layer = Dense(64, 32, activation="relu")
    """

    def __init__(self, in_features, out_features, activation=None, negative_slope=0.01):
        self.in_features = check_int(in_features, "in_features", 1)
        self.out_features = check_int(out_features, "out_features", 1)
        if activation is None:
            activation = "identity"
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {list(ACTIVATIONS)} or None, got {activation!r}")
        if activation == "softmax" and self.out_features < 2:
            raise ValueError("activation 'softmax' needs out_features >= 2; "
                             "for one output use 'sigmoid'")
        self.activation = activation
        self.negative_slope = check_float(negative_slope, "negative_slope", 0, low_open=True)
        self.W = None
        self.b = None

    def initial_weights(self, rng):
        """Draw initial W (He uniform for the ReLU family, Glorot uniform otherwise) in
        float64; b starts at zero."""
        fan_in, fan_out = self.in_features, self.out_features
        if self.activation in RELU_FAMILY:
            limit = np.sqrt(6.0 / fan_in)
        else:
            limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=(fan_in, fan_out))

    def __repr__(self):
        return (f"Dense({self.in_features}, {self.out_features}, "
                f"activation={self.activation!r})")
