"""Argument checks found missing by a fuzzing pass: batch norm's running statistics must not
overlap what the kernel reads, hyper-parameters that round to 0 (or overflow) in float32 are
rejected, and a batch_size beyond the data does not size the engine's buffers."""
import resource

import numpy as np
import pytest

import fastmlp
from fastmlp import kernels as K


def _bn_args(rng, B=8, F=4):
    x = rng.standard_normal((B, F)).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, F).astype(np.float32)
    beta = rng.standard_normal(F).astype(np.float32)
    return x, gamma, beta, np.zeros(F, np.float32), np.ones(F, np.float32)


def test_batchnorm_running_stats_may_not_be_one_array():
    x, g, b, rm, _ = _bn_args(np.random.default_rng(0))
    with pytest.raises(ValueError, match="running_var: shares memory with running_mean"):
        K.batchnorm_forward(x, g, b, rm, rm)


@pytest.mark.parametrize("which", ["gamma", "beta"])
def test_batchnorm_running_stats_may_not_alias_a_parameter(which):
    x, g, b, rm, rv = _bn_args(np.random.default_rng(1))
    g0, b0 = g.copy(), b.copy()
    alias = g if which == "gamma" else b
    with pytest.raises(ValueError, match=f"running_mean: shares memory with {which}"):
        K.batchnorm_forward(x, g, b, alias, rv)
    np.testing.assert_array_equal(g, g0)  # rejected before anything was written
    np.testing.assert_array_equal(b, b0)


def test_batchnorm_running_stats_may_not_overlap_x():
    rng = np.random.default_rng(2)
    buf = rng.standard_normal(36).astype(np.float32)
    x = buf[:32].reshape(8, 4)
    before = buf.copy()
    _, g, b, _, rv = _bn_args(rng)
    with pytest.raises(ValueError, match="running_var: shares memory with x"):
        K.batchnorm_forward(x, g, b, np.zeros(4, np.float32), buf[28:32])
    np.testing.assert_array_equal(buf, before)


def test_batchnorm_adjacent_views_of_one_buffer_are_accepted():
    # The model keeps its statistics as views of one flat buffer: touching is not overlapping.
    rng = np.random.default_rng(3)
    x, g, b, _, _ = _bn_args(rng)
    state = np.concatenate([np.zeros(4), np.ones(4)]).astype(np.float32)
    rm, rv = state[:4], state[4:]
    ref_rm, ref_rv = np.zeros(4, np.float32), np.ones(4, np.float32)
    y, _, _ = K.batchnorm_forward(x, g, b, rm, rv)
    y_ref, _, _ = K.batchnorm_forward(x, g, b, ref_rm, ref_rv)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(rm, ref_rm)
    np.testing.assert_array_equal(rv, ref_rv)


def _opt(kind, eps):
    rng = np.random.default_rng(4)
    p = [rng.standard_normal(5).astype(np.float32)]
    g = [np.zeros(5, np.float32)]  # a zero gradient: eps alone keeps the update finite
    s = [np.zeros(5, np.float32)]
    if kind == "adam":
        return lambda: K.adam_step(p, g, s, [np.zeros(5, np.float32)], 1, eps=eps), p
    if kind == "adagrad":
        return lambda: K.adagrad_step(p, g, s, 0.1, eps=eps), p
    return lambda: K.rmsprop_step(p, g, s, 0.1, eps=eps), p


@pytest.mark.parametrize("kind", ["adam", "adagrad", "rmsprop"])
def test_optimizer_eps_that_is_zero_in_float32_is_rejected(kind):
    step, p = _opt(kind, 1e-46)
    before = p[0].copy()
    with pytest.raises(ValueError, match="eps: expected > 0.0 in float32"):
        step()
    np.testing.assert_array_equal(p[0], before)
    step, p = _opt(kind, 1e-44)  # a float32 subnormal is still > 0: accepted, stays finite
    step()
    assert np.isfinite(p[0]).all()


def test_batchnorm_eps_beyond_float32_is_rejected():
    x, g, b, rm, rv = _bn_args(np.random.default_rng(5))
    with pytest.raises(ValueError, match="eps: expected a value within float32's range"):
        K.batchnorm_forward(x, g, b, rm, rv, eps=1e300)


def test_train_eps_that_is_zero_in_float32_is_rejected_before_training():
    m = fastmlp.MLP([3, 4, 2], seed=0)
    w = m.layers[0].W.copy()
    with pytest.raises(ValueError, match="eps: expected > 0.0 in float32"):
        fastmlp.train(m, np.ones((8, 3), np.float32), np.zeros(8, int), loss="cross_entropy",
                      optimizer="adam", eps=1e-60, epochs=1, verbose=0)
    np.testing.assert_array_equal(m.layers[0].W, w)


def test_batch_size_beyond_the_data_trains_as_one_batch_without_its_memory():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((20, 4)).astype(np.float32)
    y = np.arange(20) % 3
    kw = dict(loss="cross_entropy", epochs=2, verbose=0, seed=0)
    a, b = fastmlp.MLP([4, 8, 3], seed=0), fastmlp.MLP([4, 8, 3], seed=0)
    fastmlp.train(a, X, y, batch_size=20, **kw)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    fastmlp.train(b, X, y, batch_size=4_000_000, **kw)
    ev = fastmlp.evaluate(b, X, y, loss="cross_entropy", batch_size=4_000_000)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_array_equal(la.W, lb.W)
    assert np.isfinite(ev["loss"])
    # Sized by batch_size, the buffers took ~780 MB at this batch size (585 MB at 3M rows).
    assert grown_mib < 100, grown_mib


def test_hyper_parameters_beyond_float32_are_rejected():
    x = np.ones((2, 3), np.float32)
    W, b = np.ones((3, 4), np.float32), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="alpha: expected a value within float32's range"):
        K.dense_forward(x, W, b, "elu", 1e300)
    with pytest.raises(ValueError, match="alpha: expected a value within float32's range"):
        fastmlp.MLP([3, 4, 2], activation="elu", alpha=1e300)
    with pytest.raises(ValueError, match="bias_init: expected a value within float32's range"):
        fastmlp.MLP([3, 4, 2], bias_init=1e39)
    # The largest float32 itself is still a value a user may pass.
    m = fastmlp.MLP([3, 4, 2], bias_init=float(np.finfo(np.float32).max), seed=0)
    assert np.isfinite(m.layers[0].b).all()
