"""Diagnostics pictures drawn from monitor records and diagnose reports (needs matplotlib).

Inputs: monitor records (``history.monitor`` from ``train(..., monitor=N)``, or
``report.probe.monitor``): a list of ``{"step", "epoch", "loss", "layers": [LayerRecord, ...]}``;
and LayerRecords (``report.layers``). Every function returns a ``matplotlib.figure.Figure``;
with ``path`` it also writes a PNG there, atomically.

matplotlib is an optional extra (``pip install 'fastmlp[plot]'``), so it is imported inside the
functions: ``import fastmlp.plot`` works without it. Figures are built on ``Figure`` and
``FigureCanvasAgg`` rather than pyplot, so no global figure list fills up, nothing opens a
window, and threads that each draw their own figure share no pyplot state.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ._atomic import write_atomic

# Numeric LayerRecord keys that can be drawn over time.
# Magnitudes span decades (a vanishing gradient is 1e-6 next to 1e-1), so they go on a log axis;
# signed means and fractions in [0, 1] (where 0 is the healthy value) would lose points there.
LOG_KEYS = ("grad_W_rms", "grad_b_rms", "grad_scale", "weight_rms", "update_ratio", "act_std")
LINEAR_KEYS = ("weight_mean", "act_mean", "dead_fraction", "saturated_fraction")
LAYER_KEYS = LOG_KEYS + LINEAR_KEYS
HIST_KEYS = ("W", "grad_W", "act")
# Keys that are None for a frozen layer (it has no gradient and takes no step).
_NEEDS_TRAINING = ("grad_W_rms", "grad_b_rms", "grad_scale", "update_ratio")
# What to look for, printed beside the title.
_HINTS = {"grad_W_rms": "early layers far below late ones = vanishing gradients",
         "grad_scale": "relative to the last layer: << 1 early = vanishing, >> 1 = exploding",
         "update_ratio": "about 1e-3 is healthy; much lower learns slowly, much higher is unstable"}

_EMPTY = "records: nothing to plot; train with monitor=N or diagnose with probe_steps > 0"
_BLUE = np.array([0.12, 0.35, 0.65])
_ORANGE = np.array([0.85, 0.40, 0.05])


def _matplotlib():
    """(Figure, FigureCanvasAgg), or an ImportError that says how to install them."""
    try:
        # The top-level import first: a blocked or missing matplotlib fails here even when a
        # submodule is still cached in sys.modules.
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("fastmlp.plot needs matplotlib: pip install 'fastmlp[plot]'") from e
    return Figure, FigureCanvasAgg


def _figure(width: float, height: float):
    Figure, FigureCanvasAgg = _matplotlib()
    # Constrained layout keeps titles, tick labels and outside legends from overlapping.
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _grid(fig, n: int, max_cols: int = 3):
    """n axes in a grid of at most max_cols columns; spare cells are hidden."""
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    axes = [fig.add_subplot(rows, cols, k + 1) for k in range(rows * cols)]
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def _grid_size(n: int, cell_w: float, cell_h: float, max_cols: int = 3):
    cols = min(n, max_cols)
    return cell_w * cols, cell_h * math.ceil(n / cols)


def _save(fig, path) -> None:
    """Writes fig as PNG to path via a temp file in the same directory and os.replace, so a
    reader (or a crash) never sees a half-written file."""
    # The Agg canvas's own print_png draws once at fig.dpi (pixel size = figsize * dpi,
    # whatever the user's savefig rcParams); savefig would run constrained layout on a
    # dry-run draw first and take twice as long.
    write_atomic(path, fig.canvas.print_png)


def _finish(fig, path):
    if path is not None:
        _save(fig, path)
    return fig


def _records(records_or_history, name: str = "records") -> list:
    """The monitor record list from a History (its .monitor), a Report (its probe's .monitor) or
    a list of records."""
    if hasattr(records_or_history, "probe") and not hasattr(records_or_history, "history"):
        records_or_history = records_or_history.probe
    if records_or_history is None:
        raise ValueError(_EMPTY)
    if isinstance(records_or_history, (list, tuple)):
        records = records_or_history
    elif hasattr(records_or_history, "history"):
        records = getattr(records_or_history, "monitor", None) or []
    else:
        raise TypeError(f"{name}: expected a History or a list of monitor records, got "
                        f"{type(records_or_history).__name__}; pass the History that "
                        f"fastmlp.train(..., monitor=N) returned")
    if len(records) == 0:
        raise ValueError(_EMPTY)
    first = records[0]
    if not isinstance(first, dict) or "layers" not in first or "step" not in first:
        raise TypeError(f"{name}: expected monitor records (dicts with 'step' and 'layers'), "
                        f"got {type(first).__name__} as the first item; pass history.monitor")
    return list(records)


def _label(layer: dict) -> str:
    return f"layer {layer['index']} ({layer['activation']})"


def _histogram(entry, where: str):
    """(bin centres, counts, edges) as float arrays from an np.histogram-style
    [counts, edges] pair."""
    counts = np.asarray(entry[0], dtype=np.float64)
    edges = np.asarray(entry[1], dtype=np.float64)
    if counts.ndim != 1 or edges.shape != (counts.size + 1,):
        raise ValueError(f"{where}: expected [counts (nb), edges (nb + 1)], got "
                         f"{counts.shape} counts and {edges.shape} edges")
    return 0.5 * (edges[:-1] + edges[1:]), counts, edges


def plot_gradient_flow(records_or_history, path=None, *, what: str = "grad_W_rms"):
    """One line per layer of ``what`` against optimizer step: the gradient flow.

    Early layers far below late ones means vanishing gradients; far above, exploding. ``what`` is
    any numeric LayerRecord key (LAYER_KEYS). Magnitudes (LOG_KEYS) use a log axis and skip
    non-positive values; means and fractions (LINEAR_KEYS) use a linear one. None (a frozen
    layer's gradient, a fraction that does not apply) is always skipped, and a layer with no value
    left gets no line.
    """
    if not isinstance(what, str) or what not in LAYER_KEYS:
        raise ValueError(f"what: expected one of {', '.join(LAYER_KEYS)}; got {what!r}")
    records = _records(records_or_history)
    log = what in LOG_KEYS
    fig = _figure(8.0, 4.5)
    from matplotlib.lines import Line2D  # after _figure, which turns a missing one into the hint
    ax = fig.add_subplot(1, 1, 1)
    missing = []  # labels of layers with no value to draw: listed, greyed, in the legend
    for i, layer0 in enumerate(records[0]["layers"]):
        steps, values = [], []
        for rec in records:
            v = rec["layers"][i].get(what)
            if v is None or not math.isfinite(v) or (log and v <= 0):
                continue
            steps.append(rec["step"])
            values.append(float(v))
        if values:
            ax.plot(steps, values, marker="o", markersize=2.5, linewidth=1.2, label=_label(layer0))
        else:
            frozen = not layer0["trainable"] and what in _NEEDS_TRAINING
            missing.append(f"{_label(layer0)}: no {what}" + (" (frozen)" if frozen else ""))
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(what + (" (log)" if log else ""))
    hint = _HINTS.get(what, "")
    # On the figure, not the axes: a hint wider than the axes would be cut off at the left edge.
    fig.suptitle(f"{what} per layer over training" + (f"\n{hint}" if hint else ""), fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    # Stand-alone (never added to the axes) so ax.lines stays one line per drawn layer.
    handles += [Line2D([], [], linestyle="none") for _ in missing]
    legend = ax.legend(handles, labels + missing, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       fontsize=8, frameon=False)
    for text in legend.get_texts()[len(labels):]:
        text.set_color("0.5")
    return _finish(fig, path)


def plot_histograms(records_or_history, path=None, *, what: str = "W", max_curves: int = 12):
    """Histograms over time (TensorBoard style): one subplot per layer, a ridge of up to
    ``max_curves`` records evenly spaced in time, each record's histogram normalised to its peak
    and raised by its place in time. Oldest at the top and lightest, newest at the bottom in front.

    ``what`` is "W" (weights), "grad_W" (weight gradients) or "act" (activations). A layer whose
    histogram is None (a frozen layer's gradient) gets an empty subplot with a note.
    """
    if not isinstance(what, str) or what not in HIST_KEYS:
        raise ValueError(f"what: expected one of {', '.join(HIST_KEYS)}; got {what!r}")
    if isinstance(max_curves, bool) or not isinstance(max_curves, int) or max_curves < 1:
        raise ValueError(f"max_curves: expected an integer >= 1, got {max_curves!r}")
    records = _records(records_or_history)
    k = min(max_curves, len(records))
    # Spacing of at least one record between picks makes the rounded indices distinct.
    picks = np.rint(np.linspace(0, len(records) - 1, k)).astype(int)
    layers = records[0]["layers"]
    fig = _figure(*_grid_size(len(layers), 4.2, 3.6))
    gap = 0.45  # vertical offset between curves of height 1: neighbours overlap like a ridge
    for i, (ax, layer0) in enumerate(zip(_grid(fig, len(layers)), layers)):
        ax.set_title(_label(layer0) + ("" if layer0["trainable"] else ", frozen"), fontsize=9)
        ticks, tick_labels = [], []
        for p, r in enumerate(picks):
            entry = records[r]["layers"][i]["hist"].get(what)
            if entry is None:
                continue
            centres, counts, _ = _histogram(entry, f"records[{r}]['layers'][{i}]['hist'][{what!r}]")
            peak = counts.max()
            y = counts / peak if peak > 0 else counts
            base = (k - 1 - p) * gap
            t = 0.25 + 0.75 * (p / (k - 1) if k > 1 else 1.0)  # 0.25 = oldest, 1 = newest
            colour = 1.0 - t * (1.0 - _BLUE)
            # zorder by time: each newer curve's fill hides the parts of older ones behind it.
            ax.fill_between(centres, base, base + y, color=1.0 - 0.25 * t * (1.0 - _BLUE),
                            zorder=2 * p, linewidth=0)
            ax.plot(centres, base + y, color=colour, linewidth=1.0, zorder=2 * p + 1)
            ticks.append(base)
            tick_labels.append(str(records[r]["step"]))
        if not ax.lines:
            ax.text(0.5, 0.5, f"no {what} histogram\n(frozen layer or not recorded)",
                    transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.4")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        # At most 6 step labels, evenly strided back from the newest, so they stay legible.
        keep = range(len(ticks) - 1, -1, -math.ceil(len(ticks) / 6))
        ax.set_yticks([ticks[j] for j in keep], [tick_labels[j] for j in keep], fontsize=7)
        ax.set_ylabel("step", fontsize=8)
        ax.set_xlabel({"W": "weight", "grad_W": "dL/dW", "act": "activation"}[what], fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"{what} histograms over time (newest at the bottom)", fontsize=11)
    return _finish(fig, path)


def _layer_records(layers_or_report) -> list:
    """LayerRecords from a Report (.layers), one monitor record (["layers"]) or a list of them."""
    obj = layers_or_report
    if isinstance(obj, dict) and "layers" in obj:
        layers = obj["layers"]
    elif isinstance(obj, (list, tuple)):
        layers = obj
    elif hasattr(obj, "layers"):
        layers = obj.layers
    else:
        raise TypeError(f"layers_or_report: expected a Report, a list of LayerRecords or one "
                        f"monitor record, got {type(obj).__name__}")
    if not layers:
        raise ValueError("layers_or_report: no layers to plot; pass fastmlp.diagnose(...) or "
                         "one monitor record such as history.monitor[-1]")
    if isinstance(layers[0], dict) and "layers" in layers[0]:
        raise TypeError("layers_or_report: got a list of monitor records; pick one, e.g. "
                        "history.monitor[-1]")
    return list(layers)


def plot_activations(layers_or_report, path=None):
    """One subplot per layer: the bar histogram of its activations, titled with their mean and
    std and, where it applies, the dead (ReLU) or saturated (sigmoid/tanh) fraction."""
    layers = _layer_records(layers_or_report)
    fig = _figure(*_grid_size(len(layers), 4.0, 3.2))
    for i, (ax, layer) in enumerate(zip(_grid(fig, len(layers)), layers)):
        stats = f"mean {layer['act_mean']:.3g}, std {layer['act_std']:.3g}"
        if layer.get("dead_fraction") is not None:
            stats += f", dead {100 * layer['dead_fraction']:.1f}%"
        if layer.get("saturated_fraction") is not None:
            stats += f", saturated {100 * layer['saturated_fraction']:.1f}%"
        ax.set_title(f"{_label(layer)}\n{stats}", fontsize=9)
        entry = layer["hist"].get("act")
        if entry is None:
            ax.text(0.5, 0.5, "no activation histogram", transform=ax.transAxes, ha="center",
                    va="center", fontsize=9, color="0.4")
            continue
        _, counts, edges = _histogram(entry, f"layers[{i}]['hist']['act']")
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=_BLUE,
               edgecolor="white", linewidth=0.3)
        ax.set_xlabel("activation", fontsize=8)
        ax.set_ylabel("count", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("activations per layer", fontsize=11)
    return _finish(fig, path)


def plot_loss(history, path=None):
    """Loss (and val_loss) per epoch, with accuracy/val_accuracy on a second y axis when
    recorded; when the History has monitor records, a second panel of each record's batch loss
    against optimizer step. ``history`` is a History or its ``.history`` dict."""
    logs = history if isinstance(history, dict) else getattr(history, "history", None)
    if not isinstance(logs, dict):
        raise TypeError(f"history: expected a History (from fastmlp.train) or its .history dict, "
                        f"got {type(history).__name__}")
    monitor = [] if isinstance(history, dict) else (getattr(history, "monitor", None) or [])
    has_epochs = any(logs.get(k) for k in ("loss", "val_loss"))
    if not has_epochs and not monitor:
        raise ValueError("history: no 'loss' or 'val_loss' and no monitor records to plot; "
                         "pass the History that fastmlp.train returned")
    panels = int(has_epochs) + int(bool(monitor))
    fig = _figure(8.0, 3.6 * panels)
    from matplotlib.ticker import MaxNLocator
    axes = [fig.add_subplot(panels, 1, k + 1) for k in range(panels)]
    epochs = list(getattr(history, "epoch", []) or [])
    if has_epochs:
        ax = axes.pop(0)

        def x_for(values):
            # History.epoch restarts at a second fit while .history keeps appending: fall back
            # to the position in the list when the two lengths differ.
            return epochs if len(epochs) == len(values) else list(range(len(values)))

        for key, style in (("loss", "-"), ("val_loss", "--")):
            if logs.get(key):
                ax.plot(x_for(logs[key]), logs[key], style, color=_BLUE, marker="o",
                        markersize=3, label=key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 0.5
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(True, alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if any(logs.get(k) for k in ("accuracy", "val_accuracy")):
            ax2 = ax.twinx()
            for key, style in (("accuracy", "-"), ("val_accuracy", "--")):
                if logs.get(key):
                    ax2.plot(x_for(logs[key]), logs[key], style, color=_ORANGE, marker="s",
                             markersize=3, label=key)
            ax2.set_ylabel("accuracy")
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        # One legend for both axes, outside the plot so it never hides a curve.
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize=8,
                  frameon=False)
        ax.set_title("loss per epoch", fontsize=10)
    if monitor:
        ax = axes.pop(0)
        ax.plot([r["step"] for r in monitor], [r["loss"] for r in monitor], color=_BLUE,
                linewidth=1.0, marker="o", markersize=2)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("batch loss")
        ax.grid(True, alpha=0.3)
        ax.set_title("loss of the last batch at each monitor record", fontsize=10)
    return _finish(fig, path)


def plot_report(report, directory) -> list:
    """Writes a diagnose report's pictures into ``directory`` (created if needed) and returns
    their paths: activations.png always; with probe records also gradient_flow.png,
    update_ratio.png, weights_hist.png, grads_hist.png and loss.png."""
    if not hasattr(report, "layers"):
        raise TypeError(f"report: expected the Report from fastmlp.diagnose, got "
                        f"{type(report).__name__}")
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    written = []

    def out(name):
        written.append(os.path.join(directory, name))
        return written[-1]

    plot_activations(report, out("activations.png"))
    probe = getattr(report, "probe", None)
    if probe is not None and getattr(probe, "monitor", None):
        plot_gradient_flow(probe, out("gradient_flow.png"))
        plot_gradient_flow(probe, out("update_ratio.png"), what="update_ratio")
        plot_histograms(probe, out("weights_hist.png"), what="W")
        plot_histograms(probe, out("grads_hist.png"), what="grad_W")
        plot_loss(probe, out("loss.png"))
    return written
