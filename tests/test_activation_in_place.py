"""The trainer's ReLU and identity layers keep no pre-activation z (cpp/network.h, keeps_no_z):
their forward GEMM applies the activation in place (Epilogue::y == C) and their backward takes
act'(z) from the output a. Both must give the same bits as the two-output forward and the
z-based backward on every GEMM path: direct and packed, portable and AVX2, AVX-512 on and off,
K over several k-blocks (the in-place store then follows partial sums in C), 1 and 2 threads,
and W split by row owners."""
from __future__ import annotations

import numpy as np
import pytest

import fastmlp
from fastmlp import _core
from fastmlp import kernels as K

from helpers import available_isas, direct_limit, isa, num_threads, setting
from test_training_engine import check, run_both

ACTS = ["identity", "relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh", "gelu"]
SHAPES = [(1, 1, 1), (3, 17, 2), (7, 8, 9), (50, 1, 50), (50, 50, 10), (50, 10, 1),
          (17, 400, 3), (65, 16, 15), (9, 257, 17), (300, 7, 20), (1, 40, 70), (3, 2, 33),
          (400, 33, 1), (13, 33, 17), (24, 777, 33), (200, 784, 300)]
LIMITS = [0, 1 << 62]  # every GEMM packed; every GEMM direct


def avx512_settings():
    if _core.cpu_has_avx512f() and _core.cpu_has_avx2_fma():
        return [True, False]
    return [None]


def avx512(on):
    if on is None:
        return setting(lambda: None, lambda v: None, None)
    return setting(_core.gemm_avx512_enabled, _core._set_gemm_avx512, on)


def data(B, I, O):
    rng = np.random.default_rng(B * 7919 + I * 31 + O)
    x = rng.standard_normal((B, I)).astype(np.float32)
    W = rng.standard_normal((I, O)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    return x, W, b


# The largest shapes with the trainer's in-place activations only (time).
CASES = [(shape, act) for shape in SHAPES for act in ACTS
         if np.prod(shape) <= 1 << 20 or act in ("relu", "identity")]


@pytest.mark.parametrize("on", avx512_settings())
@pytest.mark.parametrize("isa_name", available_isas())
@pytest.mark.parametrize("shape,act", CASES)
def test_in_place_forward_matches_two_outputs(shape, act, isa_name, on):
    B, I, O = shape
    x, W, b = data(B, I, O)
    with isa(isa_name), avx512(on):
        for limit in LIMITS:
            with direct_limit(limit):
                for threads in (1, 2):
                    with num_threads(threads):
                        _, z = K.dense_forward(x, W, b, act)
                        got = _core._dense_forward_in_place(x, W, b, act, 0.1)
                        want, _ = _core.dense_forward(x, W, b, act, 0.1)
                    np.testing.assert_array_equal(
                        got, want, err_msg=f"limit {limit}, {threads} threads")
                    if act == "identity":
                        np.testing.assert_array_equal(got, z)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("split", [[0, 392, 784], [0, 0, 784], [0, 100, 101, 784]])
def test_in_place_forward_with_row_owners(split, threads):
    x, W, b = data(200, 784, 300)
    with num_threads(threads):
        want, _ = K.dense_forward(x, W, b, "relu")
        got = _core._dense_forward_in_place(x, W, b, "relu", 0.0, split)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("B,I,O", [(50, 50, 10), (50, 1, 50), (200, 784, 300), (9, 257, 17),
                                   (256, 64, 64)])
def test_relu_backward_from_output_matches_from_z(B, I, O):
    x, W, b = data(B, I, O)
    # Exact zeros in z too: relu(0) = 0, and act'(0) = 0 from either.
    x[::5] = 0.0
    b[::3] = 0.0
    y, z = K.dense_forward(x, W, b, "relu")
    assert (z == 0).any() and (z < 0).any() and (z > 0).any()
    dy = np.random.default_rng(3).standard_normal((B, O)).astype(np.float32)
    for limit in LIMITS:
        with direct_limit(limit):
            from_z = K.dense_backward(dy, x, W, z, "relu")
            from_y = K.dense_backward(dy, x, W, y, "relu")
        for name, a, c in zip(("dx", "dW", "db"), from_y, from_z):
            np.testing.assert_array_equal(a, c, err_msg=f"{name}, limit {limit}")


@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("bn,drop", [(False, 0.0), (True, 0.0), (False, 0.2)])
def test_mixed_layers_train_as_the_reference(bn, drop, limit):
    """ReLU layers without z beside layers that keep it (batch norm, dropout, ELU): the engine
    against the NumPy training step after several steps, and the same bits on 1 and 2 threads.
    Every GEMM packed (the layer below forms its dz itself) or direct (the dx GEMM above forms
    it with the mask)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 12)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    runs = []
    for threads in (1, 2):
        with num_threads(threads), direct_limit(limit):
            m = fastmlp.MLP([12, 40, 30, 20, 3], activation=["relu", "elu", "relu"],
                            batchnorm=[False, bn, bn, False], dropout=[0.0, drop, drop], seed=1)
            engine, reference, log, losses = run_both(m, X, y, loss="cross_entropy", steps=5)
            check(engine, reference, log, losses)
            runs.append(np.array(engine[0], copy=True))
    np.testing.assert_array_equal(runs[0], runs[1])


# dx with the ReLU mask of the layer below (Epilogue::relu_mask): dz of that layer formed in the
# dx GEMM's store. Shapes: the direct AVX-512 row groups (zmm and ymm tiles), <= 3 rows (wide
# tiles, masked after), a 1-wide dx of a 1-output layer (the column kernel, masked after),
# partial AVX2 tiles, K over several k-blocks, and shapes the packed paths take.
MASK_SHAPES = [(50, 50, 10), (50, 1, 1), (2, 40, 3), (3, 70, 5), (7, 9, 3), (17, 33, 400),
               (300, 20, 7), (128, 64, 64), (200, 300, 100), (1, 1, 1)]


@pytest.mark.parametrize("on", avx512_settings())
@pytest.mark.parametrize("isa_name", available_isas())
@pytest.mark.parametrize("B,I,O", MASK_SHAPES)
def test_dx_with_relu_mask_is_dz_row_of_dx(B, I, O, isa_name, on):
    rng = np.random.default_rng(B * 131 + I * 7 + O)
    dz = rng.standard_normal((B, O)).astype(np.float32)
    W = rng.standard_normal((I, O)).astype(np.float32)
    x = rng.standard_normal((B, I)).astype(np.float32)
    # A ReLU output: zeros, positives, and a NaN (relu'(NaN) = 0, as dz_row's product).
    mask = np.maximum(rng.standard_normal((B, I)), 0).astype(np.float32)
    mask.flat[::7] = np.nan
    with isa(isa_name), avx512(on):
        for limit in LIMITS:
            with direct_limit(limit):
                for threads in (1, 2):
                    with num_threads(threads):
                        got = _core._dx_relu_mask(dz, W, mask)
                        dx, _, _ = K.dense_backward(dz, x, W, dz, "identity")
                    want = dx * (mask > 0).astype(np.float32)  # NumPy's IEEE products
                    # Bit patterns: -0.0 (a negative dx times 0) must stay -0.0.
                    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                                  err_msg=f"limit {limit}, {threads} threads")


def test_dx_relu_mask_rejects_bad_shapes():
    dz = np.ones((4, 3), np.float32)
    W = np.ones((5, 3), np.float32)
    with pytest.raises(ValueError, match="mask"):
        _core._dx_relu_mask(dz, W, np.ones((4,), np.float32))
    with pytest.raises(ValueError, match="dz"):
        _core._dx_relu_mask(dz, W, np.ones((2, 5), np.float32))


@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("threads", [1, 2])
def test_relu_chain_with_a_frozen_middle_layer_trains_as_the_reference(threads, limit):
    """A frozen ReLU layer between trainable ones (dense_backward_input, with and without the
    mask below) and a partial last batch."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((37, 6)).astype(np.float32)
    y = rng.standard_normal((37, 2)).astype(np.float32)
    with num_threads(threads), direct_limit(limit):
        m = fastmlp.MLP([6, 20, 16, 12, 2], seed=3)
        m.layers[1].trainable = False
        before = m.get_weights()
        check(*run_both(m, X, y, loss="mse", steps=3))
        after = m.get_weights()
    np.testing.assert_array_equal(after[2], before[2])  # the frozen layer's W
    assert not np.array_equal(after[0], before[0])


def test_in_place_forward_rejects_bad_row_splits():
    x, W, b = data(4, 6, 3)
    for split, match in [([0, 7], "row numbers from 0 to 6"), ([1, 6], "row numbers from 0 to 6"),
                         ([0], "row numbers from 0 to 6"), ([0, 4, 2, 6], "non-decreasing")]:
        with pytest.raises(ValueError, match=match):
            _core._dense_forward_in_place(x, W, b, "relu", 0.0, split)
