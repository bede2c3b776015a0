"""Optimizer steps over lists of arrays, with PyTorch's torch.optim update formulas.

params[i], grads[i] and each state list's [i] have the same shape. Every step updates params and
state in place and returns the global L2 norm of the gradients after value clipping and before
norm clipping, computed in float64. The caller's grads are never modified.

Order within a step, as in a PyTorch loop that calls clip_grad_value_, clip_grad_norm_ and then
optimizer.step():
  1. g = clip(g, -clip_value, clip_value)                  (if clip_value)
  2. norm = sqrt(sum over all arrays of sum(g**2))          (float64)
  3. coef = clip_norm / (norm + 1e-6); if coef < 1: g *= coef   (if clip_norm)
  4. weight decay, then the optimizer's own update.

Array arithmetic is float32 with float32 scalars; the scalars (1 - beta, lr / bias_correction, ...)
are derived in Python floats (float64) first. The fast kernels follow the same order of
operations, so the two agree to a few ulps.
"""
from __future__ import annotations

import math

import numpy as np

f32 = np.float32


def _clip_grads(grads, clip_value, clip_norm):
    """Returns (working float32 copies of grads after value and norm clipping, norm)."""
    if clip_value is not None:
        grads = [np.clip(g, -f32(clip_value), f32(clip_value)) for g in grads]
    norm = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
    if clip_norm is not None:
        coef = clip_norm / (norm + 1e-6)
        if coef < 1.0:
            grads = [g * f32(coef) for g in grads]
    return grads, norm


def sgd_step(params, grads, velocities, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
             clip_value=None, clip_norm=None) -> float:
    """SGD with optional (Nesterov) momentum; velocities start at zero (None when momentum=0).

    g += wd * p;  buf = momentum * buf + g;  g = g + momentum * buf (Nesterov) or buf;
    p -= lr * g.
    """
    grads, norm = _clip_grads(grads, clip_value, clip_norm)
    lr, wd, mu = f32(lr), f32(weight_decay), f32(momentum)
    for i, (p, g) in enumerate(zip(params, grads)):
        if weight_decay:
            g = g + wd * p
        if momentum:
            buf = velocities[i]
            buf[...] = mu * buf + g
            g = g + mu * buf if nesterov else buf
        p -= lr * g
    return norm


def adagrad_step(params, grads, accumulators, lr, eps=1e-10, weight_decay=0.0, clip_value=None,
                 clip_norm=None) -> float:
    """Adagrad (accumulators start at zero): g += wd * p;  acc += g * g;
    p -= lr * g / (sqrt(acc) + eps)."""
    grads, norm = _clip_grads(grads, clip_value, clip_norm)
    lr, eps, wd = f32(lr), f32(eps), f32(weight_decay)
    for p, g, acc in zip(params, grads, accumulators):
        if weight_decay:
            g = g + wd * p
        acc[...] = acc + g * g
        p -= lr * g / (np.sqrt(acc) + eps)
    return norm


def rmsprop_step(params, grads, mean_squares, lr, rho=0.9, eps=1e-8, weight_decay=0.0,
                 clip_value=None, clip_norm=None) -> float:
    """RMSprop (PyTorch's alpha is rho here): g += wd * p;  ms = rho * ms + (1 - rho) * g * g;
    p -= lr * g / (sqrt(ms) + eps)."""
    grads, norm = _clip_grads(grads, clip_value, clip_norm)
    lr, r, one_minus_r, eps, wd = f32(lr), f32(rho), f32(1.0 - rho), f32(eps), f32(weight_decay)
    for p, g, ms in zip(params, grads, mean_squares):
        if weight_decay:
            g = g + wd * p
        ms[...] = r * ms + one_minus_r * g * g
        p -= lr * g / (np.sqrt(ms) + eps)
    return norm


def adam_step(params, grads, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, decoupled=False, clip_value=None, clip_norm=None) -> float:
    """Adam, or AdamW when decoupled. step is the 1-based index of this update.

    decoupled: p *= 1 - lr * wd;  otherwise g += wd * p.
    m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g * g;
    p -= (lr / (1 - b1**step)) * m / (sqrt(v) * (1 / sqrt(1 - b2**step)) + eps).

    PyTorch divides sqrt(v) by sqrt(1 - b2**step); multiplying by the reciprocal (formed in
    float64, rounded once to float32) changes denom by at most 1 ulp and saves the fast kernel a
    division per element.
    """
    grads, norm = _clip_grads(grads, clip_value, clip_norm)
    # Bias corrections in float64: beta2**step for large steps loses most digits in float32.
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    step_size, inv_sqrt_bc2 = f32(lr / bc1), f32(1.0 / math.sqrt(bc2))
    b1, one_minus_b1, b2, one_minus_b2 = f32(beta1), f32(1.0 - beta1), f32(beta2), f32(1.0 - beta2)
    eps, wd, decay = f32(eps), f32(weight_decay), f32(1.0 - lr * weight_decay)
    for p, g, m_i, v_i in zip(params, grads, m, v):
        if weight_decay and decoupled:
            p *= decay
        elif weight_decay:
            g = g + wd * p
        m_i[...] = b1 * m_i + one_minus_b1 * g
        v_i[...] = b2 * v_i + one_minus_b2 * g * g
        denom = np.sqrt(v_i) * inv_sqrt_bc2 + eps
        p -= step_size * m_i / denom
    return norm
