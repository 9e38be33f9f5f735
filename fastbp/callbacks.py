"""Callbacks: code that ``fit`` runs at fixed points of training, with Keras's protocol.

A callback subclasses :class:`Callback` and overrides any of::

    on_train_begin(logs)          on_train_end(logs)
    on_epoch_begin(epoch, logs)   on_epoch_end(epoch, logs)
    on_train_batch_begin(batch, logs)   on_train_batch_end(batch, logs)

``self.model`` is the model being trained and ``self.params`` holds ``epochs``, ``samples``,
``batch_size``, ``steps`` (batches per epoch) and ``steps_per_execution``. Setting
``self.model.stop_training = True`` ends training after the current chunk of batches (from a
batch hook) or epoch. Epochs are numbered from 0 within each ``fit`` call, as in Keras; logs
show them from 1.

Batch hooks run between chunks, not after every batch: an epoch is trained by a few C calls
of ``steps_per_execution`` batches each (Keras's name for the same idea), so ``batch`` is the
index of the first (``begin``) or last (``end``) batch of the chunk and ``logs`` holds
``loss`` (the running mean of the epoch so far), ``batches`` (in the chunk) and ``size``
(samples in the chunk). Pass ``fit(..., steps_per_execution=1)`` to run them after every batch
(slower for small batches).

Built-ins: :class:`EarlyStopping`, :class:`TerminateOnNaN`, :class:`ModelCheckpoint`,
:class:`ReduceLROnPlateau`, :class:`CSVLogger`, :class:`LearningRateScheduler`,
:class:`LambdaCallback`.
"""
import csv
import math
import os
import warnings

import numpy as np

from ._validation import check_float, check_int
from .schedules import Schedule


class Callback:
    """Base class: every hook does nothing. ``model`` and ``params`` are set by ``fit``."""

    # True for callbacks that change the optimizer's learning rate: fit then records "lr"
    changes_lr = False

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass


class CallbackList:
    """Calls each hook on every callback in order. Batch hooks are called only on callbacks
    that override them, so a list without such callbacks costs nothing between chunks."""

    def __init__(self, callbacks, model, params):
        if callbacks is None:
            callbacks = []
        if isinstance(callbacks, Callback) or not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks must be a list of Callback objects, got {callbacks!r}")
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks[{i}] must be a Callback, got {type(cb).__name__}")
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        self._batch_begin = [cb for cb in self.callbacks if _overrides(cb, "on_train_batch_begin")]
        self._batch_end = [cb for cb in self.callbacks if _overrides(cb, "on_train_batch_end")]
        self.changes_lr = any(cb.changes_lr for cb in self.callbacks)
        self.has_batch_hooks = bool(self._batch_begin or self._batch_end)

    def __bool__(self):
        return bool(self.callbacks)

    def on_train_begin(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        for cb in self._batch_begin:
            cb.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        for cb in self._batch_end:
            cb.on_train_batch_end(batch, logs)


def _overrides(cb, name):
    """True when cb defines hook `name` (in its class or, as LambdaCallback, on itself)."""
    return name in vars(cb) or getattr(type(cb), name) is not getattr(Callback, name)


def _monitor_mode(monitor, mode):
    """'min' or 'max' for a monitored quantity: accuracy-like names are maximised."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if monitor.endswith("acc") or monitor.endswith("accuracy") else "min"


class _Monitor(Callback):
    """Shared by the callbacks that watch one logged quantity."""

    def __init__(self, monitor, mode, min_delta):
        super().__init__()
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a log name such as 'val_loss', got {monitor!r}")
        self.monitor = monitor
        self.mode = _monitor_mode(monitor, mode)
        self.min_delta = abs(check_float(min_delta, "min_delta"))

    def _initial_best(self):
        return math.inf if self.mode == "min" else -math.inf

    def _improves(self, current, best):
        if self.mode == "min":
            return current < best - self.min_delta
        return current > best + self.min_delta

    def _current(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{type(self).__name__}: the monitored quantity {self.monitor!r} is not "
                          f"in the logs (available: {sorted(logs or {})}); "
                          "pass validation_data to monitor val_* values", RuntimeWarning,
                          stacklevel=3)
        return value


class EarlyStopping(_Monitor):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs (Keras).

    Parameters
    ----------
    monitor : str, default "val_loss"
    min_delta : float, default 0
        An improvement must exceed this.
    patience : int, default 0
        Epochs without improvement before stopping.
    mode : {"auto", "min", "max"}
        "auto" maximises names ending in "acc"/"accuracy" and minimises the rest.
    restore_best_weights : bool, default False
        At the end of training, set the weights to those of the best epoch (also when
        training ran to the end without stopping early).
    start_from_epoch : int, default 0
        Epochs to train before watching.
    verbose : int, default 0

    Attributes
    ----------
    best, best_epoch : the best value and its epoch (0-based); stopped_epoch : the epoch
        after which training stopped (0 when it did not stop early).

    Examples
    --------
    >>> stop = EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta)
        self.patience = check_int(patience, "patience", 0)
        self.verbose = verbose
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = check_int(start_from_epoch, "start_from_epoch", 0)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self._initial_best()
        self.best_epoch = None
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.start_from_epoch:
            return
        current = self._current(logs)
        if current is None:
            return
        self.wait += 1
        if self._improves(current, self.best):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            best = "-" if self.best_epoch is None else self.best_epoch + 1
            print(f"Epoch {self.stopped_epoch + 1}: early stopping ({self.monitor} has not "
                  f"improved since epoch {best})")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring the weights of epoch {self.best_epoch + 1} "
                      f"({self.monitor} {self.best:.4f})")
            self.model.set_weights(self.best_weights)


class TerminateOnNaN(Callback):
    """Stop training when the loss is NaN or infinite. fastbp's C loop already stops before
    a step that would make the weights non-finite (fit warns); this callback is here for code
    written for Keras, and also stops on a non-finite ``val_loss``."""

    def _check(self, where, logs):
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if value is not None and not np.isfinite(value):
                print(f"{where}: invalid {key} {value}, terminating training")
                self.model.stop_training = True
                return

    def on_train_batch_end(self, batch, logs=None):
        self._check(f"Batch {batch}", logs)

    def on_epoch_end(self, epoch, logs=None):
        self._check(f"Epoch {epoch + 1}", logs)


class ModelCheckpoint(_Monitor):
    """Save the model (``model.save``: architecture, weights, optimizer state) after epochs.

    Parameters
    ----------
    filepath : str or os.PathLike
        May hold ``str.format`` fields filled from the epoch (1-based) and the logs, e.g.
        ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``.
    monitor : str, default "val_loss"
    save_best_only : bool, default False
        Save only when ``monitor`` improves (the file then always holds the best model).
    mode : {"auto", "min", "max"}
    verbose : int, default 0

    Saving is atomic (see :func:`fastbp.io.save_model`): a crash never leaves a half-written
    checkpoint.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 mode="auto"):
        super().__init__(monitor, mode, 0.0)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.best = self._initial_best()

    def on_train_begin(self, logs=None):
        self.best = self._initial_best()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            current = self._current(logs)
            if current is None or not self._improves(current, self.best):
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{current:.5f}, saving model to {path}")
            self.best = current
        elif self.verbose:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        self.model.save(path)


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for
    ``patience`` epochs (Keras). The new rate applies from the next epoch.

    Parameters
    ----------
    monitor : str, default "val_loss"
    factor : float in (0, 1), default 0.1
    patience : int, default 10
    min_delta : float, default 1e-4
    cooldown : int, default 0
        Epochs to wait after a reduction before counting again.
    min_lr : float, default 0
    mode : {"auto", "min", "max"}
    verbose : int, default 0
    """

    changes_lr = True

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta)
        self.factor = check_float(factor, "factor", 0, 1, low_open=True, high_open=True)
        self.patience = check_int(patience, "patience", 0)
        self.cooldown = check_int(cooldown, "cooldown", 0)
        self.min_lr = check_float(min_lr, "min_lr", 0)
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.cooldown_counter = 0
        self.best = self._initial_best()
        if self.model.optimizer.schedule is not None:
            warnings.warn("ReduceLROnPlateau: the optimizer's learning rate follows a schedule, "
                          "which sets it again every epoch and undoes the reductions",
                          RuntimeWarning, stacklevel=3)

    def on_epoch_end(self, epoch, logs=None):
        current = self._current(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                optimizer = self.model.optimizer
                if optimizer.lr > self.min_lr:
                    new_lr = max(optimizer.lr * self.factor, self.min_lr)
                    if new_lr > 0:
                        if self.verbose:
                            print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing the learning "
                                  f"rate to {new_lr:.4g}")
                        optimizer.lr = new_lr
                self.cooldown_counter = self.cooldown
                self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from ``schedule``: a
    :class:`fastbp.schedules.Schedule` (called with the epoch), or a function
    ``schedule(epoch, lr) -> new lr`` as in Keras. Epochs count from 0 in each ``fit``."""

    changes_lr = True

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError("schedule must be a Schedule or a function (epoch, lr) -> lr")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if isinstance(self.schedule, Schedule):
            lr = self.schedule(epoch)
        else:
            lr = self.schedule(epoch, optimizer.lr)
        optimizer.lr = check_float(lr, "the learning rate returned by the schedule", 0,
                                   low_open=True)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting the learning rate to {lr:.4g}")


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` (0-based, as Keras) and every log value.

    Parameters
    ----------
    filename : str or os.PathLike
    separator : str, default ","
    append : bool, default False
        Append to an existing file (its header is kept) instead of overwriting it.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = bool(append)
        self.keys = None
        self._file = None

    def on_train_begin(self, logs=None):
        has_header = (self.append and os.path.exists(self.filename)
                      and os.path.getsize(self.filename) > 0)
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = None
        self._has_header = has_header
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = list(logs)
            self._writer = csv.writer(self._file, delimiter=self.separator)
            if not self._has_header:
                self._writer.writerow(["epoch"] + self.keys)
        self._writer.writerow([epoch] + [logs.get(key, "NA") for key in self.keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class LambdaCallback(Callback):
    """A callback from plain functions, e.g.
    ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(logs["loss"]))``."""

    def __init__(self, on_train_begin=None, on_train_end=None, on_epoch_begin=None,
                 on_epoch_end=None, on_train_batch_begin=None, on_train_batch_end=None):
        super().__init__()
        hooks = dict(on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        for name, fn in hooks.items():
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"{name} must be callable")
                setattr(self, name, fn)
