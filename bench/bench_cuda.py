"""GPU benchmark (issue 8): fastmlp's CUDA backend against PyTorch on the same GPU, one run.

    PYTHONPATH=python python bench/bench_cuda.py [--quick] [--markdown] [--precision tf32|fp32]
                                                 [--only narrow,mnist,wide,inference,adam]

Needs a GPU that fastmlp.backends() lists as "cuda" and torch with CUDA (the comparison and the
device timers); elsewhere it prints one line saying what is missing and exits with status 0.

Training steps: ReLU MLPs trained by Adam (lr 1e-3, no clipping), every contender starting from
the same weights and taking the same batches (rows gathered by index from one array resident
where the contender computes; no shuffling):
  narrow  64-(64x4)-16, MSE, batch 2^16 .. 2^20: vs torch eager and torch.compile
  mnist   784-300-100-10, cross-entropy, batch 4096: vs torch eager
  wide    1024-4096-4096-1024, cross-entropy, batch 8192: vs torch eager
Contenders (what each time includes):
  engine step     fastmlp's GPU engine built as fastmlp.train builds it (model._network(...,
                  device="cuda"), training._hyper, _cuda.Trainer): [time of run() over k batches
                  - time of run() over k/4 batches] / (steps between them). The marginal step:
                  its kernels plus the one host synchronisation per step the engine makes to read
                  the loss and gradient norm (its NaN/Inf guard); not run()'s per-call transfers.
  engine call/k   one run() over k batches, / k: adds run()'s per-call upload of params and
                  optimizer state and download of params, grads and state (over PCIe), which a
                  fastmlp.train epoch pays once.
  train call/k    one fastmlp.train(..., epochs=1, device="cuda", shuffle=False) over the same
                  k batches, / k: adds the upload of X and y (a new engine per call), the checks
                  of X and y, the weight snapshot: the user-facing cost of a short call.
  kernels/step    the GPU kernels' summed durations during one engine run() of k batches, / k
                  (torch.profiler, i.e. CUPTI, sees every kernel of the process): device busy
                  time, without launch gaps, synchronisations or transfers.
  torch eager     nn.Sequential on the GPU, X and y resident there, batch gathered with an index
                  tensor; zero_grad(set_to_none=True), forward, loss, backward, Adam.step (default
                  foreach implementation); k steps then one synchronisation, / k.
  torch.compile   the same step function through torch.compile (default mode; compilation is
                  done by the warm-up calls and not timed).
Fused inference: MLP.predict(X, batch_size=n, device="cuda") on the narrow network, which runs
the fully fused kernel (cuda/fused_mlp.cu); its wall time includes building the device network
(params upload), the upload of X and the download of the output; its kernel time comes from
the profiler. Against torch eager forward (no_grad) on device-resident X, and torch including
the same two transfers. Floor: (input + output bytes) / measured device bandwidth.
Fused Adam over 10M parameters: fastmlp.cuda.adam_step takes NumPy arrays, so its wall time is
mostly PCIe (params, grads, m, v up; params, m, v down); its kernel time (profiler) is what
compares with the floor: 28 bytes per parameter (read p, g, m, v; write p, m, v) / the device
bandwidth measured here (a 1 GiB torch copy: 2 x bytes / time). torch.optim.Adam(fused=True)
and (foreach=True) on device-resident tensors beside it, timed with CUDA events.

Timing: bench/timing.race (round-robin medians after warm-up), every callable ending in
torch.cuda.synchronize(), so each sample is wall-clock time of work finished on the device.
--precision tf32 (default) sets fastmlp.cuda.set_precision("tf32") and torch's
allow_tf32 for matmuls (torch's own default is off); fp32 sets both to float32.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastmlp  # noqa: E402
from bench_step import step_flops, table, torch_net  # noqa: E402
from fastmlp.training import _hyper, targets  # noqa: E402
from timing import fmt_time, race  # noqa: E402

LR = 1e-3
NARROW = [64, 64, 64, 64, 64, 16]
MNIST = [784, 300, 100, 10]
WIDE = [1024, 4096, 4096, 1024]
ADAM_PARAMS = 10_000_000
ADAM_BYTES = 28  # per parameter: read param, grad, m, v; write param, m, v (float32)
GB = 1e9
SECTIONS = ("narrow", "mnist", "wide", "inference", "adam")

# Settings: narrow batch exponents, rows of the narrow data set, batches per call for mnist and
# wide, inference rows, race repeats. --quick checks the script; its numbers are not for quoting.
FULL = dict(narrow=(16, 17, 18, 19, 20), narrow_rows=1 << 21, mnist_k=16, wide_k=16,
            infer_rows=1 << 20, repeats=11, warmup=2)
QUICK = dict(narrow=(16, 20), narrow_rows=1 << 20, mnist_k=8, wide_k=4, infer_rows=1 << 18,
             repeats=3, warmup=1)


def missing() -> str:
    """Why this benchmark cannot run here, or ""."""
    if not hasattr(fastmlp, "backends"):
        return "this fastmlp predates the CUDA backend (no fastmlp.backends())"
    if "cuda" not in fastmlp.backends():
        return ("fastmlp's CUDA backend is not usable here (" +
                fastmlp.cuda_info().get("reason", "unknown reason") + ")")
    try:
        import torch
    except ImportError:
        return "torch is not installed (needed for the comparison and the device timers)"
    if not torch.cuda.is_available():
        return "torch.cuda.is_available() is False (torch without CUDA, or no usable GPU)"
    return ""


def sync(torch, fn):
    """fn followed by a device synchronisation: its time is that of finished work."""
    def run():
        fn()
        torch.cuda.synchronize()
    return run


def timed(torch, runs: dict, cfg: dict) -> dict:
    """name -> median seconds per call; None callables are skipped."""
    runs = {k: sync(torch, f) for k, f in runs.items() if f is not None}
    return race(runs, repeats=cfg["repeats"], warmup=cfg["warmup"], min_time=0.05,
                cooldown=0.02)


def event_time(torch, fn, repeats: int = 20, warmup: int = 3) -> float:
    """Median device seconds of fn between two CUDA events (device-side work only)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return float(np.median(times))


def device_activity(torch, fn):
    """(kernel seconds, memcpy/memset seconds) summed over the GPU activity of one call of fn,
    from torch.profiler (CUPTI records every kernel of the process, fastmlp's included); None
    when the profiler cannot see the device."""
    try:
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile
        fn()  # warm: allocations and first-call work out of the profile
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        events = [(e.name(), e.duration_ns() / 1e9) for e in prof.profiler.kineto_results.events()
                  if e.device_type() == DeviceType.CUDA]
    except Exception as e:  # a profiler without CUPTI: report, do not fail the run
        print(f"  (profiler unavailable: {type(e).__name__}: {e})", file=sys.stderr)
        return None
    if not events:
        return None
    copy = sum(t for name, t in events if name.lower().startswith(("memcpy", "memset")))
    return sum(t for _, t in events) - copy, copy


def bandwidths(torch) -> dict:
    """Device copy bandwidth (read + write) and pageable host<->device bandwidth, bytes/s."""
    n = 1 << 28  # 1 GiB of float32
    a = torch.empty(n, device="cuda")
    b = torch.empty_like(a)
    dev = 2 * 4 * n / event_time(torch, lambda: b.copy_(a), repeats=10)
    del a, b
    h = np.ones(40_000_000, np.float32)  # 160 MB, the size of the Adam case's uploads
    d = torch.empty(h.size, device="cuda")
    th = torch.from_numpy(h)
    t = timed(torch, {"h2d": lambda: d.copy_(th), "d2h": lambda: th.copy_(d)},
              dict(repeats=5, warmup=1))
    del d
    torch.cuda.empty_cache()
    return dict(device=dev, h2d=h.nbytes / t["h2d"], d2h=h.nbytes / t["d2h"])


# ---- training steps -----------------------------------------------------------------------
def case_data(sizes, loss, rows):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, sizes[0]), dtype=np.float32)
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], rows)
    else:
        y = rng.standard_normal((rows, sizes[-1]), dtype=np.float32)
    return X, y


def engine_runs(model, X, y, batch, loss, k):
    """fastmlp's GPU engine as fastmlp.train builds it: returns run(nb) (nb batches from the
    start of X, one run() call) and the engine. It uses private names, as bench_step.py does:
    if the engine's constructor or run() changes, this is the one place to follow."""
    cuda = importlib.import_module("fastmlp._cuda")
    kind, hp = _hyper("adam")
    net = model._network(0, None, loss != "mse", device="cuda")
    bufs = [np.zeros(model._params.size, np.float32) for _ in range(3)]
    engine = cuda.Trainer(net, loss, kind, hp, batch, *bufs)
    yt = targets(model, y, loss, len(X))
    order = np.arange(len(X), dtype=np.int64)
    lrs = np.full(k, LR)
    step = [0]

    def run(nb):
        log = engine.run(X, yt, order, 0, nb, lrs[:nb], step[0], 0)
        step[0] += nb
        return log
    return run


def torch_runs(torch, model, tX, ty, batch, loss, k, compiled):
    """k torch steps (eager, or the step through torch.compile) and the first step's loss."""
    net = torch_net(torch, model).cuda()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    fn = torch.nn.CrossEntropyLoss() if loss == "cross_entropy" else torch.nn.MSELoss()

    def step(idx):
        opt.zero_grad(set_to_none=True)
        out = fn(net(tX[idx]), ty[idx])
        out.backward()
        opt.step()
        return out.detach()
    if compiled:
        step = torch.compile(step, dynamic=False)
    idx = torch.arange(batch * k, device="cuda").view(k, batch)

    def run():
        for j in range(k):
            step(idx[j])
    return run, lambda: float(step(idx[0]))


def one_line(e: Exception) -> str:
    msg = f"{type(e).__name__}: {e}".splitlines()[0]
    return msg if len(msg) <= 100 else msg[:97] + "..."


def train_case(torch, name, sizes, batch, loss, k, compiled, cfg):
    """Times one case; returns a dict of per-step seconds (None where a contender failed),
    the first-step losses and notes."""
    X, y = case_data(sizes, loss, batch * k)
    tX = torch.from_numpy(X).cuda()
    ty = torch.from_numpy(y.astype(np.int64) if loss == "cross_entropy" else y).cuda()
    k_small = max(1, k // 4)
    runs, first, notes = {}, {}, []
    try:
        engine = engine_runs(fastmlp.MLP(sizes, seed=0), X, y, batch, loss, k)
        log = engine(1)
        first["fastmlp"] = log["loss_sum"] / log["rows"]
        runs["engine k"] = lambda: engine(k)
        runs["engine k_small"] = lambda: engine(k_small)
    except Exception as e:
        engine = None
        notes.append(f"engine unavailable: {one_line(e)}")
    mt = fastmlp.MLP(sizes, seed=0)

    def train_call():
        fastmlp.train(mt, X, y, loss=loss, optimizer="adam", lr=LR, batch_size=batch, epochs=1,
                      shuffle=False, verbose=0, seed=0, device="cuda")
    try:
        train_call()
        runs["train"] = train_call
    except Exception as e:
        notes.append(f"fastmlp.train(device='cuda') failed: {one_line(e)}")
    for label, comp in (("torch eager", False), ("torch.compile", True)):
        if comp and not compiled:
            continue
        try:
            run, f = torch_runs(torch, fastmlp.MLP(sizes, seed=0), tX, ty, batch, loss, k, comp)
            first[label] = f()  # for torch.compile: compiles here, outside the timing
            run()
            runs[label] = run
        except Exception as e:
            notes.append(f"{label} failed: {one_line(e)}")
    t = timed(torch, runs, cfg)
    per = {}
    if "engine k" in t:
        per["engine step"] = (t["engine k"] - t["engine k_small"]) / (k - k_small)
        per["engine call/k"] = t["engine k"] / k
    per["train call/k"] = t["train"] / k if "train" in t else None
    for label in ("torch eager", "torch.compile"):
        per[label] = t[label] / k if label in t else None
    act = device_activity(torch, lambda: engine(k)) if engine is not None else None
    per["kernels/step"] = act[0] / k if act else None
    ref = first.get("fastmlp")
    agree = (max(abs(v - ref) / max(abs(ref), 1e-12) for v in first.values())
             if ref is not None and len(first) > 1 else None)
    del runs, engine, tX, ty
    gc.collect()
    torch.cuda.empty_cache()
    return dict(name=name, sizes=sizes, batch=batch, k=k, per=per, agree=agree, notes=notes)


def train_cases(cfg, only):
    cases = [("narrow", NARROW, 1 << p, "mse", max(2, cfg["narrow_rows"] >> p), True)
             for p in cfg["narrow"]]
    cases += [("mnist", MNIST, 4096, "cross_entropy", cfg["mnist_k"], False),
              ("wide", WIDE, 8192, "cross_entropy", cfg["wide_k"], False)]
    return [c for c in cases if c[0] in only]


def report_training(results, markdown):
    print("## Training steps (median per step)\n")
    heads = ["case", "batch", "k", "engine step", "engine call/k", "train call/k", "kernels/step",
             "torch eager", "torch.compile", "eager/engine", "compile/engine",
             "engine TFLOP/s", "first-step loss agree"]
    rows = []
    for r in results:
        p = r["per"]
        eng = p.get("engine step")

        def cell(key):
            v = p.get(key)
            return fmt_time(v) if v is not None else "n/a"

        def ratio(key):
            v = p.get(key)
            return f"{v / eng:.2f}x" if v is not None and eng else "n/a"
        tflops = (f"{step_flops(r['sizes'], r['batch']) / eng / 1e12:.1f}" if eng else "n/a")
        rows.append([f"{r['name']} {'-'.join(map(str, r['sizes']))}", str(r["batch"]),
                     str(r["k"]), cell("engine step"), cell("engine call/k"),
                     cell("train call/k"), cell("kernels/step"), cell("torch eager"),
                     cell("torch.compile"), ratio("torch eager"), ratio("torch.compile"), tflops,
                     f"{r['agree']:.1e}" if r["agree"] is not None else "n/a"])
    table(heads, rows, markdown)
    print("engine step: marginal time of one more step in an engine run() (its kernels + one "
          "host sync per step), no per-call transfers; engine call/k adds run()'s per-call "
          "upload of params + optimizer state and download of params, grads and state; train "
          "call/k is a whole fastmlp.train(epochs=1, device='cuda') call (also uploads X and y) "
          "/ k; kernels/step: summed GPU kernel time (profiler). torch: device-resident data, "
          "k steps + one sync, / k. x/engine: how many times faster the engine step is. "
          "TFLOP/s: forward + dW + dX GEMMs (no dX on layer 1) / engine step. agree: largest "
          "relative difference of the first-step losses (same weights, same batch); with TF32 "
          "~1e-3 is expected.\n")
    notes = [f"- {r['name']} batch {r['batch']}: {note}" for r in results for note in r["notes"]]
    if notes:
        print("\n".join(notes) + "\n")


# ---- fused inference ----------------------------------------------------------------------
def inference(torch, rows, bw, cfg):
    X, _ = case_data(NARROW, "mse", rows)
    model = fastmlp.MLP(NARROW, seed=0)
    net = torch_net(torch, model).cuda().eval()
    tX = torch.from_numpy(X).cuda()
    out = {}

    def predict():
        return model.predict(X, batch_size=rows, device="cuda")

    def torch_device():
        with torch.no_grad():
            return net(tX)

    def torch_transfers():
        with torch.no_grad():
            return net(torch.from_numpy(X).cuda()).cpu().numpy()
    try:
        got = predict()
        ref = torch_transfers()
        out["agree"] = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-12))
        t = timed(torch, {"predict": predict, "torch": torch_device, "torch+io": torch_transfers},
                  cfg)
        act = device_activity(torch, predict)
        out.update(t)
        out["kernel"] = act[0] if act else None
        out["copies"] = act[1] if act else None
    except Exception as e:
        out["error"] = one_line(e)
    out["floor"] = rows * (NARROW[0] + NARROW[-1]) * 4 / bw["device"]
    del net, tX
    torch.cuda.empty_cache()
    return out


def report_inference(r, rows, markdown):
    print(f"## Fused inference: {'-'.join(map(str, NARROW))}, {rows:,} rows\n")
    if "error" in r:
        print(f"predict(device='cuda') failed: {r['error']}\n")
        return

    def cell(key):
        return fmt_time(r[key]) if r.get(key) is not None else "n/a"
    table(["predict(device='cuda') wall", "its kernels", "its copies", "torch eager (device)",
           "torch eager + same copies", "DRAM floor", "kernels / floor", "agree"],
          [[cell("predict"), cell("kernel"), cell("copies"), cell("torch"), cell("torch+io"),
            cell("floor"),
            f"{r['kernel'] / r['floor']:.2f}x" if r.get("kernel") else "n/a",
            f"{r['agree']:.1e}"]], markdown)
    print("predict wall: MLP.predict(X, batch_size=n, device='cuda'): device network built "
          "(params uploaded), X uploaded, the fused kernel, output downloaded. Its kernels / "
          "copies: GPU activity during one call (profiler). torch eager (device): forward on "
          "X already on the GPU; + same copies: X up, forward, output down. DRAM floor: input + "
          "output bytes / measured device bandwidth. agree: max |difference| / max |output| "
          "between predict and torch.\n")


# ---- fused Adam ---------------------------------------------------------------------------
def adam(torch, bw, cfg):
    n = ADAM_PARAMS
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32)
    m = np.zeros(n, np.float32)
    v = np.zeros(n, np.float32)
    step = [0]

    def fm():
        step[0] += 1
        fastmlp.cuda.adam_step([p], [g], [m], [v], step[0], lr=LR)
    out = {}
    runs = {"fastmlp": fm}
    tp = torch.zeros(n, device="cuda", requires_grad=True)
    tp.grad = torch.from_numpy(g).cuda()
    for label, kw in (("torch fused", dict(fused=True)), ("torch foreach", dict(foreach=True))):
        try:
            opt = torch.optim.Adam([tp], lr=LR, **kw)
            opt.step()
            out[label] = event_time(torch, opt.step)
        except Exception as e:
            out[label + " error"] = one_line(e)
    try:
        out.update(timed(torch, runs, cfg))
        act = device_activity(torch, fm)
        out["kernel"] = act[0] if act else None
        out["copies"] = act[1] if act else None
    except Exception as e:
        out["error"] = one_line(e)
    out["floor"] = ADAM_BYTES * n / bw["device"]
    out["io floor"] = 16 * n / bw["h2d"] + 12 * n / bw["d2h"]
    del tp
    torch.cuda.empty_cache()
    return out


def report_adam(r, bw, markdown):
    n = ADAM_PARAMS
    print(f"## Fused Adam over {n / 1e6:.0f}M parameters (one step)\n")
    if "error" in r:
        print(f"fastmlp.cuda.adam_step failed: {r['error']}\n")
    rows = []

    def row(what, t, includes):
        if t is None:
            rows.append([what, "n/a", "", "", includes])
            return
        rows.append([what, fmt_time(t), f"{ADAM_BYTES * n / t / GB:.0f}",
                     f"{t / r['floor']:.2f}x", includes])
    row("bandwidth floor", r["floor"],
        f"{ADAM_BYTES} B/param at {bw['device'] / GB:.0f} GB/s (measured copy)")
    row("fastmlp kernels", r.get("kernel"), "summed kernel time in one adam_step call (profiler)")
    row("fastmlp.cuda.adam_step", r.get("fastmlp"),
        "wall: NumPy in/out, so 4 arrays up + 3 down over PCIe, allocation, sync")
    row("PCIe floor of that call", r["io floor"],
        f"16 B/param up at {bw['h2d'] / GB:.1f} GB/s + 12 down at {bw['d2h'] / GB:.1f} GB/s "
        "(pageable, measured)")
    for label in ("torch fused", "torch foreach"):
        if label in r:
            row(f"torch Adam ({label.split()[1]})", r[label], "device tensors, CUDA events")
        elif label + " error" in r:
            rows.append([f"torch Adam ({label.split()[1]})", "failed", "", "",
                         r[label + " error"]])
    table(["contender", "time", "GB/s at 28 B/param", "x floor", "includes"], rows, markdown)


# ---- main ---------------------------------------------------------------------------------
def set_precision(torch, precision: str) -> None:
    fastmlp.cuda.set_precision(precision)
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few repeats and cases: checks the script")
    ap.add_argument("--markdown", action="store_true", help="tables in Markdown")
    ap.add_argument("--precision", choices=("tf32", "fp32"), default="tf32",
                    help="GEMM precision of fastmlp and torch alike (default tf32)")
    ap.add_argument("--only", default=",".join(SECTIONS), metavar="LIST",
                    help="comma-separated subset of " + ",".join(SECTIONS) + " (the full run "
                    "takes several minutes, mostly torch.compile's compilations)")
    args = ap.parse_args()
    only = set(args.only.split(","))
    if not only <= set(SECTIONS):
        ap.error(f"--only: expected names from {','.join(SECTIONS)}, got {args.only!r}")
    why = missing()
    if why:
        print(f"bench_cuda.py: skipped: {why}.")
        return
    import torch
    cfg = QUICK if args.quick else FULL
    set_precision(torch, args.precision)
    info = fastmlp.cuda_info()
    major, minor = torch.cuda.get_device_capability()
    print(f"# fastmlp GPU benchmark{' (--quick)' if args.quick else ''}\n")
    print(f"{torch.cuda.get_device_name()} (sm_{major}{minor}); fastmlp {fastmlp.__version__} "
          f"CUDA backend built for {info.get('architectures')}, runtime "
          f"{info.get('runtime_version')}; torch {torch.__version__} (CUDA {torch.version.cuda})"
          f"; precision {args.precision} for both; Adam lr={LR}, no clipping, ReLU\n")
    t0 = time.perf_counter()
    bw = bandwidths(torch)
    print(f"Measured: device copy {bw['device'] / GB:.0f} GB/s, host->device "
          f"{bw['h2d'] / GB:.1f} GB/s, device->host {bw['d2h'] / GB:.1f} GB/s (pageable).\n")
    results = []
    for name, sizes, batch, loss, k, compiled in train_cases(cfg, only):
        t = time.perf_counter()
        results.append(train_case(torch, name, sizes, batch, loss, k, compiled, cfg))
        print(f"  {name} batch {batch}: {time.perf_counter() - t:.1f} s", file=sys.stderr,
              flush=True)
    if results:
        report_training(results, args.markdown)
    if "inference" in only:
        report_inference(inference(torch, cfg["infer_rows"], bw, cfg), cfg["infer_rows"],
                         args.markdown)
    if "adam" in only:
        report_adam(adam(torch, bw, cfg), bw, args.markdown)
    print(f"Total {time.perf_counter() - t0:.0f} s.")


if __name__ == "__main__":
    main()
