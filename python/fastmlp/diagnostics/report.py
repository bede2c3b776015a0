"""What a diagnosis returns: findings (what is wrong, why, what to change) and the numbers."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

SEVERITIES = ("info", "warning", "error")


@dataclass
class Finding:
    """One problem found in a model or a training run.

    kind: vanishing_gradients, exploding_gradients, dead_relu, saturation, poor_init,
        unscaled_inputs, nonfinite, loss_not_decreasing or constant_output.
    layer: the layer index it concerns, or None for the whole network.
    severity: "info", "warning" or "error" (the network cannot learn as it is).
    numbers: the measurements that triggered it.
    explanation: what is going on, in plain words.
    suggestions: what to change, written as fastmlp options.
    """
    kind: str
    layer: int | None
    severity: str
    numbers: dict
    explanation: str
    suggestions: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """The finding as plain JSON-ready values (NaN/Inf as strings)."""
        return _jsonable(asdict(self))

    def __str__(self) -> str:
        where = "network" if self.layer is None else f"layer {self.layer}"
        nums = ", ".join(f"{k}={_fmt(v)}" for k, v in self.numbers.items())
        lines = [f"[{self.severity}] {self.kind} ({where}): {nums}",
                 _wrap(self.explanation, "    ")]
        for s in self.suggestions:
            lines.append(f"    -> {s}")
        return "\n".join(lines)


class Report:
    """The result of fastmlp.diagnose.

    findings: list of Finding, most severe first. layers: one record per layer at the model's
    weights (see fastmlp.diagnostics.stats for the keys). inputs: feature scaling statistics.
    loss: the mean loss over the diagnosis batches. probe: the History of the probe run (its
    ``monitor`` holds per-layer records over the probe's steps), or None.
    """

    def __init__(self, findings, layers, inputs, loss, probe=None, settings=None):
        order = {s: i for i, s in enumerate(reversed(SEVERITIES))}
        self.findings = sorted(findings, key=lambda f: (order[f.severity],
                                                        -1 if f.layer is None else f.layer))
        self.layers = layers
        self.inputs = inputs
        self.loss = loss
        self.probe = probe
        self.settings = dict(settings or {})

    @property
    def healthy(self) -> bool:
        """True when nothing of warning or error severity was found."""
        return not any(f.severity != "info" for f in self.findings)

    def kinds(self) -> set:
        """The set of finding kinds present (e.g. {"dead_relu", "unscaled_inputs"})."""
        return {f.kind for f in self.findings}

    def by_kind(self, kind: str) -> list:
        """The findings of one kind, in report order."""
        return [f for f in self.findings if f.kind == kind]

    def to_dict(self) -> dict:
        """Everything in the report (findings, per-layer table, inputs, probe records) as
        plain JSON-ready values."""
        probe = None
        if self.probe is not None:
            probe = {"history": self.probe.history,
                     "monitor": getattr(self.probe, "monitor", [])}
        return _jsonable({"findings": [f.to_dict() for f in self.findings],
                          "layers": self.layers,
                          "inputs": self.inputs, "loss": self.loss, "probe": probe,
                          "settings": self.settings})

    def to_json(self, indent: int = 2) -> str:
        """to_dict() as strict JSON text (non-finite numbers are strings)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def table(self) -> str:
        """Per-layer numbers, one row per layer."""
        head = (f"{'layer':>5} {'activation':<10} {'grad rms':>9} {'vs last':>9} "
                f"{'W std':>9} {'vs init':>8} {'out mean':>9} {'out std':>9} {'dead':>6} "
                f"{'sat':>6}")
        rows = [head]
        for r in self.layers:
            rows.append(
                f"{r['index']:>5} {r['activation']:<10} {_fmt(r['grad_W_rms']):>9} "
                f"{_fmt(r['grad_scale']):>9} {_fmt(r['weight_std']):>9} "
                f"{_fmt(r['init_ratio']):>8} {_fmt(r['act_mean']):>9} {_fmt(r['act_std']):>9} "
                f"{_pct(r['dead_fraction']):>6} {_pct(r['saturated_fraction']):>6}")
        return "\n".join(rows)

    def __str__(self) -> str:
        s = self.settings
        what = ", ".join(f"{k}={v}" for k, v in s.items())
        lines = [f"fastmlp diagnosis ({what})" if what else "fastmlp diagnosis",
                 f"loss on the diagnosis batches: {_fmt(self.loss)}", "", self.table(), ""]
        if not self.findings:
            lines.append("No problems found.")
        else:
            lines.append(f"{len(self.findings)} finding(s):")
            lines.extend(str(f) for f in self.findings)
        return "\n".join(lines)

    def summary(self) -> str:
        """One line per finding (for progress output)."""
        if not self.findings:
            return "gradient health: no problems found"
        return "\n".join(f"[{f.severity}] {f.kind}" + (f" (layer {f.layer})" if f.layer is not None
                                                         else "") for f in self.findings)

    def __repr__(self) -> str:
        return f"Report(findings={[f.kind for f in self.findings]})"


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.3g}"
    return str(v)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def _wrap(text: str, indent: str, width: int = 96) -> str:
    words, lines, line = text.split(), [], indent
    for w in words:
        if len(line) + len(w) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += w + " "
    lines.append(line.rstrip())
    return "\n".join(lines)


def _jsonable(obj):
    """Plain JSON types; non-finite floats become strings ("nan", "inf") so the JSON is valid."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj
