"""Batch norm: reference vs finite differences, kernel vs reference, determinism, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from fastmlp import kernels as K
from fastmlp import reference as R
from helpers import (ODD_SIZES, assert_close, available_isas, isa, num_threads, numeric_grad,
                     rand)


def _params(rng, F, dtype=np.float32):
    gamma = rand(rng, F, dtype=dtype) + 1
    beta = rand(rng, F, dtype=dtype)
    running_mean = rand(rng, F, dtype=dtype)
    running_var = (rng.random(F) + 0.5).astype(dtype)
    return gamma, beta, running_mean, running_var


def _forward_args(rng, B, F):
    # Shifted and scaled columns: the mean is not 0 and the spread not 1, as after a dense layer.
    x = rand(rng, B, F, scale=3.0) + 2
    return (x, *_params(rng, F))


# --- reference vs central finite differences (float64) ---

def test_reference_forward_matches_definition_float64():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4)) * 2 + 1
    gamma, beta, rm, rv = _params(rng, 4, np.float64)
    rm0, rv0 = rm.copy(), rv.copy()
    y, mean, inv_std = R.batchnorm_forward(x, gamma, beta, rm, rv, momentum=0.8)
    assert_close(mean, x.mean(axis=0), rtol=1e-12, atol=0, name="mean")
    assert_close(inv_std, 1 / np.sqrt(x.var(axis=0) + 1e-5), rtol=1e-12, atol=0, name="inv_std")
    assert_close(y.mean(axis=0), beta, rtol=1e-9, atol=1e-12, name="mean of y")
    assert_close(rm, 0.8 * rm0 + 0.2 * x.mean(axis=0), rtol=1e-12, atol=0, name="running_mean")
    assert_close(rv, 0.8 * rv0 + 0.2 * x.var(axis=0, ddof=1), rtol=1e-12, atol=0,
                 name="running_var")


def test_reference_backward_matches_finite_differences():
    rng = np.random.default_rng(1)
    B, F = 5, 3
    x = rng.standard_normal((B, F)) * 2 + 1
    gamma, beta, _, _ = _params(rng, F, np.float64)
    Rm = rng.standard_normal((B, F))

    def loss(x_, gamma_, beta_):
        rm, rv = np.zeros(F), np.ones(F)
        return float((R.batchnorm_forward(x_, gamma_, beta_, rm, rv)[0] * Rm).sum())

    _, mean, inv_std = R.batchnorm_forward(x, gamma, beta, np.zeros(F), np.ones(F))
    dx, dgamma, dbeta = R.batchnorm_backward(Rm, x, gamma, mean, inv_std)
    for arr, grad, name in ((x, dx, "dx"), (gamma, dgamma, "dgamma"), (beta, dbeta, "dbeta")):
        num = numeric_grad(lambda: loss(x, gamma, beta), arr)
        assert_close(grad, num, rtol=1e-6, atol=1e-7, name=name)


# --- kernel vs reference ---

@pytest.mark.parametrize("isa_name", available_isas())
@pytest.mark.parametrize("F", ODD_SIZES)
@pytest.mark.parametrize("B", ODD_SIZES)
@pytest.mark.parametrize("training", [True, False])
def test_forward_matches_reference(B, F, training, isa_name):
    rng = np.random.default_rng(B * 1000 + F)
    x, gamma, beta, rm, rv = _forward_args(rng, B, F)
    if training and B == 1:
        with pytest.raises(ValueError, match="x: .*at least 2"):
            K.batchnorm_forward(x, gamma, beta, rm, rv, training=True)
        return
    rm0, rv0 = rm.copy(), rv.copy()
    rm_k, rv_k = rm.copy(), rv.copy()
    with isa(isa_name):
        y, mean, inv_std = K.batchnorm_forward(x, gamma, beta, rm_k, rv_k, training=training,
                                               momentum=0.7)
    y_r, mean_r, inv_std_r = R.batchnorm_forward(x, gamma, beta, rm, rv, training=training,
                                                 momentum=0.7)
    # atol: y is O(1) and the kernel's double-accumulated mean differs from NumPy's float32
    # mean by a few ulps of |mean| (~3e-7 here), which shows up absolutely in x - mean.
    assert_close(y, y_r, rtol=1e-5, atol=2e-5, name="y")
    assert_close(mean, mean_r, rtol=1e-5, atol=1e-6, name="mean")
    assert_close(inv_std, inv_std_r, rtol=1e-5, name="inv_std")
    assert_close(rm_k, rm, rtol=1e-5, atol=1e-6, name="running_mean")
    assert_close(rv_k, rv, rtol=1e-5, atol=1e-6, name="running_var")
    if training:
        assert not np.array_equal(rm_k, rm0), "running_mean was not updated"
        assert not np.array_equal(rv_k, rv0), "running_var was not updated"
    else:
        assert_close(mean, rm_k, rtol=0, atol=0, name="inference mean is running_mean")


@pytest.mark.parametrize("isa_name", available_isas())
@pytest.mark.parametrize("F", ODD_SIZES)
@pytest.mark.parametrize("B", [b for b in ODD_SIZES if b > 1])
def test_backward_matches_reference(B, F, isa_name):
    rng = np.random.default_rng(B * 1000 + F + 7)
    x, gamma, beta, rm, rv = _forward_args(rng, B, F)
    _, mean, inv_std = R.batchnorm_forward(x, gamma, beta, rm, rv)
    dy = rand(rng, B, F)
    with isa(isa_name):
        dx, dgamma, dbeta = K.batchnorm_backward(dy, x, gamma, mean, inv_std)
    dx_r, dgamma_r, dbeta_r = R.batchnorm_backward(dy, x, gamma, mean, inv_std)
    # dbeta/dgamma are sums of B terms of either sign: compare against the largest term.
    scale = np.abs(dy).sum(axis=0) * np.abs((x - mean) * inv_std).max()
    assert_close(dbeta, dbeta_r, rtol=1e-5, atol=1e-5 * np.abs(dy).sum(axis=0).max(),
                 name="dbeta")
    assert_close(dgamma, dgamma_r, rtol=1e-5, atol=1e-5 * scale.max(), name="dgamma")
    # dx subtracts three terms of size ~|dy|: cancellation error is relative to gamma*inv_std.
    assert_close(dx, dx_r, rtol=1e-4, atol=1e-5 * float(np.abs(gamma * inv_std).max()), name="dx")


def test_training_updates_running_stats_in_place():
    rng = np.random.default_rng(3)
    x, gamma, beta, rm, rv = _forward_args(rng, 64, 17)
    rm0, rv0 = rm.copy(), rv.copy()
    K.batchnorm_forward(x, gamma, beta, rm, rv, momentum=0.9)
    x64 = x.astype(np.float64)
    assert_close(rm, 0.9 * rm0 + 0.1 * x64.mean(axis=0), rtol=1e-5, atol=1e-6,
                 name="running_mean")
    assert_close(rv, 0.9 * rv0 + 0.1 * x64.var(axis=0, ddof=1), rtol=1e-5, atol=1e-6,
                 name="running_var")


def test_inference_leaves_running_stats_untouched():
    rng = np.random.default_rng(4)
    x, gamma, beta, rm, rv = _forward_args(rng, 20, 9)
    rm0, rv0 = rm.copy(), rv.copy()
    y, mean, inv_std = K.batchnorm_forward(x, gamma, beta, rm, rv, training=False)
    assert np.array_equal(rm, rm0) and np.array_equal(rv, rv0)
    assert np.array_equal(mean, rm0)
    assert_close(inv_std, 1 / np.sqrt(rv0.astype(np.float64) + 1e-5), rtol=1e-6, name="inv_std")


def test_large_mean_small_spread_stays_accurate():
    # |mean| / std = 1e3: a float-only running sum over 4096 rows would lose the spread.
    rng = np.random.default_rng(5)
    B, F = 4096, 40
    x = (1000 + rng.standard_normal((B, F))).astype(np.float32)
    gamma, beta = np.ones(F, np.float32), np.zeros(F, np.float32)
    y, mean, inv_std = K.batchnorm_forward(x, gamma, beta, np.zeros(F, np.float32),
                                           np.ones(F, np.float32))
    x64 = x.astype(np.float64)
    y64 = (x64 - x64.mean(axis=0)) / np.sqrt(x64.var(axis=0) + 1e-5)
    assert_close(mean, x64.mean(axis=0), rtol=1e-7, atol=0, name="mean")
    # float32 x - mean loses ~1e-4 absolute at |x| = 1000; that, not the sums, bounds y.
    assert_close(y, y64, rtol=0, atol=2e-4, name="y")


# --- determinism ---

@pytest.mark.parametrize("isa_name", available_isas())
@pytest.mark.parametrize("shape", [(1024, 300), (257, 1000), (4000, 9), (17, 8200)])
def test_bitwise_identical_for_1_and_2_threads(shape, isa_name):
    rng = np.random.default_rng(6)
    x, gamma, beta, rm, rv = _forward_args(rng, *shape)
    dy = rand(rng, *shape)
    out = []
    for n in (1, 2):
        with num_threads(n), isa(isa_name):
            rm_n, rv_n = rm.copy(), rv.copy()
            fwd = K.batchnorm_forward(x, gamma, beta, rm_n, rv_n)
            bwd = K.batchnorm_backward(dy, x, gamma, fwd[1], fwd[2])
            inf = K.batchnorm_forward(x, gamma, beta, rm_n, rv_n, training=False)
            out.append((*fwd, rm_n, rv_n, *bwd, *inf))
    for a, b in zip(*out):
        assert a.tobytes() == b.tobytes()


# --- bad input ---

def _good(F=5, B=4):
    return _forward_args(np.random.default_rng(8), B, F)


def test_wrong_dtype_names_argument():
    x, gamma, beta, rm, rv = _good()
    with pytest.raises(TypeError, match=r"x: .*float32.*astype\(np.float32\)"):
        K.batchnorm_forward(x.astype(np.float64), gamma, beta, rm, rv)
    with pytest.raises(TypeError, match="gamma: .*float32"):
        K.batchnorm_forward(x, gamma.astype(np.float16), beta, rm, rv)
    with pytest.raises(TypeError, match="running_var: .*float32"):
        K.batchnorm_forward(x, gamma, beta, rm, rv.astype(np.float64))
    with pytest.raises(TypeError, match="x: .*numpy array"):
        K.batchnorm_forward(x.tolist(), gamma, beta, rm, rv)
    _, mean, inv_std = K.batchnorm_forward(x, gamma, beta, rm, rv)
    with pytest.raises(TypeError, match="dy: .*float32"):
        K.batchnorm_backward(x.astype(np.int32), x, gamma, mean, inv_std)


def test_wrong_ndim_and_shape_names_argument():
    x, gamma, beta, rm, rv = _good()
    with pytest.raises(ValueError, match="x: expected a 2-D"):
        K.batchnorm_forward(x[0], gamma, beta, rm, rv)
    with pytest.raises(ValueError, match="gamma: expected shape"):
        K.batchnorm_forward(x, gamma[:-1].copy(), beta, rm, rv)
    with pytest.raises(ValueError, match="beta: expected a 1-D"):
        K.batchnorm_forward(x, gamma, beta[None], rm, rv)
    with pytest.raises(ValueError, match="running_mean: expected shape"):
        K.batchnorm_forward(x, gamma, beta, np.zeros(6, np.float32), rv)
    _, mean, inv_std = K.batchnorm_forward(x, gamma, beta, rm, rv)
    with pytest.raises(ValueError, match="dy: expected shape"):
        K.batchnorm_backward(x[:-1], x, gamma, mean, inv_std)
    with pytest.raises(ValueError, match="inv_std: expected shape"):
        K.batchnorm_backward(x, x, gamma, mean, inv_std[:2])


def test_empty_arrays_rejected():
    x, gamma, beta, rm, rv = _good()
    with pytest.raises(ValueError, match="x: expected a non-empty"):
        K.batchnorm_forward(x[:0], gamma, beta, rm, rv, training=False)
    e = np.zeros(0, np.float32)
    with pytest.raises(ValueError, match="x: expected a non-empty"):
        K.batchnorm_forward(x[:, :0], e, e, e, e)
    with pytest.raises(ValueError, match="x: expected a non-empty"):
        K.batchnorm_backward(x[:0], x[:0], gamma, rm, rv)


@pytest.mark.parametrize("name,value,exc", [
    ("momentum", -0.1, ValueError), ("momentum", 1.5, ValueError),
    ("momentum", float("nan"), ValueError), ("momentum", "0.9", TypeError),
    ("eps", 0.0, ValueError), ("eps", -1e-5, ValueError), ("eps", float("nan"), ValueError),
    ("eps", float("inf"), ValueError), ("eps", None, TypeError),
    ("training", 1, TypeError), ("training", "yes", TypeError),
])
def test_bad_hyper_parameters(name, value, exc):
    x, gamma, beta, rm, rv = _good()
    rm0 = rm.copy()
    with pytest.raises(exc, match=f"{name}: "):
        K.batchnorm_forward(x, gamma, beta, rm, rv, **{name: value})
    assert np.array_equal(rm, rm0), "a rejected call must not touch the running stats"


def test_running_stats_must_be_writable_contiguous_in_both_modes():
    x, gamma, beta, rm, rv = _good()
    ro = rm.copy()
    ro.flags.writeable = False
    for training in (True, False):
        with pytest.raises(ValueError, match="running_mean: expected a writable"):
            K.batchnorm_forward(x, gamma, beta, ro, rv, training=training)
        strided = np.zeros(10, np.float32)[::2]
        with pytest.raises(ValueError, match="running_var: expected a C-contiguous"):
            K.batchnorm_forward(x, gamma, beta, rm, strided, training=training)


def test_noncontiguous_and_fortran_inputs_are_copied_not_misread():
    rng = np.random.default_rng(9)
    x, gamma, beta, rm, rv = _forward_args(rng, 33, 17)
    dy = rand(rng, 33, 17)
    expected = K.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy())
    expected_bwd = K.batchnorm_backward(dy, x, gamma, expected[1], expected[2])
    wide = np.zeros((33, 34), np.float32)
    wide[:, ::2] = x
    gamma_strided = np.repeat(gamma, 2)[::2]
    for xv in (wide[:, ::2], np.asfortranarray(x)):
        got = K.batchnorm_forward(xv, gamma_strided, beta, rm.copy(), rv.copy())
        for a, b in zip(got, expected):
            assert np.array_equal(a, b)
        got_bwd = K.batchnorm_backward(np.asfortranarray(dy), xv, gamma, got[1], got[2])
        for a, b in zip(got_bwd, expected_bwd):
            assert np.array_equal(a, b)


def test_core_rechecks_what_reaches_cpp():
    from fastmlp import _core
    x, gamma, beta, rm, rv = _good()
    with pytest.raises(TypeError, match="x: expected float32"):
        _core.batchnorm_forward(x.astype(np.float64), gamma, beta, rm, rv, True, 0.9, 1e-5)
    with pytest.raises(ValueError, match="x: expected a C-contiguous"):
        _core.batchnorm_forward(np.asfortranarray(x), gamma, beta, rm, rv, True, 0.9, 1e-5)
    with pytest.raises(ValueError, match="gamma: unexpected shape"):
        _core.batchnorm_forward(x, gamma[:2], beta, rm, rv, True, 0.9, 1e-5)
    with pytest.raises(ValueError, match="x: training mode needs"):
        _core.batchnorm_forward(x[:1], gamma, beta, rm, rv, True, 0.9, 1e-5)
