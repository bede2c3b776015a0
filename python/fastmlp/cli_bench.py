"""``fastmlp bench [--quick]``: how fast training steps run on this machine.

One row per network: the time of one training step (forward, loss, backward, Adam update) in
fastmlp's C++ engine and in the NumPy loop built from fastmlp.reference (the same maths, one
NumPy call per kernel), measured side by side in one run, with GFLOP/s and the speed-up.
Times are medians of repeated calls after warm-up, the contenders timed in turn within each
repetition so that a burst of noise on a shared machine hits both. bench/bench_train.py is the
fuller benchmark (PyTorch, scikit-learn, whole training runs); it is not installed, so the small
timing loop is repeated here.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

# (name, sizes, batch, steps per timed call, loss). Steps per call amortise train()'s per-call
# setup (input checks, the engine object, ~0.2 ms) the way a real epoch does: with 2-7 steps a
# call, that setup made the mnist-sized step look 2x slower than an epoch runs it.
CASES = [("tiny 1-50-10-1, mse", [1, 50, 10, 1], 50, 200, "mse"),
         ("digits 64-300-100-10", [64, 300, 100, 10], 200, 40, "cross_entropy"),
         ("mnist-sized 784-300-100-10", [784, 300, 100, 10], 200, 20, "cross_entropy")]
QUICK_CASES = [("digits 64-300-100-10", [64, 300, 100, 10], 200, 10, "cross_entropy"),
               ("mnist-sized 784-300-100-10", [784, 300, 100, 10], 200, 5, "cross_entropy")]
# Adam with PyTorch's defaults, as fastmlp.train(optimizer="adam") uses them.
_ADAM = dict(momentum=0.0, nesterov=False, rho=0.9, beta1=0.9, beta2=0.999, eps=1e-8,
             weight_decay=0.0, decoupled=False, clip_value=None, clip_norm=None, l1=0.0,
             l2=0.0, max_norm=None)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers the ``bench`` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser(
        "bench", help="time training steps: fastmlp's engine vs a NumPy loop",
        description="Times one training step (batch forward, backward, Adam) of a few MLPs in\n"
                    "fastmlp and in a NumPy loop built from fastmlp.reference, side by side;\n"
                    "prints a table with GFLOP/s, the thread count and the active ISA.\n"
                    "About 15 s; --quick about 2 s.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="two networks, fewer repeats (a couple of seconds)")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    """Runs the benchmark and prints the table; returns 0."""
    import fastmlp

    info = fastmlp.cpu_info()
    quick = bool(args.quick)
    repeats, cooldown = (3, 0.02) if quick else (7, 0.1)
    print(f"fastmlp {fastmlp.__version__} bench{' --quick' if quick else ''}: one training step "
          f"(forward, backward, Adam), median of {repeats} after warm-up; ISA {info['isa']}, "
          f"{info['num_threads']} threads, numpy {np.__version__}")
    header = (f"{'network':<28}{'batch':>6}{'fastmlp':>12}{'GFLOP/s':>9}{'numpy loop':>12}"
              f"{'GFLOP/s':>9}{'speed-up':>10}")
    print(header)
    print("-" * len(header))
    t_start = time.perf_counter()
    for name, sizes, batch, steps, loss in (QUICK_CASES if quick else CASES):
        t = step_times(sizes, batch, steps, loss, repeats, cooldown)
        flops = step_flops(sizes, batch)
        print(f"{name:<28}{batch:>6}{_fmt(t['fastmlp']):>12}{flops / t['fastmlp'] / 1e9:>9.1f}"
              f"{_fmt(t['numpy']):>12}{flops / t['numpy'] / 1e9:>9.1f}"
              f"{t['numpy'] / t['fastmlp']:>9.1f}x", flush=True)
    print(f"({time.perf_counter() - t_start:.1f} s; GFLOP/s counts the matrix products only: "
          f"6 x batch x weights, less the first layer's unneeded input gradient)")
    return 0


def step_flops(sizes: list, batch: int) -> float:
    """Matrix-product flops of one training step: forward 2*B*I*O per layer, backward 2*B*I*O
    for dW and, except in the first layer (no gradient w.r.t. the data), 2*B*I*O for dx."""
    per_layer = [2.0 * batch * i * o for i, o in zip(sizes[:-1], sizes[1:])]
    return 3.0 * sum(per_layer) - per_layer[0]


def _data(sizes: list, n: int, loss: str):
    rng = np.random.default_rng(0)
    if sizes[0] == 64:  # the shipped digits, for the digits-shaped network
        from .datasets import load_digits
        X, y, _, _ = load_digits(seed=0)
        # Exactly n rows (the per-step time divides by n / batch): the 1,438 training rows
        # repeated as often as needed.
        rows = np.arange(n) % len(X)
        return np.ascontiguousarray(X[rows]), y[rows]
    X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    if loss == "cross_entropy":
        return X, rng.integers(0, sizes[-1], n)
    return X, np.sin(3 * X[:, :1]).astype(np.float32)


def step_times(sizes: list, batch: int, steps: int, loss: str, repeats: int,
               cooldown: float) -> dict:
    """{"fastmlp": s, "numpy": s}: median seconds per training step of each contender."""
    import fastmlp
    from .reference import training as ref

    X, y = _data(sizes, batch * steps, loss)
    fast = fastmlp.MLP(sizes, seed=0)
    slow = fastmlp.MLP(sizes, seed=0)
    # The reference step takes the engine's layer descriptions and flat buffers.
    specs = slow._layer_specs(0, None, loss != "mse")
    buffers = [np.zeros_like(slow._params) for _ in range(3)]
    yt = y.astype(np.float32).reshape(len(y), -1) if loss == "mse" else y
    count = [0]

    def numpy_epoch():
        for k in range(0, len(X), batch):
            ref.train_step(specs, slow._params, slow._stats, *buffers, X[k:k + batch],
                           yt[k:k + batch], loss=loss, optimizer="adam", hyper=_ADAM, lr=1e-3,
                           step=count[0], seed=0)
            count[0] += 1

    contenders = {
        "fastmlp": lambda: fastmlp.train(fast, X, y, loss=loss, batch_size=batch, epochs=1,
                                         verbose=0, seed=0),
        "numpy": numpy_epoch}
    return {k: v / steps for k, v in _race(contenders, repeats, cooldown).items()}


def _race(contenders: dict, repeats: int, cooldown: float) -> dict:
    """name -> median seconds per call; one warm-up call each, then `repeats` rounds in turn.

    The sleep before each sample lets the other contender's thread pool go idle (OpenBLAS
    workers spin ~0.1 s after a call, fastmlp's ~200 us); on a 2-core machine a spinning pool
    halves the next contender's multi-threaded GEMMs.
    """
    for fn in contenders.values():
        fn()
    samples = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            time.sleep(cooldown)
            fn()  # re-warm after the sleep: wake the pool, refill the caches
            t = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t)
    return {name: float(np.median(s)) for name, s in samples.items()}


def _fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms"
