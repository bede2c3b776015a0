"""Dense layer: x (B, I), W (I, O), b (O) -> y (B, O)."""
from __future__ import annotations

import numpy as np

from .activations import activate, activate_grad


def dense_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, activation: str = "identity",
                  alpha: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Returns (y, z) with z = x @ W + b and y = act(z)."""
    z = x @ W + b
    return activate(z, activation, alpha), z


def dense_backward(dy: np.ndarray, x: np.ndarray, W: np.ndarray, z: np.ndarray,
                   activation: str = "identity", alpha: float | None = None,
                   need_dx: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of a dense layer given dy = dL/dy: returns (dx or None, dW, db).

    dz = dy * act'(z); dW = x^T dz; db = sum over the batch of dz; dx = dz W^T.
    """
    dz = dy * activate_grad(z, activation, alpha)
    dW = x.T @ dz
    db = dz.sum(axis=0)
    dx = dz @ W.T if need_dx else None
    return dx, dW, db
