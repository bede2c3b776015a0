"""Inverted dropout masks from a counter-based hash, as the C++ engine draws them
(cpp/dropout.h): element i of layer l at optimizer step s is kept when
u = top 24 bits of mix64(key + (i + 1) * golden) / 2^24 >= rate, with
key = mix64(seed + mix64(step + mix64(layer))); kept elements are scaled by 1 / (1 - rate).
"""
from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(z):
    """SplitMix64's finaliser on uint64 scalars or arrays (arithmetic wraps modulo 2^64)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_key(seed: int, step: int, layer: int) -> np.uint64:
    with np.errstate(over="ignore"):
        inner = mix64(np.uint64(step) + mix64(np.uint64(layer)))
        return mix64(np.uint64(seed) + inner)


def dropout_mask(seed: int, step: int, layer: int, shape: tuple, rate: float) -> np.ndarray:
    """float32 mask of the given shape: 1 / (1 - rate) where kept, 0 where dropped."""
    key = dropout_key(seed, step, layer)
    i = np.arange(1, int(np.prod(shape)) + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        bits = mix64(key + i * _GOLDEN) >> np.uint64(40)
    u = bits.astype(np.float32) * np.float32(1.0 / 16777216.0)
    scale = np.float32(1.0) / (np.float32(1.0) - np.float32(rate))
    return np.where(u >= np.float32(rate), scale, np.float32(0.0)).astype(np.float32).reshape(shape)
