"""Binary cross-entropy on logits: reference vs finite differences, kernel vs reference,
stability for huge logits, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from fastmlp import kernels as K
from fastmlp import reference as R

from helpers import ODD_SIZES, assert_close, numeric_grad


def test_reference_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 3)) * 3
    t = rng.random((5, 3))
    _, grad = R.binary_cross_entropy(z, t)
    num = numeric_grad(lambda: R.binary_cross_entropy(z, t)[0], z)
    assert_close(grad, num, rtol=1e-6, atol=1e-9, name="dlogits")


def test_reference_equals_the_naive_formula_where_that_is_stable():
    rng = np.random.default_rng(1)
    z = rng.standard_normal(50)
    t = rng.random(50)
    s = 1 / (1 + np.exp(-z))
    naive = -np.mean(t * np.log(s) + (1 - t) * np.log(1 - s))
    assert R.binary_cross_entropy(z, t)[0] == pytest.approx(naive, rel=1e-12)


@pytest.mark.parametrize("B", ODD_SIZES)
@pytest.mark.parametrize("C", [1, 3, 17])
def test_kernel_matches_reference(B, C):
    rng = np.random.default_rng(B * 31 + C)
    z = (rng.standard_normal((B, C)) * 4).astype(np.float32)
    t = rng.random((B, C)).astype(np.float32)
    loss, d = K.binary_cross_entropy(z, t)
    rloss, rd = R.binary_cross_entropy(z, t)
    assert loss == pytest.approx(rloss, rel=1e-5)
    assert_close(d, rd, name="dlogits")


def test_huge_logits_stay_finite():
    z = np.array([-1e30, -100, 0, 100, 1e30], np.float32)
    t = np.array([0, 1, 0.5, 0, 1], np.float32)
    loss, d = K.binary_cross_entropy(z, t)
    assert np.isfinite(d).all()
    assert loss == pytest.approx(R.binary_cross_entropy(z.astype(np.float64),
                                                        t.astype(np.float64))[0], rel=1e-6)


def test_bad_input():
    z = np.zeros((4, 2), np.float32) + 0.5
    with pytest.raises(ValueError, match="targets: expected shape"):
        K.binary_cross_entropy(z, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"targets: expected values in \[0, 1\]"):
        K.binary_cross_entropy(z, np.full((4, 2), 2.0, np.float32))
    with pytest.raises(TypeError, match="logits: expected dtype float32"):
        K.binary_cross_entropy(z.astype(np.float64), z)
    with pytest.raises(ValueError, match="logits: expected a 1-D or 2-D"):
        K.binary_cross_entropy(np.zeros((2, 2, 2), np.float32), np.zeros((2, 2, 2), np.float32))
