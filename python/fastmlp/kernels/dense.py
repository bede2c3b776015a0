"""Fused dense layer kernels. x (B, I), W (I, O), b (O); row-major float32."""
from __future__ import annotations

import numpy as np

from .. import _core
from .. import _validate as v


def dense_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, activation: str = "identity",
                  alpha: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Returns (y, z): z = x @ W + b, y = act(z), in one fused pass (bias and activation are
    applied to each output tile as the GEMM finishes it)."""
    return _dense_forward(_core, x, W, b, activation, alpha)


def _dense_forward(core, x, W, b, activation, alpha):
    """dense_forward on `core` (fastmlp._core, or the CUDA adapter of fastmlp.cuda): the
    argument checks shared by both backends, then the call."""
    act, a = v.activation(activation, alpha)
    x = v.float_array(x, "x", 2)
    W = v.float_array(W, "W", 2)
    b = v.float_array(b, "b", 1)
    if W.shape[0] != x.shape[1]:
        raise ValueError(f"W: expected {x.shape[1]} rows to match x's {x.shape[1]} features, "
                         f"got shape {W.shape}; W is laid out (in, out)")
    v.check_shape(b, "b", (W.shape[1],), "one bias per output unit")
    return core.dense_forward(x, W, b, act, a)


def dense_backward(dy: np.ndarray, x: np.ndarray, W: np.ndarray, z: np.ndarray,
                   activation: str = "identity", alpha: float | None = None,
                   need_dx: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Returns (dx or None, dW, db). dz = dy * act'(z) is formed while the GEMM operands are
    packed, and db is summed during the same packing pass."""
    return _dense_backward(_core, dy, x, W, z, activation, alpha, need_dx)


def _dense_backward(core, dy, x, W, z, activation, alpha, need_dx):
    """dense_backward on `core` (fastmlp._core, or the CUDA adapter of fastmlp.cuda): the
    argument checks shared by both backends, then the call."""
    act, a = v.activation(activation, alpha)
    x = v.float_array(x, "x", 2)
    W = v.float_array(W, "W", 2)
    if W.shape[0] != x.shape[1]:
        raise ValueError(f"W: expected {x.shape[1]} rows to match x's {x.shape[1]} features, "
                         f"got shape {W.shape}; W is laid out (in, out)")
    shape = (x.shape[0], W.shape[1])
    dy = v.float_array(dy, "dy", 2)
    v.check_shape(dy, "dy", shape, "dy has the shape of the layer output")
    z = v.float_array(z, "z", 2)
    v.check_shape(z, "z", shape, "z is the pre-activation returned by dense_forward")
    if not isinstance(need_dx, (bool, np.bool_)):
        raise TypeError(f"need_dx: expected True or False, got {need_dx!r}")
    return core.dense_backward(dy, x, W, z, act, a, bool(need_dx))
