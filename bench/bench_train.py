"""Training benchmark: fastmlp.train vs a NumPy loop built from fastmlp.reference vs PyTorch
(CPU) vs scikit-learn's MLPClassifier, measured side by side in one run.

    python bench/bench_train.py [--quick] [--markdown]

1. Per-step cost on a tiny network (1-50-10-1 ReLU, batch 50, Adam, clip_norm=1): the per-step
   overhead that dominates small models.
2. 784-300-100-10 ReLU, batch 200, Adam on MNIST-shaped random data: GEMM-bound steps.
3. The handwritten digits shipped with the package (64 inputs), 64-300-100-10 ReLU, Adam
   lr=1e-3, batch 200, 50 epochs: wall time of the whole training and test accuracy over seeds.

Each contender trains one epoch per timed call (1 and 2) or the whole job (3); times are medians
of repeated calls after warm-up, taken in turn (bench/timing.py). Needs torch and scikit-learn
for their columns (pip install torch==2.13.0 scikit-learn); missing ones are skipped.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import fastmlp  # noqa: E402
from fastmlp.datasets import load_digits  # noqa: E402
from fastmlp.reference import training as RT  # noqa: E402
from timing import fmt_time, race  # noqa: E402

try:
    import torch
    torch.set_num_threads(fastmlp.get_num_threads())
except ImportError:
    torch = None
try:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
except ImportError:
    MLPClassifier = None

HYPER = dict(momentum=0.0, nesterov=False, rho=0.9, beta1=0.9, beta2=0.999, eps=1e-8,
             weight_decay=0.0, decoupled=False, clip_value=None, clip_norm=None, l1=0.0, l2=0.0,
             max_norm=None)


def numpy_epoch(model, X, y, loss, batch_size, lr, clip_norm, state):
    """One epoch of the reference training step (the NumPy loop fastmlp replaces)."""
    specs = model._layer_specs(0, None, loss != "mse")
    hp = dict(HYPER, clip_norm=clip_norm)
    order = state["rng"].permutation(len(X))
    for k in range(0, len(X), batch_size):
        idx = order[k:k + batch_size]
        RT.train_step(specs, model._params, model._stats, *state["bufs"], X[idx], y[idx],
                      loss=loss, optimizer="adam", hyper=hp, lr=lr, step=state["step"], seed=0)
        state["step"] += 1


def torch_setup(sizes, loss, lr):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    fn = torch.nn.CrossEntropyLoss() if loss == "cross_entropy" else torch.nn.MSELoss()
    return net, opt, fn


def torch_epoch(net, opt, fn, X, y, batch_size, clip_norm, gen):
    order = torch.randperm(len(X), generator=gen)
    for k in range(0, len(X), batch_size):
        idx = order[k:k + batch_size]
        opt.zero_grad(set_to_none=True)
        out = fn(net(X[idx]), y[idx])
        out.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip_norm)
        opt.step()


def step_case(name, sizes, n, batch_size, loss, clip_norm, repeats):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], n)
    else:
        y = np.sin(X[:, :1] * 3).astype(np.float32)
    steps = -(-n // batch_size)
    fm = fastmlp.MLP(sizes, seed=0)
    npm = fastmlp.MLP(sizes, seed=0)
    state = {"rng": np.random.default_rng(0), "step": 0,
             "bufs": [np.zeros_like(npm._params) for _ in range(3)]}
    c = {"fastmlp": lambda: fastmlp.train(fm, X, y, loss=loss, batch_size=batch_size, epochs=1,
                                          clip_norm=clip_norm, verbose=0, seed=0),
         "numpy": lambda: numpy_epoch(npm, X, y, loss, batch_size, 1e-3, clip_norm, state)}
    if torch is not None:
        net, opt, fn = torch_setup(sizes, loss, 1e-3)
        tX = torch.from_numpy(X)
        ty = torch.from_numpy(y.astype(np.int64) if loss == "cross_entropy" else y)
        gen = torch.Generator().manual_seed(0)
        c["torch"] = lambda: torch_epoch(net, opt, fn, tX, ty, batch_size, clip_norm, gen)
    t = race(c, repeats=repeats, warmup=2, min_time=0.05)
    return name, {k: v / steps for k, v in t.items()}


def digits_case(repeats, seeds):
    Xtr, ytr, Xte, yte = load_digits()
    kw = dict(loss="cross_entropy", optimizer="adam", lr=1e-3, batch_size=200, epochs=50,
              verbose=0)
    results = {}

    def fm(seed):
        m = fastmlp.MLP([64, 300, 100, 10], seed=seed)
        fastmlp.train(m, Xtr, ytr, seed=seed, **kw)
        return float((m.predict_classes(Xte) == yte).mean())

    def sk(seed):
        clf = MLPClassifier(hidden_layer_sizes=(300, 100), solver="adam", learning_rate_init=1e-3,
                            batch_size=200, max_iter=50, alpha=0.0, tol=0.0,
                            n_iter_no_change=50, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(Xtr, ytr)
        return float(clf.score(Xte, yte))

    def tc(seed):
        torch.manual_seed(seed)
        net, opt, fn = torch_setup([64, 300, 100, 10], "cross_entropy", 1e-3)
        tX, ty = torch.from_numpy(Xtr), torch.from_numpy(ytr.astype(np.int64))
        gen = torch.Generator().manual_seed(seed)
        for _ in range(50):
            torch_epoch(net, opt, fn, tX, ty, 200, None, gen)
        with torch.no_grad():
            pred = net(torch.from_numpy(Xte)).argmax(1).numpy()
        return float((pred == yte).mean())

    contenders = {"fastmlp": fm}
    if MLPClassifier is not None:
        contenders["scikit-learn"] = sk
    if torch is not None:
        contenders["torch"] = tc
    for name, f in contenders.items():
        results[name] = {"accuracy": [f(s) for s in seeds]}
    times = race({k: (lambda f=f: f(0)) for k, f in contenders.items()}, repeats=repeats,
                 warmup=1, min_time=0.0)
    for name in contenders:
        results[name]["time"] = times[name]
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    repeats = 5 if args.quick else 11
    seeds = range(3) if args.quick else range(5)
    print(f"# fastmlp training benchmark\n\n{platform.processor() or platform.machine()}, "
          f"{fastmlp.cpu_info()['isa']} x {fastmlp.get_num_threads()} threads, numpy "
          f"{np.__version__}, torch {torch.__version__ if torch else 'absent'}, scikit-learn "
          f"{'present' if MLPClassifier else 'absent'}\n")
    print("## Time per training step (median of one-epoch calls / steps)\n")
    print("| case | fastmlp | numpy loop | torch | vs numpy | vs torch |")
    print("| --- | --- | --- | --- | --- | --- |")
    for case in [("1-50-10-1 relu, batch 50, adam+clip_norm", [1, 50, 10, 1], 5000, 50, "mse",
                  1.0),
                 ("784-300-100-10 relu, batch 200, adam", [784, 300, 100, 10], 2000, 200,
                  "cross_entropy", None)]:
        name, t = step_case(*case, repeats=repeats)
        fm, tt = t["fastmlp"], t.get("torch")
        vs_torch = f"{tt / fm:.1f}x" if tt else "-"
        print(f"| {name} | {fmt_time(fm)} | {fmt_time(t['numpy'])} | "
              f"{fmt_time(tt) if tt else '-'} | {t['numpy'] / fm:.1f}x | {vs_torch} |",
              flush=True)
    print("\n## Digits, 64-300-100-10 relu, adam lr=1e-3, batch 200, 50 epochs\n")
    res = digits_case(max(3, repeats // 2), seeds)
    print("| contender | time (median) | test accuracy (mean over seeds) | min..max | "
          "speed-up of fastmlp |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in res.items():
        acc = r["accuracy"]
        print(f"| {name} | {fmt_time(r['time'])} | {np.mean(acc):.4f} | {min(acc):.4f}.."
              f"{max(acc):.4f} | {r['time'] / res['fastmlp']['time']:.1f}x |")


if __name__ == "__main__":
    main()
