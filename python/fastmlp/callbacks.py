"""Training callbacks, after Keras' conventions.

The trainer drives callbacks through a :class:`CallbackList`:

    cbs = CallbackList(callbacks, model, params={"epochs": E, "steps": B})
    cbs.on_train_begin()
    for epoch in range(E):              # 0-based, as in Keras
        cbs.on_epoch_begin(epoch)
        ...                             # B batches; may call progress_bar.update(b, B, logs)
        logs = {"loss": ..., "accuracy": ..., "val_loss": ..., "lr": base_lr}
        if cbs.on_epoch_end(epoch, logs):   # True when a callback set stop_training
            break
    cbs.on_train_end()

Stopping: a callback asks training to stop by setting ``self.stop_training = True`` during
``on_epoch_end``; the trainer reads the flags right after every ``on_epoch_end`` (through the
return value of :meth:`CallbackList.on_epoch_end`) and finishes the current epoch's hooks, then
``on_train_end``. :meth:`CallbackList.on_train_begin` clears the flags.

The model contract: :class:`EarlyStopping` with ``restore_best_weights`` uses exactly
``model.get_weights() -> list of numpy arrays`` (copies) and ``model.set_weights(list)``.
:class:`ReduceLROnPlateau` never touches the model: it keeps ``scale``, a factor the trainer
multiplies into every scheduled learning rate, and reads the rate in effect (schedule times
its scale) from ``logs["lr"]``.
"""
from __future__ import annotations

import io
import math
import numbers
import sys
import time
from typing import Callable, Iterable

import numpy as np

from ._validate import integer as _integer
from ._validate import real as _real


def _nonneg_int(value, name: str) -> int:
    return _integer(value, name, low=0, what="epochs")


def _bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def _mode(mode, monitor: str) -> str:
    """'min' or 'max'; 'auto' is max for names containing 'acc' (accuracy), else min (Keras)."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


def _monitor_name(monitor) -> str:
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"monitor: expected the name of a logged metric such as 'val_loss', "
                        f"got {monitor!r}")
    return monitor


def _monitored(logs, monitor: str, who: str, epoch: int) -> float:
    if not logs or monitor not in logs:
        keys = ", ".join(sorted(logs)) if logs else "(none)"
        raise ValueError(f"monitor: {who} monitors {monitor!r}, which is not in the logs of epoch "
                         f"{epoch}; available keys: {keys}. Pass validation data for 'val_*' "
                         f"metrics, or choose one of the available keys")
    return float(logs[monitor])


class Callback:
    """Base class: override the hooks you need; each does nothing by default.

    Attributes set by the trainer: ``model`` (via :meth:`set_model`) and ``params`` (via
    :meth:`set_params`; ``"epochs"`` and ``"steps"`` = batches per epoch when known).
    ``epoch`` is 0-based; ``logs`` maps metric names to floats for the epoch just finished.
    Set ``self.stop_training = True`` in ``on_epoch_end`` to ask the trainer to stop after it.
    """

    def __init__(self):
        self.model = None
        self.params: dict = {}
        self.stop_training = False

    def set_model(self, model) -> None:
        """Called once before training with the fastmlp.MLP being trained."""
        self.model = model

    def set_params(self, params: dict) -> None:
        """Called once before training with the run's settings (epochs, steps, batch_size,
        loss, optimizer, samples)."""
        self.params = dict(params)

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Called before the first epoch."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Called before epoch `epoch` (0-based)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Called after epoch `epoch` with its metrics (loss, accuracy, val_loss,
        val_accuracy, lr, grad_norm, time); set self.stop_training = True to stop."""

    def on_train_end(self, logs: dict | None = None) -> None:
        """Called once after the last epoch (also after early stopping or divergence)."""

    def on_finding(self, finding, step: int) -> None:
        """A gradient-health finding appeared at global step `step` (train(monitor=N) only;
        each kind is reported once per run). finding: fastmlp.diagnostics.Finding."""


class History(Callback):
    """Records the logs of every epoch: ``history[name]`` is the list of per-epoch values,
    ``epoch`` the list of epoch indices, ``params`` the trainer's parameters.

    ``on_train_begin`` clears ``epoch`` but keeps ``history`` (Keras does the same; a second
    ``fit`` appends to the lists). A metric that first appears at a later epoch gets a shorter
    list; check ``len(h.history[k])`` against ``len(h.epoch)`` if that can happen.
    """

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.epoch.append(int(epoch))
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has not improved for ``patience`` epochs (Keras rule).

    Improvement: current < best - min_delta (mode 'min') or current > best + min_delta ('max');
    'auto' picks max for names containing 'acc', else min. NaN never improves.
    Each epoch without improvement adds 1 to a counter that an improvement resets; training
    stops at the epoch where the counter reaches ``patience`` (so with patience=2 and the best
    at epoch 3, the stop comes at epoch 5; patience=0 acts as 1, as in Keras). With ``baseline``
    set, an improvement only resets the counter once it also beats the baseline, so a run that
    never beats it stops after ``patience`` epochs.

    Tracked: ``best`` (value), ``best_epoch``, ``stopped_epoch`` (0 when never stopped) and,
    with ``restore_best_weights``, a copy of the best epoch's weights taken through
    ``model.get_weights()``. ``on_train_end`` puts them back with ``model.set_weights`` whether
    training stopped early or ran out of epochs (older Keras restored only on an early stop,
    leaving the last epoch's weights otherwise).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = True,
                 baseline: float | None = None):
        super().__init__()
        self.monitor = _monitor_name(monitor)
        self.patience = _nonneg_int(patience, "patience")
        self.min_delta = _real(min_delta, "min_delta", low=0.0)
        self.mode = _mode(mode, self.monitor)
        self.restore_best_weights = _bool(restore_best_weights, "restore_best_weights")
        self.baseline = None if baseline is None else _real(baseline, "baseline")
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.wait = 0

    def _improves(self, value: float, reference: float) -> bool:
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def set_model(self, model) -> None:
        if self.restore_best_weights and not (callable(getattr(model, "get_weights", None))
                                              and callable(getattr(model, "set_weights", None))):
            raise TypeError(f"model: EarlyStopping(restore_best_weights=True) needs a model with "
                            f"get_weights() and set_weights(list), got {type(model).__name__}; "
                            f"pass restore_best_weights=False otherwise")
        super().set_model(model)

    def on_train_begin(self, logs=None) -> None:
        self._reset()

    def on_epoch_end(self, epoch, logs=None) -> None:
        current = _monitored(logs, self.monitor, "EarlyStopping", epoch)
        self.wait += 1
        if self._improves(current, self.best):
            self.best = current
            self.best_epoch = int(epoch)
            if self.restore_best_weights:
                if self.model is None:
                    raise RuntimeError("EarlyStopping(restore_best_weights=True) has no model; "
                                       "the trainer must call set_model(model) first")
                # get_weights() promises copies; copy again so a model that returns views
                # cannot change the saved best weights behind our back.
                self.best_weights = [np.array(w, copy=True) for w in self.model.get_weights()]
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
                return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = int(epoch)
            self.stop_training = True

    def on_train_end(self, logs=None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights([w.copy() for w in self.best_weights])

    def __repr__(self) -> str:
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"min_delta={self.min_delta!r}, mode={self.mode!r}, "
                f"restore_best_weights={self.restore_best_weights}, baseline={self.baseline!r})")


class ReduceLROnPlateau(Callback):
    """Divides the learning rate by 1/``factor`` when ``monitor`` plateaus (Keras rule).

    The callback never touches the model or the optimizer. It keeps ``self.scale`` (starting at
    1.0, kept across trainings like an optimizer's reduced rate) and the trainer uses
    ``schedule(step) * scale`` as the learning rate of every update. At each epoch end it reads
    the rate in effect at the end of that epoch from ``logs["lr"]`` (what History records) and
    divides its own scale back out to get the scheduled rate, written lr below.

    Improvement: current < best - min_delta (mode 'min') or current > best + min_delta ('max');
    'auto' picks max for names containing 'acc', else min. After ``patience`` epochs without
    improvement, if scale * lr > min_lr the scale becomes
    ``max(scale * factor, min_lr / lr)`` (never pushing the effective rate of that epoch
    below min_lr), then ``cooldown`` epochs pass before the counter runs again. A decaying
    schedule can still take the effective rate below min_lr later; min_lr only bounds this
    callback's reductions.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0,
                 mode: str = "auto"):
        super().__init__()
        self.monitor = _monitor_name(monitor)
        self.factor = _real(factor, "factor", low=0.0, high=1.0, low_open=True, high_open=True)
        self.patience = _nonneg_int(patience, "patience")
        self.min_delta = _real(min_delta, "min_delta", low=0.0)
        self.cooldown = _nonneg_int(cooldown, "cooldown")
        self.min_lr = _real(min_lr, "min_lr", low=0.0)
        self.mode = _mode(mode, self.monitor)
        self.scale = 1.0
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs=None) -> None:
        self._reset()

    def on_epoch_end(self, epoch, logs=None) -> None:
        current = _monitored(logs, self.monitor, "ReduceLROnPlateau", epoch)
        if "lr" not in logs:
            raise ValueError(f"logs: ReduceLROnPlateau reads logs['lr'] (the learning rate in "
                             f"effect), missing at epoch {epoch}; available keys: "
                             f"{', '.join(sorted(logs))}")
        base_lr = float(logs["lr"]) / self.scale  # the scheduled rate, before our scale
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        improved = (current < self.best - self.min_delta if self.mode == "min"
                    else current > self.best + self.min_delta)
        if improved:
            self.best = current
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience and self.scale * base_lr > self.min_lr:
                new = self.scale * self.factor
                if base_lr > 0.0:
                    new = max(new, self.min_lr / base_lr)
                self.scale = new
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def __repr__(self) -> str:
        return (f"ReduceLROnPlateau(monitor={self.monitor!r}, factor={self.factor!r}, "
                f"patience={self.patience}, min_delta={self.min_delta!r}, "
                f"cooldown={self.cooldown}, min_lr={self.min_lr!r}, mode={self.mode!r}, "
                f"scale={self.scale!r})")


def _format_value(v) -> str:
    v = float(v)
    if v != 0.0 and abs(v) < 1e-3:
        return f"{v:.3e}"
    return f"{v:.4f}"


class ProgressBar(Callback):
    """Keras-style progress for ``verbose=1``: one line per epoch on ``stream`` (default
    ``sys.stderr``, looked up at each write), e.g.

        Epoch 3/50  12/12 [==============================] 0.21s  loss 0.1234  val_loss 0.1500

    Every key of the epoch's logs is printed in order, 4 decimals (small values such as an lr
    of 1e-5 in scientific notation). ``params["epochs"]`` and ``params["steps"]`` (batches per
    epoch) fill in the totals when the trainer provides them.

    :meth:`update` redraws the current line with '\\r' during an epoch, but only when the
    stream is a terminal (``isatty()``) and at most once per ``min_interval`` seconds, so log
    files and pipes get only the final line of each epoch.
    """

    def __init__(self, stream: io.TextIOBase | None = None, width: int = 30,
                 min_interval: float = 0.1):
        super().__init__()
        if stream is not None and not callable(getattr(stream, "write", None)):
            raise TypeError(f"stream: expected a text stream with write(), got "
                            f"{type(stream).__name__}; use sys.stdout or an io.StringIO")
        if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
            raise ValueError(f"width: expected a positive integer (characters), got {width!r}")
        self._stream = stream
        self.width = int(width)
        self.min_interval = _real(min_interval, "min_interval", low=0.0)
        self._clock: Callable[[], float] = time.monotonic
        self._epoch = 0
        self._epoch_start: float | None = None
        self._last_draw = -math.inf
        self._drawn = 0          # length of the partial line on screen, 0 if none
        self._batches_total: int | None = None

    @property
    def stream(self):
        """Where the bar is drawn: the stream given to the constructor, else sys.stderr."""
        return sys.stderr if self._stream is None else self._stream

    def _is_tty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        try:
            return bool(isatty()) if callable(isatty) else False
        except ValueError:  # closed stream
            return False

    def on_train_begin(self, logs=None) -> None:
        self._epoch_start = self._clock()
        self._drawn = 0

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._epoch = int(epoch)
        self._epoch_start = self._clock()
        self._last_draw = -math.inf

    def _line(self, epoch: int, done: int | None, total: int | None, elapsed: float | None,
              logs: dict | None) -> str:
        epochs = self.params.get("epochs")
        parts = [f"Epoch {epoch + 1}/{epochs}" if epochs else f"Epoch {epoch + 1}"]
        if total:
            done = total if done is None else min(max(done, 0), total)
            filled = self.width * done // total
            bar = "=" * filled
            if filled < self.width:
                bar += ">" if done else "."
                bar += "." * (self.width - len(bar))
            parts.append(f"{done:{len(str(total))}d}/{total} [{bar}]"
                         + (f" {elapsed:.2f}s" if elapsed is not None else ""))
        elif elapsed is not None:
            parts.append(f"{elapsed:.2f}s")
        for k, v in (logs or {}).items():
            if k != "time":  # the bar already shows the epoch's elapsed time
                parts.append(f"{k} {_format_value(v)}")
        return "  ".join(parts)

    def update(self, batches_done: int, batches_total: int, logs: dict | None = None) -> None:
        """Redraws the running epoch's line (TTY only, throttled to one redraw per
        ``min_interval`` seconds); ``logs`` holds running averages such as {"loss": 0.3}."""
        self._batches_total = int(batches_total)
        if not self._is_tty():
            return
        now = self._clock()
        if now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        elapsed = None if self._epoch_start is None else now - self._epoch_start
        line = self._line(self._epoch, int(batches_done), int(batches_total), elapsed, logs)
        self.stream.write("\r" + line.ljust(self._drawn))
        self.stream.flush()
        self._drawn = len(line)

    def on_epoch_end(self, epoch, logs=None) -> None:
        now = self._clock()
        elapsed = None if self._epoch_start is None else now - self._epoch_start
        total = self.params.get("steps") or self._batches_total
        line = self._line(int(epoch), None, total, elapsed, logs)
        if self._drawn:
            line = "\r" + line.ljust(self._drawn)
        self.stream.write(line + "\n")
        self.stream.flush()
        self._drawn = 0
        # Without on_epoch_begin calls, the next epoch is timed from here.
        self._epoch = int(epoch) + 1
        self._epoch_start = now
        self._last_draw = -math.inf


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda e, logs:
    print(e, logs["loss"]))``. Signatures as the hooks: on_train_begin(logs),
    on_epoch_begin(epoch, logs), on_epoch_end(epoch, logs), on_train_end(logs).
    """

    def __init__(self, on_train_begin=None, on_epoch_begin=None, on_epoch_end=None,
                 on_train_end=None):
        super().__init__()
        for name, fn in (("on_train_begin", on_train_begin), ("on_epoch_begin", on_epoch_begin),
                         ("on_epoch_end", on_epoch_end), ("on_train_end", on_train_end)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name}: expected a function or None, got "
                                f"{type(fn).__name__} {fn!r}")
        self._fns = {"on_train_begin": on_train_begin, "on_epoch_begin": on_epoch_begin,
                     "on_epoch_end": on_epoch_end, "on_train_end": on_train_end}

    def on_train_begin(self, logs=None) -> None:
        if self._fns["on_train_begin"]:
            self._fns["on_train_begin"](logs)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        if self._fns["on_epoch_begin"]:
            self._fns["on_epoch_begin"](epoch, logs)

    def on_epoch_end(self, epoch, logs=None) -> None:
        if self._fns["on_epoch_end"]:
            self._fns["on_epoch_end"](epoch, logs)

    def on_train_end(self, logs=None) -> None:
        if self._fns["on_train_end"]:
            self._fns["on_train_end"](logs)


class CallbackList:
    """Calls each hook on every callback in order; used by the trainer.

    callbacks: a list or tuple of :class:`Callback` (or None for none); each gets
    ``set_model(model)`` and ``set_params(params)``. :meth:`on_epoch_end` returns True when
    any callback set ``stop_training`` (all callbacks still see that epoch's end first).
    """

    def __init__(self, callbacks: Iterable[Callback] | None, model, params: dict | None = None):
        if callbacks is None:
            callbacks = []
        if isinstance(callbacks, Callback):
            raise TypeError(f"callbacks: expected a list of Callback, got a single "
                            f"{type(callbacks).__name__}; pass [{type(callbacks).__name__}(...)]")
        if not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks: expected a list of Callback, got "
                            f"{type(callbacks).__name__}")
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, Callback):
                hint = ("; wrap a function with LambdaCallback(on_epoch_end=f)" if callable(cb)
                        else "")
                raise TypeError(f"callbacks[{i}]: expected a fastmlp.callbacks.Callback, got "
                                f"{type(cb).__name__}{hint}")
        self.callbacks = list(callbacks)
        self.model = model
        self.params = dict(params or {})
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(self.params)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Resets every callback's stop_training flag, then calls its on_train_begin."""
        for cb in self.callbacks:
            cb.stop_training = False
            cb.on_train_begin(logs)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Calls every callback's on_epoch_begin, in order."""
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> bool:
        """Calls every callback's on_epoch_end (all of them, even after one asks to stop);
        returns True when any asked to stop."""
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)
        return any(cb.stop_training for cb in self.callbacks)

    def on_train_end(self, logs: dict | None = None) -> None:
        """Calls every callback's on_train_end, in order."""
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_finding(self, finding, step: int) -> None:
        """Passes a gradient-health finding to every callback's on_finding."""
        for cb in self.callbacks:
            cb.on_finding(finding, step)
