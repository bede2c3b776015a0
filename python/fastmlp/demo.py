"""The main job: a 64-300-100-10 ReLU network trained with Adam on the shipped digits.

Until the C++ training loop (fastmlp.train) exists, this drives the public kernels from Python,
one call per layer: it exercises every kernel family on real data and shows the kernel API.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from . import cpu_info, kernels
from .datasets import load_digits


def _he_normal(rng, fan_in, fan_out):
    return (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def run_demo(epochs: int = 50, batch_size: int = 200, seed: int = 0, lr: float = 1e-3,
             out=sys.stdout) -> float:
    """Trains on the shipped digits, prints progress and test accuracy; returns the accuracy."""
    X_train, y_train, X_test, y_test = load_digits(seed=seed)
    mean, std = X_train.mean(0), X_train.std(0) + np.float32(1e-6)
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    rng = np.random.default_rng(seed)
    sizes = [64, 300, 100, 10]
    acts = ["relu", "relu", "identity"]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params += [_he_normal(rng, fan_in, fan_out), np.zeros(fan_out, np.float32)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]

    info = cpu_info()
    print(f"fastmlp demo: digits {X_train.shape[0]} train / {X_test.shape[0]} test, "
          f"network {'-'.join(map(str, sizes))}, Adam lr={lr}, batch {batch_size}, "
          f"{info['isa']} x {info['num_threads']} threads", file=out)
    step = 0
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(y_train))
        total, seen = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            xs, zs = [X_train[idx]], []
            for layer, act in enumerate(acts):
                y, z = kernels.dense_forward(xs[-1], params[2 * layer], params[2 * layer + 1], act)
                xs.append(y)
                zs.append(z)
            loss, dy = kernels.softmax_cross_entropy(xs[-1], y_train[idx])
            grads = [None] * len(params)
            for layer in reversed(range(len(acts))):
                dx, dW, db = kernels.dense_backward(dy, xs[layer], params[2 * layer], zs[layer],
                                                    acts[layer], need_dx=layer > 0)
                grads[2 * layer], grads[2 * layer + 1] = dW, db
                dy = dx
            step += 1
            kernels.adam_step(params, grads, m, v, step, lr=lr)
            total += loss * len(idx)
            seen += len(idx)
        if epoch == 1 or epoch % 10 == 0 or epoch == epochs:
            print(f"  epoch {epoch:3d}/{epochs}  loss {total / seen:.4f}", file=out)
    elapsed = time.perf_counter() - t0

    h = X_test
    for layer, act in enumerate(acts):
        h, _ = kernels.dense_forward(h, params[2 * layer], params[2 * layer + 1], act)
    accuracy = float((h.argmax(1) == y_test).mean())
    print(f"test accuracy {accuracy:.4f}  ({elapsed:.2f} s for {epochs} epochs, {step} steps)",
          file=out)
    return accuracy
