"""Learning-rate schedules: the learning rate as a function of the epoch.

A schedule is used in one of two ways:

- from the optimizer: ``fb.Adam(lr=fb.schedules.CosineDecay(1e-3, epochs=50))``. The model
  sets ``optimizer.lr = schedule(epoch)`` before every epoch, where ``epoch`` counts the epochs
  trained since ``compile`` (across ``fit`` calls, and saved by ``model.save``), so a resumed
  run follows the same curve;
- as a callback: ``fit(..., callbacks=[fb.callbacks.LearningRateScheduler(schedule)])``, which
  counts the epochs of each ``fit`` call from 0, as Keras does.

The learning rate changes between epochs, never inside one: an epoch runs in one C call.

Every schedule takes ``warmup_epochs``: for ``epoch < warmup_epochs`` the learning rate rises
linearly, ``lr * (epoch + 1) / (warmup_epochs + 1)``; the decay then starts from ``lr`` at
epoch ``warmup_epochs`` (its own clock ``t = epoch - warmup_epochs`` starts at 0).
"""
import math

from ._validation import check_float, check_int


class Schedule:
    """Base class: ``schedule(epoch) -> lr`` for an epoch index >= 0.

    Subclasses implement ``_decayed(t)`` for ``t = epoch - warmup_epochs >= 0`` and list
    their constructor arguments in ``_fields`` (for ``get_config`` and saving)."""

    _fields = ()

    def __init__(self, lr, warmup_epochs=0):
        self.lr = check_float(lr, "lr", 0, low_open=True)
        self.warmup_epochs = check_int(warmup_epochs, "warmup_epochs", 0)

    def __call__(self, epoch):
        epoch = check_int(epoch, "epoch", 0)
        if epoch < self.warmup_epochs:
            return self.lr * (epoch + 1) / (self.warmup_epochs + 1)
        return float(self._decayed(epoch - self.warmup_epochs))

    def _decayed(self, t):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self):
        """The constructor arguments, JSON-serialisable."""
        return {name: getattr(self, name) for name in ("lr",) + self._fields + ("warmup_epochs",)}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = None


class StepDecay(Schedule):
    """``lr * gamma ** (t // step_size)``: multiply by ``gamma`` every ``step_size`` epochs
    (``torch.optim.lr_scheduler.StepLR``).

    Examples
    --------
    >>> s = StepDecay(0.1, step_size=10, gamma=0.5)
    >>> s(0), s(9), s(10), s(25)
    (0.1, 0.1, 0.05, 0.025)
    """

    _fields = ("step_size", "gamma")

    def __init__(self, lr, step_size, gamma=0.1, warmup_epochs=0):
        super().__init__(lr, warmup_epochs)
        self.step_size = check_int(step_size, "step_size", 1)
        self.gamma = check_float(gamma, "gamma", 0, low_open=True)

    def _decayed(self, t):
        return self.lr * self.gamma ** (t // self.step_size)


class ExponentialDecay(Schedule):
    """``lr * gamma ** t``: multiply by ``gamma`` every epoch
    (``torch.optim.lr_scheduler.ExponentialLR``).

    Examples
    --------
    >>> ExponentialDecay(1.0, gamma=0.5)(3)
    0.125
    """

    _fields = ("gamma",)

    def __init__(self, lr, gamma, warmup_epochs=0):
        super().__init__(lr, warmup_epochs)
        self.gamma = check_float(gamma, "gamma", 0, low_open=True)

    def _decayed(self, t):
        return self.lr * self.gamma ** t


class CosineDecay(Schedule):
    """Half a cosine from ``lr`` down to ``min_lr`` over ``epochs`` epochs after the warm-up,
    then ``min_lr`` (``torch.optim.lr_scheduler.CosineAnnealingLR`` with ``T_max=epochs``,
    ``eta_min=min_lr``, without restarts)::

        min_lr + (lr - min_lr) * (1 + cos(pi * min(t, epochs) / epochs)) / 2

    Examples
    --------
    >>> s = CosineDecay(1e-2, epochs=10, warmup_epochs=2)
    >>> [round(s(e), 5) for e in (0, 1, 2, 7, 12, 20)]
    [0.00333, 0.00667, 0.01, 0.005, 0.0, 0.0]
    """

    _fields = ("epochs", "min_lr")

    def __init__(self, lr, epochs, min_lr=0.0, warmup_epochs=0):
        super().__init__(lr, warmup_epochs)
        self.epochs = check_int(epochs, "epochs", 1)
        self.min_lr = check_float(min_lr, "min_lr", 0)
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")

    def __call__(self, epoch):
        value = super().__call__(epoch)
        # an optimizer needs lr > 0: the end of a cosine to min_lr=0 uses a tiny positive value
        return value if value > 0 else self.lr * 1e-12

    def _decayed(self, t):
        t = min(t, self.epochs)
        return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * t / self.epochs)) / 2


SCHEDULES = {cls.__name__: cls for cls in (StepDecay, ExponentialDecay, CosineDecay)}


def from_config(name, config):
    """Rebuild a schedule saved as ``(type(s).__name__, s.get_config())`` (only the classes
    of this module: nothing else is looked up)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {sorted(SCHEDULES)}")
    if not isinstance(config, dict):
        raise ValueError(f"the configuration of schedule {name} must be a mapping")
    return SCHEDULES[name](**config)
