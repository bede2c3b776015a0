"""The rules that turn per-layer statistics into findings.

Every threshold is in THRESHOLDS with the reason for its value. They come from what a healthy,
freshly initialised network looks like (the variance-preserving inits of Glorot & Bengio 2010,
He et al. 2015 and LeCun et al. 1998 exist to keep the numbers below near 1), not from the
seeds' examples: each example sits far outside the band, not at its edge.
"""
from __future__ import annotations

import math

from .report import Finding
from .stats import SATURATION_SLOPE

THRESHOLDS = {
    # A trainable layer whose dL/dW RMS is below this fraction of the last layer's: with a
    # variance-preserving init, gradient scales stay within a small factor across depth (that
    # is what those inits are derived for), so 100x means the backward signal is shrinking
    # layer by layer and, under one learning rate, this layer learns 100x slower.
    "vanishing_grad_scale": 1e-2,
    # The mirror image: an earlier layer's gradient 100x *larger* than the last layer's.
    "exploding_grad_scale": 1e2,
    # One optimizer step changing a layer's weights by more than 10% of their norm. Healthy
    # runs sit near 1e-3 (Karpathy's rule of thumb; Adam's first steps at lr=1e-3 on a He-
    # initialised 64-wide layer give ~6e-3): 10% a step overshoots whatever minimum is near.
    "update_ratio_high": 1e-1,
    # At least half the ReLU units are never active on the sample: they get no gradient for
    # any row, so plain SGD never revives them, and the layer works at under half its width.
    "dead_fraction": 0.5,
    # Fraction of sigmoid/tanh outputs in the flat tails (slope < 10% of its maximum). With a
    # Glorot or fan-in init on standardised inputs, z ~ N(0, 1) and under 0.1% of entries lie
    # there; 20% means z is spread about 3x too wide.
    "saturated_fraction": 0.2,
    # Weight std more than 3x outside the range spanned by the Glorot, LeCun and He rules for
    # this layer's fan-in and fan-out: every standard rule lies inside, and a factor 3 in std
    # scales the signal's variance by 9x per layer.
    "init_factor": 3.0,
    # |mean(W)| above std(W): the weights all lean one way (e.g. uniform[0, 1)); a zero-mean
    # init of n weights has |mean| ~ std / sqrt(n). Only checked for layers of >= 4 weights.
    "init_mean_over_std": 1.0,
    # Inputs: overall RMS outside [0.1, 3] (the inits assume unit-scale inputs, and a scale
    # of 3 multiplies the first layer's pre-activation variance by 9, as init_factor does),
    # features whose means lie more than 3 of their own standard deviations from zero (90th
    # percentile over features), or feature spreads differing by more than 100x (90th over
    # 10th percentile). Pixels scaled to [0, 1] pass; raw 0..16 digit pixels (RMS 7.7) do not.
    "input_rms_low": 0.1, "input_rms_high": 3.0,
    "input_offset": 3.0, "input_spread_ratio": 100.0,
    # The probe's loss must fall by at least 1% between its first and last quarter.
    "loss_decrease": 0.01,
    # The outputs' spread across rows below 1% of the targets' spread (regression) or below
    # 0.01 in logits (classification): the prediction barely depends on the input.
    "constant_output": 1e-2,
    # ... unless that spread grew at least this much over the probe run: then it is a slow
    # start (info), not a collapse.
    "constant_output_growth": 2.0,
}


def _hidden_act_fix(activation: str) -> list:
    if activation in ("sigmoid", "tanh"):
        return ['activation="relu" (or "elu") with init="he_normal"',
                'init="glorot_uniform" (the default for sigmoid/tanh)', "batchnorm=True"]
    return ['init="he_normal" (the default for the ReLU family)', "batchnorm=True"]


def vanishing(layers: list[dict]) -> list[Finding]:
    t = THRESHOLDS["vanishing_grad_scale"]
    out = []
    trainable = [r for r in layers if r["grad_scale"] is not None]
    for r in trainable[:-1]:
        if r["grad_scale"] < t:
            out.append(Finding(
                "vanishing_gradients", r["index"],
                "error" if r["grad_scale"] < t * t else "warning",
                {"grad_scale": r["grad_scale"], "grad_W_rms": r["grad_W_rms"],
                 "last_layer_grad_W_rms": trainable[-1]["grad_W_rms"]},
                f"The gradient reaching layer {r['index']} is {1 / r['grad_scale']:.3g}x smaller "
                f"than the last layer's. Backpropagation multiplies it by every later layer's "
                f"weights and activation slopes; when those are small (tiny weights, saturated "
                f"sigmoids) it shrinks layer by layer, so this layer barely moves and the "
                f"network behaves as if it were shallower.",
                _hidden_act_fix(r["activation"]) + [
                    "bias_init=0.1 (keeps ReLU units active at the start)",
                    'optimizer="adam" (scales each weight\'s step by its own gradient size)']))
    return out


def exploding(layers: list[dict], probe: list[dict], model) -> list[Finding]:
    """Gradient scale growing towards the input, or steps that move weights of a normal size
    by more than update_ratio_high (tiny weights, already reported by poor_init, naturally
    move by large fractions of themselves and are left out)."""
    out = []
    t = THRESHOLDS["exploding_grad_scale"]
    trainable = [r for r in layers if r["grad_scale"] is not None]
    for r in trainable[:-1]:
        if r["grad_scale"] > t:
            out.append(Finding(
                "exploding_gradients", r["index"], "warning",
                {"grad_scale": r["grad_scale"], "grad_W_rms": r["grad_W_rms"]},
                f"The gradient grows {r['grad_scale']:.3g}x on its way back to layer "
                f"{r['index']}: later layers' weights are too large, so each layer multiplies "
                f"the error signal up and early layers take huge, erratic steps.",
                ["clip_norm=1.0", "a smaller lr", "batchnorm=True",
                 'init="he_normal" / "glorot_uniform" (the defaults)']))
    hi = THRESHOLDS["update_ratio_high"]
    worst = {}
    for rec in probe:
        for r in rec["layers"]:
            u = r.get("update_ratio")
            layer = model.layers[r["index"]]
            if r["weight_std"] < _init_band(layer.n_in, layer.n_out)[0]:
                continue
            if u is not None and (u > hi or not math.isfinite(u)):
                if r["index"] not in worst or not u <= worst[r["index"]][0]:
                    worst[r["index"]] = (u, rec["step"])
    for idx, (u, step) in sorted(worst.items()):
        out.append(Finding(
            "exploding_gradients", idx, "error",
            {"update_ratio": u, "at_step": step, "threshold": hi},
            f"One optimizer step changed layer {idx}'s weights by {u:.3g} of their norm (healthy "
            f"training changes them by about 0.001 per step). The gradients are so large for "
            f"this learning rate that each step overshoots, which throws units into dead or "
            f"saturated regions and can make the loss diverge.",
            ["a smaller lr (10x smaller as a first try)", "clip_norm=1.0",
             'optimizer="adam" (its step size does not grow with the gradient)',
             "standardise the targets or inputs if they are large"]))
    return out


def dead_relu(layers: list[dict], when: str) -> list[Finding]:
    t = THRESHOLDS["dead_fraction"]
    out = []
    for r in layers:
        d = r["dead_fraction"]
        if d is not None and d >= t:
            out.append(Finding(
                "dead_relu", r["index"], "error" if d == 1.0 else "warning",
                {"dead_fraction": d, "when": when},
                f"{100 * d:.0f}% of layer {r['index']}'s ReLU units output 0 for every sample "
                f"({when}). A dead unit passes back no gradient, so plain SGD never revives it; "
                + ("with all units dead the layer outputs a constant and nothing below it can "
                   "learn." if d == 1.0 else "the layer works at a fraction of its width."),
                ['activation="leaky_relu" or "elu" (a non-zero slope for negative inputs)',
                 "bias_init=0.1", "a smaller lr (large steps push units into the dead zone)",
                 'init="he_normal"', "batchnorm=True"]))
    return out


def saturation(layers: list[dict]) -> list[Finding]:
    t = THRESHOLDS["saturated_fraction"]
    out = []
    for r in layers:
        s = r["saturated_fraction"]
        if s is not None and s > t:
            out.append(Finding(
                "saturation", r["index"], "error" if s > 0.5 else "warning",
                {"saturated_fraction": s, "pre_std": r["pre_std"], "pre_mean": r["pre_mean"]},
                f"{100 * s:.0f}% of layer {r['index']}'s {r['activation']} outputs sit in the "
                f"flat tails, where the slope is under {SATURATION_SLOPE:.0%} of its peak: their "
                f"inputs are spread with std {r['pre_std']:.3g} where about 1 is intended. "
                f"Strong inputs give a dull output and almost no gradient, so learning crawls.",
                ['init="fan_in" or "glorot_uniform" (weights scaled by 1/sqrt(fan_in))',
                 "standardise X", "batchnorm=True",
                 'activation="relu" or "elu" (no saturation for positive inputs)']))
    return out


def _init_band(fan_in: int, fan_out: int) -> tuple[float, float]:
    rules = (math.sqrt(2.0 / (fan_in + fan_out)), math.sqrt(1.0 / fan_in),
             math.sqrt(2.0 / fan_in))
    f = THRESHOLDS["init_factor"]
    return min(rules) / f, max(rules) * f


def poor_init(layers: list[dict], model) -> list[Finding]:
    out = []
    for r, layer in zip(layers, model.layers):
        lo, hi = _init_band(layer.n_in, layer.n_out)
        std, mean = r["weight_std"], r["weight_mean"]
        n = layer.n_in * layer.n_out
        problems = []
        if std < lo or std > hi:
            problems.append(f"their std is {std:.3g}, {r['init_ratio']:.3g}x what "
                            f"{r['init_rule']} gives ({r['init_std']:.3g}) and outside "
                            f"[{lo:.3g}, {hi:.3g}], a factor "
                            f"{THRESHOLDS['init_factor']:g} around every standard rule")
        if n >= 4 and abs(mean) > THRESHOLDS["init_mean_over_std"] * std:
            problems.append(f"their mean {mean:.3g} exceeds their std {std:.3g}, so every unit "
                            f"sums its inputs with the same sign")
        if problems:
            out.append(Finding(
                "poor_init", r["index"], "warning",
                {"weight_std": std, "weight_mean": mean, "init_std": r["init_std"],
                 "init_ratio": r["init_ratio"]},
                f"Layer {r['index']}'s weights are badly scaled for its {layer.n_in} inputs: "
                + "; ".join(problems) + ". Weights too small shrink the signal (and the "
                "gradient) at every layer; too large or one-signed ones blow it up or saturate "
                "the activations. (If the model is already trained, weights may legitimately "
                "have moved; this matters most at the start.)",
                [f'init="{r["init_rule"]}" (the default for {layer.activation}), or leave init '
                 f"unset", "bias_init=0.0 or 0.1 (a small constant)"]))
    return out


def unscaled_inputs(inputs: dict) -> list[Finding]:
    t = THRESHOLDS
    problems = []
    if inputs["rms"] > t["input_rms_high"] or inputs["rms"] < t["input_rms_low"]:
        problems.append(f"their overall RMS is {inputs['rms']:.3g} (about 1 is assumed by the "
                        f"initialisers)")
    if inputs["offset_p90"] is not None and inputs["offset_p90"] > t["input_offset"]:
        problems.append(f"one feature in ten has its mean {inputs['offset_p90']:.3g} or more of "
                        f"its standard deviations away from zero")
    if inputs["std_p10"] is not None and inputs["std_p10"] > 0 and \
            inputs["std_p90"] / inputs["std_p10"] > t["input_spread_ratio"]:
        problems.append(f"feature spreads range from {inputs['std_p10']:.3g} to "
                        f"{inputs['std_p90']:.3g} (10th to 90th percentile)")
    if not problems:
        return []
    return [Finding(
        "unscaled_inputs", None, "warning", dict(inputs),
        "The inputs are far from zero mean and unit variance: " + "; ".join(problems) + ". "
        "Initialisers and learning rates assume unit-scale inputs; large or offset inputs "
        "saturate sigmoid/tanh units, inflate first-layer gradients and make the loss surface "
        "badly conditioned.",
        ["standardise X: X = (X - X.mean(0)) / X.std(0), with the training set's statistics",
         "batchnorm=True on the first layer"])]


def nonfinite(layers: list[dict], loss: float, diverged: bool) -> list[Finding]:
    bad = [r["index"] for r in layers if r["nonfinite"]]
    if not bad and math.isfinite(loss) and not diverged:
        return []
    return [Finding(
        "nonfinite", bad[0] if bad else None, "error",
        {"layers_with_nan_or_inf": bad, "loss": loss, "probe_diverged": diverged},
        "NaN or Inf appeared in the " + ("weights, outputs or gradients of layer(s) "
                                         f"{bad}" if bad else "loss") +
        (" and the probe run diverged" if diverged else "") + ". Once a NaN enters, every "
        "weight it touches becomes NaN. Usual causes: a learning rate too large for the "
        "gradients, exploding gradients, or extreme inputs.",
        ["a smaller lr", "clip_norm=1.0", "standardise X (and large regression targets)",
         "batchnorm=True"])]


def loss_not_decreasing(probe: list[dict], probe_log: dict) -> list[Finding]:
    losses = [r["loss"] for r in probe if r.get("loss") is not None]
    if len(losses) < 4:
        return []
    q = max(1, len(losses) // 4)
    first, last = sum(losses[:q]) / q, sum(losses[-q:]) / q
    if not (math.isfinite(first) and math.isfinite(last)):
        return []
    drop = (first - last) / abs(first) if first else 0.0
    if drop >= THRESHOLDS["loss_decrease"]:
        return []
    ups = [r.get("update_ratio") for rec in probe for r in rec["layers"]]
    ups = [u for u in ups if u is not None and math.isfinite(u)]
    top = max(ups) if ups else None
    why = ("The weights hardly move (the largest update ratio was "
           f"{top:.3g} per step), so the learning rate is too small for these gradients or "
           "the gradients vanish." if top is not None and top < 1e-5 else
           "The weights move but the loss does not follow: the gradient signal does not reach "
           "the layers that matter (see the other findings), or the steps overshoot.")
    return [Finding(
        "loss_not_decreasing", None, "warning",
        {"loss_first_quarter": first, "loss_last_quarter": last, "relative_drop": drop,
         "steps": probe[-1]["step"], "max_update_ratio": top, **probe_log},
        f"Over the {probe[-1]['step']}-step probe run the training loss went from {first:.4g} "
        f"to {last:.4g} ({100 * drop:.2f}% lower). " + why,
        ['optimizer="adam"', "a larger lr if updates are tiny, a smaller one if they are huge",
         "fix the layer findings above first"])]


def constant_output(out_std: float, target_std: float | None, classify: bool, when: str,
                    start_std: float | None = None) -> list[Finding]:
    """start_std: the output spread before the probe run, when one ran. A spread that is still
    tiny but grew at least constant_output_growth-fold is reported as info: learning is under
    way, just slowly (the shallow seed-000 network, whose spread grows ~10x per 1,000 steps)."""
    t = THRESHOLDS["constant_output"]
    ref = 1.0 if classify else target_std
    if ref is None or not ref > 0 or not math.isfinite(out_std) or out_std >= t * ref:
        return []
    growth = None
    if start_std is not None and math.isfinite(start_std):
        growth = out_std / start_std if start_std > 0 else math.inf
    growing = growth is not None and growth >= THRESHOLDS["constant_output_growth"]
    numbers = {"output_std": out_std, "target_std": None if classify else target_std,
               "when": when}
    if growth is not None:
        numbers["growth_during_probe"] = growth
    text = (f"The network's output barely depends on its input ({when}): its spread across "
            f"samples is {out_std:.3g}" + ("" if classify else f" against the targets' "
                                            f"{target_std:.3g}") + ". ")
    if growing:
        return [Finding(
            "constant_output", None, "info", numbers,
            text + f"But the spread grew {growth:.3g}x during the probe run, so the network is "
            f"learning, slowly: small initial weights make the first steps tiny.",
            ['init="he_normal" / "glorot_uniform" (the defaults) to start faster',
             'optimizer="adam"'])]
    return [Finding(
        "constant_output", None, "error", numbers,
        text + "The network predicts (nearly) one value for everything, typically its mean "
        "target: the signal from the input is lost on the way up (tiny weights, dead or "
        "saturated units), so the only thing left to fit is the output bias."
        + ("" if growth is None else f" Its spread changed {growth:.3g}x during the probe run: "
           "it is not recovering."),
        ['init="he_normal" for ReLU layers (the default)', "bias_init=0.1",
         "a smaller lr if units died during training", "see the layer findings above"])]
