"""fastmlp.diagnose: the statistics are right, the rules fire when (and only when) they should,
and a diagnosis never changes the model."""
import json
import math

import numpy as np
import pytest

import fastmlp
from fastmlp.diagnostics import THRESHOLDS, Finding, Report, rules, stats
from fastmlp.reference import training as ref

from helpers import assert_close


def _data(n=300, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X[:, :2].sum(1) > 0).astype(np.int64) + 2 * (X[:, 2] > 0.5)
    return X, y


def _record(index=0, **kw):
    r = {"index": index, "activation": "relu", "trainable": True, "grad_W_rms": 1.0,
         "grad_b_rms": 1.0, "grad_W_norm": 1.0, "grad_scale": 1.0, "weight_rms": 0.1,
         "weight_mean": 0.0, "weight_std": 0.1, "init_std": 0.1, "init_rule": "he_normal",
         "init_ratio": 1.0, "update_ratio": None, "act_mean": 0.5, "act_std": 0.5,
         "pre_mean": 0.0, "pre_std": 1.0, "dead_fraction": 0.0, "saturated_fraction": None,
         "nonfinite": False, "hist": {"W": None, "grad_W": None, "act": None}}
    r.update(kw)
    return r


# ---- statistics --------------------------------------------------------------------------

def test_gradient_rms_matches_the_engine():
    """The reference gradients diagnose measures equal the C++ engine's on the same batch
    (read back through train(monitor=1) with lr=0, one full batch, no shuffling)."""
    X, y = _data(64)
    model = fastmlp.MLP([8, 17, 9, 4], activation="tanh", seed=3)
    rep = fastmlp.diagnose(model, X, y, loss="cross_entropy", batch_size=64, n_batches=1,
                           probe_steps=0)
    h = fastmlp.train(model, X, y, loss="cross_entropy", optimizer="sgd", lr=0.0,
                      batch_size=64, epochs=1, shuffle=False, monitor=1, verbose=0)
    engine = h.monitor[0]["layers"]
    for got, want in zip(rep.layers, engine):
        assert_close(got["grad_W_rms"], want["grad_W_rms"], rtol=1e-4, name="grad_W_rms")
        assert_close(got["grad_b_rms"], want["grad_b_rms"], rtol=1e-4, name="grad_b_rms")
        assert_close(got["grad_W_std"], want["grad_W_std"], rtol=1e-4, name="grad_W_std")
    # grad_scale is relative to the last trainable layer.
    assert rep.layers[-1]["grad_scale"] == 1.0
    assert_close(rep.layers[0]["grad_scale"],
                 rep.layers[0]["grad_W_rms"] / rep.layers[-1]["grad_W_rms"])


def test_gradient_rms_is_the_rms_over_batches():
    X, y = _data(40)
    model = fastmlp.MLP([8, 5, 4], seed=1)
    batches = [np.arange(0, 20), np.arange(20, 40)]
    recs, losses = stats.gradients(model, "cross_entropy", X, y, batches)
    specs = stats._specs(model, "cross_entropy")
    ms, vs = [], []
    for rows in batches:
        out, cache = ref.forward(specs, model._params, model._stats.copy(), X[rows],
                                 training=True)
        _, dout, _ = ref.loss_and_grad("cross_entropy", out, y[rows])
        g = np.zeros_like(model._params)
        ref.backward(specs, model._params, cache, dout, g)
        dW = ref._views(specs[0], g, None)["W"].astype(np.float64)
        ms.append(np.mean(dW * dW))
        vs.append(np.var(dW))
    assert_close(recs[0]["grad_W_rms"], math.sqrt(np.mean(ms)), rtol=1e-6)
    assert_close(recs[0]["grad_W_std"], math.sqrt(np.mean(vs)), rtol=1e-6)
    assert len(losses) == 2


def test_dead_fraction_counts_units_never_active():
    X, y = _data(200)
    model = fastmlp.MLP([8, 10, 4], activation="relu", seed=0)
    b = model.layers[0].b
    b[:4] = -1e3  # four units can never fire on these inputs
    acts, _ = stats.activation_stats(model, "cross_entropy", X)
    assert acts[0]["dead_fraction"] == pytest.approx(0.4)
    assert acts[1]["dead_fraction"] is None  # the output layer is linear


def test_saturated_fraction_matches_direct_count():
    X, y = _data(200)
    model = fastmlp.MLP([8, 12, 4], activation="sigmoid", seed=0)
    model.layers[0].W = model.layers[0].W * 6
    acts, _ = stats.activation_stats(model, "cross_entropy", X)
    z = X @ model.layers[0].W + model.layers[0].b
    s = 1 / (1 + np.exp(-z.astype(np.float64)))
    want = np.mean(s * (1 - s) < 0.1 * 0.25)
    assert acts[0]["saturated_fraction"] == pytest.approx(want, abs=1e-3)
    assert 0.2 < want < 1.0  # the test is not vacuous


@pytest.mark.parametrize("values", [np.random.default_rng(0).standard_normal(10001),
                                    np.full(7, 3.0), np.array([1.0, np.nan, 2.0, np.inf])])
def test_histogram_matches_numpy(values):
    counts, edges = stats.histogram(values)
    finite = values[np.isfinite(values)]
    want_counts, want_edges = np.histogram(finite, bins=stats.HIST_BINS)
    assert sum(counts) == finite.size
    assert_close(np.array(edges), want_edges, rtol=1e-6)
    # Values within float32 rounding of an edge may land in the neighbouring bin.
    assert np.abs(np.array(counts) - want_counts).sum() <= 2
    assert stats.histogram(np.array([np.nan])) is None


def test_init_ratio_against_the_default_rule():
    model = fastmlp.MLP([100, 50, 10], activation="relu", seed=0)
    w = stats.weight_stats(model)
    assert w[0]["init_rule"] == "he_normal"
    assert w[0]["init_std"] == pytest.approx(math.sqrt(2 / 100))
    assert w[0]["init_ratio"] == pytest.approx(1.0, rel=0.05)
    assert w[1]["init_rule"] == "glorot_uniform"


def test_update_ratios():
    model = fastmlp.MLP([3, 4, 2], seed=0)
    before = model._params.copy()
    model.layers[0].W[...] *= 1.5
    model.layers[1].trainable = False
    u = stats.update_ratios(model, before)
    assert u[0] == pytest.approx(0.5, rel=1e-6)
    assert u[1] is None


def test_input_stats_ignore_nearly_constant_columns():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (500, 20)).astype(np.float32)
    X[:, 0] = 0
    X[0, 1] = 1.0  # one rare pixel: std 0.045
    s = stats.input_stats(X)
    assert s["n_constant"] == 1
    assert rules.unscaled_inputs(s) == []
    assert rules.unscaled_inputs(stats.input_stats(X * 100))  # RMS 57: flagged


# ---- rules on crafted records ------------------------------------------------------------

def test_vanishing_fires_below_threshold_only():
    t = THRESHOLDS["vanishing_grad_scale"]
    ok = [_record(0, grad_scale=t * 1.01), _record(1, grad_scale=1.0)]
    bad = [_record(0, grad_scale=t * 0.99), _record(1, grad_scale=1.0)]
    assert rules.vanishing(ok) == []
    (f,) = rules.vanishing(bad)
    assert (f.kind, f.layer, f.severity) == ("vanishing_gradients", 0, "warning")
    (f,) = rules.vanishing([_record(0, grad_scale=t * t / 2), _record(1)])
    assert f.severity == "error"


def test_exploding_from_scale_and_from_updates():
    model = fastmlp.MLP([4, 4, 4, 2], seed=0)
    recs = [_record(0, grad_scale=200.0), _record(1, grad_scale=1.0), _record(2)]
    assert [f.layer for f in rules.exploding(recs, [], model)] == [0]
    probe = [{"step": 1, "layers": [_record(i, update_ratio=u, weight_std=0.5)
                                    for i, u in enumerate((0.05, 0.5, 0.01))]}]
    found = rules.exploding([_record(i) for i in range(3)], probe, model)
    assert [(f.layer, f.numbers["at_step"]) for f in found] == [(1, 1)]
    # Tiny weights move by large fractions of themselves: not an explosion.
    probe[0]["layers"][1]["weight_std"] = 1e-4
    assert rules.exploding([_record(i) for i in range(3)], probe, model) == []


def test_dead_relu_and_saturation_thresholds():
    t = THRESHOLDS["dead_fraction"]
    assert rules.dead_relu([_record(0, dead_fraction=t - 0.01)], "now") == []
    assert rules.dead_relu([_record(0, dead_fraction=t)], "now")[0].severity == "warning"
    assert rules.dead_relu([_record(0, dead_fraction=1.0)], "now")[0].severity == "error"
    s = THRESHOLDS["saturated_fraction"]
    rec = _record(0, activation="sigmoid", dead_fraction=None)
    assert rules.saturation([dict(rec, saturated_fraction=s)]) == []
    assert rules.saturation([dict(rec, saturated_fraction=s + 0.01)])[0].kind == "saturation"


def test_poor_init_band_and_sign():
    model = fastmlp.MLP([64, 32, 10], activation="relu", seed=0)
    recs = stats.assemble(model, *_partials(model))
    assert rules.poor_init(recs, model) == []  # the default init is inside the band
    for l in model.layers:  # every standard rule is inside the band too
        for init in ("glorot_uniform", "lecun_normal", "he_uniform", "fan_in"):
            l.W = fastmlp.initializers.initialize(init, l.n_in, l.n_out,
                                                  np.random.default_rng(0))
            recs = stats.assemble(model, *_partials(model))
            assert rules.poor_init(recs, model) == [], init
    model.layers[0].W = model.layers[0].W * 10
    model.layers[1].W = np.abs(model.layers[1].W)  # one-signed
    found = rules.poor_init(stats.assemble(model, *_partials(model)), model)
    assert [f.layer for f in found] == [0, 1]
    assert "mean" in found[1].explanation


def _partials(model):
    X, y = _data(50, model.n_inputs)
    acts, _ = stats.activation_stats(model, "cross_entropy", X)
    grads, _ = stats.gradients(model, "cross_entropy", X, y % model.n_outputs, [np.arange(50)])
    return acts, grads, stats.weight_stats(model)


def test_loss_not_decreasing():
    falling = [{"step": 10 * i, "loss": 1.0 - 0.05 * i, "layers": []} for i in range(8)]
    flat = [{"step": 10 * i, "loss": 1.0, "layers": [_record(0, update_ratio=1e-7)]}
            for i in range(8)]
    assert rules.loss_not_decreasing(falling, {}) == []
    (f,) = rules.loss_not_decreasing(flat, {})
    assert f.kind == "loss_not_decreasing" and "hardly move" in f.explanation


def test_constant_output_growth_is_info():
    (f,) = rules.constant_output(1e-6, 0.3, False, "after", start_std=1e-6)
    assert f.severity == "error"
    (f,) = rules.constant_output(1e-4, 0.3, False, "after", start_std=1e-6)
    assert f.severity == "info"
    assert rules.constant_output(0.1, 0.3, False, "after") == []
    assert rules.constant_output(1e-3, None, True, "now")[0].kind == "constant_output"


# ---- diagnose end to end -----------------------------------------------------------------

def test_diagnose_leaves_the_model_untouched_and_is_deterministic():
    X, y = _data(300)
    model = fastmlp.MLP([8, 16, 16, 4], batchnorm=True, dropout=0.2, seed=0)
    before = model._snapshot()
    a = fastmlp.diagnose(model, X, y, loss="cross_entropy", probe_steps=30, seed=5)
    b = fastmlp.diagnose(model, X, y, loss="cross_entropy", probe_steps=30, seed=5)
    assert np.array_equal(model._params, before[0])
    assert np.array_equal(model._stats, before[1])
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        del d["probe"]["history"]["time"]  # wall-clock seconds
    assert da == db


def test_healthy_network_has_no_findings():
    X, y = _data(400)
    model = fastmlp.MLP([8, 32, 32, 4], seed=0)
    rep = fastmlp.diagnose(model, X, y, loss="cross_entropy", lr=1e-2)
    assert rep.findings == [] and rep.healthy
    assert "No problems found" in str(rep)
    assert len(rep.probe.monitor) == 21  # step 1 and every 5th of 100


def test_nonfinite_weights_are_reported():
    X, y = _data(100)
    model = fastmlp.MLP([8, 6, 4], seed=0)
    model._params[model.layers[0]._offsets["W"]] = np.nan
    rep = fastmlp.diagnose(model, X, y, loss="cross_entropy", probe_steps=0)
    assert "nonfinite" in rep.kinds()
    assert rep.by_kind("nonfinite")[0].severity == "error"
    json.loads(rep.to_json())  # NaN is written as a string: the JSON stays valid


def test_unscaled_inputs_found_and_fixed_by_standardising():
    X, y = _data(300)
    X = X * 50 + 200
    model = fastmlp.MLP([8, 16, 4], seed=0)
    rep = fastmlp.diagnose(model, X, y, loss="cross_entropy", probe_steps=0)
    assert "unscaled_inputs" in rep.kinds()
    Xs = (X - X.mean(0)) / X.std(0)
    rep = fastmlp.diagnose(model, Xs, y, loss="cross_entropy", probe_steps=0)
    assert "unscaled_inputs" not in rep.kinds()


def test_report_text_and_dict():
    X, y = _data(200)
    model = fastmlp.MLP([8, 16, 16, 4], activation="sigmoid",
                        init=lambda i, o, r: r.standard_normal((i, o)) * 5, seed=0)
    rep = fastmlp.diagnose(model, X, y, loss="cross_entropy", probe_steps=20)
    text = str(rep)
    assert "saturation" in text and "->" in text and "layer" in text
    d = json.loads(rep.to_json())
    assert [f["kind"] for f in d["findings"]] == [f.kind for f in rep.findings]
    assert len(d["layers"]) == 3 and len(d["probe"]["monitor"]) >= 2
    f = rep.findings[0]
    assert isinstance(f, Finding) and f.suggestions and f.explanation
    assert set(f.to_dict()) == {"kind", "layer", "severity", "numbers", "explanation",
                                "suggestions"}
    assert isinstance(rep, Report) and not rep.healthy


@pytest.mark.parametrize("kwargs, match", [
    (dict(loss="hinge"), "loss"),
    (dict(loss="cross_entropy", lrr=0.1), "lrr"),
    (dict(loss="cross_entropy", probe_steps=-1), "probe_steps"),
    (dict(loss="cross_entropy", sample_size=0), "sample_size"),
    (dict(loss="cross_entropy", epochs=3), "epochs"),
    (dict(loss="cross_entropy", lr=-1.0), "lr"),
])
def test_bad_arguments(kwargs, match):
    X, y = _data(50)
    model = fastmlp.MLP([8, 4, 4], seed=0)
    with pytest.raises((ValueError, TypeError), match=match):
        fastmlp.diagnose(model, X, y, **kwargs)


def test_bad_data():
    X, y = _data(50)
    model = fastmlp.MLP([8, 4, 4], seed=0)
    with pytest.raises(ValueError, match="X"):
        fastmlp.diagnose(model, X[:, :3], y, loss="cross_entropy")
    with pytest.raises(ValueError, match="y"):
        fastmlp.diagnose(model, X, y + 10, loss="cross_entropy")
    with pytest.raises(TypeError, match="model"):
        fastmlp.diagnose("model", X, y, loss="cross_entropy")
