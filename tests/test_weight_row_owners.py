"""The forward GEMM's packing of W by the optimizer's row owners (Operand::row_split).

The trainer tells the first layer's GEMM which thread updates which rows of W, and that thread
packs exactly those rows, keeping them from the other threads (cpp/threads.h, keep). Packing is
a copy, so any split must give the bits of dense_forward without one; these tests check that on
shapes that take the two-phase path (where the split is used), with splits that cut the 32-row
pack pieces, empty shares, and more owners than cores (helpers preempted: the caller takes
their kept rows over), and that whole training runs keep their bits across thread counts.
"""
import numpy as np
import pytest

import fastmlp
from fastmlp import _core
from helpers import num_threads, rand


def assert_same_bits(a, b, what):
    assert a.shape == b.shape and np.array_equal(a, b), f"{what}: bits differ"


def splits(I, owners, rng):
    """Even, ragged, empty-share and one-owner-takes-all splits of I rows."""
    even = [I * j // owners for j in range(owners + 1)]
    cuts = sorted(rng.integers(0, I + 1, owners - 1).tolist())
    all_first = [0] + [I] * owners
    all_last = [0] * owners + [I]
    return [even, [0] + cuts + [I], all_first, all_last]


# (batch, inputs, outputs): mnist's first layer and odd sizes around the 32-row pack pieces.
SHAPES = [(200, 784, 300), (200, 257, 300), (129, 513, 257), (256, 1000, 64)]


@pytest.mark.parametrize("B,I,O", SHAPES)
@pytest.mark.parametrize("threads", [2, 3, 8])
def test_any_row_split_gives_the_bits_of_dense_forward(B, I, O, threads):
    rng = np.random.default_rng(B + I + O + threads)
    x, b = rand(rng, B, I), rand(rng, O)
    with num_threads(threads):
        for split in splits(I, threads, rng):
            # A new W each time, the split call first: a row left unpacked would keep the
            # previous call's packed values and show here.
            W = rand(rng, I, O)
            y, z = _core._dense_forward_row_owners(x, W, b, "relu", split)
            want_y, want_z = _core.dense_forward(x, W, b, "relu", 0.0)
            assert_same_bits(z, want_z, f"z with row split {split}")
            assert_same_bits(y, want_y, f"y with row split {split}")
    # The split changes nothing but who packs: the answer is right, not merely repeatable.
    ref = np.maximum(x.astype(np.float64) @ W + b, 0)
    np.testing.assert_allclose(y, ref, rtol=2e-5, atol=2e-4)


def test_a_split_for_another_owner_count_is_ignored():
    rng = np.random.default_rng(1)
    x, W, b = rand(rng, 200, 784), rand(rng, 784, 300), rand(rng, 300)
    with num_threads(2):
        want = _core.dense_forward(x, W, b, "identity", 0.0)[1]
        got = _core._dense_forward_row_owners(x, W, b, "identity", [0, 100, 500, 784])[1]
    assert_same_bits(got, want, "three-owner split on two threads")


@pytest.mark.parametrize("split,message", [
    ([0, 784], None),
    ([0, 500, 700], "from 0 to 784"),
    ([1, 500, 784], "from 0 to 784"),
    ([0, 600, 500, 784], "non-decreasing"),
    ([0], "from 0 to 784"),
])
def test_bad_row_splits_raise(split, message):
    rng = np.random.default_rng(2)
    x, W, b = rand(rng, 8, 784), rand(rng, 784, 30), rand(rng, 30)
    if message is None:
        _core._dense_forward_row_owners(x, W, b, "identity", split)
        return
    with pytest.raises(ValueError, match=message):
        _core._dense_forward_row_owners(x, W, b, "identity", split)


# 784-300-100-10 streams all params but W1 on 2+ threads (OptimSlot::stream_param); the 64-wide
# and 33-129-129-3 networks take row shards at batch 200 and stream every param, the latter's
# from odd offsets (b1 starts at float 4257: plain stores where a slot is not 16-byte aligned).
@pytest.mark.parametrize("sizes,bn", [([784, 300, 100, 10], False), ([784, 300, 100, 10], True),
                                      ([257, 300, 17, 3], False), ([64] * 9 + [10], False),
                                      ([33, 129, 129, 3], False)])
def test_training_keeps_its_bits_across_thread_counts(sizes, bn):
    # The trainer plans the row owners and the streamed params at every call from the
    # optimizer's split, which depends on the thread count: the trained weights must not.
    rng = np.random.default_rng(3)
    X = rand(rng, 1000, sizes[0])
    y = rng.integers(0, sizes[-1], 1000)
    runs = {}
    for threads in (1, 2, 3, 8, 2):
        with num_threads(threads):
            model = fastmlp.MLP(sizes, seed=0, batchnorm=bn)
            fastmlp.train(model, X, y, loss="cross_entropy", batch_size=200, epochs=2,
                          lr=1e-3, clip_norm=1.0, verbose=0, seed=0)
            runs.setdefault(threads, []).append(np.array(model._params, copy=True))
    base = runs[1][0]
    assert not np.array_equal(base, fastmlp.MLP(sizes, seed=0, batchnorm=bn)._params)
    for threads, got in runs.items():
        for r, p in enumerate(got):
            assert_same_bits(p, base, f"{threads} threads, run {r}")
