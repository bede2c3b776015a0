"""What train(monitor=N) costs: whole training runs with and without monitoring, side by side.

    python bench/bench_monitor.py

Prints the best of 7 runs (this host is shared and noisy; the best run is the one least
disturbed) for each setting, and the cost per monitor record.
"""
from __future__ import annotations

import time

import numpy as np

import fastmlp
from fastmlp.datasets import load_digits


def best_of(f, k=7):
    f()  # warm-up
    times = []
    for _ in range(k):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    X, y, _, _ = load_digits(seed=0)
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    x = np.random.default_rng(0).uniform(0.01, 1, (5000, 1)).astype(np.float32)
    cases = {
        "digits 64-300-100-10, batch 200, 50 epochs (400 steps)":
            lambda **kw: fastmlp.train(fastmlp.MLP([64, 300, 100, 10], seed=0), X, y,
                                       loss="cross_entropy", batch_size=200, epochs=50,
                                       verbose=0, seed=0, **kw),
        "tiny 1-50-10-1, batch 50, 20 epochs (2000 steps)":
            lambda **kw: fastmlp.train(fastmlp.MLP([1, 50, 10, 1], seed=0), x, np.log(x),
                                       loss="mse", batch_size=50, epochs=20, verbose=0,
                                       seed=0, clip_norm=1.0, **kw),
    }
    print(f"fastmlp {fastmlp.__version__}, {fastmlp.cpu_info()}")
    print("| case | monitor | records | time (ms) | per record (ms) |")
    print("| --- | --- | --- | --- | --- |")
    for name, run in cases.items():
        base = best_of(run)
        print(f"| {name} | None | 0 | {1e3 * base:.1f} | - |")
        for every in (100, 10):
            n = len(run(monitor=every).monitor)
            t = best_of(lambda: run(monitor=every))
            print(f"| {name} | {every} | {n} | {1e3 * t:.1f} | {1e3 * (t - base) / n:.2f} |")


if __name__ == "__main__":
    main()
