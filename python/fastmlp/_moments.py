"""Per-feature moments and the standardisation fastmlp derives from them: one rule for input
scaling (MLP.fit_input_scaling), the command line's target scaling and the diagnostics' test
for unscaled inputs."""
from __future__ import annotations

import numpy as np


def feature_moments(X: np.ndarray):
    """Per-feature (mean, std, live) of X (n, d) in float64; live marks the non-constant
    features (std above rounding noise relative to the feature's magnitude)."""
    X64 = X.astype(np.float64)
    mean, std = X64.mean(0), X64.std(0)
    return mean, std, std > 1e-12 * np.maximum(np.abs(mean), 1.0)


def standardisation(X: np.ndarray):
    """(mean, scale) float64 (d,): scale is the std, or 1 for a constant feature (centred,
    not blown up)."""
    mean, std, live = feature_moments(X)
    return mean, np.where(live, std, 1.0)
