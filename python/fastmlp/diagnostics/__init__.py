"""Gradient-health diagnostics: per-layer statistics, findings that explain why a network does
not learn (vanishing or exploding gradients, dead ReLUs, saturation, poor initialisation,
unscaled inputs, NaN, a loss that does not fall, an output that ignores its input) and what to
change, as fastmlp options.

    report = fastmlp.diagnose(model, X, y, loss="mse", optimizer="sgd", lr=0.01)
    print(report)

``fastmlp.train(..., monitor=N)`` records the same statistics during training.
"""
from __future__ import annotations

from .diagnose import diagnose
from .monitor import DiagnosticWarning
from .report import Finding, Report
from .rules import THRESHOLDS

__all__ = ["diagnose", "Report", "Finding", "DiagnosticWarning", "THRESHOLDS"]
