"""Batch normalisation over the batch axis: x (B, F), gamma/beta/running stats (F,) -> y (B, F).

Training mode normalises with the batch statistics (biased variance, two-pass) and updates the
running statistics in place with the Keras convention, running = momentum * running +
(1 - momentum) * batch, using the unbiased variance var * B / (B - 1). Inference mode normalises
with the running statistics and leaves them untouched.
"""
from __future__ import annotations

import numpy as np


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      running_mean: np.ndarray, running_var: np.ndarray, training: bool = True,
                      momentum: float = 0.9, eps: float = 1e-5
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (y, mean, inv_std), the last two of shape (F,), kept for batchnorm_backward.

    y = gamma * (x - mean) * inv_std + beta with inv_std = 1 / sqrt(var + eps).
    """
    if training:
        B = x.shape[0]
        if B < 2:
            raise ValueError("x: batch norm in training mode needs a batch of at least 2 rows "
                             "(the variance of one row is undefined); use training=False")
        mean = x.mean(axis=0)
        var = ((x - mean) ** 2).mean(axis=0)  # two-pass: no cancellation from E[x^2] - E[x]^2
        inv_std = 1 / np.sqrt(var + x.dtype.type(eps))
        running_mean *= momentum
        running_mean += (1 - momentum) * mean
        running_var *= momentum
        running_var += (1 - momentum) * (var * (B / (B - 1)))
    else:
        mean = running_mean.copy()
        inv_std = 1 / np.sqrt(running_var + running_var.dtype.type(eps))
    y = gamma * (x - mean) * inv_std + beta
    return y, mean, inv_std


def batchnorm_backward(dy: np.ndarray, x: np.ndarray, gamma: np.ndarray, mean: np.ndarray,
                       inv_std: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of training-mode batch norm given dy = dL/dy: returns (dx, dgamma, dbeta).

    mean and inv_std are the batch statistics returned by batchnorm_forward; the batch
    statistics depend on x, which gives the two correction terms in dx.
    """
    B = x.shape[0]
    xhat = (x - mean) * inv_std
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    dx = gamma * inv_std / B * (B * dy - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta
