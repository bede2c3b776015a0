"""NaN/Inf during training: a bad step is rejected before it touches anything, train() stops
with the last good step's weights (bit for bit) or skips the batch, and says what happened.

Every divergence here comes from a real path, not from poking a buffer: NaN in X or y is refused
up front, so the faults are driven by a learning rate far too large, a finite but extreme input
row (it overflows float32 inside the network), or hand-set weights whose outputs cancel while
their gradients overflow. "The last good weights" is never a stored constant: it is a second,
unshuffled run stopped after exactly that many steps (the same arithmetic step for step), so
the comparison is bitwise.
"""
from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp.schedules import FromCallable


def data(n=96, features=5, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, features)).astype(np.float32)
    y = (np.sin(X[:, :1]) + 0.3 * X[:, 1:2]).astype(np.float32)
    labels = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    return X, y, labels


def run(model, X, y, **kw):
    """train() without a progress bar, unshuffled unless told, warnings collected."""
    kw = dict(dict(verbose=0, seed=0, shuffle=False), **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = fastmlp.train(model, X, y, **kw)
    return h, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def after_steps(model0, X, y, steps, batch_size, **kw):
    """model0 trained for exactly `steps` unshuffled steps: whole epochs, then the first
    batches of the next, carried over by an OptimizerState (the step, so the schedule, Adam's
    bias correction and the dropout masks continue) - the state a run that stopped before step
    `steps` must return."""
    m = copy.deepcopy(model0)
    state = fastmlp.OptimizerState()
    epochs, batches = divmod(steps, -(-len(X) // batch_size))
    kw = dict(kw, batch_size=batch_size, optimizer_state=state)
    if epochs:
        h, w = run(m, X, y, epochs=epochs, **kw)
        assert h.stopped_reason is None and not w
    if batches:
        rows = batches * batch_size
        h, w = run(m, X[:rows], y[:rows], epochs=1, **kw)
        assert h.stopped_reason is None and not w
    return m, state


def assert_same_state(model, twin, what):
    np.testing.assert_array_equal(model._params, twin._params, err_msg=f"{what}: params")
    np.testing.assert_array_equal(model._stats, twin._stats, err_msg=f"{what}: statistics")


def first_event(h):
    assert h.nonfinite, "no NaN/Inf event was recorded"
    return h.nonfinite[0]


# ---- stop: the weights of the last good step ------------------------------------------------

@pytest.mark.parametrize("case", ["sgd-mse", "momentum-mse", "adam-bn-dropout-ce"])
def test_a_huge_learning_rate_stops_with_the_last_good_steps_weights(case):
    X, y, labels = data()
    if case == "adam-bn-dropout-ce":
        model = fastmlp.MLP([5, 17, 3], seed=2, batchnorm=[True, False], dropout=0.2)
        kw = dict(loss="cross_entropy", optimizer="adam", lr=1e37)
        target = labels
    else:
        # Rates that diverge in the second epoch, through an overflowing gradient.
        model = fastmlp.MLP([5, 17, 9, 1], seed=2)
        kw = dict(loss="mse", optimizer="sgd", lr=0.8) if case == "sgd-mse" else \
            dict(loss="mse", optimizer="momentum", lr=1.0)
        target = y
    start = copy.deepcopy(model)
    h, warned = run(model, X, target, epochs=20, batch_size=16, **kw)

    event = first_event(h)
    assert event["action"] == "stopped" and h.stopped_reason.startswith("diverged")
    assert len(h.nonfinite) == 1 and h.skipped_batches == 0
    assert len(warned) == 1 and f"diverged at step {event['step']}" in warned[0]
    bad = event["step"]
    assert bad >= 1, "diverged at the first step: nothing to prove about the last good one"
    assert np.isfinite(model._params).all() and np.isfinite(model._stats).all()
    twin, _ = after_steps(start, X, target, bad, 16, **kw)
    assert not np.array_equal(twin._params, start._params)
    assert_same_state(model, twin, f"{case}: weights after step {bad - 1}")
    # The stopped epoch is not logged: History holds the completed ones only.
    assert h.epoch == list(range(event["epoch"]))


@pytest.mark.parametrize("value, cause", [(3e38, "loss"), (1e20, "overflow")])
def test_an_extreme_row_rolls_back_batch_norm_statistics_too(value, cause):
    # A finite but extreme row passes train's input checks and overflows float32 inside: at
    # 3e38 the loss is NaN after the training forward pass has already moved the running
    # statistics (they must be put back); at 1e20 loss and gradient stay finite but the
    # running variance overflows (found afterwards by the replay).
    X, _, labels = data()
    X[37] = value  # batch 2 of 16-row batches, unshuffled
    model = fastmlp.MLP([5, 7, 3], seed=0, batchnorm=True)
    start = copy.deepcopy(model)
    kw = dict(loss="cross_entropy", optimizer="sgd", lr=0.01)
    h, warned = run(model, X, labels, epochs=2, batch_size=16, **kw)
    event = first_event(h)
    assert (event["step"], event["batch"], event["cause"]) == (2, 2, cause)
    assert np.isfinite(model._stats).all()
    twin, _ = after_steps(start, X, labels, 2, 16, **kw)
    assert_same_state(model, twin, f"{cause} at step 2")


def test_an_overflowing_update_is_found_and_undone_exactly():
    # lr = 3e38 at step 5 only: that update sends weights to Inf although its loss and gradient
    # are finite. The engine notices at the end of its call; the replay finds step 5.
    X, y, _ = data()
    model = fastmlp.MLP([5, 17, 1], seed=4)
    start = copy.deepcopy(model)
    lr = FromCallable(lambda step: 3e38 if step == 5 else 0.02)
    kw = dict(loss="mse", optimizer="momentum", lr=lr)
    state = fastmlp.OptimizerState()
    h, warned = run(model, X, y, epochs=3, batch_size=16, optimizer_state=state, **kw)
    event = first_event(h)
    assert (event["step"], event["cause"], event["action"]) == (5, "overflow", "stopped")
    assert "overflowed float32" in warned[0] and "after step 4" in warned[0]
    twin, twin_state = after_steps(start, X, y, 5, 16, **kw)
    assert_same_state(model, twin, "weights before the overflowing update")
    np.testing.assert_array_equal(state.state0, twin_state.state0, err_msg="momentum buffer")
    assert state.step == twin_state.step == 5


def test_a_nonfinite_gradient_is_rejected_before_weights_and_optimizer_state_change():
    # Two identical hidden units whose output weights cancel: the output of the extreme row is
    # exactly 0 (finite loss), while dL/dW2 = a * dL/dout = 2e38 * -12.5 overflows to -Inf.
    X = np.full((8, 2), 0.5, np.float32)
    X[0] = 1e38
    y = np.full((8, 1), 100.0, np.float32)
    model = fastmlp.MLP([2, 2, 1], seed=0)
    model.layers[0].W[...] = 1.0
    model.layers[1].W[...] = [[1.0], [-1.0]]
    # Adam with lr=0 fills its moments without moving the weights (which must keep cancelling).
    state = fastmlp.OptimizerState()
    _, warned = run(model, X[1:], y[1:], loss="mse", optimizer="adam", lr=0.0, epochs=1,
                    batch_size=4, optimizer_state=state)
    assert not warned and np.abs(state.state1).max() > 0
    before = copy.deepcopy(model), state.state0.copy(), state.state1.copy()

    h, warned = run(model, X, y, loss="mse", optimizer="adam", lr=1e-3, epochs=1,
                    batch_size=4, optimizer_state=state)
    assert first_event(h)["cause"] == "gradient"
    assert "NaN/Inf in the backward pass" in warned[0]
    assert_same_state(model, before[0], "weights after a rejected gradient")
    np.testing.assert_array_equal(state.state0, before[1], err_msg="Adam's first moment")
    np.testing.assert_array_equal(state.state1, before[2], err_msg="Adam's second moment")


# ---- skip: drop the batch, go on ------------------------------------------------------------

def test_skip_drops_exactly_the_batches_with_a_nonfinite_loss():
    # Plain SGD: dropping a batch is, bit for bit, a step with lr = 0. So the skipping run on X
    # with an extreme row equals a run on clean X whose schedule is 0 on that row's batches.
    X, y, _ = data()
    clean = X.copy()
    X[37] = 3e38
    n_batches, bad = 6, 2
    model = fastmlp.MLP([5, 17, 9, 1], seed=3)
    twin = copy.deepcopy(model)
    h, warned = run(model, X, y, loss="mse", optimizer="sgd", lr=0.05, epochs=4,
                    batch_size=16, on_nonfinite="skip")
    assert h.stopped_reason is None and h.epoch == [0, 1, 2, 3]
    assert h.skipped_batches == 4
    assert [(e["step"], e["batch"], e["action"]) for e in h.nonfinite] == \
        [(e * n_batches + bad, bad, "skipped") for e in range(4)]
    assert len(warned) == 1 and "skipped 4 batch(es)" in warned[0]
    assert all(math.isfinite(v) for v in h.history["loss"])
    zero_there = FromCallable(lambda step: 0.0 if step % n_batches == bad else 0.05)
    _, w = run(twin, clean, y, loss="mse", optimizer="sgd", lr=zero_there, epochs=4,
               batch_size=16)
    assert not w
    assert_same_state(model, twin, "skipped batches vs zero-lr steps")


def test_skip_drops_overflowing_updates_and_continues():
    X, y, _ = data()
    model = fastmlp.MLP([5, 17, 1], seed=5)
    twin = copy.deepcopy(model)
    bad = {5, 13}
    h, warned = run(model, X, y, loss="mse", optimizer="sgd", epochs=3, batch_size=16,
                    lr=FromCallable(lambda s: 3e38 if s in bad else 0.02), on_nonfinite="skip")
    assert [(e["step"], e["cause"]) for e in h.nonfinite] == [(5, "overflow"), (13, "overflow")]
    assert h.skipped_batches == 2 and h.stopped_reason is None and len(h.epoch) == 3
    run(twin, X, y, loss="mse", optimizer="sgd", epochs=3, batch_size=16,
        lr=FromCallable(lambda s: 0.0 if s in bad else 0.02))
    assert_same_state(model, twin, "skipped overflowing updates vs zero-lr steps")


def test_skip_stops_when_every_batch_of_an_epoch_fails():
    X, y, _ = data()
    model = fastmlp.MLP([5, 17, 9, 1], seed=2)
    h, warned = run(model, X, y, loss="mse", optimizer="sgd", lr=3.0, epochs=30,
                    batch_size=16, on_nonfinite="skip", shuffle=True)
    assert h.stopped_reason.startswith("diverged: every batch of epoch")
    assert len(warned) == 1 and warned[0].startswith("fastmlp.train: diverged")
    assert h.skipped_batches >= 6 and np.isfinite(model._params).all()
    assert len(h.epoch) < 30


# ---- what the user is told ------------------------------------------------------------------

def test_the_warning_gives_advice_without_repeating_what_is_already_on():
    X, y, _ = data()
    plain = fastmlp.MLP([5, 17, 1], seed=2)
    _, warned = run(plain, X, y, loss="mse", optimizer="sgd", lr=1e30, epochs=3)
    assert "smaller lr" in warned[0] and "clip_norm=1.0" in warned[0]
    assert "batchnorm=True" in warned[0] and "fastmlp.diagnose" in warned[0]
    clipped = fastmlp.MLP([5, 17, 1], seed=2, batchnorm=[True, False])
    _, warned = run(clipped, X, y, loss="mse", optimizer="sgd", lr=1e38, epochs=3,
                    clip_norm=1.0)
    assert "clip_norm=1.0" not in warned[0] and "batchnorm=True" not in warned[0]


def test_weights_that_are_already_nonfinite_stop_training_at_once():
    X, y, _ = data()
    model = fastmlp.MLP([5, 7, 1], seed=0)
    model.layers[1].b[0] = np.inf
    h, warned = run(model, X, y, loss="mse", epochs=2)
    assert h.epoch == [] and h.stopped_reason.startswith("diverged before the first step")
    assert "nothing was trained" in warned[0]


def test_on_nonfinite_is_checked():
    X, y, _ = data()
    with pytest.raises(ValueError, match="on_nonfinite: expected one of stop, skip, got 'ignore'"):
        fastmlp.train(fastmlp.MLP([5, 1]), X, y, loss="mse", on_nonfinite="ignore", verbose=0)


# ---- the engine's own checks ------------------------------------------------------------------

@pytest.mark.parametrize("value, finite", [(np.nan, False), (np.inf, False), (-np.inf, False),
                                           (np.finfo(np.float32).max, True),
                                           (-np.finfo(np.float32).tiny / 2, True)])
@pytest.mark.parametrize("buffer", ["params", "state0", "state1"])
# The larger network's buffers are checked in 16384-float chunks on the pool (its 3 x 92k
# floats make 33 tasks), the small one's on the calling thread.
@pytest.mark.parametrize("sizes", [[5, 17, 3, 1], [5, 300, 300, 1]])
def test_the_engine_finds_a_nonfinite_value_anywhere_in_what_steps_write(value, finite, buffer,
                                                                         sizes):
    # An empty run (no batches) is only the engine's end-of-call check of its buffers.
    from fastmlp import _core
    from fastmlp.training import _hyper, targets
    X, y, _ = data(n=9)
    model = fastmlp.MLP(sizes, seed=0)
    n = model._params.size
    grads, state0, state1 = (np.zeros(n, np.float32) for _ in range(3))
    kind, hp = _hyper("adam")
    engine = _core.Trainer(model._network(), "mse", kind, hp, 4, grads, state0, state1)
    target = {"params": model._params, "state0": state0, "state1": state1}[buffer]
    order = np.arange(9, dtype=np.int64)
    # Parameters are 16-float aligned per tensor, with padding between them that no step
    # writes: test the first element, one inside a vector, the last one of a tensor, and the
    # middle and last elements of the widest W (in later chunks of the larger network).
    last = model.layers[-1]._offsets["b"] + model.layers[-1].n_out - 1
    wide = max(model.layers, key=lambda layer: layer.n_in * layer.n_out)
    w0, w_len = wide._offsets["W"], wide.n_in * wide.n_out
    for at in (0, 17, w0 + w_len // 2, w0 + w_len - 1, last):
        saved = target[at]
        target[at] = value
        log = engine.run(X, targets(model, y, "mse", 9), order, 0, 0, np.ones(1), 0, 0)
        target[at] = saved
        assert log["fault"] == (None if finite else "state"), (buffer, at)
