"""The CUDA twins of ``fastmlp.kernels``: the same names, signatures, checks and results, run
on the GPU (``fastmlp.backends()`` must list ``"cuda"``; otherwise each call raises
RuntimeError with the reason).

These take and return NumPy arrays, so every call copies its inputs to the GPU and its results
back: they are the contract the CUDA kernels are tested against (``fastmlp.reference``), not a
fast path. Training on the GPU keeps the data there: ``fastmlp.train(..., device="cuda")``.

Precision of the GEMMs (dense layers, the fused network): ``set_precision("tf32")`` (the
default) uses tensor cores with inputs rounded to TF32 (a 10-bit mantissa, float32
accumulation): relative errors ~1e-3 of a dot product's magnitude, against ~1e-6 in float32.
``set_precision("fp32")`` gives float32 results that match the CPU to float32 rounding. Batch
norm, the losses and the optimizers are always float32 (double for their reductions).
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .backends import require_cuda
from .kernels import batchnorm as _bn
from .kernels import dense as _dense
from .kernels import losses as _losses
from .kernels import optimizers as _optim

__all__ = ["dense_forward", "dense_backward", "batchnorm_forward", "batchnorm_backward",
           "softmax_cross_entropy", "mse", "binary_cross_entropy", "sgd_step", "adagrad_step",
           "rmsprop_step", "adam_step", "set_precision", "get_precision"]

PRECISIONS = ("tf32", "fp32")
_precision = "tf32"


def set_precision(precision: str) -> None:
    """GEMM precision for fastmlp.cuda and train(device="cuda"): "tf32" (default) or "fp32"."""
    global _precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected 'tf32' or 'fp32', got {precision!r}")
    _precision = precision


def get_precision() -> str:
    """The GEMM precision in use ("tf32" or "fp32"); see set_precision."""
    return _precision


class _Device:
    """fastmlp._cuda seen through the interface of fastmlp._core: the dense kernels get the
    current precision bound, so fastmlp.kernels' shared checks can call either backend."""

    def __init__(self, what: str):
        self._mod = require_cuda(f"fastmlp.cuda.{what}")

    def __getattr__(self, name):
        fn = getattr(self._mod, name)
        if name in ("dense_forward", "dense_backward"):
            return partial(fn, precision=_precision)
        return fn


def dense_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, activation: str = "identity",
                  alpha: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Returns (y, z): z = x @ W + b, y = act(z); bias and activation in the GEMM epilogue."""
    return _dense._dense_forward(_Device("dense_forward"), x, W, b, activation, alpha)


def dense_backward(dy: np.ndarray, x: np.ndarray, W: np.ndarray, z: np.ndarray,
                   activation: str = "identity", alpha: float | None = None,
                   need_dx: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Returns (dx or None, dW, db); dz = dy * act'(z) is formed as the GEMMs load it."""
    return _dense._dense_backward(_Device("dense_backward"), dy, x, W, z, activation, alpha,
                                  need_dx)


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      running_mean: np.ndarray, running_var: np.ndarray, training: bool = True,
                      momentum: float = 0.9, eps: float = 1e-5
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (y, mean, inv_std); in training mode updates running_mean/running_var in place."""
    return _bn._batchnorm_forward(_Device("batchnorm_forward"), x, gamma, beta, running_mean,
                                  running_var, training, momentum, eps)


def batchnorm_backward(dy: np.ndarray, x: np.ndarray, gamma: np.ndarray, mean: np.ndarray,
                       inv_std: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training-mode gradients: returns (dx, dgamma, dbeta)."""
    return _bn._batchnorm_backward(_Device("batchnorm_backward"), dy, x, gamma, mean, inv_std)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """logits (B, C), integer labels (B,) -> (mean loss, dlogits)."""
    return _losses._softmax_cross_entropy(_Device("softmax_cross_entropy"), logits, labels)


def mse(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """pred and target of one shape -> (mean squared error, dpred)."""
    return _losses._mse(_Device("mse"), pred, target)


def binary_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """logits and targets in [0, 1] of one shape -> (mean loss, dlogits); sigmoid fused."""
    return _losses._binary_cross_entropy(_Device("binary_cross_entropy"), logits, targets)


def sgd_step(params, grads, velocities, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
             clip_value=None, clip_norm=None) -> float:
    """SGD with optional (Nesterov) momentum, in place; returns the gradient norm."""
    return _optim._sgd_step(_Device("sgd_step"), params, grads, velocities, lr, momentum,
                            nesterov, weight_decay, clip_value, clip_norm)


def adagrad_step(params, grads, accumulators, lr, eps=1e-10, weight_decay=0.0, clip_value=None,
                 clip_norm=None) -> float:
    """Adagrad, in place; returns the gradient norm."""
    return _optim._adagrad_step(_Device("adagrad_step"), params, grads, accumulators, lr, eps,
                                weight_decay, clip_value, clip_norm)


def rmsprop_step(params, grads, mean_squares, lr, rho=0.9, eps=1e-8, weight_decay=0.0,
                 clip_value=None, clip_norm=None) -> float:
    """RMSprop, in place; returns the gradient norm."""
    return _optim._rmsprop_step(_Device("rmsprop_step"), params, grads, mean_squares, lr, rho,
                                eps, weight_decay, clip_value, clip_norm)


def adam_step(params, grads, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, decoupled=False, clip_value=None, clip_norm=None) -> float:
    """Adam (AdamW when decoupled), in place; returns the gradient norm."""
    return _optim._adam_step(_Device("adam_step"), params, grads, m, v, step, lr, beta1, beta2,
                             eps, weight_decay, decoupled, clip_value, clip_norm)
