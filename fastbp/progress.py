"""What ``fit`` prints while it trains.

- ``verbose=0``: nothing.
- ``verbose=2``: one line per epoch: ``Epoch 3/20 - 0.52s - loss: 0.4123 - val_loss: ...``.
- ``verbose=1``: in a terminal (or a Jupyter notebook), a live line redrawn with a carriage
  return at most ``REFRESH_PER_SECOND`` times a second::

      Epoch 3/20 [=========>..........] 140/313 - 61,204 samples/s - loss: 0.4123 - ETA 0.1s

  replaced at the end of the epoch by its summary line (as ``verbose=2``, plus the
  throughput). When the output is not a terminal (a CI log, a file, a pipe) only the summary
  lines are printed: no carriage returns.

The training loop calls ``update`` between chunks of batches (each chunk is one C call), never
per sample; drawing is skipped unless a tenth of a second has passed, so a fast epoch costs a
few ``perf_counter`` calls.
"""
import shutil
import sys
import time

REFRESH_PER_SECOND = 10
BAR_WIDTH = 20


def make(verbose, epochs, n_samples, batch_size, stream=None, live=None, clock=None):
    """The progress display for ``fit(verbose=...)`` on ``stream`` (default ``sys.stdout``).

    ``live`` forces (True) or forbids (False) the redrawn line; by default it is drawn when the
    stream is a terminal or the code runs in a Jupyter kernel."""
    if verbose == 0:
        return Silent()
    stream = sys.stdout if stream is None else stream
    if live is None:
        live = verbose == 1 and is_interactive(stream)
    if live:
        return ProgressBar(epochs, n_samples, batch_size, stream, clock or time.perf_counter)
    return EpochLines(epochs, n_samples, batch_size, stream, verbose)


def is_interactive(stream):
    """True when carriage returns redraw a line on ``stream``: a terminal, or a Jupyter
    kernel's output (which is not a TTY but renders ``\\r``)."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError, OSError):
        return False
    return "ipykernel" in sys.modules and type(stream).__module__.startswith("ipykernel")


def format_logs(logs):
    return " - ".join(f"{key}: {value:.4g}" if key == "lr" else f"{key}: {value:.4f}"
                      for key, value in logs.items())


def format_seconds(seconds):
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}:{seconds:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


class Silent:
    """verbose=0: every hook does nothing."""

    def epoch_begin(self, epoch):
        pass

    def update(self, samples_done, running_loss):
        pass

    def epoch_end(self, epoch, logs, seconds, samples_done, train_seconds=None):
        pass

    def message(self, text):
        pass

    def close(self):
        pass


class EpochLines(Silent):
    """One summary line per epoch (verbose=2, or verbose=1 when the output is not a
    terminal)."""

    def __init__(self, epochs, n_samples, batch_size, stream, verbose):
        self.epochs, self.n_samples, self.batch_size = epochs, n_samples, batch_size
        self.stream, self.verbose = stream, verbose

    def summary(self, epoch, logs, seconds, samples_done, train_seconds=None):
        """``seconds``: the whole epoch; ``train_seconds``: its training part (without the
        metrics and validation passes), which the throughput is computed from."""
        parts = [f"Epoch {epoch + 1}/{self.epochs}", f"{seconds:.2f}s"]
        train_seconds = seconds if train_seconds is None else train_seconds
        if self.verbose == 1 and train_seconds > 0:
            parts.append(f"{samples_done / train_seconds:,.0f} samples/s")
        if logs:
            parts.append(format_logs(logs))
        return " - ".join(parts)

    def epoch_end(self, epoch, logs, seconds, samples_done, train_seconds=None):
        self.stream.write(self.summary(epoch, logs, seconds, samples_done, train_seconds) + "\n")
        self.stream.flush()

    def message(self, text):
        self.stream.write(text + "\n")
        self.stream.flush()


class ProgressBar(EpochLines):
    """verbose=1 in a terminal: a line redrawn in place (``\\r``) at most
    ``REFRESH_PER_SECOND`` times a second with the batches done, samples per second, the
    running mean loss of the epoch and the time left; its summary line replaces it at the end
    of the epoch."""

    def __init__(self, epochs, n_samples, batch_size, stream, clock=time.perf_counter):
        super().__init__(epochs, n_samples, batch_size, stream, verbose=1)
        self.clock = clock
        self.n_batches = -(-n_samples // batch_size)
        self.interval = 1.0 / REFRESH_PER_SECOND
        self.drawn = 0          # length of the line on screen (0: none)
        self.renders = 0        # redraws so far (for tests)
        self.started = self.last = 0.0
        self.epoch = 0

    def _width(self):
        return max(40, shutil.get_terminal_size((100, 24)).columns - 1)

    def _draw(self, text):
        text = text[:self._width()]
        pad = " " * max(0, self.drawn - len(text))
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self.drawn = len(text)
        self.renders += 1

    def _clear(self):
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.drawn = 0

    def line(self, samples_done, running_loss, now):
        batches = min(self.n_batches, -(-samples_done // self.batch_size))
        filled = BAR_WIDTH * samples_done // max(self.n_samples, 1)
        bar = "=" * filled + (">" if filled < BAR_WIDTH else "") + "." * (BAR_WIDTH - filled - 1)
        parts = [f"Epoch {self.epoch + 1}/{self.epochs} [{bar[:BAR_WIDTH]}] "
                 f"{batches}/{self.n_batches}"]
        elapsed = now - self.started
        if samples_done and elapsed > 0:
            rate = samples_done / elapsed
            parts.append(f"{rate:,.0f} samples/s")
            if running_loss is not None:
                parts.append(f"loss: {running_loss:.4f}")
            parts.append("ETA " + format_seconds((self.n_samples - samples_done) / rate))
        return " - ".join(parts)

    def epoch_begin(self, epoch):
        self.epoch = epoch
        self.started = self.last = self.clock()
        self._draw(self.line(0, None, self.started))

    def update(self, samples_done, running_loss):
        now = self.clock()
        if now - self.last < self.interval:
            return
        self.last = now
        self._draw(self.line(samples_done, running_loss, now))

    def epoch_end(self, epoch, logs, seconds, samples_done, train_seconds=None):
        self._clear()  # the summary may be longer than the terminal: it wraps, it is not redrawn
        self.stream.write(self.summary(epoch, logs, seconds, samples_done, train_seconds) + "\n")
        self.stream.flush()

    def message(self, text):
        self._clear()
        super().message(text)

    def close(self):
        """End a line left open (an interrupted epoch) so later output starts on its own."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = 0
