"""Data that ships with fastmlp, so the examples and the main job run offline."""
from __future__ import annotations

from importlib import resources

import numpy as np


def load_digits(*, test_fraction: float = 0.2, seed: int = 0):
    """The 8x8 handwritten digits (1,797 samples, 64 features, 10 classes).

    Returns ``(X_train, y_train, X_test, y_test)``: X float32 scaled to [0, 1] (pixel / 16), y
    int64. The split is stratified-free but seeded, so it is the same on every machine.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    with resources.files("fastmlp").joinpath("data/digits.npz").open("rb") as f:
        data = np.load(f)
        X = data["X"].astype(np.float32) / np.float32(16.0)
        y = data["y"].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test]
