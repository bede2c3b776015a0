"""Losses: reference vs finite differences, kernel vs reference, stability, determinism, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from fastmlp import kernels as K
from fastmlp import reference as R
from fastmlp import _core
from helpers import (ODD_SIZES, assert_close, available_isas, isa, num_threads, numeric_grad,
                     rand)


def _labels(rng, B, C, dtype=np.int64):
    return rng.integers(0, C, B).astype(dtype)


# --- reference vs central finite differences (float64) ---

def test_reference_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 5)) * 3
    labels = _labels(rng, 4, 5)
    loss, dlogits = R.softmax_cross_entropy(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.log(p[np.arange(4), labels]).mean(), rel=1e-12)
    num = numeric_grad(lambda: R.softmax_cross_entropy(logits, labels)[0], logits)
    assert_close(dlogits, num, rtol=1e-6, atol=1e-8, name="dlogits")


@pytest.mark.parametrize("shape", [(7,), (3, 4)])
def test_reference_mse_gradient_matches_finite_differences(shape):
    rng = np.random.default_rng(1)
    pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    loss, dpred = R.mse(pred, target)
    assert loss == pytest.approx(((pred - target) ** 2).mean(), rel=1e-12)
    num = numeric_grad(lambda: R.mse(pred, target)[0], pred)
    assert_close(dpred, num, rtol=1e-6, atol=1e-9, name="dpred")


# --- kernel vs reference ---

@pytest.mark.parametrize("isa_name", available_isas())
@pytest.mark.parametrize("C", ODD_SIZES)
@pytest.mark.parametrize("B", ODD_SIZES)
def test_cross_entropy_matches_reference(B, C, isa_name):
    rng = np.random.default_rng(B * 1000 + C)
    logits = rand(rng, B, C, scale=4.0)
    labels = _labels(rng, B, C)
    with isa(isa_name):
        loss, dlogits = K.softmax_cross_entropy(logits, labels)
    loss_r, dlogits_r = R.softmax_cross_entropy(logits, labels)
    assert isinstance(loss, float)
    # The kernel sums exp in double: it can differ from NumPy's float32 sum by a few ulps.
    assert loss == pytest.approx(loss_r, rel=1e-5, abs=1e-6)
    assert_close(dlogits, dlogits_r, rtol=1e-5, atol=1e-7, name="dlogits")
    assert_close(dlogits.sum(axis=1), np.zeros(B), atol=1e-6, name="row sums of dlogits")


@pytest.mark.parametrize("isa_name", available_isas())
@pytest.mark.parametrize("F", ODD_SIZES)
@pytest.mark.parametrize("B", ODD_SIZES)
def test_mse_matches_reference(B, F, isa_name):
    rng = np.random.default_rng(B * 1000 + F + 1)
    pred, target = rand(rng, B, F), rand(rng, B, F)
    with isa(isa_name):
        loss, dpred = K.mse(pred, target)
    loss_r, dpred_r = R.mse(pred, target)
    assert isinstance(loss, float)
    assert loss == pytest.approx(loss_r, rel=1e-6)
    # Same expression, same rounding: 2 * (pred - target) / N is bitwise the reference's.
    assert np.array_equal(dpred, dpred_r)


@pytest.mark.parametrize("N", [1, 9, 257, 70001])
def test_mse_one_dimensional(N):
    rng = np.random.default_rng(N)
    pred, target = rand(rng, N), rand(rng, N)
    loss, dpred = K.mse(pred, target)
    loss_r, dpred_r = R.mse(pred, target)
    assert dpred.shape == (N,)
    assert loss == pytest.approx(loss_r, rel=1e-6)
    assert_close(dpred, dpred_r, rtol=1e-6, atol=0, name="dpred")


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64])
def test_any_integer_label_dtype(dtype):
    rng = np.random.default_rng(2)
    logits = rand(rng, 9, 7)
    labels = _labels(rng, 9, 7)
    expected = K.softmax_cross_entropy(logits, labels)
    got = K.softmax_cross_entropy(logits, labels.astype(dtype))
    assert got[0] == expected[0] and np.array_equal(got[1], expected[1])


@pytest.mark.parametrize("isa_name", available_isas())
def test_cross_entropy_long_rows_do_not_drift(isa_name):
    # 200k classes of nearly equal logits: every exp term is close to 1, so a float running
    # sum reaches ~12k per lane and each further add rounds at ulp(12k) = 1e-3. The kernel
    # sums in float only within short blocks, so its softmax stays at float32 rounding of the
    # float64 softmax.
    rng = np.random.default_rng(4)
    B, C = 3, 200_003
    logits = (rng.random((B, C)) * 1e-3).astype(np.float32)
    labels = _labels(rng, B, C)
    with isa(isa_name):
        loss, dlogits = K.softmax_cross_entropy(logits, labels)
    loss64, dlogits64 = R.softmax_cross_entropy(logits.astype(np.float64), labels)
    assert loss == pytest.approx(loss64, rel=1e-6)
    assert_close(dlogits, dlogits64, rtol=1e-6, atol=0, name="dlogits")


@pytest.mark.parametrize("isa_name", available_isas())
@pytest.mark.parametrize("C", [11, 40])
@pytest.mark.parametrize("big", [1e4, -1e4, 3e38])
def test_cross_entropy_stable_for_huge_logits(big, C, isa_name):
    rng = np.random.default_rng(3)
    B = 6
    logits = rand(rng, B, C)
    logits[:, ::2] = big
    logits[1] = -big
    labels = _labels(rng, B, C)
    with isa(isa_name):
        loss, dlogits = K.softmax_cross_entropy(logits, labels)
    loss64, dlogits64 = R.softmax_cross_entropy(logits.astype(np.float64), labels)
    assert np.isfinite(loss) and np.isfinite(dlogits).all()
    assert loss == pytest.approx(loss64, rel=1e-5, abs=1e-5)
    assert_close(dlogits, dlogits64, rtol=1e-5, atol=1e-7, name="dlogits")


@pytest.mark.parametrize("isa_name", available_isas())
def test_cross_entropy_nan_and_infinite_logits_propagate_like_reference(isa_name):
    # A NaN or +inf logit makes its row NaN (inf - inf); -inf logits get probability 0.
    logits = np.zeros((4, 19), np.float32)
    logits[0, 3] = np.nan
    logits[1, 18] = np.inf
    logits[2, ::3] = -np.inf
    logits[3, :] = np.linspace(-200, 0, 19)  # exp(x - max) down in the subnormals and below
    labels = np.array([0, 1, 1, 18])
    with np.errstate(invalid="ignore"):
        _, d_r = R.softmax_cross_entropy(logits, labels)
    with isa(isa_name):
        loss, d = K.softmax_cross_entropy(logits, labels)
    assert np.isnan(loss)
    assert_close(d, d_r, rtol=1e-5, atol=1e-7, name="dlogits")


# --- the vector exp behind softmax_cross_entropy ---

def _every_kth_float(lo, hi, k):
    """Every k-th float32 in [lo, 0] and [0, hi] (lo < 0 < hi), by bit pattern."""
    f32 = np.float32
    neg = np.arange(0, f32(-lo).view(np.int32), k, dtype=np.int32).view(f32)
    pos = np.arange(0, f32(hi).view(np.int32), k, dtype=np.int32).view(f32)
    return np.concatenate([-neg, pos])


@pytest.mark.parametrize("isa_name", available_isas())
def test_exp_within_1_ulp_of_correctly_rounded(isa_name):
    # ~600k floats over [-110, 89]: the subnormal results (x < -87.3), the overflow to inf
    # (x > 88.72) and everything between. The reference is exp in float64 rounded to float32
    # (correctly rounded but for double rounding, which is far below 1 ulp). Bound: 1 ulp,
    # counted as the distance between bit patterns, subnormals included. (NumPy's own float32
    # exp is off by up to 2 ulps on this sweep.)
    x = np.concatenate([_every_kth_float(-110.0, 89.0, 3001),
                        np.float32([-100.0, -87.5, -104.0, -103.97, -1e-30, -0.0, 0.0, 1e-30,
                                    1e-7, 88.72, 88.7229, 89.0])])
    with isa(isa_name):
        y = _core._exp_f32(x)
    with np.errstate(over="ignore"):
        expected = np.exp(x.astype(np.float64)).astype(np.float32)
    dist = np.abs(y.view(np.int32).astype(np.int64) - expected.view(np.int32).astype(np.int64))
    worst = int(np.argmax(dist))
    assert dist[worst] <= 1, (f"exp({x[worst]!r}) = {y[worst]!r}, correctly rounded "
                              f"{expected[worst]!r}: {dist[worst]} ulps apart")
    assert np.array_equal(np.isinf(y), np.isinf(expected))


@pytest.mark.parametrize("isa_name", available_isas())
def test_exp_special_values_and_vector_tails(isa_name):
    special = np.float32([-np.inf, -1e30, -1000.0, -110.0, -104.0, 0.0, -0.0, 1.0, 89.0, 1000.0,
                          np.inf, np.nan])
    with isa(isa_name), np.errstate(over="ignore"):
        got = _core._exp_f32(special)
        assert np.array_equal(got, np.exp(special.astype(np.float64)).astype(np.float32),
                              equal_nan=True)
        # Lengths around the 8-lane vector and misaligned starts: each element is exp of its
        # own input, whatever its position (masked tails must not read or write past the end).
        rng = np.random.default_rng(9)
        base = rand(rng, 40, scale=10.0)
        whole = _core._exp_f32(base)
        for start in (0, 1, 3):
            for n in (0, 1, 7, 8, 9, 15, 16, 17, 23):
                got = _core._exp_f32(base[start:start + n].copy())
                assert np.array_equal(got, whole[start:start + n]), (start, n)


# --- determinism ---

@pytest.mark.parametrize("isa_name", available_isas())
@pytest.mark.parametrize("shape", [(1024, 300), (257, 1000), (300, 7)])
def test_bitwise_identical_for_1_and_2_threads(shape, isa_name):
    rng = np.random.default_rng(4)
    logits, target = rand(rng, *shape, scale=3.0), rand(rng, *shape)
    labels = _labels(rng, shape[0], shape[1])
    out = []
    for n in (1, 2):
        with num_threads(n), isa(isa_name):
            out.append((*K.softmax_cross_entropy(logits, labels), *K.mse(logits, target)))
    (l1, d1, m1, g1), (l2, d2, m2, g2) = out
    assert l1 == l2 and m1 == m2
    assert d1.tobytes() == d2.tobytes() and g1.tobytes() == g2.tobytes()


# --- bad input ---

def test_cross_entropy_bad_input():
    rng = np.random.default_rng(5)
    logits, labels = rand(rng, 4, 3), _labels(rng, 4, 3)
    with pytest.raises(TypeError, match=r"logits: .*float32.*astype\(np.float32\)"):
        K.softmax_cross_entropy(logits.astype(np.float64), labels)
    with pytest.raises(ValueError, match="logits: expected a 2-D"):
        K.softmax_cross_entropy(logits[0], labels)
    with pytest.raises(ValueError, match="labels: expected shape"):
        K.softmax_cross_entropy(logits, labels[:3])
    with pytest.raises(TypeError, match="labels: expected integer class labels"):
        K.softmax_cross_entropy(logits, labels.astype(np.float32))
    with pytest.raises(TypeError, match="labels: expected an integer numpy array"):
        K.softmax_cross_entropy(logits, list(labels))
    for bad in (-1, 3):
        wrong = labels.copy()
        wrong[2] = bad
        with pytest.raises(ValueError, match=r"labels: expected labels in \[0, 3\)"):
            K.softmax_cross_entropy(logits, wrong)
    with pytest.raises(ValueError, match="logits: expected a non-empty"):
        K.softmax_cross_entropy(logits[:0], labels[:0])
    with pytest.raises(ValueError, match="logits: expected a non-empty"):
        K.softmax_cross_entropy(logits[:, :0], labels)


def test_mse_bad_input():
    rng = np.random.default_rng(6)
    pred, target = rand(rng, 4, 3), rand(rng, 4, 3)
    with pytest.raises(TypeError, match=r"pred: .*float32.*astype\(np.float32\)"):
        K.mse(pred.astype(np.float64), target)
    with pytest.raises(TypeError, match="target: .*float32"):
        K.mse(pred, target.astype(np.int32))
    with pytest.raises(ValueError, match="target: expected shape"):
        K.mse(pred, target.T.copy())
    with pytest.raises(ValueError, match="pred: expected a 1-D or 2-D"):
        K.mse(pred[None], target[None])
    with pytest.raises(ValueError, match="pred: expected a non-empty"):
        K.mse(pred[:0], target[:0])


def test_noncontiguous_and_fortran_inputs_are_copied_not_misread():
    rng = np.random.default_rng(7)
    logits, target = rand(rng, 17, 9), rand(rng, 17, 9)
    labels = _labels(rng, 17, 9)
    ce = K.softmax_cross_entropy(logits, labels)
    ms = K.mse(logits, target)
    wide = np.zeros((17, 18), np.float32)
    wide[:, 1::2] = logits
    lab_strided = np.repeat(labels, 2)[::2]
    for lv in (wide[:, 1::2], np.asfortranarray(logits)):
        got = K.softmax_cross_entropy(lv, lab_strided)
        assert got[0] == ce[0] and np.array_equal(got[1], ce[1])
        got = K.mse(lv, np.asfortranarray(target))
        assert got[0] == ms[0] and np.array_equal(got[1], ms[1])


def test_core_rechecks_what_reaches_cpp():
    from fastmlp import _core
    rng = np.random.default_rng(8)
    logits, labels = rand(rng, 4, 3), _labels(rng, 4, 3)
    with pytest.raises(TypeError, match="labels: expected a C-contiguous int64"):
        _core.softmax_cross_entropy(logits, labels.astype(np.int32))
    with pytest.raises(ValueError, match="labels: label out of range"):
        _core.softmax_cross_entropy(logits, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="logits: expected a C-contiguous"):
        _core.softmax_cross_entropy(np.asfortranarray(logits), labels)
    with pytest.raises(ValueError, match="target: unexpected shape"):
        _core.mse(logits, logits[:2].copy())
