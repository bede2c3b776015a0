"""The model's first layer with its sum over the inputs cut in two (cpp/dense.cpp,
dense_forward_split_input; the rule is cpp/network.h's input_split_point: layer index 0, at least
512 inputs and twice as many inputs as outputs). z = x[:, :k0] W[:k0] + x[:, k0:] W[k0:] + b has
other bits than one GEMM over all inputs, so these tests check that the cut layer is right
(against the float64 reference, in inference and in whole training steps), that its bits do not
depend on the thread count (the halves run side by side on two threads, one after the other
otherwise), and that caching a frozen cut layer still gives the bits of training through it.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastmlp
from fastmlp import _core
from fastmlp.reference import training as RT

from helpers import num_threads, setting
from test_training_engine import check, make_data, run_both


def input_split(on: bool):
    return setting(_core.input_split_enabled, _core._set_input_split, on)


# (rows, inputs, outputs): odd sizes around the 16-float cut and the 6 x 16 tiles, one row, one
# output, and mnist's first layer, whose 200-row batch runs the halves side by side.
SHAPES = [(1, 512, 256), (3, 513, 17), (17, 784, 300), (257, 1000, 1), (200, 784, 300),
          (65, 1029, 129)]
ACTS = ["relu", "identity", "tanh", "elu"]


def model_for(I, O, act, seed=0):
    return fastmlp.MLP([I, O, 3], activation=act, seed=seed)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("B,I,O", SHAPES)
def test_cut_forward_matches_the_reference(B, I, O, act):
    rng = np.random.default_rng(B + I + O)
    model = model_for(I, O, act, seed=B)
    X = rng.standard_normal((B, I)).astype(np.float32)
    specs = model._layer_specs(0, None, False)
    want, _ = RT.forward(specs, model._params.astype(np.float64), model._stats.astype(np.float64),
                         X.astype(np.float64), training=False)
    for threads in (1, 2, 3):
        with num_threads(threads):
            got = model.predict(X, batch_size=B)
        scale = np.abs(want).max()
        err = np.abs(got - want).max()
        assert err <= 1e-5 * scale, f"{threads} threads: worst error {err:.3g} of {scale:.3g}"


# Not 512 inputs: the uncut GEMM sums them in two k-blocks of 256 as well (cpp/gemm.cpp, kKCMax),
# the same sums as the cut's halves, so the bits coincide there.
@pytest.mark.parametrize("B,I,O", [s for s in SHAPES if s[1] != 512])
def test_the_cut_is_taken_and_changes_only_rounding(B, I, O):
    # Bits that differ from the uncut GEMM's show that the cut path ran; 1e-5 that it is right.
    rng = np.random.default_rng(7)
    model = model_for(I, O, "identity", seed=3)
    X = rng.standard_normal((B, I)).astype(np.float32)
    with input_split(False):
        uncut = model.predict(X, batch_size=B)
    cut = model.predict(X, batch_size=B)
    np.testing.assert_allclose(cut, uncut, rtol=1e-5, atol=1e-5 * np.abs(uncut).max())
    if B * O >= 17:  # a handful of sums may round alike either way
        assert not np.array_equal(cut, uncut), "the first layer was not cut"


@pytest.mark.parametrize("I,O", [(511, 10), (600, 301), (40, 10)])
def test_layers_outside_the_rule_keep_the_uncut_bits(I, O):
    rng = np.random.default_rng(2)
    model = model_for(I, O, "relu")
    X = rng.standard_normal((50, I)).astype(np.float32)
    with input_split(False):
        uncut = model.predict(X)
    np.testing.assert_array_equal(model.predict(X), uncut)


def test_only_the_models_first_layer_is_cut():
    # 16-1024-300: the second layer has 1024 inputs for 300 outputs, but it is not layer 0.
    rng = np.random.default_rng(4)
    model = fastmlp.MLP([16, 1024, 300, 3], seed=1)
    X = rng.standard_normal((40, 16)).astype(np.float32)
    with input_split(False):
        uncut = model.predict(X)
    np.testing.assert_array_equal(model.predict(X), uncut)


# SGD: its step is linear in the gradient, so float32 rounding stays at 1e-5. Adam's first steps
# are lr * g / |g| for every weight, and with hundreds of thousands of weights some g are
# rounding noise whose sign differs from the reference's (uncut too: 2e-4 apart after 3 steps
# on 784-300-10); test_training_bits_do_not_depend_on_the_thread_count covers Adam.
@pytest.mark.parametrize("case", [
    # (sizes, act, batch norm, dropout, optimizer, hyper, batch)
    ([784, 300, 10], "relu", False, 0.0, "sgd", {"clip_norm": 1.0}, 200),
    ([600, 64, 3], "elu", True, 0.2, "sgd", {"momentum": 0.9}, 16),
    ([513, 17, 3], "tanh", False, 0.0, "sgd", {"clip_value": 0.05}, 33),
    ([1000, 500, 3], "relu", True, 0.0, "sgd", {"momentum": 0.9, "nesterov": True}, 64),
], ids=["mnist-like", "bn-dropout", "odd", "bn-wide-cut"])
def test_training_steps_match_the_reference(case):
    sizes, act, bn, dropout, optimizer, hyper, batch = case
    X, y = make_data(np.random.default_rng(sizes[0]), "cross_entropy", 3 * batch, sizes[0],
                     sizes[-1])
    for threads in (1, 2):
        m = fastmlp.MLP(sizes, activation=act, batchnorm=[bn, False], dropout=[dropout], seed=5)
        with num_threads(threads):
            check(*run_both(m, X, y, loss="cross_entropy", optimizer=optimizer, hyper=hyper,
                            batch_size=batch, steps=3), rtol=2e-5, atol=5e-6)


@pytest.mark.parametrize("bn,dropout", [(False, 0.0), (True, 0.3)])
def test_training_bits_do_not_depend_on_the_thread_count(bn, dropout):
    rng = np.random.default_rng(9)
    X = rng.standard_normal((600, 784)).astype(np.float32)
    y = rng.integers(0, 10, 600)
    params = {}
    for threads in (1, 2, 3):
        model = fastmlp.MLP([784, 300, 100, 10], batchnorm=[bn, bn, False], dropout=[dropout, 0],
                            seed=0)
        with num_threads(threads):
            fastmlp.train(model, X, y, loss="cross_entropy", batch_size=200, epochs=2, lr=1e-3,
                          clip_norm=1.0, verbose=0, seed=1)
        params[threads] = model._params.copy()
    np.testing.assert_array_equal(params[2], params[1], err_msg="2 threads vs 1")
    np.testing.assert_array_equal(params[3], params[1], err_msg="3 threads vs 1")


def test_caching_a_frozen_cut_layer_gives_the_bits_of_training_through_it():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((300, 784)).astype(np.float32)
    y = rng.integers(0, 10, 300)
    params = {}
    for cache in (False, True):
        model = fastmlp.MLP([784, 300, 100, 10], seed=2)
        model.layers[0].trainable = False
        with num_threads(2):
            fastmlp.train(model, X, y, loss="cross_entropy", batch_size=100, epochs=2, lr=1e-3,
                          verbose=0, seed=3, cache_frozen=cache)
        params[cache] = model._params.copy()
    np.testing.assert_array_equal(params[True], params[False])
