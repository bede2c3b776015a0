"""The reference activations and dense layer against central finite differences in float64."""
import numpy as np
import pytest

from fastmlp import reference as R
from helpers import assert_close, numeric_grad

ACTS = list(R.ACTIVATIONS)


@pytest.mark.parametrize("act", ACTS)
def test_activation_derivative_matches_finite_differences(act):
    rng = np.random.default_rng(1)
    # Keep away from the kink at 0 where relu-like derivatives are undefined.
    z = rng.uniform(0.05, 3.0, 40) * rng.choice([-1.0, 1.0], 40)
    numeric = (R.activate(z + 1e-6, act) - R.activate(z - 1e-6, act)) / 2e-6
    assert_close(R.activate_grad(z, act), numeric, rtol=1e-6, atol=1e-8, name=act)


@pytest.mark.parametrize("act,alpha", [("leaky_relu", 0.2), ("elu", 0.5)])
def test_alpha_changes_negative_side(act, alpha):
    z = np.array([-2.0, -0.5, 1.5])
    y = R.activate(z, act, alpha)
    assert y[2] == 1.5
    expected = alpha * z[:2] if act == "leaky_relu" else alpha * np.expm1(z[:2])
    assert_close(y[:2], expected, rtol=1e-12)
    numeric = (R.activate(z + 1e-6, act, alpha) - R.activate(z - 1e-6, act, alpha)) / 2e-6
    assert_close(R.activate_grad(z, act, alpha), numeric, rtol=1e-6, atol=1e-9)


def test_known_values():
    z = np.array([-1.0, 0.5])
    assert_close(R.activate(z, "selu"), [1.0507009873554805 * 1.6732632423543772 * np.expm1(-1.0),
                                         1.0507009873554805 * 0.5], rtol=1e-12)
    assert_close(R.activate(z, "sigmoid"), 1 / (1 + np.exp(-z)), rtol=1e-12)
    # gelu(1) = 0.5 * (1 + erf(1/sqrt 2)) = 0.8413447460685429
    assert_close(R.activate(np.array([1.0]), "gelu"), [0.8413447460685429], rtol=1e-12)


def test_sigmoid_extreme_inputs_are_finite():
    z = np.array([-1e4, 1e4], dtype=np.float32)
    y = R.activate(z, "sigmoid")
    assert np.all(np.isfinite(y)) and y[0] == 0.0 and y[1] == 1.0


@pytest.mark.parametrize("act", ACTS)
def test_dense_backward_matches_finite_differences(act):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 4))
    W = rng.standard_normal((4, 3))
    b = rng.standard_normal(3)
    r = rng.standard_normal((5, 3))  # loss = sum(y * r)

    def loss():
        return float((R.dense_forward(x, W, b, act)[0] * r).sum())

    _, z = R.dense_forward(x, W, b, act)
    dx, dW, db = R.dense_backward(r, x, W, z, act)
    for name, analytic, param in (("dx", dx, x), ("dW", dW, W), ("db", db, b)):
        assert_close(analytic, numeric_grad(loss, param), rtol=1e-5, atol=1e-7, name=name)


def test_need_dx_false_returns_none():
    rng = np.random.default_rng(3)
    x, W, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), rng.standard_normal(4)
    _, z = R.dense_forward(x, W, b)
    dx, dW, db = R.dense_backward(np.ones((2, 4)), x, W, z, need_dx=False)
    assert dx is None and dW.shape == (3, 4) and db.shape == (4,)
