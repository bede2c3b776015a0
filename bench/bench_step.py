"""Whole-training-step benchmark (issue 5): fastmlp vs a NumPy loop vs PyTorch eager, one run.

    python bench/bench_step.py [--quick] [--markdown]

Every case is a ReLU MLP trained by Adam with clip_norm=1.0 (cross-entropy; the tiny 1-output
regression uses MSE, as its seed does). Contenders, timed round-robin in the same run
(bench/timing.py), each doing the same k batches gathered from one fixed permutation:

  fastmlp        one call of the C++ engine (_core.Trainer.run) over k batches, divided by k:
                 how fastmlp.train runs an epoch, without its per-epoch Python work;
  fastmlp.train  one fastmlp.train epoch of the same rows, divided by k (its own shuffle; the
                 per-call work included: checks of X and y, permutation, weight snapshot);
  numpy          fastmlp.reference.training.train_step per batch (the NumPy loop it replaces);
  torch          nn.Linear + ReLU [+ BatchNorm1d], Adam, clip_grad_norm_,
                 zero_grad(set_to_none=True), with fastmlp's thread count;
  (mnist+bn only) the fastmlp engine on the same network without batch norm, for the target
                 on what batch norm adds.

GFLOP/s counts only the arithmetic a step must do: per layer 2*B*in*out for the forward GEMM,
the same for dW and for dX except on the first layer (no gradient is wanted for the input),
divided by fastmlp's engine step time; the peak it is compared with is a 2048^3 NumPy float32
matmul raced beside each case (its median; the best of a few at the start of the run and the
round-by-round ratios are printed beside it). Then: one end-to-end epoch of 60,000 random
784-feature rows through fastmlp.train in a fresh subprocess (time, peak RSS beside the data
size), the 1 -> 2 thread scaling of fastmlp and torch, and the issue's targets, met or missed.
The method and the observations are in bench/NOTES.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastmlp  # noqa: E402
from fastmlp import _core  # noqa: E402
from fastmlp.reference import training as RT  # noqa: E402
from fastmlp.training import _hyper, targets  # noqa: E402
from timing import fmt_time, interleaved_pairs, race, race_samples  # noqa: E402

LR = 1e-3
CLIP_NORM = 1.0

# name, sizes, batch, batch norm on hidden layers, loss, batches per timed call (k: a call lasts
# tens of milliseconds for fastmlp, so its Python entry cost is amortised as in an epoch).
CASES = [
    ("tiny", [1, 50, 10, 1], 50, False, "mse", 200),
    ("digits", [64, 300, 100, 10], 200, False, "cross_entropy", 20),
    ("mnist", [784, 300, 100, 10], 200, False, "cross_entropy", 10),
    ("mnist+bn", [784, 300, 100, 10], 200, True, "cross_entropy", 10),
    ("deep-narrow", [64] + [64] * 8 + [10], 256, False, "cross_entropy", 40),
    ("wide", [512, 1024, 1024, 10], 1024, False, "cross_entropy", 2),
]
SCALING_CASES = ("mnist", "wide")
NO_BN = "fastmlp without batch norm"  # an extra contender in batch-norm cases
E2E_ROWS, E2E_SIZES, E2E_BATCH = 60_000, [784, 300, 100, 10], 200
MB = 1e6


def load_torch():
    """torch with fastmlp's thread count, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(fastmlp.get_num_threads())
    return torch


def step_flops(sizes, batch) -> float:
    """Forward + dW GEMMs on every layer, dX GEMMs on all but the first: 2*B*in*out each."""
    mk = [i * o for i, o in zip(sizes[:-1], sizes[1:])]
    return 2.0 * batch * (3 * sum(mk) - mk[0])


PEAK_N = 2048
PEAK = "numpy 2048^3 matmul"  # a contender in every case's race
PROBE = "cross-core probe"  # another: records where the host runs the two vCPUs
FAR_NS = 150  # cross-core round trips above this: vCPUs far apart (bench/bench_placement.py)
# A third: 262,144 random reads (NumPy take) from an 8 MB buffer on one thread, called back to
# back in its turn of the race. About 1.65 ns a read while the buffer stays in the L3 (shared
# with the host's other tenants), 8.9 ns from DRAM: it shows minutes in which the host's
# traffic evicts what the step keeps in the L3 between steps, the optimizer state among it
# (bench/NOTES.md, seventh part).
MEMORY_PROBE = "L3 probe"
MEMORY_PROBE_FLOATS = 2 << 20
MEMORY_PROBE_READS = 1 << 18


def peak_matmul():
    """A zero-argument callable running NumPy's 2048^3 float32 product (the peak's yardstick)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((PEAK_N, PEAK_N), dtype=np.float32)
    b = rng.standard_normal((PEAK_N, PEAK_N), dtype=np.float32)
    return lambda: a @ b


def matmul_peak(repeats: int) -> float:
    """GFLOP/s of NumPy's BLAS on a 2048^3 float32 product, best of `repeats` after a warm-up."""
    fn = peak_matmul()
    fn()
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return 2 * PEAK_N ** 3 / best / 1e9


# ---- contenders ---------------------------------------------------------------------------
def engine_steps(model, X, yt, order, batch, loss, k):
    """fastmlp's engine built as fastmlp.train builds it; returns (run k steps, first step)."""
    kind, hp = _hyper("adam", clip_norm=CLIP_NORM)
    net = model._network(0, None, loss != "mse")
    n = model._params.size
    bufs = [np.zeros(n, np.float32) for _ in range(3)]
    engine = _core.Trainer(net, loss, kind, hp, batch, *bufs)
    lrs = np.full(k, LR)
    step = [0]

    def run(b0=0, b1=k):
        log = engine.run(X, yt, order, b0, b1, lrs[:b1 - b0], step[0], 0)
        step[0] += b1 - b0
        return log

    def first():
        log = run(0, 1)
        return log["loss_sum"] / log["rows"]
    return run, first


def numpy_steps(model, X, y, order, batch, loss, k):
    """The reference train_step over the same batches; returns (run k steps, first step)."""
    specs = model._layer_specs(0, None, loss != "mse")
    _, hp = _hyper("adam", clip_norm=CLIP_NORM)
    bufs = [np.zeros_like(model._params) for _ in range(3)]
    step = [0]

    def one(j):
        idx = order[j * batch:(j + 1) * batch]
        value, _ = RT.train_step(specs, model._params, model._stats, *bufs, X[idx], y[idx],
                                 loss=loss, optimizer="adam", hyper=hp, lr=LR, step=step[0],
                                 seed=0)
        step[0] += 1
        return value

    def run():
        for j in range(k):
            one(j)
    return run, lambda: one(0)


def torch_net(torch, model):
    """nn.Sequential mirroring model (dense [-> BatchNorm1d] -> ReLU), starting from its
    weights, so every contender computes the same numbers."""
    layers = []
    for l in model.layers:
        lin = torch.nn.Linear(l.n_in, l.n_out, bias=not l.batchnorm)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(l.W.T)))
            if not l.batchnorm:
                lin.bias.copy_(torch.from_numpy(l.b))
        layers.append(lin)
        if l.batchnorm:  # fastmlp's momentum is Keras's (weight of the old average)
            layers.append(torch.nn.BatchNorm1d(l.n_out, eps=model.bn_eps,
                                               momentum=1 - model.bn_momentum))
        if l.activation == "relu":
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_steps(torch, model, X, y, order, batch, loss, k):
    """PyTorch eager over the same batches; returns (run k steps, first step)."""
    net = torch_net(torch, model)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    fn = torch.nn.CrossEntropyLoss() if loss == "cross_entropy" else torch.nn.MSELoss()
    tX = torch.from_numpy(X)
    ty = torch.from_numpy(y.astype(np.int64) if loss == "cross_entropy" else y)
    tord = torch.from_numpy(order)

    def one(j):
        idx = tord[j * batch:(j + 1) * batch]
        opt.zero_grad(set_to_none=True)
        out = fn(net(tX[idx]), ty[idx])
        out.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), CLIP_NORM)
        opt.step()
        return out.detach()

    def run():
        for j in range(k):
            one(j)
    return run, lambda: float(one(0))


def case_data(sizes, batch, loss, k):
    """k batches of random rows, their targets and one fixed permutation of them."""
    rng = np.random.default_rng(0)
    n = batch * k
    X = rng.standard_normal((n, sizes[0]), dtype=np.float32)
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], n)
    else:
        y = np.sin(3 * X[:, :1])
    return X, y, rng.permutation(n).astype(np.int64)


def contenders(torch, sizes, batch, bn, loss, k):
    """name -> callable running k steps, and the first-step losses (same weights, same batch)
    of each contender, which must agree before their times mean anything."""
    X, y, order = case_data(sizes, batch, loss, k)
    models = [fastmlp.MLP(sizes, batchnorm=bn, seed=0) for _ in range(3)]
    yt = targets(models[0], y, loss, len(X))
    runs, first = {}, {}
    runs["fastmlp"], f = engine_steps(models[0], X, yt, order, batch, loss, k)
    first["fastmlp"] = f()
    ft = models[1]
    runs["fastmlp.train"] = lambda: fastmlp.train(
        ft, X, y, loss=loss, batch_size=batch, epochs=1, clip_norm=CLIP_NORM, lr=LR,
        verbose=0, seed=0)
    if torch is not None:  # before the NumPy step moves the shared starting weights
        runs["torch"], f = torch_steps(torch, models[2], X, y, order, batch, loss, k)
        first["torch"] = f()
    runs["numpy"], f = numpy_steps(models[2], X, y, order, batch, loss, k)
    first["numpy"] = f()
    return runs, first


# ---- sections -----------------------------------------------------------------------------
FULL = dict(repeats=11, warmup=2, cooldown=0.15, k_div=1, peak_repeats=7, e2e_repeats=3,
            pair_seconds=15.0)
# --quick checks the script: fewer and shorter calls, a shorter cool-down (noisier medians).
QUICK = dict(repeats=3, warmup=1, cooldown=0.05, k_div=4, peak_repeats=3, e2e_repeats=1,
             pair_seconds=1.0)


def timed(runs: dict, cfg: dict) -> dict:
    return race(runs, repeats=cfg["repeats"], warmup=cfg["warmup"], min_time=0.05,
                cooldown=cfg["cooldown"])


def run_cases(torch, peak, cfg):
    """Per case: step time of each contender, speed-ups, GFLOP/s. Returns name -> results.

    The peak matmul races beside the contenders of every case; the share of peak is fastmlp's
    median GFLOP/s over the matmul's median in the same race (the median of the round-by-round
    ratios is printed beside it). On this shared host a loud minute slowed both alike, while a
    peak measured once at the start of the run was minutes away from the step it was compared
    with: one run timed the mnist step at 2.59 ms in its case race and at 1.55 ms in the scaling
    race a minute later, 46% and 76% of the same start-of-run peak."""
    results = {}
    matmul = peak_matmul()
    probe_buf = np.ones(MEMORY_PROBE_FLOATS, np.float32)
    probe_idx = np.random.default_rng(0).integers(0, MEMORY_PROBE_FLOATS, MEMORY_PROBE_READS)
    for name, sizes, batch, bn, loss, k in CASES:
        k = max(1, k // cfg["k_div"])
        t0 = time.perf_counter()
        runs, first = contenders(torch, sizes, batch, bn, loss, k)
        if bn:  # the batch-norm target compares with the same net without it, in one race
            X, y, order = case_data(sizes, batch, loss, k)
            plain = fastmlp.MLP(sizes, seed=0)
            runs[NO_BN], _ = engine_steps(plain, X, targets(plain, y, loss, len(X)), order,
                                          batch, loss, k)
        runs[PEAK] = matmul
        trips = []  # the host's placement of the two vCPUs, probed in every round
        runs = {PROBE: lambda: trips.append(_core._cross_core_round_trip_ns(2)),
                MEMORY_PROBE: lambda: probe_buf.take(probe_idx), **runs}
        samples = race_samples(runs, repeats=cfg["repeats"], warmup=cfg["warmup"],
                               min_time=0.05, cooldown=cfg["cooldown"])
        peak_s = samples.pop(PEAK)
        samples.pop(PROBE)
        memory_s = float(np.median(samples.pop(MEMORY_PROBE)))
        t = {c: float(np.median(s)) / k for c, s in samples.items()}
        flops = step_flops(sizes, batch)
        gflops = flops / t["fastmlp"] / 1e9
        # Paired: round i's step against round i's matmul.
        paired = np.median([(flops / (s / k)) / (2 * PEAK_N ** 3 / p)
                            for s, p in zip(samples["fastmlp"], peak_s)])
        ref = first["fastmlp"]
        agree = max(abs(v - ref) / max(abs(ref), 1e-12) for v in first.values())
        raced_peak = 2 * PEAK_N ** 3 / float(np.median(peak_s)) / 1e9
        results[name] = dict(t=t, gflops=gflops, peak_frac=gflops / peak, agree=agree,
                             raced_frac=gflops / raced_peak,
                             raced_peak=raced_peak, paired_frac=float(paired), sizes=sizes,
                             batch=batch, k=k,
                             far=float(np.mean(np.array(trips) > FAR_NS)) if trips else None,
                             memory=memory_s)
        print(f"  {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return results


def run_scaling(torch, cfg):
    """Engine (and torch) step time with 1 and 2 threads, interleaved in one race."""
    out = {}
    default = fastmlp.get_num_threads()
    for name, sizes, batch, bn, loss, k in CASES:
        if name not in SCALING_CASES:
            continue
        k = max(1, k // cfg["k_div"])
        t0 = time.perf_counter()
        runs, _ = contenders(torch, sizes, batch, bn, loss, k)
        c = {}
        for n in (1, 2):
            c[f"fastmlp x{n}"] = lambda n=n, r=runs["fastmlp"]: (fastmlp.set_num_threads(n), r())
            if torch is not None:
                c[f"torch x{n}"] = lambda n=n, r=runs["torch"]: (torch.set_num_threads(n), r())
        t = timed(c, cfg)
        out[name] = {key: s / k for key, s in t.items()}
        print(f"  {name} threads: {time.perf_counter() - t0:.1f} s", file=sys.stderr,
              flush=True)
        fastmlp.set_num_threads(default)
        if torch is not None:
            torch.set_num_threads(default)
    return out


def run_pairs(cfg):
    """fastmlp against itself, interleaved call by call (timing.interleaved_pairs): batch norm
    on and off (mnist+bn), and 1 against 2 threads (SCALING_CASES). The batch-norm and
    thread-scaling targets are judged here, on the median of the pairs' ratios. Returns
    label -> dict(a, b: seconds per step of each pair, what: (name of a, name of b))."""
    out = {}
    default = fastmlp.get_num_threads()
    for name, sizes, batch, bn, loss, k in CASES:
        if not bn and name not in SCALING_CASES:
            continue
        k = max(1, k // cfg["k_div"])
        X, y, order = case_data(sizes, batch, loss, k)
        t0 = time.perf_counter()
        if bn:
            runs = []
            for with_bn in (True, False):
                m = fastmlp.MLP(sizes, batchnorm=with_bn, seed=0)
                runs.append(engine_steps(m, X, targets(m, y, loss, len(X)), order, batch, loss,
                                         k)[0])
            a, b = interleaved_pairs(runs[1], runs[0], cfg["pair_seconds"])
            out[f"{name}: batch norm"] = dict(a=a / k, b=b / k, what=("without", "with"))
        if name in SCALING_CASES:
            m = fastmlp.MLP(sizes, seed=0)
            run, _ = engine_steps(m, X, targets(m, y, loss, len(X)), order, batch, loss, k)
            a, b = interleaved_pairs(lambda: (fastmlp.set_num_threads(1), run()),
                                     lambda: (fastmlp.set_num_threads(2), run()),
                                     cfg["pair_seconds"])
            fastmlp.set_num_threads(default)
            out[f"{name}: threads"] = dict(a=a / k, b=b / k, what=("1 thread", "2 threads"))
        print(f"  {name} pairs: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return out


def _proc_status(key: str):
    """A kB field of /proc/self/status in bytes, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    """Resident set size now (elsewhere than Linux: the peak so far, an upper bound)."""
    now = _proc_status("VmRSS")
    return now if now is not None else peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak RSS of this process image. VmHWM, not ru_maxrss: Linux carries ru_maxrss across
    fork and exec, so a child of a big parent starts with the parent's peak (seen here: a
    child of this benchmark reported 329 MB it never touched)."""
    hwm = _proc_status("VmHWM")
    if hwm is not None:
        return hwm
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024  # bytes on macOS, KiB elsewhere


def e2e_child(repeats: int) -> None:
    """In a fresh process: one-epoch fastmlp.train calls on 60,000 random MNIST-shaped rows;
    prints a JSON line with times and memory. Rows are drawn in chunks straight into float32
    so making the data never pushes the peak above the data itself."""
    model = fastmlp.MLP(E2E_SIZES, seed=0)
    base = rss_bytes()
    rng = np.random.default_rng(0)
    X = np.empty((E2E_ROWS, E2E_SIZES[0]), np.float32)
    for i in range(0, E2E_ROWS, 4096):
        rng.standard_normal(X[i:i + 4096].shape, dtype=np.float32, out=X[i:i + 4096])
    y = rng.integers(0, E2E_SIZES[-1], E2E_ROWS)
    data = X.nbytes + y.nbytes
    with_data = rss_bytes()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fastmlp.train(model, X, y, loss="cross_entropy", batch_size=E2E_BATCH, epochs=1,
                      clip_norm=CLIP_NORM, lr=LR, verbose=0, seed=0)
        times.append(time.perf_counter() - t)
    peak = peak_rss_bytes()
    # Python-side allocations of one more epoch (NumPy arrays are traced): a copy of X shows.
    tracemalloc.start()
    fastmlp.train(model, X, y, loss="cross_entropy", batch_size=E2E_BATCH, epochs=1,
                  clip_norm=CLIP_NORM, lr=LR, verbose=0, seed=0)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps(dict(time=float(np.median(times)), times=times, data=data, base=base,
                          with_data=with_data, peak=peak, traced=traced,
                          steps=-(-E2E_ROWS // E2E_BATCH))))


def run_e2e(repeats: int) -> dict:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--e2e-child",
                           str(repeats)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"end-to-end subprocess failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- report -------------------------------------------------------------------------------
def table(headers, rows, markdown: bool) -> None:
    rows = [[c.strip() for c in r] for r in rows]
    if markdown:
        print("| " + " | ".join(headers) + " |")
        print("|" + "---|" * len(headers))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        for r in [headers] + rows:
            print("  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r)))
    print()


def pair_ratio(p) -> float:
    """Median over the interleaved pairs of b's time over a's."""
    return float(np.median(p["b"] / p["a"]))


def target_rows(res, scaling, e2e, pairs):
    """(target, required, measured, met?) for each target of issue 5."""
    rows = []

    def add(what, need, got, fmt="{:.2f}x", at_most=False):
        ok = got <= need if at_most else got >= need
        rows.append([what, ("<= " if at_most else ">= ") + fmt.format(need), fmt.format(got),
                     "met" if ok else "MISSED"])

    t = {name: r["t"] for name, r in res.items()}
    if "torch" in t["tiny"]:
        add("tiny: speed-up vs torch", 100, t["tiny"]["torch"] / t["tiny"]["fastmlp"])
    add("tiny: speed-up vs numpy loop", 20, t["tiny"]["numpy"] / t["tiny"]["fastmlp"])
    for name, need in (("digits", 2), ("mnist", 2), ("mnist+bn", 2), ("deep-narrow", 5),
                       ("wide", 1.1)):
        if "torch" in t[name]:
            add(f"{name}: speed-up vs torch", need, t[name]["torch"] / t[name]["fastmlp"])
    add("mnist: share of matmul peak (raced beside it)", 0.75, res["mnist"]["raced_frac"],
        "{:.0%}")
    add("batch norm: added to the mnist step (interleaved pairs)", 0.10,
        pair_ratio(pairs["mnist+bn: batch norm"]) - 1, "{:.0%}", at_most=True)
    for name in SCALING_CASES:
        add(f"{name}: fastmlp 1 -> 2 threads (interleaved pairs)", 1.7,
            1 / pair_ratio(pairs[f"{name}: threads"]))
    add("epoch: peak memory over data (MB)", 100, (e2e["peak"] - e2e["base"] - e2e["data"]) / MB,
        "{:.0f}", at_most=True)
    return rows


def report(torch, peak, res, scaling, e2e, pairs, pairs_seconds, markdown):
    has_torch = torch is not None
    print("## Step time per case (median per step)\n")
    heads = ["case", "batch", "fastmlp", "fastmlp.train", "numpy loop"]
    heads += ["torch", "torch/fastmlp"] if has_torch else []
    heads += ["numpy/fastmlp", "fastmlp GFLOP/s", "of start peak", "raced peak GFLOP/s",
              "of raced peak", "paired by round", "vCPUs far apart", "L3 probe",
              "first-step loss agree"]
    rows = []
    for name, r in res.items():
        t = r["t"]
        row = [f"{name} {'-'.join(map(str, r['sizes']))}", str(r["batch"]),
               fmt_time(t["fastmlp"]), fmt_time(t["fastmlp.train"]), fmt_time(t["numpy"])]
        if has_torch:
            row += [fmt_time(t["torch"]), f"{t['torch'] / t['fastmlp']:.2f}x"]
        row += [f"{t['numpy'] / t['fastmlp']:.2f}x", f"{r['gflops']:.1f}",
                f"{r['peak_frac']:.0%}", f"{r['raced_peak']:.1f}", f"{r['raced_frac']:.0%}",
                f"{r['paired_frac']:.0%}",
                "n/a" if r["far"] is None else f"{r['far']:.0%} of probes",
                f"{r['memory'] / MEMORY_PROBE_READS * 1e9:.2f} ns/read",
                f"{r['agree']:.1e}"]
        rows.append(row)
    table(heads, rows, markdown)
    for name, r in res.items():
        if NO_BN in r["t"]:
            print(f"{name}: the same network without batch norm, raced beside it: "
                  f"{fmt_time(r['t'][NO_BN]).strip()} per step (batch norm adds "
                  f"{r['t']['fastmlp'] / r['t'][NO_BN] - 1:+.0%}).\n")
    print("x/fastmlp is how many times faster fastmlp is. GFLOP/s: forward + dW + dX GEMMs "
          f"(no dX on layer 1) / fastmlp step. Start peak = {peak:.1f} GFLOP/s (NumPy 2048^3 "
          "float32 matmul, best of a few, at the start of this run). Raced peak: the same "
          "matmul timed in each round of the case's race (median); 'of raced peak', the share "
          "the target is judged on, is fastmlp's GFLOP/s over it; 'paired by round' is the "
          "median over rounds of fastmlp's GFLOP/s over the matmul's in the same round "
          "(for information). 'vCPUs far apart': share of the race's cross-core "
          f"probes (cache-line round trip between the two CPUs) above {FAR_NS} ns, where the "
          "host ran the two vCPUs on different dies and the 2-thread mnist step is ~1.6x "
          "slower (bench/bench_placement.py, bench/NOTES.md). 'L3 probe': median time per "
          "read of 262,144 random one-thread reads from an 8 MB buffer, timed in the same race "
          "(~1.65 ns while the buffer stays in the L3, ~8.9 ns from DRAM on this host): high "
          "values mark races in which the L3 did not keep it, evicted by the case's own "
          "working set (wide's) or by the host's other tenants; there the step's optimizer "
          "state, kept in the L3 between steps, is evicted too (bench/NOTES.md, seventh part). "
          "'agree': largest relative "
          "difference of the contenders' first-step losses from the same weights and batch.\n")

    print("## Thread scaling (median per step)\n")
    rows = []
    for name, s in scaling.items():
        for who in ("fastmlp", "torch") if has_torch else ("fastmlp",):
            one, two = s[f"{who} x1"], s[f"{who} x2"]
            rows.append([name, who, fmt_time(one), fmt_time(two), f"{one / two:.2f}x"])
    table(["case", "contender", "1 thread", "2 threads", "1 -> 2 speed-up"], rows, markdown)

    print("Raced: the contenders in turn with cool-downs (bench/timing.py), samples of one "
          "contender seconds apart; the thread-scaling targets are judged on the interleaved "
          "pairs below.\n")

    print("## fastmlp against itself, interleaved call by call\n")
    rows = []
    for label, p in pairs.items():
        a, b = p["a"], p["b"]
        rows.append([label, p["what"][0], p["what"][1], fmt_time(float(np.median(a))),
                     fmt_time(float(np.median(b))),
                     f"{np.median(b) / np.median(a):.3f}", f"{pair_ratio(p):.3f}",
                     f"{np.percentile(b / a, 25):.3f}-{np.percentile(b / a, 75):.3f}",
                     str(len(a))])
    table(["pair", "a", "b", "a median", "b median", "b/a of medians", "b/a median of pairs",
           "b/a pairs p25-p75", "pairs"], rows, markdown)
    print(f"Each pair: one call of a and one of b (k steps each, as in the race), back to "
          f"back, each first in half the pairs, for {pairs_seconds:.0f} s per row. The "
          f"batch-norm and 1 -> 2 thread targets are judged on the median of the pairs' ratios "
          f"(speed-up = 1 / (b/a)); why: bench/timing.py's interleaved_pairs.\n")

    print(f"## End to end: {'-'.join(map(str, E2E_SIZES))}, one epoch of {E2E_ROWS:,} random "
          f"rows, batch {E2E_BATCH}, fastmlp.train(verbose=0), fresh process\n")
    over = e2e["peak"] - e2e["base"]
    table(["epoch time", "per step", "dataset", "peak RSS over baseline", "of which not data",
           "Python-side peak (tracemalloc)"],
          [[fmt_time(e2e["time"]), fmt_time(e2e["time"] / e2e["steps"]),
            f"{e2e['data'] / MB:.0f} MB", f"{over / MB:.0f} MB",
            f"{(over - e2e['data']) / MB:.0f} MB", f"{e2e['traced'] / MB:.1f} MB"]], markdown)
    print("Baseline: RSS after import and model construction, before the data is made; peak: "
          "the process's high-water RSS (VmHWM) after the timed epochs.\n")

    print("## Targets (issue 5)\n")
    table(["target", "required", "measured", ""], target_rows(res, scaling, e2e, pairs),
          markdown)


def blas_threads() -> str:
    """NumPy's BLAS and its thread count, where threadpoolctl can tell."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS threads unknown"
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    return ", ".join(f"{p['internal_api']} {p['num_threads']} threads" for p in blas) or "no BLAS"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few repeats: checks the script")
    ap.add_argument("--markdown", action="store_true", help="tables in Markdown")
    ap.add_argument("--e2e-child", type=int, metavar="REPEATS", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.e2e_child is not None:
        e2e_child(args.e2e_child)
        return
    cfg = QUICK if args.quick else FULL
    load0 = os.getloadavg()[0]
    torch = load_torch()
    threads = fastmlp.get_num_threads()
    print(f"# fastmlp whole-step benchmark{' (--quick)' if args.quick else ''}\n")
    print(f"{platform.machine()}, {os.cpu_count()} cores; fastmlp {fastmlp.__version__} "
          f"{fastmlp.cpu_info()['isa']}, {threads} threads; numpy {np.__version__} "
          f"({blas_threads()}); torch "
          f"{torch.__version__ + f' ({torch.get_num_threads()} threads)' if torch else 'absent'}"
          f"; Adam lr={LR}, clip_norm={CLIP_NORM}, ReLU\n")
    peak = matmul_peak(cfg["peak_repeats"])
    res = run_cases(torch, peak, cfg)
    scaling = run_scaling(torch, cfg)
    pairs = run_pairs(cfg)
    e2e = run_e2e(cfg["e2e_repeats"])
    report(torch, peak, res, scaling, e2e, pairs, cfg["pair_seconds"], args.markdown)
    print(f"Load average (1 min) at start {load0:.2f}, at end {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} cores: above ~0.3 another process shared the cores and the times "
          f"are noisy.")


if __name__ == "__main__":
    main()
