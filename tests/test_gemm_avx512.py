"""The AVX-512 kernels (cpp/gemm_avx512.cpp) must give the AVX2 path's bits exactly: results may
not depend on whether the CPU has AVX-512. Each case runs with the kernels on and off and
compares every output bit for bit. The packed path's pair kernel: shapes that break the pairing
(an odd panel left over, a partial last panel, a partial or odd strip) and K over several
k-blocks. The direct path's tile: every column count of a tile (1-16, and 17 = 16 + 1), row
counts that leave each remainder group (12, 8, 4, 2, 1), and K over several k-blocks (the
accumulate-into-C store). The packed path's edge kernel: every row remainder of a pair of
panels (1-12) and every column count of a strip (1-16)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp import _core
from fastmlp import kernels as K

from helpers import EDGE_SHAPES, direct_limit, isa, num_threads, setting

HAVE = _core.cpu_has_avx512f() and _core.cpu_has_avx2_fma()
needs_avx512 = pytest.mark.skipif(not HAVE, reason="this CPU has no AVX-512F")

# Rows: one panel (6), a pair (12), a pair + a partial panel (13, 17), three panels (18),
# a pair + partial (257 = 42 full panels + 5 rows). Columns: one strip (16), partial (17, 31),
# two (32), two + partial (33). K: one k-block, and 400 / 777 over two and three.
SHAPES = [(6, 7, 16), (12, 1, 16), (13, 33, 17), (17, 400, 31), (18, 64, 32), (24, 777, 33),
          (257, 129, 131), (200, 784, 300)]
ACTS = ["identity", "relu", "leaky_relu", "tanh"]  # tanh: the unfused store, for contrast


def avx512(on: bool):
    return setting(_core.gemm_avx512_enabled, _core._set_gemm_avx512, on)


def both(fn, limit=0):
    # limit 0: every GEMM packed, where the pair kernel runs; huge: every GEMM direct.
    with isa("avx2_fma"), direct_limit(limit):
        with avx512(False):
            off = fn()
        with avx512(True):
            on = fn()
    return off, on


@needs_avx512
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("B,I,O", SHAPES)
def test_pair_kernel_gives_the_avx2_bits(B, I, O, act, threads):
    packed_bits_on_and_off(B, I, O, act, threads, seed=B * 7919 + I * 31 + O)


def packed_bits_on_and_off(B, I, O, act, threads, seed):
    """dense_forward and dense_backward on packed GEMMs, AVX-512 kernels on against off: every
    output bit equal. Returns x, W, b and the forward's z (kernels off) for further checks."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, I)).astype(np.float32)
    W = (rng.standard_normal((I, O)) / np.sqrt(I)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    dy = rng.standard_normal((B, O)).astype(np.float32)
    alpha = 0.1 if act == "leaky_relu" else None
    with num_threads(threads):
        (y0, z0), (y1, z1) = both(lambda: K.dense_forward(x, W, b, act, alpha=alpha))
        g0, g1 = both(lambda: K.dense_backward(dy, x, W, z0, act, alpha=alpha))
    np.testing.assert_array_equal(z1, z0, err_msg="z")
    np.testing.assert_array_equal(y1, y0, err_msg="y")
    for name, a, c in zip(("dx", "dW", "db"), g0, g1):
        np.testing.assert_array_equal(c, a, err_msg=name)
    return x, W, b, z0


@needs_avx512
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("act", ["identity", "relu", "leaky_relu"])
@pytest.mark.parametrize("B,I,O", EDGE_SHAPES)
def test_edge_kernel_gives_the_avx2_bits(B, I, O, act, threads):
    x, W, b, z = packed_bits_on_and_off(B, I, O, act, threads, seed=B * 104729 + I * 131 + O)
    # The AVX2 side is itself checked against NumPy elsewhere; here, that the case is real.
    np.testing.assert_allclose(z, x.astype(np.float64) @ W + b, rtol=1e-4, atol=1e-4)


DIRECT = 1 << 40
# (rows, K, columns): columns 1-17, rows 1-31 with every remainder group, K 1 to 3 k-blocks.
DIRECT_SHAPES = [(r, k, c) for c, r, k in zip(range(1, 18), [1, 2, 3, 5, 7, 11, 12, 13, 15, 17,
                                                             19, 23, 24, 25, 27, 30, 31],
                                              [1, 3, 10, 50, 17, 1, 2, 400, 64, 5, 9, 777, 33,
                                               8, 50, 100, 385])]


@needs_avx512
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("B,I,O", DIRECT_SHAPES + [(50, 50, 10), (50, 10, 50), (200, 100, 10)])
def test_direct_tile_gives_the_avx2_bits(B, I, O, act):
    rng = np.random.default_rng(B * 7919 + I * 31 + O + 1)
    x = rng.standard_normal((B, I)).astype(np.float32)
    W = (rng.standard_normal((I, O)) / np.sqrt(I)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    dy = rng.standard_normal((B, O)).astype(np.float32)
    alpha = 0.1 if act == "leaky_relu" else None
    (y0, z0), (y1, z1) = both(lambda: K.dense_forward(x, W, b, act, alpha=alpha), DIRECT)
    g0, g1 = both(lambda: K.dense_backward(dy, x, W, z0, act, alpha=alpha), DIRECT)
    np.testing.assert_array_equal(z1, z0, err_msg="z")
    np.testing.assert_array_equal(y1, y0, err_msg="y")
    for name, a, c in zip(("dx", "dW", "db"), g0, g1):
        np.testing.assert_array_equal(c, a, err_msg=name)


@needs_avx512
@pytest.mark.parametrize("path, B, I, O, limit", [("pair kernel", 24, 40, 32, 0),
                                                  ("direct tile", 25, 30, 13, DIRECT)])
def test_nan_and_inf_propagate_like_avx2(path, B, I, O, limit):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((B, I)).astype(np.float32)
    x[3, 5], x[14, 0], x[20, 7] = np.nan, np.inf, -np.inf
    W = rng.standard_normal((I, O)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    for act in ("relu", "leaky_relu", "identity"):
        (y0, z0), (y1, z1) = both(lambda: K.dense_forward(x, W, b, act), limit)
        assert np.isnan(z0).any() and np.isinf(z0).any()  # the case is really exercised
        np.testing.assert_array_equal(z1, z0, err_msg=path)
        np.testing.assert_array_equal(y1, y0, err_msg=path)


@needs_avx512
def test_training_with_and_without_the_pair_kernel_gives_the_same_weights():
    rng = np.random.default_rng(9)
    X = rng.standard_normal((600, 40)).astype(np.float32)
    y = rng.integers(0, 5, 600)

    def fit():
        # 40-97: packed GEMMs (the pair kernel); 64-5 and its dW: direct (the tile).
        model = fastmlp.MLP([40, 97, 64, 5], activation="leaky_relu", seed=4)
        fastmlp.train(model, X, y, loss="cross_entropy", batch_size=200, epochs=3, seed=1,
                      verbose=0)
        return [layer.W.copy() for layer in model.layers]

    off, on = both(fit)
    for i, (a, c) in enumerate(zip(off, on)):
        np.testing.assert_array_equal(c, a, err_msg=f"layer {i}")


def test_asking_for_the_pair_kernel_without_avx512_is_refused():
    if HAVE:
        with isa("avx2_fma"), avx512(True):
            assert _core.gemm_avx512_enabled()
            assert fastmlp.cpu_info()["avx512_gemm"]
        with isa("avx2_fma"), avx512(False):
            assert not fastmlp.cpu_info()["avx512_gemm"]
        with isa("portable"), avx512(True):  # the kernel belongs to the AVX2 path
            assert not fastmlp.cpu_info()["avx512_gemm"]
    else:
        with pytest.raises(ValueError, match="AVX-512F"):
            _core._set_gemm_avx512(True)
        assert not fastmlp.cpu_info()["avx512_gemm"]


def test_fastmlp_avx512_0_turns_the_pair_kernel_off():
    env = dict(os.environ, FASTMLP_AVX512="0")
    code = "import fastmlp; print(fastmlp.cpu_info()['avx512_gemm'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
    env["FASTMLP_AVX512"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    # On only where the CPU has AVX-512F and the AVX2 path is active (FASTMLP_ISA is inherited).
    assert out == str(HAVE and _core.active_isa() == "avx2_fma")
