"""fastmlp.diagnose: what is wrong with a network that does not learn, and what to change."""
from __future__ import annotations

import copy
import inspect
import math
import warnings

import numpy as np

from .. import _validate
from . import rules, stats
from .report import Report

# train() options diagnose sets itself for the probe run.
_RESERVED = ("loss", "epochs", "monitor", "verbose", "callbacks", "validation_data",
             "validation_split", "early_stopping", "patience", "min_delta",
             "restore_best_weights", "seed")


def _train_options() -> tuple:
    from ..training import train
    params = inspect.signature(train).parameters
    return tuple(n for n, p in params.items()
                 if p.kind == p.KEYWORD_ONLY and n not in _RESERVED)


def _spread(a: np.ndarray) -> float:
    """Mean over columns of the std across rows."""
    a = np.asarray(a, np.float64)
    if a.ndim == 1:
        a = a[:, None]
    return float(np.mean(np.std(a, axis=0)))


def diagnose(model, X, y, *, loss: str, sample_size: int = 1024, n_batches: int = 8,
             probe_steps: int = 100, seed=0, **train_options) -> Report:
    """Measures the gradient health of `model` on (X, y) and explains what goes wrong.

    At the model's current weights (nothing is changed): n_batches forward/backward passes on
    batches of the training batch size drawn from a seeded sample of up to sample_size rows,
    giving per layer the gradient RMS of W and b and its ratio to the last layer's, the weight
    scale against the fan-in rules, the activation mean/std, dead ReLU and saturated
    sigmoid/tanh fractions, non-finite values, and the input scaling. Then, unless
    probe_steps=0, a probe run trains a *copy* of the model for about probe_steps steps with
    the given training options, recording the same statistics plus each layer's update-to-
    weight ratio 20 times (report.probe.monitor), to see whether the loss falls, units die or
    the output collapses.

    loss: as for fastmlp.train. train_options: fastmlp.train's training options (optimizer,
        lr, batch_size, momentum, clip_value, clip_norm, l1, l2, ...), used by the probe and,
        for batch_size, by the gradient passes.
    Returns a Report: print(report) for people, report.to_dict() / to_json() for programs,
    report.findings for the list of Finding (kind, layer, severity, numbers, explanation,
    suggestions). The rules and their thresholds: fastmlp.diagnostics.rules.THRESHOLDS.
    Gradients are computed without dropout (a diagnosis is deterministic for a given seed).
    """
    from ..model import MLP, _positive_int
    from ..training import LOSSES, _check_output, _choice, as_array, targets, train

    if not isinstance(model, MLP):
        raise TypeError(f"model: expected a fastmlp.MLP, got {type(model).__name__}")
    loss = _choice(loss, "loss", LOSSES)
    _check_output(model, loss)
    allowed = _train_options()
    for name in train_options:
        if name not in allowed:
            raise TypeError(f"diagnose: unknown training option {name!r}; expected one of "
                            f"{', '.join(allowed)}")
    sample_size = _positive_int(sample_size, "sample_size")
    n_batches = _positive_int(n_batches, "n_batches")
    if isinstance(probe_steps, bool) or not isinstance(probe_steps, (int, np.integer)) \
            or probe_steps < 0:
        raise ValueError(f"probe_steps: expected an integer >= 0 (0 = no probe run), got "
                         f"{probe_steps!r}")
    batch_size = _positive_int(train_options.get("batch_size", 32), "batch_size")
    if seed is not None:  # NumPy's own message would not name the argument
        seed = _validate.integer(seed, "seed", low=0)

    # What the first layer sees: standardised with the model's input_mean/input_scale if set.
    X = model._input(X, "X")
    y = as_array(y, "y")
    yt = targets(model, y, loss, len(X))
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(X), min(sample_size, len(X)), replace=False))
    Xs, ys = X[rows], yt[rows]
    bs = min(batch_size, len(Xs))
    if any(l.batchnorm and l.trainable for l in model.layers) and bs < 2:
        raise ValueError("batch_size: batch normalisation needs batches of at least 2 rows")
    batches = [rng.choice(len(Xs), bs, replace=False) for _ in range(n_batches)]

    with np.errstate(all="ignore"):
        acts, out = stats.activation_stats(model, loss, Xs)
        grads, losses = stats.gradients(model, loss, Xs, ys, batches)
    layers = stats.assemble(model, acts, grads, stats.weight_stats(model))
    inputs = stats.input_stats(X)
    mean_loss = float(np.mean(losses))
    classify = loss == "cross_entropy"
    target_std = None if classify else _spread(ys)

    findings = (rules.nonfinite(layers, mean_loss, False) + rules.vanishing(layers)
                + rules.saturation(layers) + rules.dead_relu(layers, "at the current weights")
                + rules.poor_init(layers, model) + rules.unscaled_inputs(inputs))

    probe = None
    final_out, when = out, "at the current weights"
    if probe_steps:
        probe, trained = _probe(model, X, y, loss, probe_steps, batch_size, seed,
                                train_options, train)
        records = probe.monitor
        findings += rules.exploding(layers, records, model)
        if probe.stopped_reason is not None:
            findings += [f for f in rules.nonfinite([], math.nan, True)
                         if "nonfinite" not in {g.kind for g in findings}]
        elif records:
            flagged = {f.layer for f in findings if f.kind == "dead_relu"}
            when = f"after the {records[-1]['step']}-step probe run"
            findings += [f for f in rules.dead_relu(records[-1]["layers"], when)
                         if f.layer not in flagged]
            findings += rules.loss_not_decreasing(records, {})
            with np.errstate(all="ignore"):
                _, final_out = stats.activation_stats(trained, loss, Xs)
    else:
        findings += rules.exploding(layers, [], model)
    if np.isfinite(final_out).all():
        start = _spread(out) if final_out is not out and np.isfinite(out).all() else None
        findings += rules.constant_output(_spread(final_out), target_std, classify, when,
                                          start)

    settings = {"loss": loss, "sample_rows": len(Xs), "batch_size": bs,
                "probe_steps": probe_steps}
    settings.update({k: v for k, v in train_options.items() if k != "batch_size"})
    return Report(findings, layers, inputs, mean_loss, probe, settings)


def _probe(model, X, y, loss, steps, batch_size, seed, options, train):
    """Trains a copy of the model for at least `steps` steps, recording 20 monitor records."""
    trained = copy.deepcopy(model)
    trained.input_mean = trained.input_scale = None  # X is already standardised
    # A batch_size beyond the rows trains one batch of all of them per step.
    need = steps * min(batch_size, len(X))
    rng = np.random.default_rng(None if seed is None else seed + 1)
    if len(X) >= need:
        rows = np.sort(rng.choice(len(X), need, replace=False))
        Xp, yp, epochs = X[rows], y[rows], 1
    else:
        Xp, yp, epochs = X, y, -(-need // len(X))
    every = max(1, steps // 20)
    with warnings.catch_warnings():
        # The probe's divergence is a finding, not a warning for the caller.
        warnings.simplefilter("ignore", RuntimeWarning)
        history = train(trained, Xp, yp, loss=loss, epochs=epochs, monitor=every, verbose=0,
                        seed=seed, **options)
    return history, trained
