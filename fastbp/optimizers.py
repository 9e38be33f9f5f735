"""Optimizers, with torch.optim's semantics and hyper-parameter names. Each object holds
hyper-parameters; the model holds the state (momentum, moments, step count) in flat buffers, and
one C pass updates all parameters in place (src_c/optim.c)."""
import numpy as np

from ._validation import check_float

# sqrt(largest value) of each model dtype: the largest lr, weight_decay and lr * weight_decay
# Optimizer._check lets through (computed once: np.finfo per call is slow in fit's hot path)
_STEP_LIMITS = {np.dtype(t): float(np.sqrt(np.finfo(t).max)) for t in (np.float32, np.float64)}


class Optimizer:
    """Base class. Subclasses validate their hyper-parameters in ``_validate``, which runs at
    construction and again whenever a model hands them to C (so ``opt.lr = -1`` after compile
    is caught by the next fit, not trained on).

    ``lr`` may be a schedule (:mod:`fastbp.schedules`): it is then kept as ``schedule`` and
    ``lr`` holds its current value, which the model sets before every epoch."""

    schedule = None

    def _take_schedule(self):
        from .schedules import Schedule

        if isinstance(self.lr, Schedule):
            self.schedule, self.lr = self.lr, self.lr(0)

    def _validate(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check(self, dtype):
        """``_validate``, then refuse steps the model's dtype cannot take: ``lr`` and
        ``weight_decay`` (and their product) at most sqrt(largest value), 1.8e19 in float32
        and 1.3e154 in float64. Training already stops before a gradient beyond that bound is
        used, so ``lr * gradient`` cannot overflow into inf/NaN weights; a larger ``lr`` (say
        1e38 in float32, or 1e300, which float32 rounds to inf) wrote inf/NaN into the weights
        in the first step, before any loss could show it."""
        self._validate()
        limit = _STEP_LIMITS[np.dtype(dtype)]
        wd = getattr(self, "weight_decay", 0.0)
        for name, value in (("lr", self.lr), ("weight_decay", wd), ("lr * weight_decay",
                                                                   self.lr * wd)):
            if value > limit:
                raise ValueError(
                    f"{name} = {value:g} is too large for a {np.dtype(dtype).name} model (at "
                    f"most {limit:.3g}): such a step overflows {np.dtype(dtype).name}")

    def _configure(self, network):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self):
        return dict(self.__dict__)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight
    decay, as ``torch.optim.SGD`` (dampening 0). For each step, with gradient g of parameter p::

        g = g + weight_decay * p
        if momentum:
            v = momentum * v + g          (v = g on the first step)
            g = g + momentum * v if nesterov else v
        p = p - lr * g

    Parameters
    ----------
    lr : float or Schedule, default 0.01
    momentum : float in [0, 1), default 0
    nesterov : bool, default False (needs momentum > 0)
    weight_decay : float >= 0, default 0
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.lr, self.momentum, self.nesterov, self.weight_decay = lr, momentum, nesterov, \
            weight_decay
        self._validate()

    def _validate(self):
        self._take_schedule()
        self.lr = check_float(self.lr, "lr", 0, low_open=True)
        self.momentum = check_float(self.momentum, "momentum", 0, 1, high_open=True)
        if not isinstance(self.nesterov, bool):
            raise TypeError(f"nesterov must be a bool, got {type(self.nesterov).__name__}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.weight_decay = check_float(self.weight_decay, "weight_decay", 0)

    def _configure(self, network):
        self._check(network.dtype)
        network.set_optimizer("sgd", lr=self.lr, momentum=self.momentum, nesterov=self.nesterov,
                              weight_decay=self.weight_decay)


class Adam(Optimizer):
    r"""Adam, as ``torch.optim.Adam`` (amsgrad off). For step t = 1, 2, ... with gradient g::

        g = g + weight_decay * p                      (L2 penalty, coupled)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Parameters
    ----------
    lr : float or Schedule, default 1e-3
    betas : (float, float) in [0, 1), default (0.9, 0.999)
    eps : float > 0, default 1e-8
    weight_decay : float >= 0, default 0
    """

    decoupled = False
    default_weight_decay = 0.0

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=None):
        if weight_decay is None:
            weight_decay = self.default_weight_decay
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self._validate()

    def _validate(self):
        self._take_schedule()
        self.lr = check_float(self.lr, "lr", 0, low_open=True)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise TypeError(f"betas must be a pair of floats, got {self.betas!r}")
        self.betas = (check_float(self.betas[0], "betas[0]", 0, 1, high_open=True),
                      check_float(self.betas[1], "betas[1]", 0, 1, high_open=True))
        self.eps = check_float(self.eps, "eps", 0, low_open=True)
        self.weight_decay = check_float(self.weight_decay, "weight_decay", 0)

    def _configure(self, network):
        self._check(network.dtype)
        network.set_optimizer("adam", lr=self.lr, beta1=self.betas[0], beta2=self.betas[1],
                              eps=self.eps, weight_decay=self.weight_decay,
                              decoupled_weight_decay=self.decoupled)


class AdamW(Adam):
    r"""AdamW, as ``torch.optim.AdamW``: Adam with decoupled weight decay. Before the Adam
    update (which then sees the plain gradient)::

        p = p * (1 - lr * weight_decay)

    Parameters as :class:`Adam`, but ``weight_decay`` defaults to 0.01 (torch's default).
    """

    decoupled = True
    default_weight_decay = 0.01


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def get(optimizer):
    """An Optimizer from a name (default hyper-parameters) or an Optimizer instance."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()]()
    raise ValueError(
        f"optimizer must be an Optimizer or one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
