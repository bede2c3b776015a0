"""Argument checks shared by the public entry points.

Every message names the argument, what it got, what is accepted and, where there is one, the fix.
Conversions: read-only inputs that are float32 but non-contiguous or Fortran-ordered are copied
to C order (never misread). Arrays updated in place (parameters, optimizer state, running
statistics) must already be C-contiguous, writable float32: a silent copy would drop the update.
Other dtypes are rejected rather than cast, so a float64 pipeline never loses precision unnoticed.
(The model-level entry points, MLP.predict / train / evaluate / diagnose, do convert any real
dtype to float32; a finite value beyond float32's range is then refused with nonfinite_error.)
"""
from __future__ import annotations

import math
import numbers

import numpy as np

# The largest finite float32 (about 3.4e38): larger finite values become Inf when converted.
F32_MAX = float(np.finfo(np.float32).max)
ACTIVATIONS = ("identity", "relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh", "gelu")
# Default alpha per activation; None means the activation takes no alpha.
DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}


def _describe(a) -> str:
    if isinstance(a, np.ndarray):
        return f"array of dtype {a.dtype} and shape {a.shape}"
    return f"{type(a).__name__}"


def float_array(a, name: str, ndim: int | None = None, *, allow_empty: bool = False) -> np.ndarray:
    """A float32 array in C order (copied if it was strided), checked for ndim and size."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a float32 numpy array, got {_describe(a)}; "
                        f"use np.asarray({name}, dtype=np.float32)")
    if a.dtype != np.float32:
        raise TypeError(f"{name}: expected dtype float32, got {a.dtype}; "
                        f"use {name}.astype(np.float32)")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if a.size == 0 and not allow_empty:
        raise ValueError(f"{name}: expected a non-empty array, got shape {a.shape}")
    return np.ascontiguousarray(a)


def inplace_array(a, name: str, shape: tuple | None = None) -> np.ndarray:
    """An array the kernel updates in place: must be C-contiguous, writable float32 already."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float32:
        raise TypeError(f"{name}: expected a float32 numpy array (updated in place), got "
                        f"{_describe(a)}; create it with dtype=np.float32")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array (it is updated in place, so it "
                         f"cannot be copied); use np.ascontiguousarray once and keep that array")
    if not a.flags.writeable:
        raise ValueError(f"{name}: expected a writable array (it is updated in place)")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {a.shape}")
    return a


def check_shape(a: np.ndarray, name: str, shape: tuple, hint: str = "") -> None:
    if a.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {a.shape}" +
                         (f"; {hint}" if hint else ""))


def real(value, name: str, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False, f32: bool = False) -> float:
    """A finite real number within [low, high] (open ends where asked). With f32=True it must
    also stay finite, above an open low end and below an open high end, once the kernels round
    it to float32: a positive eps of 1e-46 is 0 in float32 and divides 0 by 0, a dropout rate of
    0.99999999 is 1 and scales the kept units by 1 / 0."""
    # Plain floats and ints skip the numbers.Real ABC check, the slow part on the per-step path
    # (type(True) is bool, so bools still take the full check and are rejected).
    if type(value) is not float and type(value) is not int and (
            isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name}: expected {'>' if low_open else '>='} {low}, got {v}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name}: expected {'<' if high_open else '<='} {high}, got {v}")
    if f32:
        if abs(v) > F32_MAX:
            raise ValueError(f"{name}: expected a value within float32's range (|value| <= "
                             f"{F32_MAX:.4g}), got {v}")
        if low is not None and low_open and float(np.float32(v)) <= low:
            raise ValueError(f"{name}: expected > {low} in float32 (the kernels compute in "
                             f"float32), got {v}, which rounds to {float(np.float32(v))}")
        if high is not None and high_open and float(np.float32(v)) >= high:
            raise ValueError(f"{name}: expected < {high} in float32 (the kernels compute in "
                             f"float32), got {v}, which rounds to {float(np.float32(v))}")
    return v


def integer(value, name: str, *, low: int = 0, what: str = "") -> int:
    """An integer >= low (0: "non-negative", 1: "positive"); `what` says what it counts."""
    kind = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")
    expected = f"{name}: expected {kind}" + (f" ({what})" if what else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{expected}, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{expected}, got {value}")
    return int(value)


def optional_real(value, name: str, **bounds) -> float | None:
    return None if value is None else real(value, name, **bounds)


def activation(name, alpha) -> tuple[str, float]:
    """Validates an activation name and resolves its alpha (None -> the default)."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {', '.join(ACTIVATIONS)}, got {name!r}")
    if alpha is None:
        return name, DEFAULT_ALPHA.get(name, 0.0)
    if name not in DEFAULT_ALPHA:
        raise ValueError(f"alpha: activation {name!r} takes no alpha, got {alpha!r}; "
                         f"pass alpha=None")
    return name, real(alpha, "alpha", low=0.0, f32=True)


def labels_array(labels, name: str, n: int, n_classes: int) -> np.ndarray:
    """Integer class labels in [0, n_classes), as a C-contiguous int64 array of length n."""
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"{name}: expected an integer numpy array, got {_describe(labels)}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer class labels, got dtype {labels.dtype}; "
                        f"use {name}.astype(np.int64) if they are whole numbers")
    if labels.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},), got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{name}: expected labels in [0, {n_classes}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    return np.ascontiguousarray(labels, dtype=np.int64)


def to_float32(a: np.ndarray) -> np.ndarray:
    """a (any real dtype) as a new float32 array, without NumPy's overflow warning: a finite
    value beyond float32's range becomes Inf here, for the caller's finiteness check to report
    with nonfinite_error (a warning alone would let the Inf through)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return a.astype(np.float32)


def _position(idx: tuple) -> str:
    if len(idx) == 2:
        return f"row {idx[0]}, column {idx[1]}"
    return f"index {idx[0]}" if len(idx) == 1 else f"index {idx}"


def nonfinite_error(name: str, converted: np.ndarray, original=None) -> ValueError:
    """The error for the first non-finite element of `converted` (which must have one): an
    overflow when the element of `original` (the array before the float32 conversion) at that
    place was finite, else NaN/Inf in the input."""
    idx = tuple(int(i) for i in np.argwhere(~np.isfinite(converted))[0])
    if original is not None:
        value = np.asarray(original)[idx]
        if np.isfinite(value):
            return ValueError(f"{name}: the value {float(value):g} at {_position(idx)} is beyond "
                              f"the float32 range (|x| <= {F32_MAX:.3g}) that fastmlp computes "
                              f"in; rescale {name} (e.g. standardise it)")
    return ValueError(f"{name}: contains NaN or Inf (first at {_position(idx)}); fill in or drop "
                      f"missing values first")


def seed(value, name: str = "seed"):
    """A seed for np.random.default_rng: None, an integer >= 0, or a NumPy Generator /
    SeedSequence / BitGenerator (passed through). NumPy's own errors do not name the argument."""
    if value is None or isinstance(value, (np.random.Generator, np.random.SeedSequence,
                                           np.random.BitGenerator)):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected None or an integer >= 0, got "
                        f"{type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name}: expected None or an integer >= 0, got {value}")
    return int(value)
