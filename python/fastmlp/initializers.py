"""Weight initializers: a table of named rules that each draw a (fan_in, fan_out) float32 matrix.

The layout is the package's ``W[in, out]``: ``fan_in`` rows (inputs of the layer), ``fan_out``
columns (its units). Every draw comes from the ``np.random.Generator`` passed in, so a seeded
generator gives the same weights on every machine.

Rules (``scale`` is the optional fourth argument of :func:`initialize`):

==================  ===============================================  ==========================
name                distribution                                     ``scale`` (default)
==================  ===============================================  ==========================
zeros               all 0                                            not accepted
constant            all ``scale``                                    the value (0.0)
normal              N(0, scale^2)                                    std (0.05)
uniform             U(-scale, scale)                                 limit (0.05)
truncated_normal    N(0, scale^2), values beyond 2 std redrawn       std (0.05)
fan_in              N(0, 1/fan_in), the seeds' rule                  variance factor (1.0)
glorot_normal       N(0, 2/(fan_in+fan_out))                         variance factor (1.0)
glorot_uniform      U(-l, l), l = sqrt(6/(fan_in+fan_out))           variance factor (1.0)
he_normal           N(0, 2/fan_in)                                   variance factor (1.0)
he_uniform          U(-l, l), l = sqrt(6/fan_in)                     variance factor (1.0)
lecun_normal        N(0, 1/fan_in)                                   variance factor (1.0)
lecun_uniform       U(-l, l), l = sqrt(3/fan_in)                     variance factor (1.0)
==================  ===============================================  ==========================

``fan_in`` is the seeds' rule (TensorFlow tutorial, after Nielsen's *Neural Networks and Deep
Learning*): weights N(0, 1) divided by sqrt(n_in), so the pre-activation keeps unit variance
whatever the width. It draws the same distribution as ``lecun_normal``; both names are kept
because users arrive with either. Aliases: ``xavier_*`` = ``glorot_*`` (Glorot & Bengio 2010),
``kaiming_*`` = ``he_*`` (He et al. 2015).

Variance scaling follows Keras' ``VarianceScaling(scale=...)``: for the last seven rules a given
``scale`` multiplies the variance (std by sqrt(scale), uniform limit by sqrt(scale)), so
``he_normal`` with ``scale=0.5`` equals ``lecun_normal``.

One deliberate difference from Keras: the ``*_normal`` variance-scaling rules draw **plain**
normals, as in the papers, PyTorch's ``kaiming_normal_``/``xavier_normal_`` and the seeds'
``np.random.randn``; Keras draws a normal truncated at 2 std and rescaled by 1/0.8796. The
variance is the same; only the tails differ. Use ``truncated_normal`` for a truncated draw.

Default rule (:func:`default_init`), from the activation that follows the layer:

* ``he_normal`` for relu, leaky_relu, elu, gelu: He et al. 2015 derive variance 2/fan_in for
  rectifiers, which zero about half of their inputs;
* ``lecun_normal`` for selu: Klambauer et al. 2017 require it for self-normalisation;
* ``glorot_uniform`` otherwise (identity, sigmoid, tanh, softmax): the Keras default for
  ``Dense``, derived by Glorot & Bengio 2010 for symmetric, near-linear-at-0 activations.
"""
from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np

from ._validate import ACTIVATIONS as _LAYER_ACTIVATIONS
from ._validate import integer
from ._validate import real as _real

INITIALIZERS = ("zeros", "constant", "normal", "uniform", "truncated_normal", "fan_in",
                "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal",
                "lecun_uniform")
ALIASES = {"xavier_normal": "glorot_normal", "xavier_uniform": "glorot_uniform",
           "kaiming_normal": "he_normal", "kaiming_uniform": "he_uniform"}

# Activations default_init knows: the layer activations plus softmax (output layers).
ACTIVATIONS = _LAYER_ACTIVATIONS + ("softmax",)

InitFn = Callable[[int, int, np.random.Generator], np.ndarray]
Init = Union[str, InitFn]

# Variance-scaling rules: (fan mode, distribution, variance numerator before `scale`).
#   fan "in": variance = k / fan_in;  fan "avg": variance = k / ((fan_in + fan_out) / 2).
# glorot: 2/(fan_in+fan_out) = 1/avg;  he: 2/fan_in;  lecun, fan_in: 1/fan_in.
# A uniform U(-l, l) has variance l^2/3, hence l = sqrt(3 * variance).
_VARIANCE_SCALING = {
    "fan_in": ("in", "normal", 1.0),
    "glorot_normal": ("avg", "normal", 1.0),
    "glorot_uniform": ("avg", "uniform", 1.0),
    "he_normal": ("in", "normal", 2.0),
    "he_uniform": ("in", "uniform", 2.0),
    "lecun_normal": ("in", "normal", 1.0),
    "lecun_uniform": ("in", "uniform", 1.0),
}
_DEFAULT_SCALE = {"constant": 0.0, "normal": 0.05, "uniform": 0.05, "truncated_normal": 0.05}


def canonical_init(name, *, argname: str = "init") -> str:
    """The canonical name of an initializer name or alias: ``"kaiming_normal"`` -> ``"he_normal"``.

    ``argname`` is the argument named in error messages (the trainer may pass e.g.
    ``"init"`` or ``"layers[2].init"``).
    """
    if not isinstance(name, str):
        raise TypeError(f"{argname}: expected an initializer name (str) or a callable "
                        f"init(fan_in, fan_out, rng), got {type(name).__name__} {name!r}")
    if name in INITIALIZERS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    accepted = ", ".join(INITIALIZERS + tuple(ALIASES))
    raise ValueError(f"{argname}: unknown initializer {name!r}; expected one of {accepted}")


def default_init(activation) -> str:
    """The initializer used when none is given, chosen from the layer's activation.

    he_normal for relu, leaky_relu, elu, gelu; lecun_normal for selu; glorot_uniform for identity,
    sigmoid, tanh and softmax (see the module docstring for the sources).
    """
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {', '.join(ACTIVATIONS)}, "
                         f"got {activation!r}")
    if activation in ("relu", "leaky_relu", "elu", "gelu"):
        return "he_normal"
    if activation == "selu":
        return "lecun_normal"
    return "glorot_uniform"


def _fan(value, name: str) -> int:
    return integer(value, name, low=1)


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}; "
                        f"use np.random.default_rng(seed)")
    return rng


def _truncated_normal(rng: np.random.Generator, std: float, shape: tuple) -> np.ndarray:
    """N(0, std^2) with every value beyond 2 std redrawn (the TF/Keras truncated_normal rule).

    About 4.6% of draws are redrawn per round, so a few rounds finish any matrix.
    """
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out * std


def _from_callable(fn: InitFn, fan_in: int, fan_out: int, rng: np.random.Generator,
                   argname: str) -> np.ndarray:
    got = fn(fan_in, fan_out, rng)
    what = f"{argname}: the callable {getattr(fn, '__name__', repr(fn))}(fan_in, fan_out, rng)"
    if not isinstance(got, np.ndarray):
        raise TypeError(f"{what} must return a numpy array, got {type(got).__name__}")
    if got.dtype.kind not in "fiu":
        raise TypeError(f"{what} must return real numbers, got dtype {got.dtype}")
    if got.shape != (fan_in, fan_out):
        raise ValueError(f"{what} must return shape (fan_in, fan_out) = ({fan_in}, {fan_out}), "
                         f"got {got.shape}; weights are laid out W[in, out]")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        out = np.ascontiguousarray(got, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{what} returned non-finite values (NaN or inf, possibly after the "
                         f"cast to float32)")
    if out is got:  # never alias the caller's array: the trainer updates weights in place
        out = out.copy()
    return out


def initialize(name: Init, fan_in: int, fan_out: int, rng: np.random.Generator,
               scale: float | None = None, *, argname: str = "init") -> np.ndarray:
    """Draws a (fan_in, fan_out) float32 weight matrix with the rule ``name``.

    name:  an initializer name or alias (see the module docstring for each rule and what
           ``scale`` means for it), or a callable ``init(fan_in, fan_out, rng) -> array`` whose
           result is checked for shape (fan_in, fan_out) and finiteness, then cast to float32.
    rng:   a ``np.random.Generator``; the only source of randomness.
    scale: None for the rule's default. For ``constant`` the value; for ``normal`` and
           ``truncated_normal`` the std; for ``uniform`` the limit; for the variance-scaling
           rules a factor on the variance (Keras ``VarianceScaling(scale=...)``).
           ``zeros`` and callables take no scale.
    Returns a new C-contiguous float32 array of shape (fan_in, fan_out).
    """
    fan_in = _fan(fan_in, "fan_in")
    fan_out = _fan(fan_out, "fan_out")
    rng = _check_rng(rng)
    if callable(name):
        if scale is not None:
            raise ValueError(f"scale: a callable {argname} takes no scale, got {scale!r}; "
                             f"pass scale=None and scale inside the callable")
        return _from_callable(name, fan_in, fan_out, rng, argname)
    name = canonical_init(name, argname=argname)
    shape = (fan_in, fan_out)

    if name == "zeros":
        if scale is not None:
            raise ValueError(f"scale: {argname}='zeros' takes no scale, got {scale!r}; pass "
                             f"scale=None, or use {argname}='constant' with scale=<value>")
        return np.zeros(shape, dtype=np.float32)
    if name == "constant":
        value = _DEFAULT_SCALE[name] if scale is None else _real(scale, "scale")
        return np.full(shape, value, dtype=np.float32)
    if name in _DEFAULT_SCALE:
        s = _DEFAULT_SCALE[name] if scale is None else _real(scale, "scale", low=0.0,
                                                             low_open=True)
        if name == "normal":
            w = rng.standard_normal(shape) * s
        elif name == "uniform":
            w = rng.uniform(-s, s, shape)
        else:
            w = _truncated_normal(rng, s, shape)
        return w.astype(np.float32)

    fan_mode, dist, k = _VARIANCE_SCALING[name]
    factor = 1.0 if scale is None else _real(scale, "scale", low=0.0, low_open=True)
    fan = fan_in if fan_mode == "in" else (fan_in + fan_out) / 2.0
    variance = factor * k / fan
    if dist == "normal":
        w = rng.standard_normal(shape) * math.sqrt(variance)
    else:
        limit = math.sqrt(3.0 * variance)
        w = rng.uniform(-limit, limit, shape)
    return w.astype(np.float32)
