"""fastmlp.plot: the diagnostics pictures, drawn from synthetic monitor records."""
import os
import subprocess
import sys
import types

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from matplotlib.image import imread  # noqa: E402

from fastmlp import plot  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N_RECORDS = 20


def hist(rng, scale, bins=16):
    counts, edges = np.histogram(rng.normal(0.0, scale, 300), bins=bins)
    return [counts.tolist(), edges.tolist()]


def make_records(n=N_RECORDS, seed=0):
    """3 layers x n records: relu (trainable), tanh (frozen: no gradients), identity output.

    Gradients shrink towards the input (a vanishing-gradient picture); weights widen with time.
    """
    rng = np.random.default_rng(seed)
    specs = [(0, "relu", True, 1e-3), (1, "tanh", False, None), (2, "identity", True, 1e-1)]
    records = []
    for r in range(n):
        layers = []
        for index, act, trainable, g in specs:
            grad = g * float(rng.uniform(0.5, 1.5)) if trainable else None
            w_scale = 0.1 * (1 + r / n)
            layers.append({
                "index": index, "activation": act, "trainable": trainable,
                "grad_W_rms": grad, "grad_b_rms": None if grad is None else grad / 2,
                "grad_scale": None if grad is None else grad / 1e-1,
                "weight_rms": w_scale, "weight_mean": float(rng.normal(0, 0.01)),
                "update_ratio": float(rng.uniform(1e-4, 1e-2)) if trainable else None,
                "act_mean": float(rng.normal()), "act_std": float(rng.uniform(0.5, 2)),
                "dead_fraction": float(rng.uniform(0, 0.5)) if act == "relu" else None,
                "saturated_fraction": float(rng.uniform(0, 0.2)) if act == "tanh" else None,
                "hist": {"W": hist(rng, w_scale),
                         "grad_W": hist(rng, grad) if trainable else None,
                         "act": hist(rng, 1.0)},
            })
        records.append({"step": 5 * (r + 1), "epoch": r // 5,
                        "loss": float(2.0 * np.exp(-r / 8) + rng.uniform(0, 0.1)),
                        "layers": layers})
    return records


def make_history(records):
    return types.SimpleNamespace(
        history={"loss": [1.0, 0.6, 0.4, 0.3], "val_loss": [1.1, 0.7, 0.5, 0.45],
                 "accuracy": [0.5, 0.7, 0.8, 0.85], "val_accuracy": [0.45, 0.65, 0.75, 0.8]},
        epoch=[0, 1, 2, 3], monitor=records)


def make_report(records):
    return types.SimpleNamespace(layers=records[-1]["layers"], probe=make_history(records),
                                 findings=[])


@pytest.fixture(scope="module")
def records():
    return make_records()


def assert_png(path, fig):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, f"{path}: not a PNG"
    w, h = (int(round(v)) for v in fig.get_size_inches() * fig.dpi)
    assert imread(path).shape[:2] == (h, w), f"{path}: decoded size differs from the figure"


def test_gradient_flow_one_line_per_layer_with_values(records, tmp_path):
    records = [dict(r) for r in records]
    # A zero cannot sit on a log axis: the point must be skipped, not drawn at the bottom.
    records[3] = dict(records[3], layers=[dict(records[3]["layers"][0], grad_W_rms=0.0)]
                      + records[3]["layers"][1:])
    path = tmp_path / "flow.png"
    fig = plot.plot_gradient_flow(records, path)
    assert_png(path, fig)
    assert [p.name for p in tmp_path.iterdir()] == ["flow.png"], "temp file left behind"
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["layer 0 (relu)", "layer 2 (identity)"]
    for line, i in zip(lines, (0, 2)):
        kept = [r for r in records if r["layers"][i]["grad_W_rms"] > 0]
        np.testing.assert_array_equal(line.get_xdata(), [r["step"] for r in kept])
        np.testing.assert_array_equal(line.get_ydata(),
                                      [r["layers"][i]["grad_W_rms"] for r in kept])
    assert len(lines[0].get_xdata()) == N_RECORDS - 1


def test_gradient_flow_other_keys_and_history(records):
    fig = plot.plot_gradient_flow(make_history(records), what="update_ratio")
    assert len(fig.axes[0].get_lines()) == 2
    # Fractions keep their zeros on a linear axis; only the relu layer has a dead fraction.
    fig = plot.plot_gradient_flow(records, what="dead_fraction")
    assert fig.axes[0].get_yscale() == "linear"
    (line,) = fig.axes[0].get_lines()
    np.testing.assert_array_equal(line.get_ydata(),
                                  [r["layers"][0]["dead_fraction"] for r in records])


def test_bad_what_is_named(records):
    with pytest.raises(ValueError, match=r"what: .*grad_W_rms.*'grad_norm'"):
        plot.plot_gradient_flow(records, what="grad_norm")
    with pytest.raises(ValueError, match=r"what: .*'bias'"):
        plot.plot_histograms(records, what="bias")
    with pytest.raises(ValueError, match="max_curves"):
        plot.plot_histograms(records, max_curves=0)


@pytest.mark.parametrize("empty", [[], None, types.SimpleNamespace(history={}, monitor=[])])
def test_empty_records_raise(empty):
    with pytest.raises(ValueError, match="nothing to plot; train with monitor=N"):
        plot.plot_gradient_flow(empty)
    with pytest.raises(ValueError, match="nothing to plot"):
        plot.plot_histograms(empty)


@pytest.mark.parametrize("max_curves", [5, 12, 50])
def test_histograms_ridge_has_one_curve_per_picked_record(records, max_curves):
    fig = plot.plot_histograms(records, what="grad_W", max_curves=max_curves)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3
    k = min(max_curves, N_RECORDS)
    assert len(axes[0].get_lines()) == k and len(axes[2].get_lines()) == k
    assert len(axes[1].get_lines()) == 0  # frozen layer: no gradient histogram, a note instead
    assert any("no grad_W histogram" in t.get_text() for t in axes[1].texts)
    # Oldest and newest records are both drawn, each peaking at height 1 above its baseline.
    first, last = axes[0].get_lines()[0], axes[0].get_lines()[-1]
    for line, rec in ((first, records[0]), (last, records[-1])):
        edges = np.asarray(rec["layers"][0]["hist"]["grad_W"][1])
        np.testing.assert_allclose(line.get_xdata(), 0.5 * (edges[:-1] + edges[1:]))
    assert np.min(last.get_ydata()) >= 0 and np.max(last.get_ydata()) == pytest.approx(1.0)
    assert np.min(first.get_ydata()) > np.max(last.get_ydata()) - 1  # older sits higher


def test_activations_accepts_report_layers_and_record(records):
    for source in (make_report(records), records[-1]["layers"], records[-1]):
        fig = plot.plot_activations(source)
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert len(axes) == 3
        assert len(axes[0].patches) == 16  # one bar per bin
        assert "dead" in axes[0].get_title() and "saturated" in axes[1].get_title()
        assert "dead" not in axes[2].get_title() and "saturated" not in axes[2].get_title()
    with pytest.raises(TypeError, match="monitor records; pick one"):
        plot.plot_activations(records)


def test_loss_panels(records):
    h = make_history(records)
    fig = plot.plot_loss(h)
    by_label = {ax.get_ylabel(): ax for ax in fig.axes}
    loss_ax, acc_ax, step_ax = by_label["loss"], by_label["accuracy"], by_label["batch loss"]
    assert len(fig.axes) == 3
    np.testing.assert_array_equal(loss_ax.get_lines()[0].get_ydata(), h.history["loss"])
    assert len(acc_ax.get_lines()) == 2
    np.testing.assert_array_equal(step_ax.get_lines()[0].get_xdata(), [r["step"] for r in records])
    assert len(plot.plot_loss(h.history).axes) == 2  # a plain dict: no monitor panel
    with pytest.raises(ValueError, match="history: no 'loss'"):
        plot.plot_loss(types.SimpleNamespace(history={}, epoch=[], monitor=[]))


def test_report_writes_every_picture(records, tmp_path):
    out = tmp_path / "new" / "dir"
    paths = plot.plot_report(make_report(records), out)
    names = ["activations.png", "gradient_flow.png", "update_ratio.png", "weights_hist.png",
             "grads_hist.png", "loss.png"]
    assert paths == [os.path.join(out, n) for n in names]
    assert sorted(os.listdir(out)) == sorted(names)
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == PNG_SIGNATURE
        assert imread(p).ndim == 3
    no_probe = types.SimpleNamespace(layers=records[0]["layers"], probe=None, findings=[])
    assert plot.plot_report(no_probe, tmp_path / "b") == [os.path.join(tmp_path / "b",
                                                                       "activations.png")]


def test_missing_matplotlib_gives_install_hint(records, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'fastmlp\[plot\]'"):
        plot.plot_gradient_flow(records)


def test_import_does_not_load_matplotlib():
    # Not even attempted (a guarded attempt would still pass a test that blocks matplotlib).
    code = "import sys, fastmlp, fastmlp.plot; assert 'matplotlib' not in sys.modules"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
