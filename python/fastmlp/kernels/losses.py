"""Loss kernels: (loss as a Python float, gradient with respect to the first argument).

Rows (softmax_cross_entropy) or elements (mse) are split into fixed-size chunks whose partial
losses are added in chunk order in double, so results are bitwise identical for any thread
count.
"""
from __future__ import annotations

import numpy as np

from .. import _core
from .. import _validate as v


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """logits (B, C) float32, integer labels (B,) in [0, C) -> (loss, dlogits (B, C)).
    The log-softmax, the loss and its gradient come from one pass per row."""
    return _softmax_cross_entropy(_core, logits, labels)


def _softmax_cross_entropy(core, logits, labels):
    """softmax_cross_entropy on `core` (fastmlp._core, or the CUDA adapter of fastmlp.cuda): the
    argument checks shared by both backends, then the call."""
    logits = v.float_array(logits, "logits", 2)
    labels = v.labels_array(labels, "labels", logits.shape[0], logits.shape[1])
    return core.softmax_cross_entropy(logits, labels)


def mse(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """pred and target of one shape, 1-D or 2-D -> (mean squared error, dpred)."""
    return _mse(_core, pred, target)


def _mse(core, pred, target):
    """mse on `core` (fastmlp._core, or the CUDA adapter of fastmlp.cuda): the
    argument checks shared by both backends, then the call."""
    pred = v.float_array(pred, "pred")
    if pred.ndim not in (1, 2):
        raise ValueError(f"pred: expected a 1-D or 2-D array, got shape {pred.shape}")
    target = v.float_array(target, "target")
    v.check_shape(target, "target", pred.shape, "target has the shape of pred")
    return core.mse(pred, target)


def binary_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """logits and targets (values in [0, 1]) of one shape, 1-D or 2-D -> (loss, dlogits).
    Sigmoid fused; the loss is summed serially in element order, in double."""
    return _binary_cross_entropy(_core, logits, targets)


def _binary_cross_entropy(core, logits, targets):
    """binary_cross_entropy on `core` (fastmlp._core, or the CUDA adapter of fastmlp.cuda): the
    argument checks shared by both backends, then the call."""
    logits = v.float_array(logits, "logits")
    if logits.ndim not in (1, 2):
        raise ValueError(f"logits: expected a 1-D or 2-D array, got shape {logits.shape}")
    targets = v.float_array(targets, "targets")
    v.check_shape(targets, "targets", logits.shape, "targets has the shape of logits")
    if not ((targets >= 0) & (targets <= 1)).all():
        raise ValueError("targets: expected values in [0, 1]")
    return core.binary_cross_entropy(logits, targets)
