"""train()'s data arguments checked and laid out for the C++ engine: the targets (int64 labels
or float32 rows), the per-row sample weights and the validation rows (validation_data, or the
last fraction of X with validation_split).
"""
from __future__ import annotations

import math

import numpy as np

from . import _validate as v
from .model import MLP


def as_array(y, name: str = "y"):
    """y, with a list or tuple made an array; a ragged one is refused naming the argument."""
    if isinstance(y, (list, tuple)):
        try:
            return np.asarray(y)
        except ValueError as e:  # NumPy's message does not name the argument
            raise ValueError(f"{name}: expected one label or one row of targets per sample, "
                             f"all rows of one length ({e})") from None
    return y


def targets(model: MLP, y, loss: str, n: int, name: str = "y") -> np.ndarray:
    """y as the engine wants it: int64 labels (n,) for cross_entropy, float32 (n, n_outputs)
    otherwise; checked for length, range and finiteness."""
    y = as_array(y, name)
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(y).__name__}")
    if y.shape[:1] != (n,):
        raise ValueError(f"{name}: expected {n} rows to match X, got shape {y.shape}")
    C = model.n_outputs
    if loss == "cross_entropy":
        if y.dtype.kind == "f":
            if not np.isfinite(y).all() or (y != np.round(y)).any():
                raise TypeError(f"{name}: cross_entropy takes integer class labels, got "
                                f"non-integral {y.dtype} values; pass labels 0..{C - 1}")
        elif y.dtype.kind not in "iu":
            raise TypeError(f"{name}: expected integer class labels, got dtype {y.dtype}")
        if y.ndim != 1:
            raise ValueError(f"{name}: cross_entropy takes a 1-D array of class labels, got "
                             f"shape {y.shape} (one-hot targets: use y.argmax(axis=1))")
        if y.min() < 0 or y.max() >= C:
            raise ValueError(f"{name}: labels must lie in [0, {C}) for a model with {C} "
                             f"outputs, got values in [{y.min()}, {y.max()}]")
        return np.ascontiguousarray(y, dtype=np.int64)
    if y.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected numeric targets, got dtype {y.dtype}")
    src = y.reshape(-1, 1) if (y.ndim == 1 and C == 1) else y
    arr = v.to_float32(src)  # a value beyond float32's range becomes Inf, reported below
    if arr.shape != (n, C):
        raise ValueError(f"{name}: expected shape ({n}, {C}) for a model with {C} outputs, "
                         f"got {y.shape}")
    if not np.isfinite(arr).all():
        raise v.nonfinite_error(name, arr, src)
    if loss == "binary_cross_entropy" and ((arr < 0).any() or (arr > 1).any()):
        raise ValueError(f"{name}: binary_cross_entropy targets must lie in [0, 1]")
    return np.ascontiguousarray(arr)


def _sample_weight(sample_weight, n: int):
    """None, or the weights as a float32 (n,) array, checked: finite, >= 0, not all zero."""
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"sample_weight: expected an array of {n} numbers ({e})") from None
    if w.dtype == object or not (np.issubdtype(w.dtype, np.number) or w.dtype == np.bool_) \
            or np.iscomplexobj(w):
        raise TypeError(f"sample_weight: expected real numbers, got dtype {w.dtype}")
    if w.shape != (n,):
        raise ValueError(f"sample_weight: expected shape ({n},) (one weight per row of X), "
                         f"got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight: expected finite values >= 0")
    w32 = v.to_float32(w)
    if not np.isfinite(w32).all():
        raise v.nonfinite_error("sample_weight", w32, w)
    w = w32
    if n and not w.any():
        raise ValueError("sample_weight: every weight is 0; nothing would be learned")
    return np.ascontiguousarray(w)


def _split_validation(X, y, validation_data, validation_split):
    if validation_data is not None and validation_split:
        raise ValueError("validation_data and validation_split: pass one or the other")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data: expected a pair (X_val, y_val)")
        return X, y, validation_data[0], validation_data[1]
    split = v.real(validation_split, "validation_split", low=0.0, high=1.0, high_open=True)
    if split == 0.0:
        return X, y, None, None
    # Keras: the last fraction of the rows, taken before any shuffling.
    n_val = int(math.floor(len(X) * split))
    if n_val < 1 or n_val >= len(X):
        raise ValueError(f"validation_split: {split} of {len(X)} rows leaves an empty "
                         f"training or validation set")
    return X[:-n_val], y[:-n_val], X[-n_val:], y[-n_val:]

