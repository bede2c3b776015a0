"""Kernel microbenchmark: fastmlp.kernels vs fastmlp.reference (NumPy) vs PyTorch (if installed).

    python bench/bench_kernels.py [--quick] [--markdown]

One row per (kernel, shape): median time of each contender measured round-robin in the same
run, the speed-up of fastmlp over each, and fastmlp's GFLOP/s (GEMM-bound kernels) or GB/s
(memory-bound kernels, counting each array read or written once).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import fastmlp  # noqa: E402
from fastmlp import kernels as K  # noqa: E402
from fastmlp import reference as R  # noqa: E402
from timing import fmt_time, race  # noqa: E402

try:
    import torch
    torch.set_num_threads(fastmlp.get_num_threads())
except ImportError:
    torch = None

DENSE_SHAPES = [(200, 784, 300), (200, 300, 100), (1024, 1024, 1024), (50, 1, 50)]
ROW_SHAPES = [(200, 300), (200, 784), (1024, 1024)]
MNIST_PARAMS = [(784, 300), (300,), (300, 100), (100,), (100, 10), (10,)]


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def dense_cases(rng):
    for B, I, O in DENSE_SHAPES:
        x, W, b = rand(rng, B, I), rand(rng, I, O) / np.float32(np.sqrt(I)), rand(rng, O)
        dy = rand(rng, B, O)
        _, z = K.dense_forward(x, W, b, "relu")
        fl = 2.0 * B * I * O
        shape = f"({B},{I})x({I},{O})"
        c = {"fastmlp": lambda: K.dense_forward(x, W, b, "identity"), "numpy": lambda: x @ W}
        if torch is not None:
            tx, tW = torch.from_numpy(x), torch.from_numpy(W)
            c["torch"] = lambda: tx @ tW
        yield "gemm (x @ W)", shape, c, fl, "flop"
        c = {"fastmlp": lambda: K.dense_forward(x, W, b, "relu"),
             "numpy": lambda: R.dense_forward(x, W, b, "relu")}
        if torch is not None:
            tb = torch.from_numpy(b)
            c["torch"] = lambda: torch.relu(torch.addmm(tb, tx, tW))
        yield "dense_forward relu", shape, c, fl, "flop"
        c = {"fastmlp": lambda: K.dense_backward(dy, x, W, z, "relu"),
             "numpy": lambda: R.dense_backward(dy, x, W, z, "relu")}
        if torch is not None:
            tdy, tz = torch.from_numpy(dy), torch.from_numpy(z)

            def torch_backward():
                dz = tdy * (tz > 0)
                return dz @ tW.T, tx.T @ dz, dz.sum(0)
            c["torch"] = torch_backward
        yield "dense_backward relu", shape, c, 2 * fl, "flop"


def row_cases(rng):
    for B, F in ROW_SHAPES:
        shape = f"({B},{F})"
        x, dy = rand(rng, B, F), rand(rng, B, F)
        gamma, beta = rand(rng, F), rand(rng, F)
        rm, rv = np.zeros(F, np.float32), np.ones(F, np.float32)
        rm2, rv2 = rm.copy(), rv.copy()
        _, mean, inv_std = K.batchnorm_forward(x, gamma, beta, rm, rv)
        nbytes = 4.0 * B * F * 2  # read x, write y
        yield "batchnorm_forward", shape, {
            "fastmlp": lambda: K.batchnorm_forward(x, gamma, beta, rm, rv),
            "numpy": lambda: R.batchnorm_forward(x, gamma, beta, rm2, rv2)}, nbytes, "byte"
        yield "batchnorm_backward", shape, {
            "fastmlp": lambda: K.batchnorm_backward(dy, x, gamma, mean, inv_std),
            "numpy": lambda: R.batchnorm_backward(dy, x, gamma, mean, inv_std)}, 1.5 * nbytes, "byte"
        labels = rng.integers(0, F, B)
        yield "softmax_cross_entropy", shape, {
            "fastmlp": lambda: K.softmax_cross_entropy(x, labels),
            "numpy": lambda: R.softmax_cross_entropy(x, labels)}, nbytes, "byte"
        yield "mse", shape, {
            "fastmlp": lambda: K.mse(x, dy),
            "numpy": lambda: R.mse(x, dy)}, 1.5 * nbytes, "byte"


def optimizer_cases(rng):
    for label, shapes in (("mnist params (266k)", MNIST_PARAMS), ("10M", [(10_000_000,)])):
        n = sum(int(np.prod(s)) for s in shapes)

        def fresh():
            return [rand(rng, *s) for s in shapes]
        p1, p2, g = fresh(), fresh(), fresh()
        z = lambda: [np.zeros(s, np.float32) for s in shapes]  # noqa: E731
        m1, v1, m2, v2 = z(), z(), z(), z()
        # Adam reads p, g, m, v and writes p, m, v: 7 arrays of n floats.
        yield "adam_step clip_norm", label, {
            "fastmlp": lambda: K.adam_step(p1, g, m1, v1, 10, lr=1e-6, clip_norm=1.0),
            "numpy": lambda: R.adam_step(p2, g, m2, v2, 10, lr=1e-6, clip_norm=1.0)}, 28.0 * n, "byte"
        yield "sgd_step nesterov", label, {
            "fastmlp": lambda: K.sgd_step(p1, g, m1, 1e-6, momentum=0.9, nesterov=True),
            "numpy": lambda: R.sgd_step(p2, g, m2, 1e-6, momentum=0.9, nesterov=True)}, 20.0 * n, "byte"
        yield "rmsprop_step", label, {
            "fastmlp": lambda: K.rmsprop_step(p1, g, v1, 1e-6),
            "numpy": lambda: R.rmsprop_step(p2, g, v2, 1e-6)}, 20.0 * n, "byte"
        yield "adagrad_step", label, {
            "fastmlp": lambda: K.adagrad_step(p1, g, v1, 1e-6),
            "numpy": lambda: R.adagrad_step(p2, g, v2, 1e-6)}, 20.0 * n, "byte"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()
    repeats = 7 if args.quick else 21
    rng = np.random.default_rng(0)

    # The machine's matmul peak in this run: NumPy's BLAS on a large square product.
    a, b = rand(rng, 2048, 2048), rand(rng, 2048, 2048)
    peak = 2 * 2048 ** 3 / race({"peak": lambda: a @ b}, repeats=5, warmup=1)["peak"] / 1e9

    info = fastmlp.cpu_info()
    print(f"# fastmlp {fastmlp.__version__}, {info['isa']}, {info['num_threads']} threads; "
          f"numpy {np.__version__}; torch {torch.__version__ if torch else 'not installed'}"
          f"{f' ({torch.get_num_threads()} threads)' if torch else ''}; {platform.processor() or platform.machine()}")
    print(f"# measured matmul peak (numpy 2048^3): {peak:.1f} GFLOP/s")
    sep = " | " if args.markdown else "  "
    head = ["kernel", "shape", "fastmlp", "numpy", "torch", "vs numpy", "vs torch", "fastmlp rate"]
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
    else:
        print(f"{head[0]:24s}{head[1]:24s}{head[2]:>11s}{head[3]:>11s}{head[4]:>11s}"
              f"{head[5]:>10s}{head[6]:>10s}  {head[7]}")
    for gen in (dense_cases, row_cases, optimizer_cases):
        for kernel, shape, contenders, work, unit in gen(rng):
            t = race(contenders, repeats=repeats)
            f = t["fastmlp"]
            rate = (f"{work / f / 1e9:.1f} GFLOP/s ({100 * work / f / 1e9 / peak:.0f}% peak)"
                    if unit == "flop" else f"{work / f / 1e9:.1f} GB/s")
            tn, tt = t.get("numpy"), t.get("torch")
            cells = [kernel, shape, fmt_time(f).strip(), fmt_time(tn).strip(),
                     fmt_time(tt).strip() if tt else "-", f"{tn / f:.2f}x",
                     f"{tt / f:.2f}x" if tt else "-", rate]
            if args.markdown:
                print("| " + " | ".join(cells) + " |")
            else:
                print(f"{cells[0]:24s}{cells[1]:24s}{cells[2]:>11s}{cells[3]:>11s}{cells[4]:>11s}"
                      f"{cells[5]:>10s}{cells[6]:>10s}  {cells[7]}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
