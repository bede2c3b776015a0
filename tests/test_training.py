"""fastmlp.train and the model: each feature is checked by an outcome that would differ if the
feature were wrong (not merely that it runs)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastmlp
from fastmlp.callbacks import Callback, EarlyStopping, LambdaCallback, ReduceLROnPlateau
from fastmlp.reference import training as RT
from fastmlp.schedules import CosineDecay, ExponentialDecay, StepDecay, Warmup

from helpers import assert_close, num_threads


def blobs(n=240, n_in=6, n_classes=3, seed=0):
    """Separable-ish Gaussian clusters: a task a small MLP learns in a few epochs."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, n_in)) * 2.5
    y = rng.integers(0, n_classes, n)
    X = (centres[y] + rng.standard_normal((n, n_in))).astype(np.float32)
    return X, y


def quiet(**kw):
    return dict(verbose=0, **kw)


# ---- learning and predicting ----

def test_training_learns_and_predict_matches_the_reference_forward():
    X, y = blobs()
    model = fastmlp.MLP([6, 32, 16, 3], seed=0)
    h = fastmlp.train(model, X, y, loss="cross_entropy", epochs=15, batch_size=16, seed=0,
                      **quiet())
    assert h.history["loss"][-1] < 0.5 * h.history["loss"][0]
    assert h.history["accuracy"][-1] > 0.9
    out = model.predict(X)
    ref, _ = RT.forward(model._layer_specs(), model._params, model._stats, X, training=False)
    assert_close(out, ref, name="predict")
    p = model.predict_proba(X)
    assert_close(p.sum(axis=1), np.ones(len(X)), name="row sums")
    np.testing.assert_array_equal(model.predict_classes(X), out.argmax(axis=1))


def test_softmax_output_predicts_probabilities():
    X, y = blobs()
    model = fastmlp.MLP([6, 8, 3], output_activation="softmax", seed=1)
    fastmlp.train(model, X, y, loss="cross_entropy", epochs=2, **quiet(seed=0))
    p = model.predict(X)
    assert (p >= 0).all()
    assert_close(p.sum(axis=1), np.ones(len(X)), name="row sums")


def test_history_has_every_documented_key():
    X, y = blobs()
    model = fastmlp.MLP([6, 8, 3], seed=1)
    h = fastmlp.train(model, X, y, loss="cross_entropy", epochs=3, validation_split=0.25,
                      **quiet(seed=0))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "grad_norm", "time"):
        assert len(h.history[key]) == 3, key
    assert h.epoch == [0, 1, 2]
    assert h.params["steps"] == math.ceil(180 / 32)
    # val_loss is the inference-mode loss on the last quarter of the rows (Keras' split).
    ev = fastmlp.evaluate(model, X[180:], y[180:], loss="cross_entropy")
    assert ev["loss"] == pytest.approx(h.history["val_loss"][-1], rel=1e-6)


def test_regression_with_mse_and_binary_classification():
    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, (300, 2)).astype(np.float32)
    y = (X[:, :1] * X[:, 1:]).astype(np.float32)
    model = fastmlp.MLP([2, 32, 1], activation="tanh", seed=2)
    h = fastmlp.train(model, X, y, loss="mse", lr=1e-2, epochs=60, **quiet(seed=0))
    assert h.history["loss"][-1] < 0.2 * h.history["loss"][0]
    assert "accuracy" not in h.history
    yb = (X[:, 0] > X[:, 1]).astype(np.float32)
    model = fastmlp.MLP([2, 16, 1], output_activation="sigmoid", seed=3)
    h = fastmlp.train(model, X, yb, loss="binary_cross_entropy", lr=1e-2, epochs=30,
                      **quiet(seed=0))
    assert h.history["accuracy"][-1] > 0.9
    p = model.predict(X)
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_array_equal(model.predict_classes(X), (p[:, 0] > 0.5).astype(int))


# ---- reproducibility ----

@pytest.mark.parametrize("options", [{}, {"batchnorm": True, "dropout": 0.3}])
def test_same_seed_same_bits_whatever_the_thread_count(options):
    X, y = blobs(n=500, n_in=20)
    results = []
    for threads in (1, 2, 1):
        with num_threads(threads):
            model = fastmlp.MLP([20, 64, 32, 3], seed=5, **options)
            fastmlp.train(model, X, y, loss="cross_entropy", epochs=3, batch_size=50,
                          **quiet(seed=7))
            results.append(model._params.copy())
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])
    other = fastmlp.MLP([20, 64, 32, 3], seed=5, **options)
    fastmlp.train(other, X, y, loss="cross_entropy", epochs=3, batch_size=50, **quiet(seed=8))
    assert not np.array_equal(other._params, results[0])  # the seed matters


# ---- early stopping and callbacks ----

def test_early_stopping_restores_the_best_epochs_weights():
    X, y = blobs(n=120, seed=3)
    Xv, yv = blobs(n=60, seed=4)
    Xv = Xv + np.float32(1.5)  # a shifted validation set: val_loss soon rises (overfitting)
    model = fastmlp.MLP([6, 64, 3], seed=0)
    snapshots = []
    record = LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(model.get_weights()))
    h = fastmlp.train(model, X, y, loss="cross_entropy", lr=1e-2, epochs=60,
                      validation_data=(Xv, yv), early_stopping=True, patience=3,
                      callbacks=[record], **quiet(seed=0))
    vals = h.history["val_loss"]
    best = int(np.argmin(vals))
    assert len(vals) < 60, "stopped early"
    assert len(vals) == best + 1 + 3, "stopped patience epochs after the best"
    for got, want in zip(model.get_weights(), snapshots[best]):
        np.testing.assert_array_equal(got, want)


def test_callback_can_stop_training_and_receives_logs():
    seen = []

    class StopAtTwo(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(dict(logs))
            if epoch == 1:
                self.stop_training = True

    X, y = blobs()
    model = fastmlp.MLP([6, 8, 3], seed=0)
    h = fastmlp.train(model, X, y, loss="cross_entropy", epochs=10, callbacks=[StopAtTwo()],
                      **quiet(seed=0))
    assert h.epoch == [0, 1]
    assert seen[1]["loss"] == h.history["loss"][1]


def test_reduce_lr_on_plateau_lowers_the_rate_in_effect():
    X, y = blobs()
    model = fastmlp.MLP([6, 8, 3], seed=0)
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0)  # never improves
    h = fastmlp.train(model, X, y, loss="cross_entropy", lr=0.1, epochs=4, callbacks=[cb],
                      **quiet(seed=0))
    # Epoch 0 sets the best; epoch 1 fails to improve it by min_delta (patience 1): the scale
    # halves for epoch 2, and again after each later epoch.
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_only_reduce_lr_on_plateau_scales_the_rate():
    class HasScale(Callback):  # a user callback that happens to have a `scale` attribute
        scale = 0.5

    X, y = blobs()
    model = fastmlp.MLP([6, 8, 3], seed=0)
    h = fastmlp.train(model, X, y, loss="cross_entropy", lr=0.1, epochs=2,
                      callbacks=[HasScale()], **quiet(seed=0))
    assert h.history["lr"] == [0.1, 0.1]


# ---- schedules ----

@pytest.mark.parametrize("schedule", [
    ExponentialDecay(0.1, decay_steps=5, decay_rate=0.5),
    StepDecay(0.1, step_size=7, gamma=0.5),
    CosineDecay(0.1, decay_steps=30),
    Warmup(0.1, warmup_steps=10),
    lambda step: 0.1 / (1 + step)], ids=["exp", "step", "cosine", "warmup", "callable"])
def test_schedules_set_the_rate_of_every_step(schedule):
    X, y = blobs(n=64)
    model = fastmlp.MLP([6, 8, 3], seed=0)
    h = fastmlp.train(model, X, y, loss="cross_entropy", lr=schedule, batch_size=16, epochs=5,
                      optimizer="sgd", **quiet(seed=0))
    # 4 steps per epoch: history records the rate of each epoch's last step.
    assert h.history["lr"] == pytest.approx([schedule(4 * e + 3) for e in range(5)])
    # and the steps really used them: replay with the reference at those rates.
    ref = fastmlp.MLP([6, 8, 3], seed=0)
    specs = ref._layer_specs(0, None, True)
    bufs = [ref._params, ref._stats] + [np.zeros_like(ref._params) for _ in range(3)]
    rng = np.random.default_rng(0)
    rng.integers(0, 2 ** 63)  # the dropout seed draw comes first
    hp = dict(momentum=0.0, nesterov=False, rho=0.9, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, decoupled=False, clip_value=None, clip_norm=None, l1=0.0,
              l2=0.0, max_norm=None)
    step = 0
    for _ in range(5):
        order = rng.permutation(64)
        for k in range(4):
            idx = order[16 * k:16 * (k + 1)]
            RT.train_step(specs, *bufs, X[idx], y[idx], loss="cross_entropy", optimizer="sgd",
                          hyper=hp, lr=schedule(step), step=step, seed=0)
            step += 1
    assert_close(model._params, ref._params, name="params")


# ---- regularisation ----

def test_max_norm_bounds_every_unit_after_each_step():
    X, y = blobs()
    model = fastmlp.MLP([6, 32, 3], seed=0, init="normal")
    norms = []
    cb = LambdaCallback(on_epoch_end=lambda e, logs: norms.append(
        [np.linalg.norm(l.W.astype(np.float64), axis=0).max() for l in model.layers]))
    # batch_size = n: one step per epoch, so each epoch end is right after a step.
    fastmlp.train(model, X, y, loss="cross_entropy", lr=0.5, optimizer="sgd",
                  batch_size=len(X), epochs=5, max_norm=0.3, callbacks=[cb], **quiet(seed=0))
    assert max(max(n) for n in norms) <= 0.3 * (1 + 1e-6)
    assert max(norms[-1]) > 0.29  # the bound is active, not vacuous


def test_l1_drives_weights_to_zero_and_l2_shrinks_them():
    X, y = blobs()
    sizes = [6, 32, 3]
    plain, l1, l2 = (fastmlp.MLP(sizes, seed=0) for _ in range(3))
    kw = dict(loss="cross_entropy", lr=1e-2, epochs=20, **quiet(seed=0))
    fastmlp.train(plain, X, y, **kw)
    fastmlp.train(l1, X, y, l1=1e-2, **kw)
    fastmlp.train(l2, X, y, l2=1e-2, **kw)
    w = lambda m: np.concatenate([l.W.ravel() for l in m.layers])  # noqa: E731
    assert (np.abs(w(l1)) < 1e-3).mean() > 3 * (np.abs(w(plain)) < 1e-3).mean()
    assert np.linalg.norm(w(l2)) < 0.8 * np.linalg.norm(w(plain))


# ---- transfer learning, freezing, caching ----

def pretrained():
    X, y = blobs(n=300, n_in=8, n_classes=4, seed=10)
    base = fastmlp.MLP([8, 32, 24, 4], batchnorm=True, seed=0)
    fastmlp.train(base, X, y, loss="cross_entropy", epochs=5, **quiet(seed=0))
    return base, X, y


def test_from_pretrained_copies_and_freezes_reused_layers():
    base, X, y = pretrained()
    model = fastmlp.MLP.from_pretrained(base, 2, [5], seed=1)
    assert model.sizes == [8, 32, 24, 5]
    assert [l.trainable for l in model.layers] == [False, False, True]
    before = model.get_weights()
    for got, want in zip(before[:10], base.get_weights()[:10]):
        np.testing.assert_array_equal(got, want)
    y5 = (y + X[:, 0].astype(int)) % 5
    fastmlp.train(model, X, y5, loss="cross_entropy", epochs=3, **quiet(seed=0))
    after = model.get_weights()
    for got, want in zip(after[:10], before[:10]):  # frozen: bit-identical, stats included
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(after[10], before[10])  # the new head learned


def test_cached_frozen_layers_train_identically():
    base, X, y = pretrained()
    models = [fastmlp.MLP.from_pretrained(base, 2, [16, 4], seed=3, dropout=0.2)
              for _ in range(2)]
    histories = [fastmlp.train(m, X, y, loss="cross_entropy", epochs=4, cache_frozen=c,
                               validation_split=0.2, **quiet(seed=4))
                 for m, c in zip(models, (False, True))]
    np.testing.assert_array_equal(models[0]._params, models[1]._params)
    assert histories[0].history["loss"] == histories[1].history["loss"]
    assert histories[0].history["val_loss"] == histories[1].history["val_loss"]


def test_freeze_by_count_and_no_backward_below_lowest_trainable():
    base, X, y = pretrained()
    model = fastmlp.MLP.from_pretrained(base, 3, freeze=1)
    assert [l.trainable for l in model.layers] == [False, True, True]
    w0 = model.layers[0].W.copy()
    fastmlp.train(model, X, y, loss="cross_entropy", epochs=2, **quiet(seed=0))
    np.testing.assert_array_equal(model.layers[0].W, w0)
    assert not np.array_equal(model.layers[1].W, base.layers[1].W)


# ---- divergence ----

def test_a_diverging_run_stops_and_keeps_the_last_good_weights():
    # The seeds' ln(x) regression with a learning rate far too large for plain SGD.
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 100, (256, 1)).astype(np.float32)
    y = np.log(x).astype(np.float32)
    model = fastmlp.MLP([1, 64, 64, 1], seed=0)
    with pytest.warns(RuntimeWarning, match="diverged"):
        h = fastmlp.train(model, x, y, loss="mse", optimizer="sgd", lr=0.5, epochs=50,
                          **quiet(seed=0))
    assert np.isfinite(model._params).all()
    assert "diverged" in h.stopped_reason
    # The last good step's weights, bit for bit: proved in tests/test_divergence.py.
    assert h.nonfinite[-1]["action"] == "stopped"
    assert len(h.epoch) < 50


# ---- save and load ----

def test_save_load_round_trip_is_exact(tmp_path):
    base, X, _ = pretrained()
    base.layers[0].trainable = False
    path = tmp_path / "model.npz"
    fastmlp.save(base, path)
    loaded = fastmlp.load(path)
    for got, want in zip(loaded.get_weights(), base.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert [l.trainable for l in loaded.layers] == [False, True, True]
    assert [l.activation for l in loaded.layers] == [l.activation for l in base.layers]
    np.testing.assert_array_equal(loaded.predict(X), base.predict(X))
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary left behind


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastmlp model"):
        fastmlp.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a fastmlp model file"):
        fastmlp.load(tmp_path / "junk.npz")


# ---- bad input: rejected before any training ----

@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(loss="hinge"), ValueError, "loss: expected one of"),
    (dict(loss="cross_entropy", optimizer="adadelta"), ValueError, "optimizer: expected one of"),
    (dict(loss="cross_entropy", batch_size=0), ValueError, "batch_size: expected an integer"),
    (dict(loss="cross_entropy", epochs=-1), ValueError, "epochs"),
    (dict(loss="cross_entropy", lr=-0.1), ValueError, "lr"),
    (dict(loss="cross_entropy", clip_norm=0.0), ValueError, "clip_norm"),
    (dict(loss="cross_entropy", validation_split=0.2, validation_data=(None, None)),
     ValueError, "pass one or the other"),
    (dict(loss="cross_entropy", optimizer="adam", nesterov=True), ValueError, "nesterov"),
    (dict(loss="mse"), ValueError, "y: expected shape"),
    (dict(loss="cross_entropy", cache_frozen=True), ValueError, "cache_frozen"),
    (dict(loss="cross_entropy", callbacks=[print]), TypeError, r"callbacks\[0\]"),
    (dict(loss="cross_entropy", early_stopping="yes"), TypeError, "early_stopping"),
], ids=lambda v: str(v)[:40])
def test_bad_options(kwargs, exc, match):
    X, y = blobs(n=40)
    model = fastmlp.MLP([6, 8, 3], seed=0)
    before = model._params.copy()
    with pytest.raises(exc, match=match):
        fastmlp.train(model, X, y, **quiet(**kwargs))
    np.testing.assert_array_equal(model._params, before)


def test_bad_data():
    X, y = blobs(n=40)
    model = fastmlp.MLP([6, 8, 3], seed=0)
    train = lambda X, y, **kw: fastmlp.train(model, X, y, loss="cross_entropy", **quiet(**kw))  # noqa: E731
    with pytest.raises(ValueError, match="y: expected 40 rows"):
        train(X, y[:-1])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        train(X, y + 1)
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match="X: contains NaN or Inf .*row 3, column 2"):
        train(Xn, y)
    with pytest.raises(ValueError, match="the model takes 6 features, got 5"):
        train(X[:, :5], y)
    with pytest.raises(ValueError, match="at least one row"):
        train(X[:0], y[:0])
    with pytest.raises(TypeError, match="integer class labels"):
        train(X, y + 0.5)
    with pytest.raises(ValueError, match="one-hot"):
        train(X, np.eye(3)[y])
    with pytest.raises(ValueError, match="validation_data\\[0\\]: the model takes 6"):
        train(X, y, validation_data=(X[:, :2], y))
    reg = fastmlp.MLP([6, 8, 1], seed=0)
    yr = np.full(40, np.inf, np.float32)
    with pytest.raises(ValueError, match="y: contains NaN or Inf"):
        fastmlp.train(reg, X, yr, loss="mse", **quiet())
    bce = fastmlp.MLP([6, 8, 1], output_activation="sigmoid", seed=0)
    with pytest.raises(ValueError, match="must lie in \\[0, 1\\]"):
        fastmlp.train(bce, X, np.full(40, 2.0), loss="binary_cross_entropy", **quiet())
    with pytest.raises(ValueError, match="output_activation must be one of identity, softmax"):
        fastmlp.train(bce, X, y % 1, loss="cross_entropy", **quiet())


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="sizes"):
        fastmlp.MLP([5])
    with pytest.raises(ValueError, match=r"sizes\[1\]"):
        fastmlp.MLP([5, 0, 2])
    with pytest.raises(ValueError, match="activation: expected one of"):
        fastmlp.MLP([5, 4, 2], activation="swish")
    with pytest.raises(ValueError, match="init"):
        fastmlp.MLP([5, 4, 2], init="orthogonal")
    with pytest.raises(ValueError, match="activation: expected one entry per hidden layer"):
        fastmlp.MLP([5, 4, 4, 2], activation=["relu"])
    with pytest.raises(ValueError, match="dropout"):
        fastmlp.MLP([5, 4, 2], dropout=1.0)
    model = fastmlp.MLP([5, 4, 2], seed=0)
    with pytest.raises(ValueError, match=r"W: expected shape \(5, 4\)"):
        model.layers[0].W = np.zeros((4, 5))
    with pytest.raises(TypeError, match="trainable"):
        model.layers[0].trainable = "no"
    bn = fastmlp.MLP([5, 4, 2], batchnorm=True, seed=0)
    with pytest.raises(ValueError, match="batch normalisation needs batches of at least 2"):
        fastmlp.train(bn, np.ones((10, 5), np.float32), np.zeros(10, int),
                      loss="cross_entropy", batch_size=1, **quiet())


def test_callable_init_is_drawn_checked_and_saved(tmp_path):
    def ones(fan_in, fan_out, rng):
        return np.full((fan_in, fan_out), 0.5)

    model = fastmlp.MLP([3, 4, 2], init=[ones, "zeros"], seed=0)
    np.testing.assert_array_equal(model.layers[0].W, 0.5)
    np.testing.assert_array_equal(model.layers[1].W, 0.0)
    fastmlp.save(model, tmp_path / "m.npz")
    loaded = fastmlp.load(tmp_path / "m.npz")
    assert loaded.layers[0].init == "callable:ones"
    np.testing.assert_array_equal(loaded.layers[0].W, 0.5)
    with pytest.raises(ValueError, match=r"init\[0\]"):
        fastmlp.MLP([3, 4, 2], init=lambda i, o, rng: np.zeros((o, i)))


def test_weights_are_views_into_the_models_buffer():
    model = fastmlp.MLP([3, 4, 2], batchnorm=True, seed=0)
    layer = model.layers[0]
    assert layer.b is None  # a batch-norm layer has no bias
    layer.W[0, 0] = 7.0
    assert 7.0 in model._params
    assert np.shares_memory(layer.gamma, model._params)
    assert np.shares_memory(layer.running_var, model._stats)
    np.testing.assert_array_equal(layer.running_var, 1.0)


# ---- sample_weight -------------------------------------------------------------------------
def _weighted_run(X, y, sw, **kw):
    model = fastmlp.MLP([X.shape[1], 9, 3], seed=0)
    history = fastmlp.train(model, X, y, loss="cross_entropy", batch_size=16, epochs=3,
                            verbose=0, seed=1, sample_weight=sw, **kw)
    return model, history


def test_unit_sample_weights_match_unweighted_training():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((70, 5)).astype(np.float32)
    y = rng.integers(0, 3, 70)
    a, ha = _weighted_run(X, y, None)
    b, hb = _weighted_run(X, y, np.ones(70))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-6)


def test_zero_weight_rows_do_not_matter():
    """Changing the labels of rows weighted 0 leaves the trained weights bitwise unchanged,
    while changing a weighted row's label does not."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 4)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    w = rng.uniform(0.5, 2.0, 64)
    w[::4] = 0.0
    y2 = y.copy()
    y2[::4] = (y[::4] + 1) % 3
    a, _ = _weighted_run(X, y, w)
    b, _ = _weighted_run(X, y2, w)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    y3 = y.copy()
    y3[1] = (y[1] + 1) % 3
    c, _ = _weighted_run(X, y3, w)
    assert not np.array_equal(a.layers[0].W, c.layers[0].W)


def test_heavy_weights_pull_the_model_towards_their_rows():
    """Two clusters with contradictory labels: the heavily weighted one wins."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 2)).astype(np.float32) * 0.1
    y = np.r_[np.zeros(100, np.int64), np.ones(100, np.int64)]
    w = np.r_[np.full(100, 10.0), np.full(100, 0.1)]
    model = fastmlp.MLP([2, 8, 2], seed=0)
    fastmlp.train(model, X, y, loss="cross_entropy", lr=0.01, batch_size=50, epochs=30,
                  verbose=0, seed=0, sample_weight=w)
    assert (model.predict_classes(X) == 0).mean() > 0.9


@pytest.mark.parametrize("sw, error, match", [
    (np.ones(5), ValueError, r"sample_weight: expected shape \(64,\)"),
    (np.ones((64, 1)), ValueError, r"sample_weight: expected shape \(64,\)"),
    (np.r_[np.ones(63), -1.0], ValueError, "finite values >= 0"),
    (np.r_[np.ones(63), np.nan], ValueError, "finite values >= 0"),
    (np.zeros(64), ValueError, "every weight is 0"),
    (np.array(["a"] * 64), TypeError, "real numbers"),
    (np.ones(64, complex), TypeError, "real numbers"),
])
def test_bad_sample_weight_is_refused(sw, error, match):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((64, 4)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = fastmlp.MLP([4, 5, 3], seed=0)
    before = model.get_weights()
    with pytest.raises(error, match=match):
        fastmlp.train(model, X, y, loss="cross_entropy", epochs=1, verbose=0, sample_weight=sw)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_sample_weight_with_validation_split_uses_the_training_rows_weights():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((80, 4)).astype(np.float32)
    y = rng.integers(0, 3, 80)
    w = rng.uniform(0.5, 2.0, 80)
    a, ha = _weighted_run(X, y, w, validation_split=0.25)
    b, _ = _weighted_run(X[:60], y[:60], w[:60])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert len(ha.history["val_loss"]) == 3


def test_predict_proba_of_a_single_logit_is_its_sigmoid():
    """One identity output trained with binary_cross_entropy: predict_proba gives [1-p, p]
    with p = sigmoid(logit), not a softmax over one column (always 1)."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    model = fastmlp.MLP([3, 4, 1], seed=0)
    fastmlp.train(model, X, y, loss="binary_cross_entropy", epochs=20, lr=0.01, verbose=0)
    logit = model.predict(X)[:, 0].astype(np.float64)
    p = model.predict_proba(X)
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-logit)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(model.predict_classes(X), (logit > 0).astype(int))
    assert (model.predict_classes(X) == y).mean() > 0.8


# ---- optimizer_state: continuing across train() calls ----------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_optimizer_state_makes_split_runs_equal_one_run(optimizer):
    """Epoch by epoch with a shared OptimizerState equals one multi-epoch call, bit for bit
    (no shuffling, so both see the same batches; dropout masks follow the global step)."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((50, 4)).astype(np.float32)
    y = rng.integers(0, 3, 50)
    kw = dict(loss="cross_entropy", optimizer=optimizer, batch_size=16, verbose=0, seed=3,
              shuffle=False, lr=fastmlp.schedules.ExponentialDecay(0.01, 4, 0.5))
    if optimizer == "sgd":
        kw["momentum"] = 0.9
    one = fastmlp.MLP([4, 8, 3], dropout=0.2, seed=0)
    fastmlp.train(one, X, y, epochs=3, **kw)
    split = fastmlp.MLP([4, 8, 3], dropout=0.2, seed=0)
    state = fastmlp.OptimizerState()
    for _ in range(3):
        fastmlp.train(split, X, y, epochs=1, optimizer_state=state, **kw)
    assert state.step == 12 and state.optimizer == optimizer
    for a, b in zip(one.get_weights(), split.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Without the state each call restarts the optimizer (and the schedule): not the same.
    fresh = fastmlp.MLP([4, 8, 3], dropout=0.2, seed=0)
    for _ in range(3):
        fastmlp.train(fresh, X, y, epochs=1, **kw)
    assert not np.array_equal(fresh.layers[0].W, one.layers[0].W)


def test_optimizer_state_is_checked():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((20, 4)).astype(np.float32)
    y = rng.integers(0, 3, 20)
    state = fastmlp.OptimizerState()
    fastmlp.train(fastmlp.MLP([4, 3], seed=0), X, y, loss="cross_entropy", epochs=1,
                  verbose=0, optimizer_state=state)
    with pytest.raises(ValueError, match="holds the state of optimizer 'adam', not 'sgd'"):
        fastmlp.train(fastmlp.MLP([4, 3], seed=0), X, y, loss="cross_entropy",
                      optimizer="sgd", epochs=1, verbose=0, optimizer_state=state)
    with pytest.raises(ValueError, match="different number of parameters"):
        fastmlp.train(fastmlp.MLP([4, 5, 3], seed=0), X, y, loss="cross_entropy", epochs=1,
                      verbose=0, optimizer_state=state)
    with pytest.raises(TypeError, match="expected a fastmlp.OptimizerState"):
        fastmlp.train(fastmlp.MLP([4, 3], seed=0), X, y, loss="cross_entropy", epochs=1,
                      verbose=0, optimizer_state={})
