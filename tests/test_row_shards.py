"""The trainer's row-shard path (cpp/trainer.cpp, shards_for): small networks' steps cut into
row shards that each run the whole forward and backward pass on one thread, their weight
gradients added in shard order. Each test first asserts that the configuration under test takes
that path, so none of them can pass by falling back to the layer-by-layer step."""
from __future__ import annotations

import numpy as np
import pytest

import fastmlp
from fastmlp import _core

from helpers import num_threads
from test_training_engine import BASE_HYPER, check, make_data, run_both


def trainer_for(model, loss, batch_size, start=0):
    specs = model._layer_specs(start, None, loss != "mse")
    g, s0, s1 = (np.zeros_like(model._params) for _ in range(3))
    net = _core.Network(specs, model._params, model._stats)
    return _core.Trainer(net, loss, "adam", dict(BASE_HYPER), batch_size, g, s0, s1), (g, s0, s1)


def shards(model, loss, rows, batch_size=None):
    return trainer_for(model, loss, batch_size or rows)[0].row_shards(rows)


def test_which_networks_shard():
    small = fastmlp.MLP([64] + [64] * 8 + [10], seed=0)  # deep-narrow
    assert shards(small, "cross_entropy", 256) == 2
    assert shards(small, "cross_entropy", 400) == 4
    assert shards(small, "cross_entropy", 4096) == 4  # never more than 4, whatever the batch
    assert shards(small, "cross_entropy", 199) == 0  # under 2 x 100 rows
    # Too little work to split: tiny 1-50-10-1 at batch 1000 is 610k multiply-adds.
    assert shards(fastmlp.MLP([1, 50, 10, 1], seed=0), "mse", 1000) == 0
    # Batch statistics need every row.
    assert shards(fastmlp.MLP([64, 64, 64, 10], batchnorm=True, seed=0), "cross_entropy",
                  256) == 0
    # Over 128k trainable parameters: mnist's layers split well on their own.
    assert shards(fastmlp.MLP([784, 300, 100, 10], seed=0), "cross_entropy", 200) == 0
    # Frozen layers count for neither the parameters nor the work; a frozen batch-norm layer
    # normalises with its running statistics, row by row.
    big = fastmlp.MLP([784, 300, 64, 10], batchnorm=[True, False, False], seed=0)
    big.layers[0].trainable = False
    assert shards(big, "cross_entropy", 400) == 4


# SGD in most cases: it carries the gradients' rounding into the weights linearly, so a
# comparison at 1e-5 tests the shards' gradient sums. Adam and RMSProp divide by sqrt(v), and
# where a weight's gradient nearly cancels over the batch, summing it in two halves moved
# RMSProp's step for 3 of 5840 weights by 2.7e-5 (test_odd_sizes_on_every_isa says the same of
# the reference BLAS's order). Adam is kept in the first case, which it passes with margin.
CASES = {
    "adam-cross_entropy": dict(sizes=[20, 64, 64, 10], act="relu", out="identity",
                               loss="cross_entropy", optimizer="adam", hyper={}),
    "sgd-nesterov-mse-dropout": dict(sizes=[20, 64, 64, 3], act="tanh", out="identity",
                                     loss="mse", optimizer="sgd",
                                     hyper={"momentum": 0.9, "nesterov": True},
                                     dropout=[0.3, 0.1]),
    "sgd-bce-clip-l2-maxnorm": dict(sizes=[20, 64, 64, 5], act="elu", out="sigmoid",
                                    loss="binary_cross_entropy", optimizer="sgd",
                                    hyper={"momentum": 0.5, "clip_norm": 0.5, "l2": 1e-3,
                                           "max_norm": 1.0}),
    "sgd-weight-decay-clip-value": dict(sizes=[20, 128, 64, 7], act="leaky_relu", out="identity",
                                        loss="cross_entropy", optimizer="sgd",
                                        hyper={"weight_decay": 0.05, "clip_value": 0.01}),
}


@pytest.mark.parametrize("batch", [200, 457])
@pytest.mark.parametrize("name", list(CASES))
def test_sharded_steps_match_the_reference_loop(name, batch):
    c = CASES[name]
    rng = np.random.default_rng(21)
    model = fastmlp.MLP(c["sizes"], activation=c["act"], output_activation=c["out"],
                        dropout=c.get("dropout", 0.0), seed=22)
    assert shards(model, c["loss"], batch) == (2 if batch < 400 else 4)
    # Three full batches, then a last one of 130 rows (one shard: the layer-by-layer path
    # inside the same run).
    n = 3 * batch + 130
    X, y = make_data(rng, c["loss"], n, c["sizes"][0], c["sizes"][-1])
    check(*run_both(model, X, y, loss=c["loss"], optimizer=c["optimizer"], hyper=c["hyper"],
                    batch_size=batch, steps=4))


def test_sharded_steps_with_sample_weights_and_frozen_layers():
    rng = np.random.default_rng(23)
    model = fastmlp.MLP([12, 80, 64, 40, 4], batchnorm=[True, False, False, False],
                        dropout=0.2, seed=24)
    model.layers[0].trainable = False  # frozen batch norm: running statistics, row by row
    model.layers[2].trainable = False  # frozen between trainable layers: dx but no dW
    assert shards(model, "cross_entropy", 256) == 2
    X, y = make_data(rng, "cross_entropy", 600, 12, 4)
    w = rng.uniform(0.0, 2.0, 600).astype(np.float32)
    before = model.get_weights()
    check(*run_both(model, X, y, loss="cross_entropy", optimizer="sgd",
                    hyper={"momentum": 0.9}, batch_size=256, steps=3, sample_weight=w))
    after = model.get_weights()
    for k in (0, 1, 2, 3, 4, 7, 8):  # layer 0's W, gamma, beta, running stats; layer 2's W, b
        np.testing.assert_array_equal(after[k], before[k])


def _train_bits(threads, seed=25):
    rng = np.random.default_rng(seed)
    model = fastmlp.MLP([64] + [64] * 4 + [10], dropout=0.1, seed=26)
    X, y = make_data(rng, "cross_entropy", 1100, 64, 10)
    with num_threads(threads):
        fastmlp.train(model, X, y, loss="cross_entropy", batch_size=400, epochs=2,
                      clip_norm=1.0, seed=27, verbose=0)
    return model._params.tobytes()


def test_sharded_bits_do_not_depend_on_the_thread_count():
    assert shards(fastmlp.MLP([64] + [64] * 4 + [10], seed=0), "cross_entropy", 400) == 4
    one = _train_bits(1)
    assert _train_bits(2) == one
    assert _train_bits(3) == one  # 3 threads on 4 shards: one thread takes two


def test_cached_frozen_layers_train_identically_when_sharded():
    rng = np.random.default_rng(28)
    X, y = make_data(rng, "cross_entropy", 900, 30, 6)
    models = []
    for cache in (False, True):
        m = fastmlp.MLP([30, 128, 96, 6], dropout=[0.0, 0.2], seed=29)
        m.layers[0].trainable = False
        models.append(m)
        fastmlp.train(m, X, y, loss="cross_entropy", batch_size=256, epochs=3,
                      cache_frozen=cache, seed=30, verbose=0)
    assert shards(models[0], "cross_entropy", 256) == 2
    assert shards(models[1], "cross_entropy", 256) == 2
    np.testing.assert_array_equal(models[0]._params, models[1]._params)


def test_a_shard_with_a_nonfinite_loss_drops_the_whole_step():
    # One extreme row makes its shard's loss non-finite while the other shard's is fine: the
    # step must still be dropped whole, bit for bit a step with lr = 0 (plain SGD), the other
    # shard's gradient never reaching the weights.
    from fastmlp.schedules import FromCallable
    rng = np.random.default_rng(31)
    model = fastmlp.MLP([20, 64, 64, 3], seed=32)
    assert shards(model, "mse", 200) == 2
    X, y = make_data(rng, "mse", 600, 20, 3)
    clean = X.copy()
    X[200 + 150] = 3e38  # batch 1, second shard
    twin = fastmlp.MLP([20, 64, 64, 3], seed=32)
    with pytest.warns(RuntimeWarning, match="skipped 2 batch"):
        h = fastmlp.train(model, X, y, loss="mse", optimizer="sgd", lr=0.05, batch_size=200,
                          epochs=2, shuffle=False, on_nonfinite="skip", seed=0, verbose=0)
    assert h.skipped_batches == 2
    assert [(e["step"], e["batch"]) for e in h.nonfinite] == [(1, 1), (4, 1)]
    zero_there = FromCallable(lambda step: 0.0 if step % 3 == 1 else 0.05)
    fastmlp.train(twin, clean, y, loss="mse", optimizer="sgd", lr=zero_there, batch_size=200,
                  epochs=2, shuffle=False, seed=0, verbose=0)
    np.testing.assert_array_equal(model._params, twin._params)
