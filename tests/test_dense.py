"""fastmlp.kernels.dense_* against fastmlp.reference on shapes that break tiling."""
import itertools

import numpy as np
import pytest

import fastmlp
from fastmlp import kernels as K
from fastmlp import reference as R
from helpers import ODD_SIZES, assert_close, available_isas, isa, num_threads, rand

ACTS = list(R.ACTIVATIONS)
# Every batch and feature size in the sweep, paired so each appears as B, I and O.
SHAPES = [(b, i, o) for b, i, o in zip(ODD_SIZES, ODD_SIZES[3:] + ODD_SIZES[:3],
                                        ODD_SIZES[7:] + ODD_SIZES[:7])]
SHAPES += [(1, 1, 1), (257, 257, 257), (200, 784, 300), (50, 1, 50), (65, 600, 17)]
# Threaded GEMMs with one small operand take the one-phase split (gemm_split in gemm.cpp): by rows
# (256x64x64, and dx of 200x64x300), by columns (dW of 200x64x300: A = x^T is the small one),
# with odd edges (67x17x129).
SPLIT_SHAPES = [(256, 64, 64), (200, 64, 300), (67, 17, 129)]
SHAPES += SPLIT_SHAPES


def make(rng, B, I, O):
    x = rand(rng, B, I)
    W = rand(rng, I, O, scale=1 / np.sqrt(I))
    b = rand(rng, O, scale=0.5)
    return x, W, b


def tol(I):
    # float32 sums of I products: error grows ~ sqrt(I) * eps relative to the row's magnitude.
    return dict(rtol=1e-5, atol=1e-5 * max(1.0, np.sqrt(I) / 4))


@pytest.mark.parametrize("isa_name", available_isas())
@pytest.mark.parametrize("B,I,O", SHAPES)
def test_forward_backward_match_reference(B, I, O, isa_name):
    rng = np.random.default_rng(B * 1000 + I * 10 + O)
    x, W, b = make(rng, B, I, O)
    dy = rand(rng, B, O)
    with isa(isa_name):
        for act in ACTS:
            y, z = K.dense_forward(x, W, b, act)
            yr, zr = R.dense_forward(x, W, b, act)
            assert_close(z, zr, **tol(I), name=f"z {act}")
            assert_close(y, yr, **tol(I), name=f"y {act}")
            dx, dW, db = K.dense_backward(dy, x, W, zr, act)
            dxr, dWr, dbr = R.dense_backward(dy, x, W, zr, act)
            assert_close(dx, dxr, **tol(O), name=f"dx {act}")
            assert_close(dW, dWr, **tol(B), name=f"dW {act}")
            assert_close(db, dbr, **tol(B), name=f"db {act}")


@pytest.mark.parametrize("act,alpha", [("leaky_relu", 0.3), ("elu", 0.7), ("leaky_relu", None)])
def test_alpha_is_used(act, alpha):
    rng = np.random.default_rng(5)
    x, W, b = make(rng, 33, 20, 19)
    y, z = K.dense_forward(x, W, b, act, alpha)
    assert_close(y, R.dense_forward(x, W, b, act, alpha)[0], rtol=1e-5, atol=1e-6)
    dy = rand(rng, 33, 19)
    for got, want in zip(K.dense_backward(dy, x, W, z, act, alpha),
                         R.dense_backward(dy, x, W, z, act, alpha)):
        assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_need_dx_false():
    rng = np.random.default_rng(6)
    x, W, b = make(rng, 40, 30, 20)
    _, z = K.dense_forward(x, W, b, "tanh")
    dy = rand(rng, 40, 20)
    dx, dW, db = K.dense_backward(dy, x, W, z, "tanh", need_dx=False)
    assert dx is None
    _, dWr, dbr = R.dense_backward(dy, x, W, z, "tanh")
    assert_close(dW, dWr, rtol=1e-5, atol=1e-5)
    assert_close(db, dbr, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("B,I,O", [(1024, 1024, 1024), (200, 784, 300), (257, 65, 1000)] +
                         SPLIT_SHAPES)
def test_bitwise_identical_across_thread_counts(B, I, O):
    rng = np.random.default_rng(7)
    x, W, b = make(rng, B, I, O)
    dy = rand(rng, B, O)
    results = []
    for n in (1, 2, 3):
        with num_threads(n):
            y, z = K.dense_forward(x, W, b, "gelu")
            results.append((y, z) + K.dense_backward(dy, x, W, z, "gelu"))
    for other in results[1:]:
        for a, c in zip(results[0], other):
            assert np.array_equal(a, c), "result depends on the thread count"


def test_nan_and_inf_propagate():
    rng = np.random.default_rng(8)
    x, W, b = make(rng, 20, 10, 18)
    x[3, 2] = np.nan
    x[5, 1] = np.inf
    for act in ACTS:
        y, z = K.dense_forward(x, W, b, act)
        with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 in the reference is fine
            yr, zr = R.dense_forward(x, W, b, act)
        assert np.isnan(z[3]).all() and np.isnan(y[3]).all(), act
        assert np.array_equal(np.isfinite(z), np.isfinite(zr))
        finite = np.isfinite(zr).all(axis=1)
        assert_close(y[finite], yr[finite], rtol=1e-5, atol=1e-5)


def test_strided_and_fortran_inputs_are_copied_not_misread():
    rng = np.random.default_rng(9)
    big = rand(rng, 40, 60)
    x = big[::2, ::3]  # non-contiguous view
    W = np.asfortranarray(rand(rng, 20, 17))
    b = rand(rng, 17)
    y, z = K.dense_forward(x, W, b, "relu")
    yr, zr = R.dense_forward(np.ascontiguousarray(x), np.ascontiguousarray(W), b, "relu")
    assert_close(z, zr, rtol=1e-5, atol=1e-6)
    dy = np.asfortranarray(rand(rng, 20, 17))
    for got, want in zip(K.dense_backward(dy, x, W, z, "relu"),
                         R.dense_backward(dy, x, W, z, "relu")):
        assert_close(got, want, rtol=1e-5, atol=1e-5)


def good(rng=np.random.default_rng(10)):
    return make(rng, 4, 3, 2)


BAD_FORWARD = [
    (dict(x=np.ones((4, 3))), TypeError, "x: expected dtype float32, got float64"),
    (dict(x=np.ones((4, 3), dtype=np.int32)), TypeError, "x: expected dtype float32"),
    (dict(x=[[1.0, 2.0, 3.0]]), TypeError, "x: expected a float32 numpy array"),
    (dict(x=np.ones(3, np.float32)), ValueError, "x: expected a 2-D array"),
    (dict(x=np.ones((0, 3), np.float32)), ValueError, "x: expected a non-empty array"),
    (dict(W=np.ones((4, 2), np.float32)), ValueError, "W: expected 3 rows"),
    (dict(b=np.ones(3, np.float32)), ValueError, r"b: expected shape \(2,\)"),
    (dict(activation="softplus"), ValueError, "activation: expected one of"),
    (dict(activation="relu", alpha=0.1), ValueError, "alpha: activation 'relu' takes no alpha"),
    (dict(activation="leaky_relu", alpha=float("nan")), ValueError, "alpha: expected a finite"),
    (dict(activation="elu", alpha=-1.0), ValueError, "alpha: expected >= 0"),
]


@pytest.mark.parametrize("override,exc,match", BAD_FORWARD)
def test_forward_rejects_bad_input(override, exc, match):
    x, W, b = good()
    args = dict(x=x, W=W, b=b, activation="identity", alpha=None)
    args.update(override)
    with pytest.raises(exc, match=match):
        K.dense_forward(**args)


BAD_BACKWARD = [
    (dict(dy=np.ones((4, 3), np.float32)), ValueError, r"dy: expected shape \(4, 2\)"),
    (dict(z=np.ones((3, 2), np.float32)), ValueError, r"z: expected shape \(4, 2\)"),
    (dict(dy=np.ones((4, 2), np.float16)), TypeError, "dy: expected dtype float32"),
    (dict(need_dx="yes"), TypeError, "need_dx: expected True or False"),
]


@pytest.mark.parametrize("override,exc,match", BAD_BACKWARD)
def test_backward_rejects_bad_input(override, exc, match):
    x, W, b = good()
    _, z = K.dense_forward(x, W, b)
    args = dict(dy=np.ones((4, 2), np.float32), x=x, W=W, z=z)
    args.update(override)
    with pytest.raises(exc, match=match):
        K.dense_backward(**args)


def test_core_rejects_what_the_wrappers_would_have_caught():
    # The bindings are the last line of defence: a direct call with a bad array must raise,
    # never read out of bounds.
    x, W, b = good()
    with pytest.raises(TypeError, match="x: expected float32"):
        fastmlp._core.dense_forward(x.astype(np.float64), W, b, "identity", 0.0)
    with pytest.raises(ValueError, match="W: unexpected shape"):
        fastmlp._core.dense_forward(x, W[:2], b, "identity", 0.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        fastmlp._core.dense_forward(np.asfortranarray(x), W, b, "identity", 0.0)
    with pytest.raises(ValueError, match="unknown activation"):
        fastmlp._core.dense_forward(x, W, b, "nope", 0.0)


def test_runs_concurrently_from_python_threads():
    # The GIL is released: several Python threads may call kernels at once and each must get
    # its own correct answer (per-thread packing buffers).
    import threading
    rng = np.random.default_rng(11)
    cases = [make(rng, 150 + i, 90, 70 + i) for i in range(4)]
    out = [None] * len(cases)

    def work(i):
        for _ in range(5):
            out[i] = K.dense_forward(*cases[i], "relu")[1]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (x, W, b), z in zip(cases, out):
        assert_close(z, x @ W + b, rtol=1e-5, atol=1e-5)
