"""Losses, each returning (loss, gradient of the loss with respect to its first argument).

The loss is a Python float averaged over the batch (softmax_cross_entropy) or over all elements
(mse), so the gradient carries the matching 1/B or 1/N factor.
"""
from __future__ import annotations

import numpy as np


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """logits (B, C), integer labels (B,) in [0, C) -> (loss, dlogits (B, C)).

    loss = mean over rows of -log softmax(logits)[label]; dlogits = (softmax - onehot) / B.
    Subtracting the row max before exp keeps it finite for any finite logits.
    """
    B = logits.shape[0]
    rows = np.arange(B)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    log_p = z - np.log(s)
    loss = -float(log_p[rows, labels].astype(np.float64).mean())
    dlogits = e / s
    dlogits[rows, labels] -= 1
    dlogits /= B
    return loss, dlogits


def mse(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """pred and target of one shape (N elements) -> (mean of (pred - target)^2, dpred)."""
    d = pred - target
    N = d.size
    return float(np.mean(d * d, dtype=np.float64)), 2 * d / N


def binary_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """logits and targets in [0, 1] of one shape (N elements) -> (loss, dlogits).

    Sigmoid fused, in the stable form of tf.nn.sigmoid_cross_entropy_with_logits:
    loss = mean of max(z, 0) - z * t + log1p(exp(-|z|)); dlogits = (sigmoid(z) - t) / N.
    """
    z, t = logits, targets
    per = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    # sigmoid without overflow: exp of a non-positive number only.
    e = np.exp(-np.abs(z))
    sig = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return float(np.mean(per, dtype=np.float64)), (sig - t) / z.size
