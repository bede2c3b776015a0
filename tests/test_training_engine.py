"""The C++ training step against the NumPy training step built from fastmlp.reference
(fastmlp.reference.training), option by option: after several steps the weights, the batch-norm
statistics and the optimizer state must agree to about 1e-5."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastmlp
from fastmlp import _core
from fastmlp.reference import training as RT
from fastmlp.reference.dropout import dropout_mask

from helpers import assert_close, available_isas, isa

BASE_HYPER = dict(momentum=0.0, nesterov=False, rho=0.9, beta1=0.9, beta2=0.999, eps=1e-8,
                  weight_decay=0.0, decoupled=False, clip_value=None, clip_norm=None, l1=0.0,
                  l2=0.0, max_norm=None)


def make_data(rng, loss, n, n_in, n_out):
    X = rng.standard_normal((n, n_in)).astype(np.float32)
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, n).astype(np.int64)
    elif loss == "binary_cross_entropy":
        y = rng.random((n, n_out)).astype(np.float32)  # soft targets in [0, 1]
    else:
        y = rng.standard_normal((n, n_out)).astype(np.float32)
    return X, y


def run_both(model, X, y, *, loss, optimizer="adam", hyper=None, batch_size=16, steps=4,
             lrs=None, seed=11, start=0, sample_weight=None):
    """Trains `steps` batches with the engine and with the reference from the same state;
    returns (engine buffers, reference buffers, engine log, reference losses)."""
    hp = dict(BASE_HYPER, **(hyper or {}))
    specs = model._layer_specs(start, None, loss != "mse")
    ref = [model._params.copy(), model._stats.copy()] + \
        [np.zeros_like(model._params) for _ in range(3)]
    g, s0, s1 = (np.zeros_like(model._params) for _ in range(3))
    net = _core.Network(specs, model._params, model._stats)
    tr = _core.Trainer(net, loss, optimizer, hp, batch_size, g, s0, s1)
    n = len(X)
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    assert steps <= -(-n // batch_size), "one epoch's worth of batches at most"
    lrs = np.full(steps, 0.01) if lrs is None else np.asarray(lrs, np.float64)
    log = tr.run(X, y, order, 0, steps, lrs, 0, seed, sample_weight)
    losses = []
    for k in range(steps):
        idx = order[k * batch_size:(k + 1) * batch_size]
        value, _ = RT.train_step(specs, *ref, X[idx], y[idx], loss=loss, optimizer=optimizer,
                                 hyper=hp, lr=float(lrs[k]), step=k, seed=seed,
                                 wb=None if sample_weight is None else sample_weight[idx])
        losses.append(value * len(idx))
    return (model._params, model._stats, s0, s1), (ref[0], ref[1], ref[3], ref[4]), log, losses


def check(engine, reference, log, losses, rtol=1e-5, atol=2e-6):
    for name, a, e in zip(("params", "stats", "state0", "state1"), engine, reference):
        assert_close(a, e, rtol=rtol, atol=atol, name=name)
    assert log["loss_sum"] == pytest.approx(sum(losses), rel=1e-5)


OPTIMIZERS = [("sgd", {}), ("sgd", {"momentum": 0.9}), ("sgd", {"momentum": 0.9, "nesterov": True}),
              ("adagrad", {"eps": 1e-10}), ("rmsprop", {}), ("adam", {}),
              ("adam", {"weight_decay": 0.05, "decoupled": True}),
              ("adam", {"weight_decay": 0.01})]


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: o if isinstance(o, str) else
                         "-".join(f"{k}" for k in o) or "plain")
def test_every_optimizer_and_loss(loss, opt):
    rng = np.random.default_rng(1)
    out = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "mse": "tanh"}[loss]
    model = fastmlp.MLP([7, 17, 9, 3], activation="elu", output_activation=out, seed=2)
    X, y = make_data(rng, loss, 50, 7, 3)  # 3 full batches of 16, then 2 rows
    check(*run_both(model, X, y, loss=loss, optimizer=opt[0], hyper=opt[1], steps=4))


@pytest.mark.parametrize("hyper", [
    {"clip_value": 0.05}, {"clip_norm": 0.1}, {"clip_value": 0.05, "clip_norm": 0.1},
    {"l1": 1e-3}, {"l2": 1e-2}, {"l1": 1e-3, "l2": 1e-3}, {"max_norm": 0.8},
    {"clip_norm": 0.5, "l2": 1e-3, "max_norm": 1.0}], ids=str)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_clipping_and_regularisation(hyper, optimizer):
    rng = np.random.default_rng(3)
    model = fastmlp.MLP([5, 16, 8, 4], activation="relu", seed=4)
    X, y = make_data(rng, "cross_entropy", 96, 5, 4)
    check(*run_both(model, X, y, loss="cross_entropy", optimizer=optimizer, hyper=hyper,
                    steps=6))


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh",
                                        "gelu", "identity"])
def test_batchnorm_and_dropout_every_activation(activation):
    rng = np.random.default_rng(5)
    model = fastmlp.MLP([6, 17, 9, 3], activation=activation, batchnorm=[True, True, True],
                        dropout=[0.3, 0.1], seed=6, output_activation="softmax")
    X, y = make_data(rng, "cross_entropy", 40, 6, 3)
    check(*run_both(model, X, y, loss="cross_entropy", optimizer="sgd",
                    hyper={"momentum": 0.9}, steps=3))


def test_frozen_layers_and_a_partial_last_batch():
    rng = np.random.default_rng(7)
    model = fastmlp.MLP([5, 12, 10, 8, 3], batchnorm=True, dropout=0.2, seed=8)
    model.layers[0].trainable = False
    model.layers[2].trainable = False  # frozen between trainable layers: dx but no dW
    X, y = make_data(rng, "cross_entropy", 37, 5, 3)  # 37 = 2 * 16 + 5
    before = model.get_weights()
    check(*run_both(model, X, y, loss="cross_entropy", steps=3))
    after = model.get_weights()
    # W, gamma, beta, running_mean, running_var of the frozen layers 0 and 2 are untouched.
    for k in list(range(0, 5)) + list(range(10, 15)):
        np.testing.assert_array_equal(after[k], before[k])


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 17, 2), (64, 65, 3), (9, 257, 7)])
@pytest.mark.parametrize("isa_name", available_isas())
def test_odd_sizes_on_every_isa(shape, isa_name):
    n_in, hidden, n_out = shape
    rng = np.random.default_rng(9)
    model = fastmlp.MLP([n_in, hidden, n_out], activation="leaky_relu", seed=10)
    X, y = make_data(rng, "mse", 33, n_in, n_out)
    # SGD with momentum, not Adam: the tiling under test is in the GEMMs, and SGD carries their
    # rounding into the weights linearly. Adam divides by sqrt(v), so where a weight's gradients
    # nearly cancel across steps, summing them in another order (the reference's BLAS: OpenBLAS's
    # AVX-512 kernels on Zen 4 round differently from its AVX2 ones) moved one of 4464 weights by
    # 1.0e-5 (350 ulp) after 5 steps: Adam's sensitivity, not a tiling error.
    with isa(isa_name):
        check(*run_both(model, X, y, loss="mse", optimizer="sgd", hyper={"momentum": 0.9},
                        batch_size=8, steps=5))


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 6, 7, 8, 9, 17])
def test_batch_gather_of_narrow_rows(width):
    # The engine gathers each batch's rows of X and of the regression targets; rows of up to 8
    # floats are copied by fixed-size moves, wider ones by memcpy. A wrong row or width there
    # trains on other data than the reference's X[idx], y[idx].
    rng = np.random.default_rng(width)
    model = fastmlp.MLP([width, 6, width], seed=width)
    X, y = make_data(rng, "mse", 40, width, width)
    check(*run_both(model, X, y, loss="mse", optimizer="sgd", hyper={"momentum": 0.9},
                    batch_size=8, steps=5))


def test_learning_rate_per_step_is_used():
    rng = np.random.default_rng(12)
    model = fastmlp.MLP([4, 8, 2], seed=13)
    X, y = make_data(rng, "mse", 32, 4, 2)
    check(*run_both(model, X, y, loss="mse", optimizer="sgd", batch_size=8, steps=4,
                    lrs=[0.1, 0.05, 0.0, 0.2]))


def test_dropout_masks_match_the_reference_bit_for_bit():
    # Through the engine: a 1-layer identity network with dropout on its hidden layer.
    model = fastmlp.MLP([3, 1000, 1], activation="identity", dropout=0.25, seed=0)
    mask = dropout_mask(123, 4, 0, (7, 1000), 0.25)
    assert set(np.unique(mask)) == {0.0, np.float32(1 / 0.75)}
    # About a quarter dropped, as the rate says (7000 draws: 5 sigma is about 0.026).
    assert abs((mask == 0).mean() - 0.25) < 0.026
    # Different steps and layers give different masks.
    assert (dropout_mask(123, 5, 0, (7, 1000), 0.25) != mask).any()
    assert (dropout_mask(123, 4, 1, (7, 1000), 0.25) != mask).any()
    assert model.layers[0].dropout == 0.25


def test_engine_rejects_bad_descriptions():
    model = fastmlp.MLP([4, 8, 2], seed=0)
    specs = model._layer_specs()
    specs[1]["in"] = 9
    with pytest.raises(ValueError, match="input size"):
        _core.Network(specs, model._params, model._stats)
    specs = model._layer_specs()
    specs[0]["w"] = model._params.size
    with pytest.raises(ValueError, match="outside its buffer"):
        _core.Network(specs, model._params, model._stats)
    net = model._network()
    z = np.zeros_like(model._params)
    tr = _core.Trainer(net, "cross_entropy", "adam", dict(BASE_HYPER), 4, z, z.copy(), z.copy())
    X = np.ones((5, 4), np.float32)
    with pytest.raises(ValueError, match="outside"):
        tr.run(X, np.array([0, 1, 2, 0, 1]), np.arange(5), 0, 1, np.ones(1), 0, 0)
    with pytest.raises(ValueError, match="order"):
        tr.run(X, np.array([0, 1, 1, 0, 1]), np.array([0, 9]), 0, 1, np.ones(1), 0, 0)
    with pytest.raises(ValueError, match="lrs"):
        tr.run(X, np.array([0, 1, 1, 0, 1]), np.arange(5), 0, 2, np.ones(1), 0, 0)


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_sample_weights(loss, optimizer):
    """Weighted batches (sum w_i l_i / sum w_i), some rows weighted 0, against the reference."""
    rng = np.random.default_rng(21)
    out = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "mse": "identity"}[loss]
    model = fastmlp.MLP([5, 17, 3], activation="tanh", output_activation=out, seed=22)
    X, y = make_data(rng, loss, 41, 5, 3)  # 2 full batches of 16, then 9 rows
    w = rng.uniform(0.1, 3.0, 41).astype(np.float32)
    w[::5] = 0.0
    check(*run_both(model, X, y, loss=loss, optimizer=optimizer, steps=3, sample_weight=w,
                    hyper={"momentum": 0.9} if optimizer == "sgd" else None))
