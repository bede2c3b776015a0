"""Per-layer statistics of a model on a sample: the numbers every diagnostic finding is made of.

A *layer record* is a plain dict (so it goes into a History, JSON and the plots unchanged):

    index, activation, trainable
    grad_W_rms, grad_b_rms     RMS of dL/dW and dL/db (None for frozen layers)
    grad_W_norm                Frobenius norm of dL/dW
    grad_W_std                 spread of dL/dW's entries (std about their mean)
    grad_scale                 grad_W_rms / grad_W_rms of the last trainable layer
    weight_rms, weight_mean, weight_std
    init_std                   the std the fan-in rules give this layer (He for the ReLU family,
                               LeCun for SELU, Glorot otherwise: the library's default init)
    init_ratio                 weight_std / init_std
    update_ratio               ||W_after - W_before|| / ||W_before|| of one step (None here;
                               filled in by the probe run and by train(monitor=...))
    act_mean, act_std          the layer's output (after its activation, before dropout)
    pre_mean, pre_std          what goes into the activation (z, or the batch-normalised u)
    dead_fraction              ReLU only: units whose input is <= 0 on every sample row
    saturated_fraction         sigmoid/tanh only: entries where act'(input) < 10% of its maximum
    nonfinite                  NaN/Inf anywhere in the layer's weights, outputs or gradients
    hist                       {"W", "grad_W", "act"}: [counts, edges] from np.histogram

Gradients come from the NumPy reference (fastmlp.reference.training, the specification the C++
engine is tested against), in training mode (batch statistics for batch norm) without dropout,
so a diagnosis is deterministic. Nothing here changes the model: batch-norm running statistics
are updated on a copy.
"""
from __future__ import annotations

import math

import numpy as np

from .._moments import feature_moments  # noqa: F401  (also imported from here by the CLI)
from ..reference import training as ref
from ..reference.activations import activate_grad

# An entry counts as saturated where the activation's slope is below this fraction of its
# maximum (sigmoid: |z| > 3.64, tanh: |z| > 1.82): the unit passes back less than a tenth of
# the gradient it would pass at 0.
SATURATION_SLOPE = 0.1
_MAX_SLOPE = {"sigmoid": 0.25, "tanh": 1.0}
HIST_BINS = 30


def init_std(activation: str, fan_in: int, fan_out: int) -> tuple[float, str]:
    """The weight std of the library's default rule for this activation, and the rule's name."""
    if activation in ("relu", "leaky_relu", "elu", "gelu"):
        return math.sqrt(2.0 / fan_in), "he_normal"
    if activation == "selu":
        return math.sqrt(1.0 / fan_in), "lecun_normal"
    return math.sqrt(2.0 / (fan_in + fan_out)), "glorot_uniform"


def histogram(a) -> list | None:
    """[counts, edges] of the finite values of a in HIST_BINS equal bins (np.histogram's
    convention: the last bin is closed), or None when there are none. One bincount pass in
    float32: np.histogram costs ~1 ms per 100k values, most of a monitor record."""
    a = np.asarray(a, np.float32).ravel()
    finite = np.isfinite(a)
    if not finite.all():
        a = a[finite]
    if a.size == 0:
        return None
    lo, hi = float(a.min()), float(a.max())
    if lo == hi:  # one value: a unit-wide range around it, as np.histogram does
        lo, hi = lo - 0.5, hi + 0.5
    idx = ((a - np.float32(lo)) * np.float32(HIST_BINS / (hi - lo))).astype(np.intp)
    np.clip(idx, 0, HIST_BINS - 1, out=idx)
    counts = np.bincount(idx, minlength=HIST_BINS)
    return [counts.tolist(), np.linspace(lo, hi, HIST_BINS + 1).tolist()]


def _rms(a) -> float:
    a = np.asarray(a, np.float64)
    return float(np.sqrt(np.mean(a * a))) if a.size else 0.0


def _specs(model, loss: str) -> list[dict]:
    """The engine's layer descriptions with dropout off (a diagnosis is deterministic)."""
    specs = model._layer_specs(0, None, fused_output=loss != "mse")
    return [dict(s, dropout=0.0) for s in specs]


def activation_stats(model, loss: str, X: np.ndarray) -> tuple[list[dict], np.ndarray]:
    """Per-layer activation statistics on the rows of X, and the network's output."""
    specs = _specs(model, loss)
    # Batch norm updates running statistics: keep the model's.
    out, cache = ref.forward(specs, model._params, model._stats.copy(), X, training=True)
    recs = []
    for l, (s, c) in enumerate(zip(specs, cache)):
        pre = c.get("u", c["z"])
        act_out = cache[l + 1]["in"] if l + 1 < len(cache) else out
        r = {"act_mean": float(np.mean(act_out, dtype=np.float64)),
             "act_std": float(np.std(act_out, dtype=np.float64)),
             "pre_mean": float(np.mean(pre, dtype=np.float64)),
             "pre_std": float(np.std(pre, dtype=np.float64)),
             "dead_fraction": None, "saturated_fraction": None,
             "act_nonfinite": bool(not np.isfinite(act_out).all()),
             "act_hist": histogram(act_out)}
        act = s["activation"]
        if act == "relu":
            r["dead_fraction"] = float(np.mean(np.all(pre <= 0, axis=0)))
        elif act in _MAX_SLOPE:
            slope = activate_grad(pre.astype(np.float64), act)
            r["saturated_fraction"] = float(np.mean(slope < SATURATION_SLOPE * _MAX_SLOPE[act]))
        recs.append(r)
    return recs, out


def gradients(model, loss: str, X: np.ndarray, y: np.ndarray, batches):
    """Per-layer gradient statistics over the given batches (lists of row indices of X, y):
    the RMS over batches of each batch's gradient RMS and std, and the last batch's gradient
    histogram. Returns (one dict per layer, frozen layers with None values; the batch losses)."""
    specs = _specs(model, loss)
    grads = np.zeros_like(model._params)
    sq = [{"W": 0.0, "b": 0.0, "var": 0.0} for _ in specs]
    nonfinite = [False] * len(specs)
    last = [None] * len(specs)
    losses = []
    for rows in batches:
        out, cache = ref.forward(specs, model._params, model._stats.copy(), X[rows],
                                 training=True)
        value, dout, _ = ref.loss_and_grad(loss, out, y[rows])
        losses.append(float(value))
        grads[...] = 0.0
        with np.errstate(all="ignore"):
            ref.backward(specs, model._params, cache, dout, grads)
        for l, s in enumerate(specs):
            if not s["trainable"]:
                continue
            g = ref._views(s, grads, None)
            dW = g["W"]
            db = g["b"] if "b" in g else np.concatenate([g["gamma"], g["beta"]])
            sq[l]["W"] += _rms(dW) ** 2
            sq[l]["b"] += _rms(db) ** 2
            sq[l]["var"] += float(np.var(dW, dtype=np.float64))
            nonfinite[l] |= not (np.isfinite(dW).all() and np.isfinite(db).all())
            last[l] = dW.copy()
    n = max(len(batches), 1)
    recs = []
    for l, s in enumerate(specs):
        if not s["trainable"]:
            recs.append({"grad_W_rms": None, "grad_b_rms": None, "grad_W_norm": None,
                         "grad_W_std": None, "grad_nonfinite": False, "grad_hist": None})
            continue
        w_rms = math.sqrt(sq[l]["W"] / n)
        recs.append({"grad_W_rms": w_rms, "grad_b_rms": math.sqrt(sq[l]["b"] / n),
                     "grad_W_norm": w_rms * math.sqrt(s["in"] * s["out"]),
                     "grad_W_std": math.sqrt(sq[l]["var"] / n),
                     "grad_nonfinite": nonfinite[l], "grad_hist": histogram(last[l])})
    return recs, losses


def gradients_from_buffer(model, grads: np.ndarray, start: int = 0) -> list[dict]:
    """Per-layer gradient statistics from the engine's flat gradient buffer (the last step's
    gradients, L1/L2 included), for layers start.. (earlier ones were cached: no gradient)."""
    recs = []
    for l, layer in enumerate(model.layers):
        if l < start or not layer.trainable:
            recs.append({"grad_W_rms": None, "grad_b_rms": None, "grad_W_norm": None,
                         "grad_W_std": None, "grad_nonfinite": False, "grad_hist": None})
            continue
        o = layer._offsets
        dW = grads[o["W"]:o["W"] + layer.n_in * layer.n_out]
        if layer.batchnorm:
            db = np.concatenate([grads[o["gamma"]:o["gamma"] + layer.n_out],
                                 grads[o["beta"]:o["beta"] + layer.n_out]])
        else:
            db = grads[o["b"]:o["b"] + layer.n_out]
        recs.append({"grad_W_rms": _rms(dW), "grad_b_rms": _rms(db),
                     "grad_W_norm": float(np.sqrt(np.sum(dW.astype(np.float64) ** 2))),
                     "grad_W_std": float(np.std(dW, dtype=np.float64)),
                     "grad_nonfinite": bool(not (np.isfinite(dW).all() and
                                                 np.isfinite(db).all())),
                     "grad_hist": histogram(dW)})
    return recs


def weight_stats(model) -> list[dict]:
    recs = []
    for layer in model.layers:
        W = layer.W
        std = float(np.std(W, dtype=np.float64))
        target, rule = init_std(layer.activation, layer.n_in, layer.n_out)
        recs.append({"weight_rms": _rms(W), "weight_mean": float(np.mean(W, dtype=np.float64)),
                     "weight_std": std, "init_std": target, "init_rule": rule,
                     "init_ratio": std / target,
                     "weight_nonfinite": bool(not np.isfinite(layer._view("W")).all()),
                     "weight_hist": histogram(W)})
    return recs


def assemble(model, acts: list[dict], grads: list[dict], weights: list[dict],
             update_ratios=None) -> list[dict]:
    """Layer records (the format in the module docstring) from the three partial lists."""
    last = next((g["grad_W_rms"] for g in reversed(grads) if g["grad_W_rms"] is not None), None)
    records = []
    for l, layer in enumerate(model.layers):
        a, g, w = acts[l], grads[l], weights[l]
        scale = None
        if g["grad_W_rms"] is not None and last is not None and last > 0:
            scale = g["grad_W_rms"] / last
        records.append({
            "index": l, "activation": layer.activation, "trainable": bool(layer.trainable),
            "grad_W_rms": g["grad_W_rms"], "grad_b_rms": g["grad_b_rms"],
            "grad_W_norm": g["grad_W_norm"], "grad_W_std": g["grad_W_std"],
            "grad_scale": scale,
            "weight_rms": w["weight_rms"], "weight_mean": w["weight_mean"],
            "weight_std": w["weight_std"], "init_std": w["init_std"],
            "init_rule": w["init_rule"], "init_ratio": w["init_ratio"],
            "update_ratio": None if update_ratios is None else update_ratios[l],
            "act_mean": a["act_mean"], "act_std": a["act_std"],
            "pre_mean": a["pre_mean"], "pre_std": a["pre_std"],
            "dead_fraction": a["dead_fraction"], "saturated_fraction": a["saturated_fraction"],
            "nonfinite": bool(a["act_nonfinite"] or g["grad_nonfinite"] or w["weight_nonfinite"]),
            "hist": {"W": w["weight_hist"], "grad_W": g["grad_hist"], "act": a["act_hist"]},
        })
    return records


def update_ratios(model, before: np.ndarray) -> list:
    """||W_now - W_before|| / ||W_before|| per layer (None for frozen layers); before is a copy
    of model._params taken before the step."""
    out = []
    for layer in model.layers:
        if not layer.trainable:
            out.append(None)
            continue
        o = layer._offsets["W"]
        n = layer.n_in * layer.n_out
        w0 = before[o:o + n].astype(np.float64)
        w1 = model._params[o:o + n].astype(np.float64)
        norm = float(np.sqrt(np.sum(w0 * w0)))
        diff = float(np.sqrt(np.sum((w1 - w0) ** 2)))
        out.append(diff / norm if norm > 0 else (math.inf if diff > 0 else 0.0))
    return out


def input_stats(X: np.ndarray) -> dict:
    """How far the features are from zero mean and unit variance. Spreads and offsets are
    taken at the 10th/90th percentile over the non-constant features, so a few nearly constant
    columns (the border pixels of an image) do not decide."""
    mean, std, live = feature_moments(X)
    out = {"rms": float(np.sqrt(np.mean(np.square(X, dtype=np.float64)))),
           "n_features": int(X.shape[1]),
           "n_constant": int((~live).sum()),
           "max_abs_mean": float(np.abs(mean).max()), "std_p10": None, "std_p90": None,
           "offset_p90": None}
    if live.any():
        out["std_p10"] = float(np.percentile(std[live], 10))
        out["std_p90"] = float(np.percentile(std[live], 90))
        # |mean| in units of the feature's own spread: what standardising would remove.
        out["offset_p90"] = float(np.percentile(np.abs(mean[live]) / std[live], 90))
    return out
