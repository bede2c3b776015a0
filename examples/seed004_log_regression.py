"""Seed 004: a 1-50-10-1 ReLU network fitting ln(x) collapses to a constant output.

The question's network draws every weight and bias from uniform[0, 1) and trains with plain
SGD (lr 0.01, batch 50) on x ~ uniform(0, 1). All weights are positive, so the hidden units'
inputs are large and one-signed, the first gradients are huge (ln(x) reaches -7 and below
near 0), and the first step throws every ReLU into the dead zone: the output is a constant.
The answer's fix: truncated-normal weights (std 0.1), biases 0.1, Adam with lr 1e-4, and x
sampled in [0.01, 1] so the target stays bounded.

    python examples/seed004_log_regression.py [--quick]
"""
from __future__ import annotations

import argparse

import numpy as np

import fastmlp
from fastmlp.initializers import initialize


def broken_model(seed: int = 0) -> fastmlp.MLP:
    model = fastmlp.MLP([1, 50, 10, 1], activation="relu", seed=seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # tf.random_uniform: every weight and bias in [0, 1)
        layer.W = rng.uniform(0, 1, layer.W.shape)
        layer.b = rng.uniform(0, 1, layer.b.shape)
    return model


def fixed_model(seed: int = 0) -> fastmlp.MLP:
    def truncated_normal_01(fan_in, fan_out, rng):
        return initialize("truncated_normal", fan_in, fan_out, rng, 0.1)
    return fastmlp.MLP([1, 50, 10, 1], activation="relu", init=truncated_normal_01,
                       bias_init=0.1, seed=seed)


def main(quick: bool = False, seed: int = 0, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    rng = np.random.default_rng(seed)
    steps = 4000 if quick else 20000  # the question's run (the fix always gets 20,000)
    x_test = np.linspace(0.01, 1, 1000, dtype=np.float32)[:, None]
    y_test = np.log(x_test)

    # The failure.
    x = rng.uniform(0, 1, (50 * 200, 1)).astype(np.float32)
    x = np.maximum(x, np.float32(1e-6))  # ln(0) is -inf: keep the question's data finite
    broken = broken_model(seed)
    report = fastmlp.diagnose(broken, x, np.log(x), loss="mse", optimizer="sgd", lr=0.01,
                              batch_size=50, seed=seed)
    say("== the question's network: uniform[0, 1) weights, SGD lr 0.01 ==")
    say(report)
    fastmlp.train(broken, x, np.log(x), loss="mse", optimizer="sgd", lr=0.01, batch_size=50,
                  epochs=max(1, steps // 200), verbose=0, seed=seed)
    pred_broken = broken.predict(x_test)
    say(f"after {steps} steps: prediction spread {pred_broken.std():.3g} (targets "
        f"{y_test.std():.3g}), MSE on [0.01, 1] {np.mean((pred_broken - y_test) ** 2):.3g}")

    # The fix.
    x = rng.uniform(0.01, 1, (50 * 1000, 1)).astype(np.float32)  # 20 epochs = 20,000 steps
    fixed = fixed_model(seed)
    fixed_report = fastmlp.diagnose(fixed, x, np.log(x), loss="mse", optimizer="adam",
                                    lr=1e-4, batch_size=50, seed=seed)
    say("\n== the answer's fix: truncated normal 0.1, bias 0.1, Adam lr 1e-4, x in [0.01, 1] ==")
    say(fixed_report.summary())
    fastmlp.train(fixed, x, np.log(x), loss="mse", optimizer="adam", lr=1e-4, batch_size=50,
                  epochs=20, verbose=0, seed=seed)
    pred_fixed = fixed.predict(x_test)
    mse_fixed = float(np.mean((pred_fixed - y_test) ** 2))
    say(f"after 20000 steps: MSE on [0.01, 1] {mse_fixed:.3g} (target: below 1e-3)")
    return {"report": report, "fixed_report": fixed_report,
            "broken_spread": float(pred_broken.std()),
            "broken_mse": float(np.mean((pred_broken - y_test) ** 2)), "fixed_mse": mse_fixed}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (for tests)")
    main(quick=ap.parse_args().quick)
