"""dense_backward's two GEMMs side by side (cpp/dense.cpp, backward_side_by_side): on two or more
threads, dW = x^T dz (with db) and dx = dz W^T run as row shares of one job instead of one GEMM
after the other. Row shares never change an element's sum over k, so the bits must equal the
one-after-the-other path's exactly, for any thread count, including shares that come out empty
(one input feature, one batch row) and sizes that break the 6-row panels and 16-wide strips.

Every shape here has at least 2^18 multiply-adds per GEMM and at most 2^19 floats in x, dz and
W: the range in which the side-by-side path is taken (kSideBySideMinMacs, kSideBySideMaxFloats).
"""
from __future__ import annotations

import numpy as np
import pytest

from fastmlp import _core, kernels as K, reference as R

from helpers import num_threads, setting

SHAPES = [(200, 300, 100), (257, 17, 64), (3, 257, 400), (600, 1, 500), (1, 600, 500),
          (17, 129, 257)]
ACTS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "elu"]


def side_by_side(on: bool):
    return setting(_core.dense_side_by_side_enabled, _core._set_dense_side_by_side, on)


def inputs(shape, seed):
    B, I, O = shape
    assert B * I * O >= 1 << 18 and B * I + B * O + I * O <= 1 << 19, "outside the path's range"
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, O)).astype(np.float32),
            rng.standard_normal((B, I)).astype(np.float32),
            (rng.standard_normal((I, O)) / np.sqrt(I)).astype(np.float32),
            rng.standard_normal((B, O)).astype(np.float32))


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_same_bits_as_one_gemm_after_the_other(shape, act):
    dy, x, W, z = inputs(shape, seed=sum(shape))
    with num_threads(1):
        want = K.dense_backward(dy, x, W, z, act)
    for threads in (2, 3, 4):
        with num_threads(threads):
            with side_by_side(False):
                seq = K.dense_backward(dy, x, W, z, act)
            with side_by_side(True):
                got = K.dense_backward(dy, x, W, z, act)
        for name, a, b, c in zip(("dx", "dW", "db"), got, seq, want):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}, {threads} threads vs sequential")
            np.testing.assert_array_equal(a, c, err_msg=f"{name}, {threads} threads vs 1 thread")


@pytest.mark.parametrize("shape", SHAPES)
def test_matches_the_reference(shape):
    dy, x, W, z = inputs(shape, seed=7)
    with num_threads(2), side_by_side(True):
        got = K.dense_backward(dy, x, W, z, "relu")
    want = R.dense_backward(dy.astype(np.float64), x.astype(np.float64), W.astype(np.float64),
                            z.astype(np.float64), "relu")
    for name, a, b in zip(("dx", "dW", "db"), got, want):
        scale = np.abs(b).max() + 1e-30
        assert np.abs(a - b).max() <= 1e-5 * scale, name


def test_need_dx_false_gives_the_same_dW_and_db():
    # need_dx=False has one GEMM: nothing to put side by side; the result must not change.
    dy, x, W, z = inputs((200, 300, 100), seed=3)
    with num_threads(2), side_by_side(True):
        none, dW, db = K.dense_backward(dy, x, W, z, "relu", need_dx=False)
        _, dW2, db2 = K.dense_backward(dy, x, W, z, "relu")
    assert none is None
    np.testing.assert_array_equal(dW, dW2)
    np.testing.assert_array_equal(db, db2)
