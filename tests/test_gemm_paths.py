"""The GEMM's direct path (small problems: no packing) and its packed path must give the same
bits: a frozen layer evaluated in a 1024-row predict batch (packed) and in a 50-row training
batch (direct) must agree exactly, or cached and uncached training would drift apart."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

import fastmlp
from fastmlp import kernels as K
from fastmlp import reference as R

from helpers import EDGE_SHAPES, available_isas, direct_limit, isa, num_threads, setting

ACTS = ["identity", "relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh", "gelu"]
SHAPES = [(1, 1, 1), (3, 17, 2), (7, 8, 9), (50, 1, 50), (50, 50, 10), (50, 10, 1),
          (17, 400, 3), (65, 16, 15), (9, 257, 17),  # K = 400, 257: more than one k-block
          (300, 7, 20), (513, 3, 17),  # M > 256: the direct path works in row chunks
          (1, 40, 70), (3, 2, 33), (2, 3, 100),  # <= 3 rows: AVX-512 tiles up to 64 wide
          (9, 40, 1), (400, 33, 1)]  # dW of one output: a column of 16 rows per vector


def both_paths(fn):
    with direct_limit(0):
        packed = fn()
    with direct_limit(1 << 62):
        direct = fn()
    return packed, direct


@pytest.mark.parametrize("isa_name", available_isas())
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("B,I,O", SHAPES)
def test_direct_and_packed_paths_agree_bitwise(B, I, O, act, isa_name):
    rng = np.random.default_rng(B * 1000 + I * 10 + O)
    x = rng.standard_normal((B, I)).astype(np.float32)
    W = rng.standard_normal((I, O)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    dy = rng.standard_normal((B, O)).astype(np.float32)
    with isa(isa_name):
        (yp, zp), (yd, zd) = both_paths(lambda: K.dense_forward(x, W, b, act))
        np.testing.assert_array_equal(zd, zp)
        np.testing.assert_array_equal(yd, yp)
        gp, gd = both_paths(lambda: K.dense_backward(dy, x, W, zp, act))
        for name, d, p in zip(("dx", "dW", "db"), gd, gp):
            np.testing.assert_array_equal(d, p, err_msg=name)


# Between 750k multiply-adds (kSerialFlops) and 8x the default limit (1 << 20), a GEMM takes the direct path when it runs on
# one thread (a row shard, a 1-thread pool) and the packed path when it is split across threads:
# the same layer must give the same bits either way, and match the NumPy reference.
@pytest.mark.parametrize("B,I,O", [(192, 64, 64), (257, 64, 60), (100, 100, 100), (17, 257, 200)])
def test_one_thread_direct_range_matches_threaded_packed(B, I, O):
    rng = np.random.default_rng(B + I + O)
    x = rng.standard_normal((B, I)).astype(np.float32)
    W = rng.standard_normal((I, O)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    dy = rng.standard_normal((B, O)).astype(np.float32)
    runs = []
    for n in (1, 2):
        with num_threads(n):
            y, z = K.dense_forward(x, W, b, "relu")
            runs.append((y, z, *K.dense_backward(dy, x, W, z, "relu")))
    for name, one, two in zip(("y", "z", "dx", "dW", "db"), *runs):
        np.testing.assert_array_equal(one, two, err_msg=name)
    y_ref, z_ref = R.dense_forward(x, W, b, "relu")
    np.testing.assert_allclose(runs[0][1], z_ref, rtol=1e-5, atol=1e-5 * np.abs(z_ref).max())
    for name, got, want in zip(("dx", "dW", "db"), runs[0][2:],
                               R.dense_backward(dy, x, W, z_ref, "relu")):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max(),
                                   err_msg=name)


def kernel_sets():
    """The packed path's kernel sets this CPU can run: AVX2's, and AVX2's with the AVX-512 tiles."""
    sets = [(name, False) for name in available_isas()]
    if fastmlp._core.cpu_has_avx2_fma() and fastmlp._core.cpu_has_avx512f():
        sets.append(("avx2_fma", True))
    return sets


# The packed path's edge tiles (AVX2's 6 x 16 kernels, or gemm_avx512.cpp's rows_to_c) against
# the direct path's, on every kernel set; shapes: helpers.EDGE_SHAPES.
@pytest.mark.parametrize("kernels", kernel_sets(), ids=lambda k: k[0] + ("+avx512" if k[1] else ""))
@pytest.mark.parametrize("act", ["identity", "relu", "leaky_relu"])
@pytest.mark.parametrize("B,I,O", EDGE_SHAPES)
def test_packed_edge_tiles_match_the_direct_path(B, I, O, act, kernels):
    isa_name, avx512 = kernels
    rng = np.random.default_rng(B * 7 + I * 13 + O)
    x = rng.standard_normal((B, I)).astype(np.float32)
    W = rng.standard_normal((I, O)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    dy = rng.standard_normal((B, O)).astype(np.float32)
    core = fastmlp._core
    switch = (setting(core.gemm_avx512_enabled, core._set_gemm_avx512, avx512)
              if core.cpu_has_avx512f() and core.cpu_has_avx2_fma() else contextlib.nullcontext())
    with isa(isa_name), switch:
        for threads in (1, 2):
            with num_threads(threads):
                (yp, zp), (yd, zd) = both_paths(lambda: K.dense_forward(x, W, b, act))
                gp, gd = both_paths(lambda: K.dense_backward(dy, x, W, zp, act))
            np.testing.assert_array_equal(zp, zd, err_msg="z")
            np.testing.assert_array_equal(yp, yd, err_msg="y")
            for name, d, p in zip(("dx", "dW", "db"), gd, gp):
                np.testing.assert_array_equal(p, d, err_msg=name)
