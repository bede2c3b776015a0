"""One training step written with the reference kernels: the specification of the C++ engine
(cpp/network.cpp, cpp/trainer.cpp) and the NumPy loop the training benchmarks race against.

Arguments mirror the engine's: `layers` are the layer descriptions of MLP._layer_specs (sizes,
activation, batch norm, dropout, trainable, offsets into the flat buffers), `params`, `stats`,
`grads`, `state0`, `state1` flat float32 buffers updated in place.
"""
from __future__ import annotations

import numpy as np

from .activations import activate, activate_grad
from .batchnorm import batchnorm_backward, batchnorm_forward
from .dense import dense_backward, dense_forward
from .dropout import dropout_mask
from .losses import binary_cross_entropy, mse, softmax_cross_entropy
from .optimizers import adagrad_step, adam_step, rmsprop_step, sgd_step


def _alpha(s: dict, act: str):
    """The layer's alpha where its activation takes one (leaky_relu, elu), else None."""
    return s["alpha"] if act in ("leaky_relu", "elu") else None


def _views(s: dict, buf: np.ndarray, stats: np.ndarray) -> dict:
    i, o = s["in"], s["out"]
    v = {"W": buf[s["w"]:s["w"] + i * o].reshape(i, o)}
    if not s["batchnorm"]:
        v["b"] = buf[s["b"]:s["b"] + o]
    else:  # no bias: batch norm subtracts it again
        v["gamma"] = buf[s["gamma"]:s["gamma"] + o]
        v["beta"] = buf[s["beta"]:s["beta"] + o]
        if stats is not None:
            v["running_mean"] = stats[s["running_mean"]:s["running_mean"] + o]
            v["running_var"] = stats[s["running_var"]:s["running_var"] + o]
    return v


def forward(layers, params, stats, x, *, training, seed=0, step=0):
    """Returns (output, cache): each layer's input, z, u (batch norm), mask and statistics."""
    cache = []
    a = x
    for l, s in enumerate(layers):
        p = _views(s, params, stats)
        train_mode = training and s["trainable"]
        c = {"in": a}
        if not s["batchnorm"]:
            y, z = dense_forward(a, p["W"], p["b"], s["activation"], _alpha(s, s["activation"]))
        else:
            _, z = dense_forward(a, p["W"], np.zeros(s["out"], np.float32), "identity")
            u, mean, inv_std = batchnorm_forward(
                z, p["gamma"], p["beta"], p["running_mean"], p["running_var"],
                training=train_mode and len(a) > 1, momentum=s["bn_momentum"], eps=s["bn_eps"])
            y = activate(u, s["activation"], _alpha(s, s["activation"])).astype(np.float32)
            c.update(u=u, mean=mean, inv_std=inv_std)
        c["z"] = z
        if train_mode and s["dropout"] > 0:
            c["mask"] = dropout_mask(seed, step, s["index"], y.shape, s["dropout"])
            y = y * c["mask"]
        cache.append(c)
        a = y
    return a, cache


def backward(layers, params, cache, dout, grads, *, training=True):
    """Fills grads for trainable layers, stopping at the lowest trainable one."""
    lo = next(i for i, s in enumerate(layers) if s["trainable"])
    g = dout
    for l in range(len(layers) - 1, lo - 1, -1):
        s, c = layers[l], cache[l]
        p = _views(s, params, None)
        gv = _views(s, grads, None)
        train_mode = training and s["trainable"]
        if "mask" in c:
            g = g * c["mask"]
        if s["batchnorm"]:
            du = g * activate_grad(c["u"], s["activation"],
                                   _alpha(s, s["activation"])).astype(np.float32)
            if train_mode and len(du) > 1:
                dz, dgamma, dbeta = batchnorm_backward(du, c["z"], p["gamma"], c["mean"],
                                                       c["inv_std"])
            else:
                dz = du * p["gamma"] * c["inv_std"]
                xhat = (c["z"] - c["mean"]) * c["inv_std"]
                dgamma, dbeta = (du * xhat).sum(0), du.sum(0)
            if s["trainable"]:
                gv["gamma"][...] = dgamma
                gv["beta"][...] = dbeta
            g, act, z = dz, "identity", c["z"]
        else:
            act, z = s["activation"], c["z"]
        dx, dW, db = dense_backward(g, c["in"], p["W"], z, act, _alpha(s, act), need_dx=l > lo)
        if s["trainable"]:
            gv["W"][...] = dW
            if "b" in gv:
                gv["b"][...] = db
        g = dx


def loss_and_grad(loss: str, out, y, weights=None):
    """(loss, dout, correct count) for one batch.

    weights: None, or (B,) sample weights >= 0: the loss is sum(w_i * loss_i) / sum(w_i), each
    row's loss and gradient being those of a one-row batch (scikit-learn's MLP convention); a
    batch whose weights sum to 0 has loss 0 and dout 0. The correct count stays unweighted.
    """
    if weights is not None:
        _, _, correct = loss_and_grad(loss, out, y)
        total = float(np.sum(weights, dtype=np.float64))
        value, dout = 0.0, np.zeros_like(out)
        for r in range(len(out)):
            share = float(weights[r]) / total if total > 0 else 0.0
            if share == 0.0:
                continue
            row_value, row_d, _ = loss_and_grad(loss, out[r:r + 1], y[r:r + 1])
            value += share * row_value
            dout[r] = row_d[0] * np.float32(share)
        return value, dout, correct
    if loss == "cross_entropy":
        value, d = softmax_cross_entropy(out, y)
        return value, d, int((out.argmax(axis=1) == y).sum())
    if loss == "binary_cross_entropy":
        value, d = binary_cross_entropy(out, y)
        return value, d, int(((out > 0) == (y >= 0.5)).sum())
    value, d = mse(out, y)
    return value, d, 0


def penalty(layers, params, l1, l2) -> float:
    total = 0.0
    for s in layers:
        if s["trainable"]:
            W = _views(s, params, None)["W"].astype(np.float64)
            total += l1 * np.abs(W).sum() + l2 * (W * W).sum()
    return float(total)


def train_step(layers, params, stats, grads, state0, state1, xb, yb, *, loss, optimizer, hyper,
               lr, step, seed, wb=None):
    """One step on batch (xb, yb) with optional sample weights wb (B,): forward (training
    mode), loss, backward, L1/L2 gradients, the optimizer update with clipping, max-norm.
    Returns (loss + penalty, gradient norm)."""
    out, cache = forward(layers, params, stats, xb, training=True, seed=seed, step=step)
    value, dout, _ = loss_and_grad(loss, out, yb, wb)
    pen = penalty(layers, params, hyper["l1"], hyper["l2"])
    backward(layers, params, cache, dout, grads)
    l1, two_l2 = np.float32(hyper["l1"]), np.float32(2 * hyper["l2"])
    slots = []
    for s in layers:
        if not s["trainable"]:
            continue
        pv, gv = _views(s, params, None), _views(s, grads, None)
        if l1 or two_l2:
            gv["W"] += l1 * np.sign(pv["W"]) + two_l2 * pv["W"]
        names = ("W", "gamma", "beta") if s["batchnorm"] else ("W", "b")
        for name in names:
            slots.append((pv[name], gv[name], _views(s, state0, None)[name],
                          _views(s, state1, None)[name]))
    ps, gs, s0, s1 = (list(t) for t in zip(*slots))
    clip = dict(clip_value=hyper["clip_value"], clip_norm=hyper["clip_norm"])
    if optimizer == "sgd":
        norm = sgd_step(ps, gs, s0, lr, hyper["momentum"], hyper["nesterov"],
                        hyper["weight_decay"], **clip)
    elif optimizer == "adagrad":
        norm = adagrad_step(ps, gs, s0, lr, hyper["eps"], hyper["weight_decay"], **clip)
    elif optimizer == "rmsprop":
        norm = rmsprop_step(ps, gs, s0, lr, hyper["rho"], hyper["eps"], hyper["weight_decay"],
                            **clip)
    else:
        norm = adam_step(ps, gs, s0, s1, step + 1, lr, hyper["beta1"], hyper["beta2"],
                         hyper["eps"], hyper["weight_decay"], hyper["decoupled"], **clip)
    if hyper["max_norm"]:
        c = hyper["max_norm"]
        for s in layers:
            if s["trainable"]:
                W = _views(s, params, None)["W"]
                norms = np.sqrt((W.astype(np.float64) ** 2).sum(axis=0))
                scale = np.where(norms > c, c / np.where(norms > 0, norms, 1), 1.0)
                W *= scale.astype(np.float32)
    return value + pen, norm
