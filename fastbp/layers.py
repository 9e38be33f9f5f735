"""Layers. A layer declares its shape and activation; its parameters live in the model's flat
buffer, and ``W`` / ``b`` are views into it once the layer belongs to a Sequential."""
import numpy as np

from . import _core
from ._validation import check_float, check_int

ACTIVATIONS = tuple(_core.ACTIVATIONS)


def glorot_uniform(fan_in, fan_out, rng):
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out)): Keras's and scikit-learn's default."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)), np.zeros(fan_out)


def he_uniform(fan_in, fan_out, rng):
    """U(-a, a), a = sqrt(6 / fan_in): keeps the activations' variance through deep ReLU
    stacks."""
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)), np.zeros(fan_out)


def torch_default(fan_in, fan_out, rng):
    """torch.nn.Linear's default: W and b ~ U(-a, a), a = 1 / sqrt(fan_in)."""
    limit = 1.0 / np.sqrt(fan_in)
    return (rng.uniform(-limit, limit, size=(fan_in, fan_out)),
            rng.uniform(-limit, limit, size=fan_out))


INITIALIZERS = {"glorot_uniform": glorot_uniform, "he_uniform": he_uniform,
                "torch": torch_default}


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
    init : {"glorot_uniform", "he_uniform", "torch"}
        How ``reset_parameters`` draws the weights (biases start at zero except for "torch").
        Glorot uniform is Keras's and scikit-learn's default and the one that matched
        scikit-learn's accuracy on digits (README); prefer "he_uniform" for deep ReLU stacks;
        "torch" reproduces ``torch.nn.Linear``'s distribution.

    Attributes
    ----------
    W : ndarray of shape (in_features, out_features)
    b : ndarray of shape (out_features,)
        Live views into the model's parameter buffer (``None`` until the layer is in a model).

    Examples
    --------
    >>> layer = Dense(64, 32, activation="relu")
    """

    def __init__(self, in_features, out_features, activation=None, negative_slope=0.01,
                 init="glorot_uniform"):
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
        if init not in INITIALIZERS:
            raise ValueError(f"init must be one of {sorted(INITIALIZERS)}, got {init!r}")
        self.init = init
        self.W = None
        self.b = None

    def initial_parameters(self, rng):
        """Draw initial (W, b) in float64 with this layer's initializer."""
        return INITIALIZERS[self.init](self.in_features, self.out_features, rng)

    def __repr__(self):
        return (f"Dense({self.in_features}, {self.out_features}, "
                f"activation={self.activation!r})")
