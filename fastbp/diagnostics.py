"""Reading a loss curve, in words: ``history.diagnose()``, the learning-rate range test's
result (``model.lr_find``), and the plots (matplotlib, the optional extra ``plot``).

``diagnose`` looks at the per-epoch training loss, and at the validation loss when there is
one, and names the first of these that applies (epochs are numbered from 1, as ``fit`` prints
them):

==============  ==========================================================================
diverging       the loss became NaN/inf (the C loop stopped before the failing step), or
                the training loss ended above where it started, or rose back by more than
                half of what it had gained
not learning    the training loss moved by less than 1% over the run and stays near the
                loss of a constant prediction (the class frequencies, or the mean target)
overfitting     the validation loss was lowest at some epoch and rose since by more than 5%
                (and at least 2 epochs) while the training loss kept falling
plateau         over the last quarter of the epochs (at least 3) the watched loss (the
                validation loss if any) improved by less than 1% of the total improvement
                and less than 5% of its value (a loss still halving towards 0 is not flat)
healthy         none of the above
==============  ==========================================================================

Trends need at least ``MIN_EPOCHS`` epochs; with fewer the diagnosis is ``too few epochs``
(except a NaN, which is diverging at any length). The thresholds are module constants.
"""
import math

import numpy as np

MIN_EPOCHS = 5
NOT_LEARNING_CHANGE = 0.01      # relative change of the training loss over the run
NEAR_BASELINE = 0.5             # "near" the constant-prediction loss: above half of it
RISE_ABOVE_START = 0.10         # ended this much (relative) above the first epoch's loss
RISE_BACK = 0.5                 # gave back this fraction of the improvement
OVERFIT_RISE = 0.05             # validation loss rose this much (relative) above its best
OVERFIT_EPOCHS_AFTER = 2        # ... and the best was at least this many epochs before the end
PLATEAU_FRACTION = 0.01         # last window improved less than this of the total improvement
PLATEAU_LEVEL = 0.05            # ... and less than this of the loss's value

PLOT_EXTRA_MESSAGE = ("plotting needs matplotlib, an optional dependency of fastbp: "
                      "pip install 'fastbp[plot]' (or pip install matplotlib)")


class Diagnosis:
    """What ``history.diagnose()`` returns.

    Attributes
    ----------
    kind : str
        "diverging", "not learning", "overfitting", "plateau", "healthy", "too few epochs"
        or "no epochs".
    summary : str
        What the curve shows, with epoch numbers (1-based) and values.
    suggestion : str
        What to try.
    epoch : int or None
        The epoch (1-based) the diagnosis names: where the loss blew up, the best validation
        epoch when overfitting, where the plateau began.
    """

    def __init__(self, kind, summary, suggestion, epoch=None):
        self.kind, self.summary, self.suggestion, self.epoch = kind, summary, suggestion, epoch

    @property
    def conclusive(self):
        return self.kind not in ("too few epochs", "no epochs")

    def __str__(self):
        return f"{self.kind}: {self.summary}\nsuggestion: {self.suggestion}"

    def __repr__(self):
        return f"Diagnosis(kind={self.kind!r}, epoch={self.epoch!r})"


def _fmt(value):
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"


def _lr_text(history):
    lr = history.params.get("lr") if history.params else None
    return f" (lr={lr:g})" if lr else ""


def diagnose(history):
    """Name what the loss curve of ``history`` shows; see the module docstring."""
    loss = np.asarray(history.history.get("loss", []), dtype=float)
    n = len(loss)
    if n == 0:
        return Diagnosis("no epochs", "no epoch was trained", "call fit with epochs >= 1")
    stopped = getattr(history, "stopped", None)
    lr = _lr_text(history)
    if stopped is not None:
        e = stopped["epoch"] + 1
        return Diagnosis(
            "diverging",
            f"the loss became {stopped['value']} in epoch {e} after {stopped['samples_trained']} "
            f"of {stopped['samples']} samples; training stopped there and the weights are those "
            "before the failing step",
            f"lower the learning rate{lr}, e.g. 10x (model.lr_find(X, y) suggests one); check "
            "that the inputs are standardised and regression targets are not huge", e)
    finite = loss[np.isfinite(loss)]
    if len(finite) < n:  # NaN recorded without a stop record (hand-made history)
        e = int(np.argmin(np.isfinite(loss))) + 1
        return Diagnosis("diverging", f"the loss became non-finite in epoch {e}",
                         f"lower the learning rate{lr}", e)
    first, last = loss[0], loss[-1]
    best = int(np.argmin(loss))
    gain = first - loss[best]
    if n >= 2 and last > first + RISE_ABOVE_START * abs(first):
        return Diagnosis(
            "diverging",
            f"the training loss rose from {_fmt(first)} in epoch 1 to {_fmt(last)} in epoch {n}"
            + (f" (lowest {_fmt(loss[best])} in epoch {best + 1})" if 0 < best < n - 1 else ""),
            f"the learning rate{lr} is probably too high: lower it 3-10x or run "
            "model.lr_find(X, y)", best + 1)
    if n >= 4 and best < n - 2 and gain > 0 and last > loss[best] + RISE_BACK * gain \
            and last > loss[-2]:
        return Diagnosis(
            "diverging",
            f"the training loss fell to {_fmt(loss[best])} in epoch {best + 1}, then rose to "
            f"{_fmt(last)} by epoch {n}, giving back {100 * (last - loss[best]) / gain:.0f}% "
            "of its improvement",
            f"the learning rate{lr} is too high for this stage: lower it, or decay it with a "
            "schedule (fastbp.schedules) or ReduceLROnPlateau(monitor='loss')", best + 1)
    if n < MIN_EPOCHS:
        return Diagnosis("too few epochs",
                         f"{n} epoch{'s' if n > 1 else ''}: too few to judge a trend",
                         f"train at least {MIN_EPOCHS} epochs")
    baseline = history.params.get("baseline_loss") if history.params else None
    change = (first - loss.min()) / abs(first) if first else 0.0
    near_baseline = baseline is None or loss.min() > NEAR_BASELINE * baseline
    if change < NOT_LEARNING_CHANGE and near_baseline:
        where = ""
        if baseline is not None:
            relation = "no better than" if loss.min() >= baseline else "close to"
            where = (f", {relation} {_fmt(baseline)}, the loss of always predicting "
                     f"{history.params.get('baseline_name', 'a constant')}")
        return Diagnosis(
            "not learning",
            f"the training loss moved by only {100 * change:.2g}% in {n} epochs "
            f"({_fmt(first)} -> {_fmt(last)}){where}",
            f"the learning rate{lr} is probably too low: try 10-100x higher, or run "
            "model.lr_find(X, y); if it is reasonable, look for dead ReLU units (try "
            "leaky_relu or init='he_uniform'), unscaled inputs, or labels that do not match X", 1)
    val = history.history.get("val_loss")
    if val is not None and len(val) == n and np.all(np.isfinite(val)):
        val = np.asarray(val, dtype=float)
        vb = int(np.argmin(val))
        if (vb <= n - 1 - OVERFIT_EPOCHS_AFTER and val[-1] > val[vb] + OVERFIT_RISE * abs(val[vb])
                and loss[-1] < loss[vb]):
            return Diagnosis(
                "overfitting",
                f"the validation loss was lowest in epoch {vb + 1} ({_fmt(val[vb])}) and rose to "
                f"{_fmt(val[-1])} by epoch {n} (+{100 * (val[-1] - val[vb]) / abs(val[vb]):.0f}%)"
                f" while the training loss kept falling ({_fmt(loss[vb])} -> {_fmt(loss[-1])}); "
                f"the best model was the one after epoch {vb + 1}",
                f"stop at the best epoch: EarlyStopping(monitor='val_loss', patience="
                f"{max(3, min(10, n // 10))}, restore_best_weights=True), or fit(epochs={vb + 1}); "
                "to generalise better: more data, weight decay (e.g. AdamW(weight_decay=1e-2)) "
                "or a smaller network", vb + 1)
        watched, name = val, "validation loss"
    else:
        watched, name = loss, "training loss"
    window = max(3, math.ceil(n / 4))
    if n - window >= 2:
        total = watched[0] - watched.min()
        recent = watched[:n - window].min() - watched[n - window:].min()
        level = abs(watched[n - window:].min())
        if recent < PLATEAU_FRACTION * max(total, 0) and recent < PLATEAU_LEVEL * level:
            since = int(np.argmax(watched <= watched.min() + PLATEAU_FRACTION * max(total, 0)))
            before = watched[:n - window].min()
            if recent > 0:
                change = (f"improved by only {100 * recent / abs(before):.2g}% over the last "
                          f"{window} epochs ({_fmt(before)} -> {_fmt(watched[n - window:].min())})")
            else:
                change = (f"did not improve over the last {window} epochs (best "
                          f"{_fmt(watched.min())} in epoch {int(np.argmin(watched)) + 1})")
            return Diagnosis(
                "plateau",
                f"the {name} {change}; it had made {100 * (1 - PLATEAU_FRACTION):g}% of its "
                f"improvement by epoch {since + 1}",
                f"more epochs at this learning rate{lr} will not help much: if the loss is good "
                f"enough, stop around epoch {since + 1} (EarlyStopping); to go lower, reduce the "
                "learning rate when progress stalls (ReduceLROnPlateau) or use a schedule; "
                "if it stays too high, the network may be too small", since + 1)
    summary = (f"the training loss fell from {_fmt(first)} to {_fmt(last)} over {n} epochs "
               "and is still improving")
    if watched is not loss:
        vb = int(np.argmin(watched))
        summary += (f"; the validation loss went from {_fmt(watched[0])} to {_fmt(watched[-1])} "
                    f"(best {_fmt(watched[vb])} in epoch {vb + 1})")
    return Diagnosis("healthy", summary, "nothing to fix; more epochs may still help", n)


# ---- the learning-rate range test -----------------------------------------------------------
class LRFinderResult:
    """The learning-rate range test's curve (``model.lr_find``).

    Attributes
    ----------
    lrs, losses : ndarray
        The learning rate of each step and the loss of its batch (before the step).
    smoothed : ndarray
        The losses smoothed by an exponential moving average (bias-corrected).
    min_loss_lr : float
        The learning rate of the lowest smoothed loss (training becomes unstable near it).
    suggested_lr : float
        ``min_loss_lr / 10``: a good starting learning rate (fastai's ``lr_min`` rule; the
        steepest-descent point is too noisy to rely on with a few hundred steps).
    diverged_at : float or None
        The learning rate at which the test stopped because the loss blew up.
    """

    def __init__(self, lrs, losses, smoothed, diverged_at):
        self.lrs = np.asarray(lrs, dtype=float)
        self.losses = np.asarray(losses, dtype=float)
        self.smoothed = np.asarray(smoothed, dtype=float)
        self.diverged_at = diverged_at
        self.min_loss_lr, self.suggested_lr = _suggest(self.lrs, self.smoothed)

    def plot(self, path=None, ax=None):
        """Loss against learning rate (log scale) with the suggestion marked; saved to
        ``path`` when given. Returns the matplotlib Figure."""
        plt = _pyplot()
        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4))
        else:
            fig = ax.figure
        ax.plot(self.lrs, self.losses, color="0.75", lw=1, label="batch loss")
        ax.plot(self.lrs, self.smoothed, color="C0", lw=2, label="smoothed")
        ax.axvline(self.suggested_lr, color="C2", ls="--",
                   label=f"suggested lr {self.suggested_lr:.2g}")
        ax.set_xscale("log")
        finite = self.smoothed[np.isfinite(self.smoothed)]
        if finite.size:
            low, high = finite.min(), finite[0]
            ax.set_ylim(low - 0.1 * (high - low + 1e-12), high + 0.5 * (high - low + 1e-12))
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title("learning-rate range test")
        ax.legend()
        if path is not None:
            fig.savefig(path, dpi=100, bbox_inches="tight")
        return fig

    def __repr__(self):
        return (f"LRFinderResult(steps={len(self.lrs)}, suggested_lr={self.suggested_lr:.3g}, "
                f"min_loss_lr={self.min_loss_lr:.3g})")


def _suggest(lrs, smoothed):
    """(lr at the minimum of the smoothed loss, a tenth of it)."""
    ok = np.isfinite(smoothed)
    if not ok.any():
        return float(lrs[0]), float(lrs[0])
    min_loss_lr = float(lrs[ok][int(np.argmin(smoothed[ok]))])
    return min_loss_lr, min_loss_lr / 10


# ---- plots ----------------------------------------------------------------------------------
def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(PLOT_EXTRA_MESSAGE) from exc
    return plt


def plot_history(history, path=None, metrics=True):
    """Training and validation loss per epoch (and each metric in its own panel); saved to
    ``path`` when given. Returns the matplotlib Figure. See ``History.plot``."""
    plt = _pyplot()
    keys = [k for k in history.history if not k.startswith("val_") and k not in ("loss", "lr")]
    panels = ["loss"] + (keys if metrics else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    epochs = np.arange(1, len(history.history.get("loss", [])) + 1)
    for ax, key in zip(axes[0], panels):
        train = history.history.get(key, [])
        ax.plot(epochs[:len(train)], train, "o-", ms=3, color="C0", label=f"training {key}")
        val = history.history.get("val_" + key)
        if val is not None:
            ax.plot(epochs[:len(val)], val, "o-", ms=3, color="C1", label=f"validation {key}")
            best = int(np.nanargmin(val) if key == "loss" or key.endswith("mse")
                       or key.endswith("mae") else np.nanargmax(val))
            ax.axvline(best + 1, color="0.6", ls=":", label=f"best validation (epoch {best + 1})")
        stopped = getattr(history, "stopped", None)
        if key == "loss" and stopped is not None:
            ax.axvline(stopped["epoch"] + 1, color="C3", ls="--", label="diverged")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        if key == "loss":
            positive = np.asarray([v for v in list(train) + list(val or []) if np.isfinite(v)])
            if positive.size and positive.min() > 0 and positive.max() / positive.min() > 30:
                ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
