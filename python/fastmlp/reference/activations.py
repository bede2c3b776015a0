"""Activations and their derivatives, keyed by name.

Every derivative takes the pre-activation z (not the output), as the kernels do.
"""
from __future__ import annotations

import math

import numpy as np

from .._validate import activation as _check_activation

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(z, alpha):
    # Split by sign so exp never overflows.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype)


def _gelu(z, alpha):
    return (0.5 * z * (1 + _erf(z / math.sqrt(2)))).astype(z.dtype)


def _gelu_grad(z, alpha):
    cdf = 0.5 * (1 + _erf(z / math.sqrt(2)))
    pdf = np.exp(-0.5 * np.asarray(z, np.float64) ** 2) / math.sqrt(2 * math.pi)
    return (cdf + z * pdf).astype(z.dtype)


ACTIVATIONS = {
    "identity": lambda z, a: z.copy(),
    "relu": lambda z, a: np.where(z > 0, z, np.where(np.isnan(z), z, 0)).astype(z.dtype),
    "leaky_relu": lambda z, a: np.where(z > 0, z, a * z).astype(z.dtype),
    "elu": lambda z, a: np.where(z > 0, z, a * np.expm1(np.minimum(z, 0))).astype(z.dtype),
    "selu": lambda z, a: (SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0))))
    .astype(z.dtype),
    "sigmoid": _sigmoid,
    "tanh": lambda z, a: np.tanh(z),
    "gelu": _gelu,
}

DERIVATIVES = {
    "identity": lambda z, a: np.ones_like(z),
    "relu": lambda z, a: (z > 0).astype(z.dtype),
    "leaky_relu": lambda z, a: np.where(z > 0, 1, a).astype(z.dtype),
    "elu": lambda z, a: np.where(z > 0, 1, a * np.exp(np.minimum(z, 0))).astype(z.dtype),
    "selu": lambda z, a: (SELU_SCALE * np.where(z > 0, 1, SELU_ALPHA * np.exp(np.minimum(z, 0))))
    .astype(z.dtype),
    "sigmoid": lambda z, a: (lambda s: s * (1 - s))(_sigmoid(z, a)),
    "tanh": lambda z, a: (1 - np.tanh(z) ** 2).astype(z.dtype),
    "gelu": _gelu_grad,
}


def activate(z: np.ndarray, activation: str = "identity", alpha: float | None = None) -> np.ndarray:
    """act(z). alpha: leaky_relu slope (default 0.01) or elu scale (default 1.0)."""
    name, a = _check_activation(activation, alpha)
    return ACTIVATIONS[name](z, z.dtype.type(a))


def activate_grad(z: np.ndarray, activation: str = "identity",
                  alpha: float | None = None) -> np.ndarray:
    """d act(z) / dz, evaluated at the pre-activation z."""
    name, a = _check_activation(activation, alpha)
    return DERIVATIVES[name](z, z.dtype.type(a))
