"""Seed 000: the identity encoder whose weights stop moving once a hidden layer is added.

The question trains 1-16-1 and 1-16-16-1 ReLU networks so that 2 * output = input on
x ~ uniform(-1, 1), with every weight and bias drawn from N(0, 1e-3), plain SGD (lr 1e-3),
gradients clipped to [-4.5, 4.5], one sample per step. The shallow one learns; the deeper
one's output converges to a constant. The answer: vanishing gradients. Each backward step
multiplies the error by weights of size 1e-3, so the first layer's gradient is ~1000x smaller
than the last one's. Its fix: Glorot (Xavier) weights and biases of 0.1.

    python examples/seed000_identity_encoder.py [--quick]
"""
from __future__ import annotations

import argparse

import numpy as np

import fastmlp

SETTINGS = dict(loss="mse", optimizer="sgd", lr=1e-3, clip_value=4.5, batch_size=1)


def question_model(sizes, seed: int = 0) -> fastmlp.MLP:
    model = fastmlp.MLP(sizes, activation="relu", seed=seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # tf.random_normal_initializer(0, 1e-3) for W and b
        layer.W = rng.normal(0, 1e-3, layer.W.shape)
        layer.b = rng.normal(0, 1e-3, layer.b.shape)
    return model


def answer_model(sizes, seed: int = 0) -> fastmlp.MLP:
    return fastmlp.MLP(sizes, activation="relu", init="glorot_uniform", bias_init=0.1,
                       seed=seed)


def correlation(model, x) -> float:
    p = model.predict(x)[:, 0]
    if p.std() == 0:
        return 0.0
    return float(np.corrcoef(p, x[:, 0] / 2)[0, 1])


def main(quick: bool = False, seed: int = 0, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    rng = np.random.default_rng(seed)
    steps = 3000 if quick else 10000  # the question's 10,000 single-sample steps
    x = rng.uniform(-1, 1, (steps, 1)).astype(np.float32)
    y = x / 2  # 2 * output = input
    x_test = rng.uniform(-1, 1, (1000, 1)).astype(np.float32)
    out = {}
    for name, make, sizes in (("shallow", question_model, [1, 16, 1]),
                              ("deep", question_model, [1, 16, 16, 1]),
                              ("deep_fixed", answer_model, [1, 16, 16, 1])):
        model = make(sizes, seed)
        report = fastmlp.diagnose(model, x, y, probe_steps=1000, seed=seed, **SETTINGS)
        say(f"== {name}: {'-'.join(map(str, sizes))} ==")
        say(report if name == "deep" else report.summary())
        fastmlp.train(model, x, y, epochs=1, verbose=0, seed=seed, **SETTINGS)
        corr = correlation(model, x_test)
        spread = float(model.predict(x_test).std())
        say(f"after {steps} steps: correlation of prediction and target {corr:.3f}, "
            f"prediction spread {spread:.3g} (target spread {float((x_test / 2).std()):.3g})\n")
        out[name] = {"report": report, "correlation": corr, "spread": spread}
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (for tests)")
    main(quick=ap.parse_args().quick)
