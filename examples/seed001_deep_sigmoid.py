"""Seed 001: vanishing gradients in a 5-hidden-layer sigmoid stack, and the four fixes.

The seed derives dC/db1 = dC/dy4 * s'(z4) w4 * s'(z3) w3 * s'(z2) w2 * s'(z1): the sigmoid's
slope is at most 1/4 and initial weights are below 1, so every layer shrinks the gradient and
the first layers barely learn. A 64-50-50-50-50-50-10 sigmoid network on the standardised
digits, plain SGD (lr 0.1, batch 32), default (Glorot) init: diagnose measures the first
layer's gradient ~1000x below the last's, and after 20 epochs the network is still at chance.
Then the fixes the seeds teach, with numbers: ReLU or ELU with He init, batch normalisation
before the sigmoid, and, for the opposite failure (exploding gradients from weights that are
too large, here a ReLU stack with N(0, 1) weights), gradient clipping by norm.

    python examples/seed001_deep_sigmoid.py [--quick]
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np

import fastmlp
from fastmlp.datasets import load_digits

SIZES = [64, 50, 50, 50, 50, 50, 10]
SETTINGS = dict(loss="cross_entropy", optimizer="sgd", lr=0.1, batch_size=32)


def standard_normal(fan_in, fan_out, rng):
    return rng.standard_normal((fan_in, fan_out))


VARIANTS = {
    "sigmoid (the problem)": (dict(activation="sigmoid"), {}),
    "relu + he_normal": (dict(activation="relu", init="he_normal"), {}),
    "elu + he_normal": (dict(activation="elu", init="he_normal"), {}),
    "sigmoid + batchnorm": (dict(activation="sigmoid", batchnorm=True), {}),
    "relu + normal(0, 1) (exploding)": (dict(activation="relu", init=standard_normal), {}),
    "relu + normal(0, 1) + clip_norm=1": (dict(activation="relu", init=standard_normal),
                                          dict(clip_norm=1.0)),
}


def main(quick: bool = False, seed: int = 0, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    X, y, X_test, y_test = load_digits(seed=seed)
    mean, std = X.mean(0), X.std(0) + np.float32(1e-6)
    X, X_test = (X - mean) / std, (X_test - mean) / std
    epochs = 10 if quick else 20
    out = {}
    say(f"{'variant':<34} {'layer-0 grad vs last':>21} {'test acc':>9}  findings")
    for name, (model_kw, train_kw) in VARIANTS.items():
        model = fastmlp.MLP(SIZES, seed=seed, **model_kw)
        report = fastmlp.diagnose(model, X, y, probe_steps=100, seed=seed, **SETTINGS,
                                  **train_kw)
        with warnings.catch_warnings():  # the exploding variant diverges: that is the point
            warnings.simplefilter("ignore", RuntimeWarning)
            history = fastmlp.train(model, X, y, epochs=epochs, verbose=0, seed=seed,
                                    **SETTINGS, **train_kw)
        accuracy = float((model.predict_classes(X_test) == y_test).mean())
        kinds = sorted(report.kinds())
        say(f"{name:<34} {report.layers[0]['grad_scale']:>21.3g} {accuracy:>9.4f}  "
            f"{', '.join(kinds) or '-'}")
        out[name] = {"report": report, "accuracy": accuracy,
                     "stopped": history.stopped_reason}
    say("\nThe problem, in full:")
    say(out["sigmoid (the problem)"]["report"])
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer epochs (for tests)")
    main(quick=ap.parse_args().quick)
