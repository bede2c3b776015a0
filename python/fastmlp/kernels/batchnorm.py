"""Batch normalisation kernels. x (B, F), gamma/beta/running stats (F,); row-major float32.

Column sums are taken in float over blocks of 32 rows and added across blocks in double, in a
fixed order (the forward pass splits the work by column blocks, the backward pass by row blocks
whose sums are combined in block order), so results are bitwise identical for any thread count.
"""
from __future__ import annotations

import numpy as np

from .. import _core
from .. import _validate as v


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      running_mean: np.ndarray, running_var: np.ndarray, training: bool = True,
                      momentum: float = 0.9, eps: float = 1e-5
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (y, mean, inv_std); in training mode updates running_mean/running_var in place
    (running = momentum * running + (1 - momentum) * batch, unbiased variance)."""
    return _batchnorm_forward(_core, x, gamma, beta, running_mean, running_var, training, momentum,
                              eps)


def _batchnorm_forward(core, x, gamma, beta, running_mean, running_var, training, momentum, eps):
    """batchnorm_forward on `core` (fastmlp._core, or the CUDA adapter of fastmlp.cuda): the
    argument checks shared by both backends, then the call."""
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training: expected True or False, got {training!r}")
    training = bool(training)
    momentum = v.real(momentum, "momentum", low=0.0, high=1.0)
    eps = v.real(eps, "eps", low=0.0, low_open=True, f32=True)
    x = v.float_array(x, "x", 2)
    F = x.shape[1]
    gamma = v.float_array(gamma, "gamma", 1)
    v.check_shape(gamma, "gamma", (F,), "one scale per feature (column of x)")
    beta = v.float_array(beta, "beta", 1)
    v.check_shape(beta, "beta", (F,), "one shift per feature (column of x)")
    running_mean = v.inplace_array(running_mean, "running_mean", (F,))
    running_var = v.inplace_array(running_var, "running_var", (F,))
    if not training and not (running_var >= 0).all():  # NaN fails the comparison too
        raise ValueError(f"running_var: inference mode normalises x with it, so it must hold "
                         f"variances (finite values >= 0), got values in "
                         f"[{running_var.min()}, {running_var.max()}]")
    if training and x.shape[0] < 2:
        raise ValueError(f"x: batch norm in training mode needs a batch of at least 2 rows (the "
                         f"variance of a single row is undefined), got shape {x.shape}; use a "
                         f"batch >= 2 or training=False")
    return core.batchnorm_forward(x, gamma, beta, running_mean, running_var, training,
                                   momentum, eps)


def batchnorm_backward(dy: np.ndarray, x: np.ndarray, gamma: np.ndarray, mean: np.ndarray,
                       inv_std: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training-mode gradients: returns (dx, dgamma, dbeta). mean and inv_std are the batch
    statistics returned by batchnorm_forward."""
    return _batchnorm_backward(_core, dy, x, gamma, mean, inv_std)


def _batchnorm_backward(core, dy, x, gamma, mean, inv_std):
    """batchnorm_backward on `core` (fastmlp._core, or the CUDA adapter of fastmlp.cuda): the
    argument checks shared by both backends, then the call."""
    x = v.float_array(x, "x", 2)
    F = x.shape[1]
    dy = v.float_array(dy, "dy", 2)
    v.check_shape(dy, "dy", x.shape, "dy has the shape of the layer output")
    gamma = v.float_array(gamma, "gamma", 1)
    v.check_shape(gamma, "gamma", (F,), "one scale per feature (column of x)")
    mean = v.float_array(mean, "mean", 1)
    v.check_shape(mean, "mean", (F,), "mean is returned by batchnorm_forward")
    inv_std = v.float_array(inv_std, "inv_std", 1)
    v.check_shape(inv_std, "inv_std", (F,), "inv_std is returned by batchnorm_forward")
    return core.batchnorm_backward(dy, x, gamma, mean, inv_std)
