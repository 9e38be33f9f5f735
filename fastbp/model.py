"""Sequential: a stack of Dense layers trained by the C epoch driver.

The Python side decides, validates and records; every loop over samples, batches or
parameters runs in C (fastbp/_core.pyx -> src_c/train.c), one call per epoch with the GIL
released. Parameters live in one flat buffer; each layer's ``W`` and ``b`` are views into it.
"""
import numbers
import threading
import time
import warnings

import numpy as np

from . import _core
from . import callbacks as callbacks_module
from . import diagnostics
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import progress as progress_module
from ._validation import as_real_array, as_samples, check_finite, check_float, check_int
from .layers import Dense
from .threads import num_threads

# Rows per C call when evaluating or predicting (the workspace holds at least this many).
EVAL_ROWS = 256
# Work per C call when fit trains an epoch in chunks (progress and batch callbacks run between
# chunks): about 5e8 floating-point operations, a few hundredths of a second on one core.
CHUNK_FLOPS = 5e8


class History:
    """What ``fit`` returns (and leaves in ``model.history``).

    Attributes
    ----------
    history : dict
        ``history["loss"]``, ``history["val_loss"]`` and each metric (``"accuracy"``,
        ``"val_accuracy"``, ...) as one value per epoch; ``"lr"`` too when a schedule or a
        callback changes the learning rate.
    epoch : list of int
        The epoch numbers, 0-based as in Keras (``fit`` prints them from 1).
    params : dict
        ``epochs``, ``samples``, ``batch_size``, ``steps`` (batches per epoch),
        ``steps_per_execution``, ``lr`` (at the start), ``baseline_loss`` (the loss of a
        constant prediction: class frequencies or the mean target).
    stopped : dict or None
        Set when training stopped because the loss or a gradient became NaN/inf: ``epoch``
        (0-based), ``samples_trained`` in that epoch, ``samples``, ``value``.
    """

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.params = {}
        self.stopped = None

    def _record(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def diagnose(self):
        """What the loss curve shows, in words: diverging, not learning, overfitting (with
        the best epoch), plateau or healthy, with epoch numbers and a suggestion. Returns a
        :class:`fastbp.diagnostics.Diagnosis`; ``print(history.diagnose())`` shows it.

        Examples
        --------
        >>> print(history.diagnose())                                      # doctest: +SKIP
        overfitting: the validation loss was lowest in epoch 12 (0.0712) and rose to 0.0894 ...
        suggestion: stop at the best epoch: EarlyStopping(monitor='val_loss', ...
        """
        return diagnostics.diagnose(self)

    def plot(self, path=None, metrics=True):
        """Draw the training and validation loss per epoch (and each metric in its own panel)
        with matplotlib; save it to ``path`` (any format matplotlib writes, e.g. ``.png``) when
        given. Returns the matplotlib Figure.

        Needs the optional extra ``plot``: ``pip install 'fastbp[plot]'``."""
        return diagnostics.plot_history(self, path, metrics)

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
        _check_addressable(sizes, EVAL_ROWS, self.dtype)
        self._network = _core.Network(sizes, [layer.activation for layer in layers],
                                      [layer.negative_slope for layer in layers], self.dtype,
                                      EVAL_ROWS)
        # re-entrant: a callback may call predict or evaluate on the model it trains
        self._lock = _OwnerLock()
        self._bind_layer_views()
        self.reset_parameters()
        self.loss = None
        self.optimizer = None
        self.metrics = []
        self.history = None
        self.stop_training = False
        self.class_names = None
        self._epochs_trained = 0  # since compile: the clock of an optimizer's lr schedule

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
        with self._exclusive():
            for layer in self.layers:
                layer.W[...], layer.b[...] = layer.initial_parameters(self._rng)

    def count_params(self):
        return int(self._network.params.size)

    def get_weights(self):
        """Copies of the parameters in Keras order ``[W0, b0, W1, b1, ...]``, ``W`` of shape
        ``(in_features, out_features)``."""
        with self._exclusive():
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
        with self._exclusive():
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
        optimizer._check(self.dtype)  # before anything changes: a bad one leaves the model as is
        with self._exclusive():  # never while another thread trains: C reads the loss per batch
            self._network.set_loss(loss.name)
            optimizer._configure(self._network)
            self._network.reset_optimizer_state()
            self.loss, self.optimizer, self.metrics = loss, optimizer, metric_fns
            self._epochs_trained = 0

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
            if isinstance(validation_data, (tuple, list)) and len(validation_data) == 3:
                raise ValueError("validation_data must be a tuple (X_val, y_val): validation "
                                 "sample weights are not supported (the validation loss is "
                                 "unweighted)")
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
            validation_split=0.0, verbose=1, n_threads=None, callbacks=None,
            sample_weight=None, class_weight=None, steps_per_execution=None):
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
            0 silent; 1 a live progress bar in a terminal (one line per epoch when the output
            is not a terminal); 2 one line per epoch. With 1 or 2 a one-line diagnosis
            (``history.diagnose()``) follows the last epoch.
        callbacks : list of fastbp.callbacks.Callback, optional
        sample_weight : array-like of shape (n_samples,), optional
            A weight >= 0 per sample: each batch's loss is ``sum(w_i * loss_i) / batch_size``
            (Keras). The training loss reported is the weighted one; validation is unweighted.
        class_weight : dict {class index: weight}, optional
            For classification losses: each sample's weight is that of its class (classes
            not listed weigh 1); multiplied with sample_weight when both are given.
        steps_per_execution : int >= 1, optional
            Batches trained per C call. Progress and batch callbacks run between calls. The
            default picks about 5e8 floating-point operations per call (a few hundredths of a
            second), independent of ``verbose``. It never changes the weights: any value
            gives the same training, bit for bit.
        n_threads : int or None
            BLAS threads for this call (default: the model's ``n_threads``).

        If the loss or a gradient turns NaN or infinite, training stops with a
        RuntimeWarning and the weights are those before the step that failed.
        """
        self._require_compiled()
        epochs = check_int(epochs, "epochs", 0)
        batch_size = check_int(batch_size, "batch_size", 1)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool, got {type(shuffle).__name__}")
        validation_split = check_float(validation_split, "validation_split", 0, 1,
                                       high_open=True)
        verbose = check_int(int(verbose) if isinstance(verbose, bool) else verbose, "verbose", 0)
        if steps_per_execution is not None:
            steps_per_execution = check_int(steps_per_execution, "steps_per_execution", 1)
        X, y = self._prepare(X, y)
        weights = self._sample_weights(y, X.shape[0], sample_weight, class_weight)
        X, y, X_val, y_val = self._prepare_validation(X, y, validation_data, validation_split)
        if weights is not None:
            weights = np.ascontiguousarray(weights[:X.shape[0]])
        callback_list = callbacks_module.CallbackList(callbacks, self, {})
        with self._exclusive(n_threads):
            return self._train(X, y, weights, X_val, y_val, epochs, batch_size, bool(shuffle),
                               verbose, callback_list, steps_per_execution)

    def _sample_weights(self, y, n, sample_weight, class_weight):
        """Per-sample weights (model dtype) from sample_weight and class_weight, or None."""
        if sample_weight is None and class_weight is None:
            return None
        weights = np.ones(n)
        if sample_weight is not None:
            weights = as_real_array(sample_weight, "sample_weight", np.float64)
            if weights.ndim == 2 and weights.shape[1] == 1:
                weights = weights[:, 0]
            if weights.shape != (n,):
                raise ValueError(f"sample_weight must have shape (n_samples,) = ({n},), "
                                 f"got {weights.shape}")
            check_finite(weights, "sample_weight")
            if (weights < 0).any():
                raise ValueError("sample_weight must hold weights >= 0")
        if class_weight is not None:
            weights = weights * self._class_weight_table(class_weight)[self._classes_of(y)]
        return np.ascontiguousarray(weights, dtype=self.dtype)

    def _classes_of(self, y):
        if self._task == "categorical":
            return y if y.ndim == 1 else y.argmax(axis=1)
        if y.shape[1] != 1:
            raise ValueError("class_weight needs one binary label per sample; this model has "
                             f"{y.shape[1]} binary outputs (use sample_weight)")
        return (y[:, 0] > 0.5).astype(np.int64)

    def _class_weight_table(self, class_weight):
        if self._task == "regression":
            raise ValueError("class_weight needs a classification loss (categorical or binary "
                             "cross-entropy); for regression use sample_weight")
        if not isinstance(class_weight, dict):
            raise TypeError(f"class_weight must be a dict {{class index: weight}}, "
                            f"got {type(class_weight).__name__}")
        n_classes = self.layers[-1].out_features if self._task == "categorical" else 2
        table = np.ones(n_classes)
        for key, value in class_weight.items():
            if isinstance(key, (bool, np.bool_)) or not isinstance(key, numbers.Integral) \
                    or not 0 <= key < n_classes:
                raise ValueError(f"class_weight keys must be class indices in [0, {n_classes}), "
                                 f"got {key!r}")
            table[int(key)] = check_float(value, f"class_weight[{key!r}]", 0)
        return table

    def _chunk_batches(self, batch_size, n_batches, steps_per_execution):
        """Batches per C call: steps_per_execution, or about CHUNK_FLOPS of work."""
        if steps_per_execution is None:
            flops = 6 * sum(layer.in_features * layer.out_features for layer in self.layers)
            steps_per_execution = int(CHUNK_FLOPS / flops) // batch_size
        return max(1, min(n_batches, steps_per_execution))

    def _baseline(self, y):
        """The loss of the best constant prediction, and what it predicts (for diagnose):
        the entropy of the class frequencies p, -sum p log p (categorical), its mean over the
        outputs, -mean(p log p + (1 - p) log(1 - p)) (binary), or the mean variance of the
        targets (regression). Few numpy calls: fit computes it on every call."""
        n = y.shape[0]
        if self._task == "categorical":
            if y.ndim == 1:
                p = np.bincount(y, minlength=self.layers[-1].out_features) / n
            else:
                p = y.sum(axis=0, dtype=np.float64) / n
            p = p[p > 0]
            return float(-np.dot(p, np.log(p))), "the class frequencies"
        if self._task == "binary":
            p = np.minimum(np.maximum(y.sum(axis=0, dtype=np.float64) / n, 1e-12), 1 - 1e-12)
            entropy = np.dot(p, np.log(p)) + np.dot(1 - p, np.log1p(-p))
            return float(-entropy / p.size), "the class frequencies"
        return float(np.mean(y.var(axis=0, dtype=np.float64))), "the mean target"

    def _train(self, X, y, weights, X_val, y_val, epochs, batch_size, shuffle, verbose,
               callbacks, steps_per_execution):
        network, optimizer, history = self._network, self.optimizer, History()
        n = X.shape[0]
        batch_size = min(batch_size, n)  # a larger batch is one full batch
        _check_addressable(network.sizes, batch_size, self.dtype)
        network.reserve(batch_size)
        n_batches = -(-n // batch_size)
        chunk = self._chunk_batches(batch_size, n_batches, steps_per_execution) * batch_size
        if optimizer.schedule is not None:
            optimizer.lr = optimizer.schedule(self._epochs_trained)
        optimizer._configure(network)
        baseline, baseline_name = self._baseline(y)
        history.params.update(epochs=epochs, samples=n, batch_size=batch_size, steps=n_batches,
                              steps_per_execution=chunk // batch_size, lr=optimizer.lr,
                              baseline_loss=baseline, baseline_name=baseline_name)
        for cb in callbacks.callbacks:
            cb.set_params(history.params)
        record_lr = optimizer.schedule is not None or callbacks.changes_lr
        self.history, self.stop_training = history, False
        progress = progress_module.make(verbose, epochs, n, batch_size)
        out_train = np.empty((n, self.layers[-1].out_features), self.dtype) \
            if self.metrics else None
        out_val = None if X_val is None else np.empty(
            (X_val.shape[0], self.layers[-1].out_features), self.dtype)
        order = np.arange(n, dtype=np.int64)
        perm = np.empty_like(order) if shuffle else order
        rng = self._rng if shuffle else None
        group = self._epochs_per_call(n, chunk, verbose, callbacks, X_val, record_lr)
        try:
            callbacks.on_train_begin()
            epoch = 0
            while epoch < epochs and not self.stop_training:
                if group > 1:
                    optimizer._configure(network)
                    count = min(group, epochs - epoch)
                    losses, completed, n_trained = network.train_epochs(
                        X, y, perm, batch_size, count, weights, rng)
                    for e in range(completed):
                        history._record(epoch + e, {"loss": float(losses[e])})
                    self._epochs_trained += completed
                    epoch += completed
                    if completed < count:  # the loss or a gradient became NaN/inf
                        self._epochs_trained += 1
                        self._stopped(history, epoch, losses[completed], n_trained, n)
                        break
                    continue
                if optimizer.schedule is not None:
                    optimizer.lr = optimizer.schedule(self._epochs_trained)
                callbacks.on_epoch_begin(epoch)
                optimizer._configure(network)
                lr = optimizer.lr
                started = time.perf_counter()
                if shuffle:  # perm = rng.permutation(n), drawn as numpy draws it, in place
                    _core.shuffle(perm, self._rng)
                progress.epoch_begin(epoch)
                total, done = 0.0, 0
                for start in range(0, n, chunk):
                    stop = min(start + chunk, n)
                    if callbacks.has_batch_hooks:
                        callbacks.on_train_batch_begin(start // batch_size)
                        optimizer._configure(network)
                    loss, n_trained = network.train_epoch(X, y, perm[start:stop], batch_size,
                                                          weights)
                    if n_trained < stop - start:
                        done += n_trained
                        break
                    total += loss * (stop - start)
                    done = stop
                    progress.update(done, total / done)
                    if callbacks.has_batch_hooks:
                        callbacks.on_train_batch_end(
                            (stop - 1) // batch_size,
                            {"loss": total / done, "batches": -(-(stop - start) // batch_size),
                             "size": stop - start})
                        if self.stop_training:
                            break
                self._epochs_trained += 1
                trained = time.perf_counter()
                if n_trained < stop - start:  # the loss or a gradient became NaN/inf
                    progress.epoch_end(epoch, {"loss": float(loss)},
                                       time.perf_counter() - started, done, trained - started)
                    self._stopped(history, epoch, loss, done, n)
                    break
                # one call per epoch reports the C mean as is; chunks combine their means
                logs = {"loss": float(loss) if chunk >= n else total / done}
                if self.metrics:
                    network.evaluate(X, y, out_train)
                    logs.update(self._metric_values(out_train, y))
                if X_val is not None:
                    logs["val_loss"] = float(network.evaluate(X_val, y_val, out_val))
                    logs.update(self._metric_values(out_val, y_val, prefix="val_"))
                if record_lr:
                    logs["lr"] = lr
                progress.epoch_end(epoch, logs, time.perf_counter() - started, done,
                                   trained - started)
                callbacks.on_epoch_end(epoch, logs)
                history._record(epoch, logs)
                epoch += 1
            callbacks.on_train_end()
        finally:
            progress.close()
        if verbose and epochs:
            diagnosis = history.diagnose()
            if diagnosis.conclusive:
                progress.message(f"Diagnosis: {diagnosis.kind}: {diagnosis.summary}. "
                                 f"Suggestion: {diagnosis.suggestion}.")
        return history

    def _epochs_per_call(self, n, chunk, verbose, callbacks, X_val, record_lr):
        """How many epochs one C call trains. 1 whenever Python has work between epochs
        (progress, callbacks, validation, metrics, a changing learning rate) or an epoch is
        split into chunks; else as many as fit in CHUNK_FLOPS of work, so that fit(epochs=50)
        of a small model takes the GIL a few times instead of 50 (models trained in parallel
        threads scale) and stays interruptible. Either way the training is the same, bit for
        bit: the shuffles are drawn in the same order from the same generator."""
        if verbose or callbacks.callbacks or X_val is not None or self.metrics or record_lr \
                or chunk < n:
            return 1
        flops = 6 * n * sum(layer.in_features * layer.out_features for layer in self.layers)
        return max(1, int(CHUNK_FLOPS // flops))

    def _stopped(self, history, epoch, loss, samples_trained, n):
        """Record that epoch `epoch` stopped after samples_trained samples because the loss
        or a gradient became NaN/inf (the failing step was not taken), and warn."""
        history._record(epoch, {"loss": float(loss)})
        history.stopped = {"epoch": epoch, "samples_trained": samples_trained, "samples": n,
                           "value": float(loss)}
        warnings.warn(
            f"training stopped in epoch {epoch + 1}: the loss or its gradient became "
            f"{loss} after {samples_trained} of {n} samples; the weights are those before the "
            "failing step. Lower the learning rate or check the data scale.", RuntimeWarning,
            stacklevel=4)

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

    def compute_gradients(self, X, y, sample_weight=None):
        """The mean loss on (X, y) as one batch and its gradient with respect to every
        parameter, ``(loss, [dW0, db0, dW1, db1, ...])``, without changing the weights. For
        gradient checks and custom loops. ``sample_weight`` weighs the samples as in fit."""
        self._require_compiled()
        X, y = self._prepare(X, y)
        weights = self._sample_weights(y, X.shape[0], sample_weight, None)
        with self._exclusive():
            loss = self._network.loss_and_grad(X, y, weights)
            return float(loss), [piece.copy() for piece in self._split(self._network.grads)]

    def predict(self, X, n_threads=None):
        """The network's output for X, shape (n_samples, out_features), in the model's dtype,
        after the last layer's activation (probabilities for softmax/sigmoid, else as is)."""
        X = as_samples(X, "X", self.dtype, self.layers[0].in_features)
        out = np.empty((X.shape[0], self.layers[-1].out_features), self.dtype)
        with self._exclusive(n_threads):
            return self._network.predict(X, out)

    # ---- learning-rate range test ---------------------------------------------------------
    def lr_find(self, X, y, min_lr=1e-7, max_lr=10.0, steps=200, batch_size=32,
                smoothing=0.98, stop_factor=4.0, sample_weight=None):
        """The learning-rate range test (Smith 2017; fastai's ``lr_find``): train ``steps``
        mini-batches with the learning rate rising exponentially from ``min_lr`` to
        ``max_lr``, record each batch's loss, then put everything back.

        The test stops early when the smoothed loss exceeds ``stop_factor`` times its lowest
        value or becomes NaN/inf. Afterwards the weights, the optimizer state (momentum or
        Adam's moments, the step count), the optimizer's learning rate and the shuffling
        generator are exactly as before: a later ``fit`` trains as if the test never ran.

        Parameters
        ----------
        X, y : training data, as for fit
        min_lr, max_lr : float, 0 < min_lr < max_lr
        steps : int >= 2
            Mini-batches (one optimizer step each); the data are cycled in shuffled order.
        batch_size : int >= 1
        smoothing : float in [0, 1)
            Exponential moving average of the loss (bias-corrected) used to judge.
        stop_factor : float > 1
        sample_weight : array-like, optional

        Returns
        -------
        fastbp.diagnostics.LRFinderResult
            ``lrs``, ``losses``, ``smoothed``, ``min_loss_lr`` (lowest smoothed loss),
            ``suggested_lr`` (a tenth of it) and ``plot()``.

        Examples
        --------
        >>> result = model.lr_find(X, y)                                   # doctest: +SKIP
        >>> model.optimizer.lr = result.suggested_lr                       # doctest: +SKIP
        """
        self._require_compiled()
        min_lr = check_float(min_lr, "min_lr", 0, low_open=True)
        max_lr = check_float(max_lr, "max_lr", min_lr, low_open=True)
        steps = check_int(steps, "steps", 2)
        batch_size = check_int(batch_size, "batch_size", 1)
        smoothing = check_float(smoothing, "smoothing", 0, 1, high_open=True)
        stop_factor = check_float(stop_factor, "stop_factor", 1, low_open=True)
        X, y = self._prepare(X, y)
        weights = self._sample_weights(y, X.shape[0], sample_weight, None)
        network, optimizer = self._network, self.optimizer
        n = X.shape[0]
        batch_size = min(batch_size, n)
        with self._exclusive():
            saved = (network.params.copy(), network.state1.copy(), network.state2.copy(),
                     network.step, optimizer.lr, self._rng.bit_generator.state)
            lrs, losses, smoothed = [], [], []
            average, best, diverged_at = 0.0, np.inf, None
            try:
                network.reserve(batch_size)
                perm, position = self._rng.permutation(n).astype(np.int64, copy=False), 0
                for i in range(steps):
                    if position + batch_size > n:
                        perm, position = self._rng.permutation(n).astype(np.int64, copy=False), 0
                    lr = min_lr * (max_lr / min_lr) ** (i / (steps - 1))
                    optimizer.lr = lr
                    optimizer._configure(network)
                    loss, n_trained = network.train_epoch(
                        X, y, perm[position:position + batch_size], batch_size, weights)
                    position += batch_size
                    lrs.append(lr)
                    losses.append(float(loss))
                    if n_trained == 0:  # NaN/inf: the step was not taken
                        smoothed.append(float("nan"))
                        diverged_at = lr
                        break
                    average = smoothing * average + (1 - smoothing) * loss
                    value = average / (1 - smoothing ** (i + 1))
                    smoothed.append(value)
                    best = min(best, value)
                    if value > stop_factor * best:
                        diverged_at = lr
                        break
            finally:
                params, state1, state2, step, lr, rng_state = saved
                network.params[...] = params
                network.state1[...] = state1
                network.state2[...] = state2
                network.step = step
                optimizer.lr = lr
                optimizer._configure(network)
                self._rng.bit_generator.state = rng_state
        return diagnostics.LRFinderResult(lrs, losses, smoothed, diverged_at)

    # ---- saving ---------------------------------------------------------------------------
    def save(self, path):
        """Write the model to one ``.npz`` file: architecture, weights, loss, optimizer
        (hyper-parameters, state and step), metrics, the shuffling generator's state and
        ``class_names``. Atomic: the file is written under a temporary name and renamed, so
        a crash mid-save leaves any previous file intact. Load with
        :func:`fastbp.load_model`; training then continues exactly as if uninterrupted.
        See :mod:`fastbp.io`."""
        from . import io

        with self._exclusive():  # not while another thread trains (a callback may save)
            io.save_model(self, path)

    def _exclusive(self, n_threads=None):
        """Hold the model for one call (a second thread gets a clear error, not a shared
        workspace), with BLAS limited to n_threads (or the model's n_threads) meanwhile.
        Every method that reads or writes the parameters, the optimizer state or the loss
        holds it, so that no thread changes what C is using in another (compile during fit
        changed the loss C read per batch: an out-of-bounds read). The thread holding the
        model may take it again (a callback inside fit)."""
        if n_threads is None:
            n_threads = self.n_threads
        return _Exclusive(self._lock, n_threads)

    def __repr__(self):
        body = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{body}], dtype={self.dtype.name!r})"


def _check_addressable(sizes, batch, dtype):
    """Raise ValueError unless the parameter buffer and the workspace for batches of `batch`
    rows fit in 2**62 bytes. src_c/train.c adds these sizes up in 64-bit ptrdiff_t without
    checks (fbp_n_params, fbp_workspace_len); Python's integers do it here first, so that layer
    sizes whose products overflow are refused instead of wrapping to a small buffer. The
    workspace's last part, a transposed small weight matrix, holds at most 8192 values
    (FBP_SMALL_TRANSPOSED_WEIGHTS in src_c/dense.c)."""
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    work = batch * (sizes[0] + sizes[-1] + sum(sizes[1:]) + 2 * max(sizes[1:])) + 8192
    if max(n_params, work) * np.dtype(dtype).itemsize >= 2**62:
        raise ValueError(
            f"this model needs {n_params} parameters and a workspace of {work} values for "
            f"batches of {batch} rows: more than a 64-bit address space can hold; use smaller "
            "layers (or a smaller batch_size)")


def _model_dtype(dtype):
    """np.dtype of a model: float32 or float64, given as a string, numpy type or dtype."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in (np.float32, np.float64) or dtype is None:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return resolved


class _OwnerLock:
    """A lock its owning thread may take again (a callback inside fit calling predict), with
    ``locked()`` (which threading.RLock lacks before Python 3.14)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._owner = None
        self._depth = 0

    def acquire(self, blocking=True):
        me = threading.get_ident()
        if self._owner == me:
            self._depth += 1
            return True
        if not self._lock.acquire(blocking):
            return False
        self._owner, self._depth = me, 1
        return True

    def release(self):
        if self._owner != threading.get_ident():
            raise RuntimeError("release of a model lock this thread does not hold")
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()

    def locked(self):
        return self._lock.locked()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


class _Exclusive:
    def __init__(self, lock, n_threads):
        self.lock = lock
        self.threads = num_threads(n_threads)

    def __enter__(self):
        if not self.lock.acquire(blocking=False):
            raise RuntimeError("this model is already in use by another thread (fit, evaluate, "
                               "predict, compute_gradients, compile, get_weights, set_weights, "
                               "reset_parameters, lr_find or save); use one model per thread")
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

