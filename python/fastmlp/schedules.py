"""Learning-rate schedules: small callables from the global step to a learning rate.

``step`` is 0-based and counts optimizer updates already done, so the first update uses
``schedule(0)``. Every schedule returns a Python float >= 0.

* ``Constant(lr)``: lr.
* ``ExponentialDecay`` (TF1 ``tf.train.exponential_decay``):
  initial_lr * decay_rate ** (step / decay_steps); with ``staircase=True`` the exponent is
  floor(step / decay_steps).
* ``StepDecay`` (PyTorch ``StepLR``, counted in steps, not epochs):
  initial_lr * gamma ** (step // step_size).
* ``CosineDecay`` (Keras ``CosineDecay``): t = min(step, decay_steps) / decay_steps,
  initial_lr * ((1 - alpha) * 0.5 * (1 + cos(pi * t)) + alpha).
* ``Warmup(after, warmup_steps)``: target * (step + 1) / warmup_steps while
  step < warmup_steps, with target = after(0); then after(step - warmup_steps).

:func:`as_schedule` turns what a user passes as ``lr`` into a schedule: a number becomes
:class:`Constant`, a :class:`Schedule` is returned as is, and any other callable of the step is
wrapped so that each value it returns is checked (finite, >= 0) when it is used.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Union

import numpy as np

from ._validate import F32_MAX
from ._validate import integer as _integer
from ._validate import real as _real

LearningRate = Union[float, "Schedule", Callable[[int], float]]


def _positive_int(value, name: str) -> int:
    return _integer(value, name, low=1, what="a number of steps")


def _check_step(step) -> int:
    return _integer(step, "step", low=0, what="optimizer updates done")


class Schedule:
    """Base class: subclasses implement ``_lr(step: int) -> float`` and list ``_fields``."""

    _fields: tuple = ()

    def __call__(self, step: int) -> float:
        return float(self._lr(_check_step(step)))

    def _lr(self, step: int) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """lr(step) = lr."""

    _fields = ("lr",)

    def __init__(self, lr: float):
        self.lr = _real(lr, "lr", low=0.0, f32=True)  # the engine steps with float32 lr

    def _lr(self, step: int) -> float:
        return self.lr


class ExponentialDecay(Schedule):
    """lr = initial_lr * decay_rate ** (step / decay_steps), TF1's ``tf.train.exponential_decay``.

    With ``staircase=True`` the exponent is ``step // decay_steps``, so the rate drops by
    ``decay_rate`` at steps decay_steps, 2*decay_steps, ... and is flat in between.
    initial_lr >= 0; decay_steps a positive integer; 0 < decay_rate <= 1 (a rate above 1 would
    grow the learning rate without bound, most likely a typo for its inverse).
    """

    _fields = ("initial_lr", "decay_steps", "decay_rate", "staircase")

    def __init__(self, initial_lr: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False):
        self.initial_lr = _real(initial_lr, "initial_lr", low=0.0, f32=True)
        self.decay_steps = _positive_int(decay_steps, "decay_steps")
        self.decay_rate = _real(decay_rate, "decay_rate", low=0.0, low_open=True, high=1.0)
        if not isinstance(staircase, (bool, np.bool_)):
            raise TypeError(f"staircase: expected True or False, got {staircase!r}")
        self.staircase = bool(staircase)

    def _lr(self, step: int) -> float:
        p = step // self.decay_steps if self.staircase else step / self.decay_steps
        return self.initial_lr * self.decay_rate ** p


class StepDecay(Schedule):
    """lr = initial_lr * gamma ** (step // step_size), PyTorch's ``StepLR`` counted in steps.

    initial_lr >= 0; step_size a positive integer; 0 < gamma <= 1.
    """

    _fields = ("initial_lr", "step_size", "gamma")

    def __init__(self, initial_lr: float, step_size: int, gamma: float = 0.1):
        self.initial_lr = _real(initial_lr, "initial_lr", low=0.0, f32=True)
        self.step_size = _positive_int(step_size, "step_size")
        self.gamma = _real(gamma, "gamma", low=0.0, low_open=True, high=1.0)

    def _lr(self, step: int) -> float:
        return self.initial_lr * self.gamma ** (step // self.step_size)


class CosineDecay(Schedule):
    """Keras ``CosineDecay`` (Loshchilov & Hutter 2017, without restarts or warm-up).

    t = min(step, decay_steps) / decay_steps
    lr = initial_lr * ((1 - alpha) * 0.5 * (1 + cos(pi * t)) + alpha)
    so lr(0) = initial_lr and lr = alpha * initial_lr from step decay_steps on.
    initial_lr >= 0; decay_steps a positive integer; 0 <= alpha <= 1.
    """

    _fields = ("initial_lr", "decay_steps", "alpha")

    def __init__(self, initial_lr: float, decay_steps: int, alpha: float = 0.0):
        self.initial_lr = _real(initial_lr, "initial_lr", low=0.0, f32=True)
        self.decay_steps = _positive_int(decay_steps, "decay_steps")
        self.alpha = _real(alpha, "alpha", low=0.0, high=1.0)

    def _lr(self, step: int) -> float:
        t = min(step, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * t))
        return self.initial_lr * ((1.0 - self.alpha) * cosine + self.alpha)


class Warmup(Schedule):
    """Linear warm-up into another schedule.

    For step < warmup_steps: lr = target * (step + 1) / warmup_steps, with target = after(0),
    so the first update already moves (target / warmup_steps, not 0) and the last warm-up step
    reaches target. From step warmup_steps on: lr = after(step - warmup_steps), i.e. ``after``
    starts its own clock when the warm-up ends. ``after`` is a number or anything
    :func:`as_schedule` accepts; warmup_steps a positive integer.
    """

    _fields = ("after", "warmup_steps")

    def __init__(self, after: LearningRate, warmup_steps: int):
        self.after = as_schedule(after, argname="after")
        self.warmup_steps = _positive_int(warmup_steps, "warmup_steps")

    def _lr(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.after(0) * (step + 1) / self.warmup_steps
        return self.after(step - self.warmup_steps)

    def __repr__(self) -> str:
        return f"Warmup(after={self.after!r}, warmup_steps={self.warmup_steps})"


class FromCallable(Schedule):
    """Wraps a user function of the step; each value it returns must be a finite real >= 0."""

    def __init__(self, fn: Callable[[int], float], argname: str = "lr"):
        if not callable(fn):
            raise TypeError(f"{argname}: expected a callable of the step, got "
                            f"{type(fn).__name__}")
        self.fn = fn
        self.argname = argname

    def _lr(self, step: int) -> float:
        v = self.fn(step)
        name = getattr(self.fn, "__name__", "the callable")
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise ValueError(f"{self.argname}: {name}({step}) returned {type(v).__name__} "
                             f"{v!r}; a learning-rate schedule must return a finite float >= 0")
        v = float(v)
        if not math.isfinite(v) or v < 0.0 or v > F32_MAX:  # beyond F32_MAX: Inf in float32
            raise ValueError(f"{self.argname}: {name}({step}) returned {v}; a learning-rate "
                             f"schedule must return a finite float >= 0 (within float32's "
                             f"range)")
        return v

    def __repr__(self) -> str:
        return f"FromCallable({getattr(self.fn, '__name__', repr(self.fn))})"


def as_schedule(lr: LearningRate, *, argname: str = "lr") -> Schedule:
    """The schedule for a user's ``lr``: a number -> :class:`Constant`; a :class:`Schedule` ->
    itself; another callable ``f(step) -> float`` -> :class:`FromCallable` (values checked
    lazily, at each call: finite and >= 0, else ValueError naming ``argname`` and the step).

    ``argname`` is the argument named in error messages (``"lr"`` unless the caller says).
    """
    if isinstance(lr, Schedule):
        return lr
    if isinstance(lr, numbers.Real) and not isinstance(lr, (bool, np.bool_)):
        return Constant(_real(lr, argname, low=0.0, f32=True))
    if callable(lr):
        return FromCallable(lr, argname)
    raise TypeError(f"{argname}: expected a learning rate (float >= 0), a schedule such as "
                    f"fastmlp.schedules.ExponentialDecay(...), or a callable step -> float; got "
                    f"{type(lr).__name__} {lr!r}")
