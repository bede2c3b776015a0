"""train(..., monitor=N): per-layer statistics every N steps, and findings as they appear.

The trainer stops its C++ run just before every N-th step, copies the weights, runs that one
step, and hands the result here. A record costs one copy of the weights, reading the engine's
gradient buffer (that step's gradients, L1/L2 terms included) and one NumPy forward pass over a
fixed sample of at most SAMPLE_ROWS training rows; an unmonitored run never comes here.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import rules, stats


class DiagnosticWarning(UserWarning):
    """A gradient-health finding raised during training (see fastmlp.diagnose)."""


SAMPLE_ROWS = 256


def sample_rows(X: np.ndarray, rng: np.random.Generator, n: int = SAMPLE_ROWS) -> np.ndarray:
    """A fixed, seeded sample of rows, so records over time describe the same inputs."""
    if len(X) <= n:
        return X
    return X[np.sort(rng.choice(len(X), n, replace=False))]


def layer_findings(records: list[dict], model, step: int) -> list:
    """The findings that the layer records of one training step support on their own."""
    return (rules.nonfinite(records, 0.0, False) + rules.vanishing(records)
            + rules.exploding(records, [{"step": step, "layers": records}], model)
            + rules.dead_relu(records, f"at step {step}") + rules.saturation(records))


class Monitor:
    """Records per-layer statistics into history.monitor and reports new findings.

    every: record after the first step and every `every`-th optimizer step (global count).
    X_sample: rows the activation statistics are measured on (training inputs).
    start: first layer the engine trains (layers before it are cached: no gradients).
    report: callable(finding, step) that delivers a new finding (callbacks, warnings).
    """

    def __init__(self, model, loss: str, every: int, X_sample: np.ndarray, grads: np.ndarray,
                 start: int, history, report):
        self.model, self.loss, self.every = model, loss, every
        self.X_sample, self.grads, self.start = X_sample, grads, start
        self.history, self.report = history, report
        self.history.monitor = []
        self.history.findings = []
        self._seen: set = set()
        self._loss_sum, self._rows = 0.0, 0

    def due(self, step_after: int) -> bool:
        # The first step too: a learning rate too large for the gradients shows there, before
        # the units it kills stop moving at all.
        return step_after % self.every == 0 or step_after == 1

    def due_in(self, step: int, n_batches: int) -> set:
        """The batch ends b1 (1..n_batches) of an epoch starting after global step `step`
        whose step is recorded."""
        return {b1 for b1 in range(1, n_batches + 1) if self.due(step + b1)}

    def add_loss(self, loss_sum: float, rows: int) -> None:
        self._loss_sum += loss_sum
        self._rows += rows

    def record(self, step: int, epoch: int, before: np.ndarray) -> dict:
        """The record after global step `step`; before = the weights just before that step."""
        m = self.model
        acts, _ = stats.activation_stats(m, self.loss, self.X_sample)
        recs = stats.assemble(m, acts, stats.gradients_from_buffer(m, self.grads, self.start),
                              stats.weight_stats(m), stats.update_ratios(m, before))
        loss = self._loss_sum / self._rows if self._rows else None
        self._loss_sum, self._rows = 0.0, 0
        record = {"step": int(step), "epoch": int(epoch), "loss": loss, "layers": recs}
        self.history.monitor.append(record)
        for f in layer_findings(recs, m, step):
            self.deliver(f, step)
        return record

    def deliver(self, finding, step: int) -> None:
        """Passes on a finding the first time its kind appears in this run."""
        self.history.findings.append((int(step), finding))
        if finding.kind in self._seen:
            return
        self._seen.add(finding.kind)
        self.report(finding, step)


def warn_finding(finding, step: int) -> None:
    where = "" if finding.layer is None else f" in layer {finding.layer}"
    tips = "; ".join(finding.suggestions[:3])
    warnings.warn(f"fastmlp.train: {finding.kind}{where} at step {step}: "
                  f"{finding.explanation} Try: {tips}.", DiagnosticWarning, stacklevel=3)
