"""Sequential: a stack of Dense layers trained by the C epoch driver.

The Python side decides, validates and records; every loop over samples, batches or
parameters runs in C (fastbp/_core.pyx -> src_c/train.c), one call per epoch with the GIL
released. Parameters live in one flat buffer; each layer's ``W`` and ``b`` are views into it.
"""
import threading
import time
import warnings

import numpy as np

from . import _core
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from ._validation import as_real_array, as_samples, check_finite, check_float, check_int
from .layers import Dense
from .threads import num_threads

# Rows per C call when evaluating or predicting (the workspace holds at least this many).
EVAL_ROWS = 256


class History:
    """What ``fit`` returns: ``history["loss"]``, ``history["val_loss"]`` and each metric
    (``"accuracy"``, ``"val_accuracy"``, ...) as one value per epoch; ``epoch`` the epoch
    numbers (0-based, as Keras)."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def _record(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class Sequential:
    """A feed-forward network of :class:`Dense` layers.

    Parameters
    ----------
    layers : list of Dense
        Consecutive layers must agree: ``layers[i].out_features == layers[i+1].in_features``.
    dtype : {"float32", "float64"}
        Precision of parameters and arithmetic. Inputs of other dtypes are converted once.
    seed : int or None
        Seeds initialisation and the per-epoch shuffles: two models built with the same seed
        and trained the same way end with identical histories and weights.
    n_threads : int or None
        BLAS threads for this model's fit, evaluate and predict (None: the process setting,
        see :func:`fastbp.set_num_threads`). Each call also takes ``n_threads=``.

    Examples
    --------
    >>> import fastbp as fb
    >>> model = fb.Sequential([fb.Dense(4, 8, activation="relu"), fb.Dense(8, 3)], seed=0)
    >>> model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    """

    def __init__(self, layers, dtype="float32", seed=None, n_threads=None):
        if not isinstance(layers, (list, tuple)) or not layers:
            raise TypeError("layers must be a non-empty list of Dense layers")
        for i, layer in enumerate(layers):
            if any(layer is other for other in layers[:i]):
                raise ValueError(f"layers[{i}] is the same Dense object as an earlier layer; "
                                 "each position needs its own layer")
            if not isinstance(layer, Dense):
                raise TypeError(f"layers[{i}] must be a Dense layer, got {type(layer).__name__}")
            if getattr(layer, "_model", None) is not None:
                raise ValueError(f"layers[{i}] already belongs to another model; "
                                 "create a new Dense layer")
        for i in range(1, len(layers)):
            if layers[i].in_features != layers[i - 1].out_features:
                raise ValueError(
                    f"layers[{i}].in_features is {layers[i].in_features} but layers[{i - 1}] "
                    f"has out_features {layers[i - 1].out_features}")
        self.dtype = _model_dtype(dtype)
        self.n_threads = None if n_threads is None else check_int(n_threads, "n_threads", 1)
        self.layers = list(layers)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        sizes = [layers[0].in_features] + [layer.out_features for layer in layers]
        self._network = _core.Network(sizes, [layer.activation for layer in layers],
                                      [layer.negative_slope for layer in layers], self.dtype,
                                      EVAL_ROWS)
        self._lock = threading.Lock()
        self._bind_layer_views()
        self.reset_parameters()
        self.loss = None
        self.optimizer = None
        self.metrics = []

    # ---- parameters ---------------------------------------------------------------------
    def _split(self, flat):
        """Views of a flat buffer's pieces in the order [W0, b0, W1, b1, ...]."""
        pieces = []
        for index, layer in enumerate(self.layers):
            start = self._network.weight_offset(index)
            stop = start + layer.in_features * layer.out_features
            pieces.append(flat[start:stop].reshape(layer.in_features, layer.out_features))
            pieces.append(flat[stop:stop + layer.out_features])
        return pieces

    def _bind_layer_views(self):
        views = self._split(self._network.params)
        for layer, W, b in zip(self.layers, views[0::2], views[1::2]):
            layer.W, layer.b, layer._model = W, b, self

    def reset_parameters(self):
        """Draw fresh initial weights from the model's generator (see Dense's init)."""
        for layer in self.layers:
            layer.W[...], layer.b[...] = layer.initial_parameters(self._rng)

    def count_params(self):
        return int(self._network.params.size)

    def get_weights(self):
        """Copies of the parameters in Keras order ``[W0, b0, W1, b1, ...]``, ``W`` of shape
        ``(in_features, out_features)``."""
        return [piece.copy() for piece in self._split(self._network.params)]

    def set_weights(self, weights):
        """Set all parameters from a list as ``get_weights`` returns. Everything is checked
        before anything is written."""
        expected = []
        for layer in self.layers:
            expected += [(layer.in_features, layer.out_features), (layer.out_features,)]
        if not isinstance(weights, (list, tuple)) or len(weights) != len(expected):
            got = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
            raise ValueError(f"weights must be a list of {len(expected)} arrays "
                             f"[W0, b0, W1, b1, ...], got {got}")
        arrays = []
        for i, (value, shape) in enumerate(zip(weights, expected)):
            arr = as_real_array(value, f"weights[{i}]", self.dtype)
            if arr.shape != shape:
                raise ValueError(f"weights[{i}] must have shape {shape}, got {arr.shape}")
            check_finite(arr, f"weights[{i}]")
            arrays.append(arr)
        for layer, W, b in zip(self.layers, arrays[0::2], arrays[1::2]):
            layer.W[...] = W
            layer.b[...] = b

    # ---- configuration ------------------------------------------------------------------
    def compile(self, loss, optimizer="adam", metrics=None):
        """Choose the loss (name or Loss), the optimizer (name or Optimizer) and the metrics
        (names: "accuracy", "mae", "mse"). Resets the optimizer state."""
        loss = losses_module.get(loss)
        loss.check_output_activation(self.layers[-1].activation)
        optimizer = optimizers_module.get(optimizer)
        if metrics is None:
            metrics = []
        if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics must be a list of names, got {metrics!r}")
        metric_fns = [(name, metrics_module.get(name)) for name in metrics]
        self._network.set_loss(loss.name)
        optimizer._configure(self._network)
        self._network.reset_optimizer_state()
        self.loss, self.optimizer, self.metrics = loss, optimizer, metric_fns

    def _require_compiled(self):
        if self.loss is None:
            raise RuntimeError("call model.compile(loss, optimizer) before fit or evaluate")

    @property
    def _task(self):
        if isinstance(self.loss, losses_module.CategoricalCrossentropy):
            return "categorical"
        if isinstance(self.loss, losses_module.BinaryCrossentropy):
            return "binary"
        return "regression"

    # ---- data ---------------------------------------------------------------------------
    def _prepare(self, X, y, name_X="X", name_y="y"):
        X = as_samples(X, name_X, self.dtype, self.layers[0].in_features)
        y = self.loss.prepare_targets(y, X.shape[0], self.layers[-1].out_features, self.dtype,
                                      name_y, name_X)
        return X, y

    def _prepare_validation(self, X, y, validation_data, validation_split):
        """Split off or check the validation set; returns (X, y, X_val, y_val)."""
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (X_val, y_val)")
            X_val, y_val = self._prepare(*validation_data, name_X="validation_data[0]",
                                         name_y="validation_data[1]")
            return X, y, X_val, y_val
        if validation_split == 0:
            return X, y, None, None
        n_val = int(X.shape[0] * validation_split)
        if n_val < 1 or n_val >= X.shape[0]:
            raise ValueError(
                f"validation_split={validation_split} of {X.shape[0]} samples leaves "
                f"{n_val} for validation and {X.shape[0] - n_val} for training; both need >= 1")
        split = X.shape[0] - n_val  # the last samples, before any shuffling (as Keras)
        return X[:split], y[:split], X[split:], y[split:]

    # ---- training -----------------------------------------------------------------------
    def fit(self, X, y, epochs=1, batch_size=32, shuffle=True, validation_data=None,
            validation_split=0.0, verbose=1, n_threads=None):
        """Train with mini-batches; returns a :class:`History`.

        Parameters
        ----------
        X : array-like of shape (n_samples, in_features)
        y : array-like
            Targets as the loss takes them (see the loss classes).
        epochs : int >= 0
        batch_size : int >= 1
            The last, partial batch of an epoch is trained, not dropped.
        shuffle : bool
            Draw a new order of the samples every epoch (from the model's seeded generator).
        validation_data : (X_val, y_val) or None
        validation_split : float in [0, 1)
            Fraction of the data, taken from the end before shuffling, held out for
            validation (ignored when validation_data is given).
        verbose : {0, 1, 2}
            0 silent; 1 and 2 print one line per epoch.
        n_threads : int or None
            BLAS threads for this call (default: the model's ``n_threads``).

        If the loss turns NaN or infinite, training stops with a RuntimeWarning and the
        weights are those before the step that failed.
        """
        self._require_compiled()
        epochs = check_int(epochs, "epochs", 0)
        batch_size = check_int(batch_size, "batch_size", 1)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool, got {type(shuffle).__name__}")
        validation_split = check_float(validation_split, "validation_split", 0, 1,
                                       high_open=True)
        verbose = check_int(int(verbose) if isinstance(verbose, bool) else verbose, "verbose", 0)
        X, y = self._prepare(X, y)
        X, y, X_val, y_val = self._prepare_validation(X, y, validation_data, validation_split)
        with self._exclusive(n_threads):
            return self._train(X, y, X_val, y_val, epochs, batch_size, bool(shuffle), verbose)

    def _train(self, X, y, X_val, y_val, epochs, batch_size, shuffle, verbose):
        network, history = self._network, History()
        self.optimizer._configure(network)
        batch_size = min(batch_size, X.shape[0])  # a larger batch is one full batch
        network.reserve(batch_size)
        out_train = np.empty((X.shape[0], self.layers[-1].out_features), self.dtype) \
            if self.metrics else None
        out_val = None if X_val is None else np.empty(
            (X_val.shape[0], self.layers[-1].out_features), self.dtype)
        order = np.arange(X.shape[0], dtype=np.int64)
        for epoch in range(epochs):
            started = time.perf_counter()
            perm = self._rng.permutation(X.shape[0]).astype(np.int64) if shuffle else order
            loss, n_trained = network.train_epoch(X, y, perm, batch_size)
            logs = {"loss": float(loss)}
            if n_trained < X.shape[0]:
                history._record(epoch, logs)
                warnings.warn(
                    f"training stopped in epoch {epoch + 1}: the loss or its gradient became "
                    f"{loss} after {n_trained} of {X.shape[0]} samples; the weights are those "
                    "before the failing step. Lower the learning rate or check the data scale.",
                    RuntimeWarning, stacklevel=3)
                break
            if self.metrics:
                network.evaluate(X, y, out_train)
                logs.update(self._metric_values(out_train, y))
            if X_val is not None:
                logs["val_loss"] = float(network.evaluate(X_val, y_val, out_val))
                logs.update(self._metric_values(out_val, y_val, prefix="val_"))
            history._record(epoch, logs)
            if verbose:
                print(_epoch_line(epoch, epochs, logs, time.perf_counter() - started),
                      flush=True)
        return history

    def _metric_values(self, output, y, prefix=""):
        # an identity output layer under a cross-entropy loss returns logits: threshold at 0
        logits = self._task != "regression" and self.layers[-1].activation == "identity"
        threshold = 0.0 if logits else 0.5
        return {prefix + name: fn(output, y, self._task, threshold) for name, fn in self.metrics}

    def evaluate(self, X, y, return_dict=False, n_threads=None):
        """The loss on (X, y) and the compiled metrics: a float when there are no metrics,
        else ``[loss, metric, ...]`` (or a dict with ``return_dict=True``), as Keras."""
        self._require_compiled()
        X, y = self._prepare(X, y)
        out = np.empty((X.shape[0], self.layers[-1].out_features), self.dtype)
        with self._exclusive(n_threads):
            logs = {"loss": float(self._network.evaluate(X, y, out))}
        logs.update(self._metric_values(out, y))
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    def compute_gradients(self, X, y):
        """The mean loss on (X, y) as one batch and its gradient with respect to every
        parameter, ``(loss, [dW0, db0, dW1, db1, ...])``, without changing the weights. For
        gradient checks and custom loops."""
        self._require_compiled()
        X, y = self._prepare(X, y)
        with self._exclusive():
            loss = self._network.loss_and_grad(X, y)
            return float(loss), [piece.copy() for piece in self._split(self._network.grads)]

    def predict(self, X, n_threads=None):
        """The network's output for X, shape (n_samples, out_features), in the model's dtype,
        after the last layer's activation (probabilities for softmax/sigmoid, else as is)."""
        X = as_samples(X, "X", self.dtype, self.layers[0].in_features)
        out = np.empty((X.shape[0], self.layers[-1].out_features), self.dtype)
        with self._exclusive(n_threads):
            return self._network.predict(X, out)

    def _exclusive(self, n_threads=None):
        """Hold the model for one call (a second thread gets a clear error, not a shared
        workspace), with BLAS limited to n_threads (or the model's n_threads) meanwhile."""
        if n_threads is None:
            n_threads = self.n_threads
        return _Exclusive(self._lock, n_threads)

    def __repr__(self):
        body = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{body}], dtype={self.dtype.name!r})"


def _model_dtype(dtype):
    """np.dtype of a model: float32 or float64, given as a string, numpy type or dtype."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in (np.float32, np.float64) or dtype is None:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return resolved


class _Exclusive:
    def __init__(self, lock, n_threads):
        self.lock = lock
        self.threads = num_threads(n_threads)

    def __enter__(self):
        if not self.lock.acquire(blocking=False):
            raise RuntimeError("this model is already in use by another thread (fit, evaluate "
                               "or predict); use one model per thread")
        try:
            self.threads.__enter__()
        except BaseException:
            self.lock.release()
            raise

    def __exit__(self, *exc):
        try:
            self.threads.__exit__(*exc)
        finally:
            self.lock.release()


def _epoch_line(epoch, epochs, logs, seconds):
    values = " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())
    return f"Epoch {epoch + 1}/{epochs} - {seconds:.2f}s - {values}"
