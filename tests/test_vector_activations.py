"""The AVX2 path's vector sigmoid, tanh, elu (alpha 1.0 and 0.3) and selu (cpp/vmath_avx2.h),
in the GEMM epilogue (forward) and in the dz = dy * act'(z) rows (backward), against the
functions in float64 over a wide range of inputs: +-1e-8 .. +-100, +-88, subnormals, +-0, +-Inf
and NaN, at row lengths around the vector width (the tails take masked loads). elu and selu
reach the vector dz / batch-norm rows only once dz_row.h / act_row.h route them there; until
then those tests check the scalar path to the same bound. The portable path keeps libm and is checked
against the reference elsewhere (test_activations_reference.py)."""
from __future__ import annotations

import numpy as np
import pytest

import fastmlp
from fastmlp import kernels as K

from helpers import isa

pytestmark = pytest.mark.skipif(not fastmlp._core.cpu_has_avx2_fma(),
                                reason="this CPU has no AVX2+FMA path")

# The claimed bound, relative to the float64 value: 5e-7 is about 4 float32 ulp (libm's tanhf
# and expf are within 1-2 ulp; the vector forms add a division and, for tanh, the blend of an
# exp form and a polynomial). Results in the subnormal range lose relative precision with their
# exponent, so each element may also be off by a few units of the smallest subnormal.
RTOL = 5e-7
ATOL = 4 * np.float32(2.0 ** -149)
LENGTHS = [1, 7, 8, 9, 17]


def _sweep_inputs() -> np.ndarray:
    """Float32 inputs: log-spaced magnitudes from 1e-8 to 100 of both signs, the named edge
    values, and random values in [-20, 20] (not a hard-coded grid only)."""
    mags = np.logspace(-8, 2, 1500)
    special = [0.0, -0.0, 1e-8, -1e-8, 1e-40, -1e-40, 2.0 ** -149, -(2.0 ** -149),
               2.0 ** -126, 88.0, -88.0, 88.7, -88.7, 103.0, -103.0, 0.625, -0.625,
               np.nextafter(np.float32(0.625), np.float32(1)), 3.4e38, -3.4e38]
    rng = np.random.default_rng(7)
    x = np.concatenate([mags, -mags, special, rng.uniform(-20, 20, 1000)])
    return x.astype(np.float32)


def _sigmoid64(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sigmoid_grad64(x):
    e = np.exp(-np.abs(x))
    return e / (1.0 + e) ** 2


def _tanh_grad64(x):
    # 1 - tanh^2 without cancellation: exact in float64 even where tanh(x) rounds to 1.
    e = np.exp(-2.0 * np.abs(x))
    return 4.0 * e / (1.0 + e) ** 2


# The kernels' float32 constants (cpp/activation.h), so the reference differs from the kernel
# by its rounding only.
SELU_ALPHA = float(np.float32(1.6732632423543772))
SELU_SCALE = float(np.float32(1.0507009873554805))


def _elu64(x, alpha):
    # expm1, not exp - 1: the reference must not cancel near 0 either
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def _elu_grad64(x, alpha):
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))


# (activation, alpha): elu at its default alpha and at a non-default one (alpha reaches the
# epilogue and the dz rows); selu's alpha is fixed.
CASES = [("tanh", None), ("sigmoid", None), ("elu", 1.0), ("elu", 0.3), ("selu", None)]


def _f32(alpha):
    return None if alpha is None else float(np.float32(alpha))


def _forward64(act, alpha, x):
    if act == "tanh":
        return np.tanh(x)
    if act == "sigmoid":
        return _sigmoid64(x)
    if act == "elu":
        return _elu64(x, _f32(alpha))
    return SELU_SCALE * _elu64(x, SELU_ALPHA)


def _grad64(act, alpha, x):
    if act == "tanh":
        return _tanh_grad64(x)
    if act == "sigmoid":
        return _sigmoid_grad64(x)
    if act == "elu":
        return _elu_grad64(x, _f32(alpha))
    return np.where(x > 0, SELU_SCALE, SELU_SCALE * SELU_ALPHA * np.exp(np.minimum(x, 0.0)))


def _assert_within(got: np.ndarray, x: np.ndarray, want64: np.ndarray, what: str):
    """got (float32) within RTOL * |want| + ATOL of want64 where x is finite; reports the worst
    element."""
    got64 = got.astype(np.float64)
    # Past FLT_MAX (selu's scale * 3.4e38) the float32 result is the overflowed one: +-Inf.
    with np.errstate(over="ignore"):
        want32 = want64.astype(np.float32)
    over = np.isinf(want32) & np.isfinite(want64)
    np.testing.assert_array_equal(got[over], want32[over], err_msg=f"{what}: overflow")
    got64, want64 = np.where(over, 0.0, got64), np.where(over, 0.0, want64)
    err = np.abs(got64 - want64)
    bound = RTOL * np.abs(want64) + ATOL
    worst = int(np.argmax(err / bound))
    assert np.all(err <= bound), (
        f"{what}: worst x={x.flat[worst]!r}: got {got64.flat[worst]!r}, want "
        f"{want64.flat[worst]!r}, relative error {err.flat[worst] / max(abs(want64.flat[worst]), 1e-300):.3g}")


@pytest.mark.parametrize("act,alpha", CASES)
@pytest.mark.parametrize("L", LENGTHS)
def test_forward_epilogue_within_bound(act, alpha, L):
    # z[r, j] = x[r] * 1 + 0 exactly (one product, zero bias), so the epilogue sees x itself in
    # every one of the L columns: each lane position of the 16-wide tile, full and masked.
    x = _sweep_inputs()
    with isa("avx2_fma"):
        y, z = K.dense_forward(x[:, None], np.ones((1, L), np.float32), np.zeros(L, np.float32),
                               act, alpha)
    np.testing.assert_array_equal(z, np.broadcast_to(x[:, None], z.shape))
    _assert_within(y, z, _forward64(act, alpha, z.astype(np.float64)),
                   f"{act}({alpha}) forward, L={L}")


@pytest.mark.parametrize("act,alpha", CASES)
@pytest.mark.parametrize("n", LENGTHS + [len(_sweep_inputs())])
def test_backward_rows_within_bound(act, alpha, n):
    # With one output unit and W = [[1]], dx = dz * 1 = dy * act'(z) elementwise; dense_backward
    # forms dz in one row of B elements, so B sets the row length (tail lanes included).
    x = _sweep_inputs()
    rng = np.random.default_rng(n)
    z = x[rng.permutation(len(x))[:n]] if n < len(x) else x
    dy = rng.uniform(0.5, 2.0, n).astype(np.float32)
    with isa("avx2_fma"):
        dx, _, _ = K.dense_backward(dy[:, None], np.ones((n, 1), np.float32),
                                    np.ones((1, 1), np.float32), z[:, None], act, alpha)
    want = dy.astype(np.float64) * _grad64(act, alpha, z.astype(np.float64))
    # one more rounding (the product with dy) than the derivative alone
    _assert_within(dx[:, 0], z, want, f"{act}({alpha})' row, n={n}")


def _limits(act, alpha):
    """(act(+Inf), act(-Inf), act(0), act'(+Inf)) as act_forward / act_grad give them, in
    float32 (selu's -Inf limit is the float product scale * -alpha)."""
    if act == "tanh":
        return 1.0, -1.0, 0.0, 0.0
    if act == "sigmoid":
        return 1.0, 0.0, 0.5, 0.0
    if act == "elu":
        return np.inf, -np.float32(alpha), 0.0, 1.0
    scale, a = np.float32(SELU_SCALE), np.float32(SELU_ALPHA)
    return np.inf, scale * -a, 0.0, scale


@pytest.mark.parametrize("act,alpha", CASES)
def test_special_values_match_scalar_semantics(act, alpha):
    # NaN in, NaN out; the limits at +-Inf; derivatives at +Inf (0 for the bounded ones, the
    # positive-side slope for elu/selu), and NaN * 0 = NaN in dz (NumPy's semantics, as on the
    # portable path).
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 5.0, -5.0, np.nan, 1.0], np.float32)
    with isa("avx2_fma"):
        y, _ = K.dense_forward(x[:, None], np.ones((1, 9), np.float32), np.zeros(9, np.float32),
                               act, alpha)
        dx, _, _ = K.dense_backward(np.array([[0.0], [1.0]], np.float32),
                                    np.ones((2, 1), np.float32), np.ones((1, 1), np.float32),
                                    np.array([[np.nan], [np.inf]], np.float32), act, alpha)
    hi, lo, at0, grad_hi = _limits(act, alpha)
    col = y[:, 4]
    assert np.isnan(col[0]) and np.isnan(col[7])
    assert col[1] == hi and col[2] == lo
    assert np.isnan(dx[0, 0]) and dx[1, 0] == grad_hi
    # dense_forward's z = x * 1 + 0 turns -0 into +0, so only the value at 0 is checked here.
    assert col[3] == at0


@pytest.mark.parametrize("act,alpha", CASES)
@pytest.mark.parametrize("width", [1, 7, 9, 17])
def test_batchnorm_activation_rows_match_portable(act, alpha, width):
    # A batch-norm layer's activation runs in act_row after the normalisation: the AVX2 rows
    # must agree with the portable libm path to the same bound, large |u| included.
    rng = np.random.default_rng(width)
    m = fastmlp.MLP([3, width, 2], activation=act, alpha=alpha, batchnorm=True,
                      seed=width)
    X = (rng.standard_normal((33, 3)) * rng.choice([0.01, 1.0, 30.0], (33, 1))).astype(np.float32)
    with isa("portable"):
        want = m.predict(X).astype(np.float64)
    with isa("avx2_fma"):
        got = m.predict(X)
    # two layers: the hidden activations' error (RTOL) passes through the output GEMM, which
    # sums terms h_j W_jk in a different order on each path. Batch-normalised u is at most
    # sqrt(33) < 6 in magnitude, so |h_j| < 6 for every activation here (elu / selu are
    # unbounded above): the bound scales with the terms' size, not the sum's, which may cancel.
    terms = 6.0 * np.abs(m.layers[-1].W).sum(axis=0)
    np.testing.assert_allclose(got, want, rtol=8 * RTOL, atol=1e-6 + 8 * RTOL * terms.max())
