"""train(monitor=N): records at the right steps, changes nothing about training, reports
findings once per kind through callbacks and warnings."""
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp.callbacks import Callback


def _data(n=256, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    return X, y


class Collect(Callback):
    def __init__(self):
        super().__init__()
        self.found = []

    def on_finding(self, finding, step):
        self.found.append((step, finding.kind, finding.layer))


@pytest.mark.parametrize("options", [
    dict(optimizer="adam", dropout=0.0, batchnorm=False),
    dict(optimizer="sgd", momentum=0.9, clip_norm=0.5, l2=1e-3, dropout=0.3, batchnorm=True),
])
def test_monitoring_does_not_change_training(options):
    X, y = _data()
    dropout, bn = options.pop("dropout"), options.pop("batchnorm")
    runs = []
    for monitor in (None, 3):
        model = fastmlp.MLP([6, 17, 9, 2], dropout=dropout, batchnorm=bn, seed=1)
        h = fastmlp.train(model, X, y, loss="cross_entropy", batch_size=32, epochs=3,
                          monitor=monitor, verbose=0, seed=2, **options)
        runs.append((model._params.copy(), model._stats.copy(), h))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][1], runs[1][1])
    # The epoch loss is summed over more engine calls when monitored: last-bit differences.
    assert runs[0][2].history["loss"] == pytest.approx(runs[1][2].history["loss"], rel=1e-12)
    assert not hasattr(runs[0][2], "monitor")


def test_records_at_first_step_and_every_n():
    X, y = _data(200)
    model = fastmlp.MLP([6, 8, 2], seed=0)
    h = fastmlp.train(model, X, y, loss="cross_entropy", batch_size=32, epochs=3, monitor=5,
                      verbose=0)
    # 7 batches per epoch, 21 steps: step 1, then 5, 10, 15, 20.
    assert [r["step"] for r in h.monitor] == [1, 5, 10, 15, 20]
    assert [r["epoch"] for r in h.monitor] == [0, 0, 1, 2, 2]
    rec = h.monitor[-1]
    assert len(rec["layers"]) == 2
    for r in rec["layers"]:
        assert r["grad_W_rms"] > 0 and r["update_ratio"] > 0 and r["hist"]["W"] is not None
    assert all(r["loss"] > 0 for r in h.monitor)


def test_update_ratio_is_the_step_the_record_follows():
    """With plain SGD and no clipping the step is exactly lr * gradient."""
    X, y = _data(64)
    model = fastmlp.MLP([6, 5, 2], seed=0)
    w0 = np.linalg.norm(model.layers[0].W.astype(np.float64))
    h = fastmlp.train(model, X, y, loss="cross_entropy", optimizer="sgd", lr=0.1,
                      batch_size=64, epochs=1, monitor=1, verbose=0)
    r = h.monitor[0]["layers"][0]
    assert r["update_ratio"] == pytest.approx(0.1 * r["grad_W_norm"] / w0, rel=1e-4)


def test_dead_relus_reported_once_by_callback_and_warning():
    X, y = _data(256)
    model = fastmlp.MLP([6, 20, 2], activation="relu", seed=0)
    model.layers[0].b = np.full(20, -50.0)  # every unit dead from the start
    cb = Collect()
    with pytest.warns(fastmlp.DiagnosticWarning, match="dead_relu") as caught:
        h = fastmlp.train(model, X, y, loss="cross_entropy", batch_size=32, epochs=2,
                          monitor=4, callbacks=[cb], verbose=1)
    kinds = [k for _, k, _ in cb.found]
    assert kinds.count("dead_relu") == 1 and cb.found[0][0] == 1
    assert sum("dead_relu" in str(w.message) for w in caught) == 1
    # Every record's findings are kept in the history.
    assert sum(f.kind == "dead_relu" for _, f in h.findings) == len(h.monitor)


def test_quiet_run_calls_back_without_warning():
    X, y = _data(128)
    model = fastmlp.MLP([6, 10, 2], seed=0)
    model.layers[0].b = np.full(10, -50.0)
    cb = Collect()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastmlp.train(model, X, y, loss="cross_entropy", epochs=1, monitor=2, callbacks=[cb],
                      verbose=0)
    assert "dead_relu" in [k for _, k, _ in cb.found]


def test_divergence_is_reported_as_nonfinite():
    X, y = _data(128)
    model = fastmlp.MLP([6, 32, 32, 2], seed=0)
    cb = Collect()
    with pytest.warns(RuntimeWarning, match="diverged"):
        fastmlp.train(model, X * 1e3, y, loss="cross_entropy", optimizer="sgd", lr=1e3,
                      epochs=5, monitor=50, callbacks=[cb], verbose=0)
    assert "nonfinite" in [k for _, k, _ in cb.found]


def test_cached_frozen_layers_have_no_gradient_records():
    X, y = _data(128)
    base = fastmlp.MLP([6, 12, 8, 2], seed=0)
    model = fastmlp.MLP.from_pretrained(base, 2, [2], freeze=True)
    h = fastmlp.train(model, X, y, loss="cross_entropy", epochs=1, monitor=2,
                      cache_frozen=True, verbose=0)
    layers = h.monitor[0]["layers"]
    assert [r["grad_W_rms"] is None for r in layers] == [True, True, False]
    assert layers[0]["act_std"] > 0  # activations are still measured on the raw inputs


@pytest.mark.parametrize("bad", [0, -1, 2.5, "5", True])
def test_bad_monitor(bad):
    X, y = _data(32)
    with pytest.raises(ValueError, match="monitor"):
        fastmlp.train(fastmlp.MLP([6, 2], seed=0), X, y, loss="cross_entropy", monitor=bad,
                      verbose=0)
