"""Does the host's memory traffic move the mnist step, or the vCPU's speed? Probes and the step, alternated.

    PYTHONPATH=python python bench/experiments/memory_contention.py SECONDS

Each round times two probes and then one engine call of the benchmark's mnist case
(784-300-100-10, batch 200, Adam + clip_norm, 2 threads, 10 steps), tagged near/far by the
cross-core round trip (bench_placement.py):
  memory probe: 262,144 random reads (NumPy take) from an 8 MB buffer, one thread. On this host
                1.65 ns a read while the buffer sits in the L3, 8.9 ns from DRAM (a 64 MB
                buffer): its time follows how much of the buffer the L3, shared with the host's
                other tenants, kept;
  cpu probe:    NumPy's float32 sum over a 1 MB buffer, one thread: compute-bound (0.16 ns a
                float from L2 to DRAM alike), so it follows the calling vCPU's speed (clock,
                a busy SMT sibling), not memory.
Prints, for each probe, the mnist step's median over the near rounds in the probe's fastest
and slowest quartiles, and the rank correlations. Results: bench/NOTES.md, seventh part.
"""
import sys
import time

import numpy as np

sys.path.insert(0, __import__("os").path.join(__import__("os").path.dirname(__file__), ".."))
import fastmlp  # noqa: E402
from bench_step import (CASES, FAR_NS, MEMORY_PROBE_FLOATS, MEMORY_PROBE_READS,  # noqa: E402
                        case_data, engine_steps)
from fastmlp import _core  # noqa: E402
from fastmlp.training import targets  # noqa: E402


def ranks(x):
    return np.argsort(np.argsort(x))


def main(seconds: float) -> None:
    fastmlp.set_num_threads(2)
    _, sizes, batch, bn, loss, k = {c[0]: c for c in CASES}["mnist"]
    X, y, order = case_data(sizes, batch, loss, k)
    model = fastmlp.MLP(sizes, batchnorm=bn, seed=0)
    run, _ = engine_steps(model, X, targets(model, y, loss, len(X)), order, batch, loss, k)
    rng = np.random.default_rng(0)
    mem = np.ones(MEMORY_PROBE_FLOATS, np.float32)  # bench_step's L3 probe: 8 MB
    idx = rng.integers(0, mem.size, MEMORY_PROBE_READS)
    cpu = np.ones(1 << 18, np.float32)  # 1 MB
    for _ in range(5):
        run()
        mem.take(idx)
        cpu.sum()
    rows = []
    t_end = time.time() + seconds
    while time.time() < t_end:
        t0 = time.perf_counter()
        mem.take(idx)
        t1 = time.perf_counter()
        cpu.sum()
        cpu.sum()
        t2 = time.perf_counter()
        run()
        t3 = time.perf_counter()
        rows.append((t1 - t0, t2 - t1, (t3 - t2) / k, _core._cross_core_round_trip_ns(5)))
    a = np.array(rows)
    near = a[a[:, 3] < FAR_NS]
    print(f"{len(a)} rounds, {len(near)} with the vCPUs near; mnist step median "
          f"{np.median(near[:, 2]) * 1e6:.0f} us")
    for col, name in ((0, "memory probe"), (1, "cpu probe")):
        q25, q50, q75 = np.quantile(near[:, col], [0.25, 0.5, 0.75])
        fast, slow = near[near[:, col] <= q25], near[near[:, col] >= q75]
        rho = np.corrcoef(ranks(near[:, col]), ranks(near[:, 2]))[0, 1]
        print(f"{name}: p25 {q25 * 1e6:.0f} us, median {q50 * 1e6:.0f} us, p75 {q75 * 1e6:.0f} us; "
              f"mnist step {np.median(fast[:, 2]) * 1e6:.0f} us in its fastest quartile, "
              f"{np.median(slow[:, 2]) * 1e6:.0f} us in its slowest; rank correlation {rho:.2f}")
    rho = np.corrcoef(ranks(near[:, 0]), ranks(near[:, 1]))[0, 1]
    print(f"rank correlation of the two probes: {rho:.2f}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
