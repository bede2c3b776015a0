"""The GEMM's direct path (small problems: no packing) and its packed path must give the same
bits: a frozen layer evaluated in a 1024-row predict batch (packed) and in a 50-row training
batch (direct) must agree exactly, or cached and uncached training would drift apart."""
from __future__ import annotations

import numpy as np
import pytest

from fastmlp import kernels as K

from helpers import available_isas, direct_limit, isa

ACTS = ["identity", "relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh", "gelu"]
SHAPES = [(1, 1, 1), (3, 17, 2), (7, 8, 9), (50, 1, 50), (50, 50, 10), (50, 10, 1),
          (17, 400, 3), (65, 16, 15), (9, 257, 17),  # K = 400, 257: more than one k-block
          (300, 7, 20), (513, 3, 17)]  # M > 256: the direct path works in row chunks


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
