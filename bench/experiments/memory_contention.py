"""Does the host's memory traffic move the mnist step? A probe and the step, alternated.

    PYTHONPATH=python python bench/experiments/memory_contention.py SECONDS

Each round times a probe (two NumPy sums over an 8 MB float32 buffer, one thread: its time
follows how much of the buffer the L3 kept and how busy the memory system is) and then one
engine call of the benchmark's mnist case (784-300-100-10, batch 200, Adam + clip_norm,
2 threads, 10 steps), tagged near/far by the cross-core round trip (bench_placement.py). Prints
the mnist step's median over the rounds in the probe's fastest and slowest quartiles (near
rounds only) and the rank correlation of the two times. On 2026-12-07 (bench/NOTES.md, seventh
part): 1348 against 1553 us, rank correlation 0.54, over 6,895 near rounds in 150 s.
"""
import sys
import time

import numpy as np

sys.path.insert(0, __import__("os").path.join(__import__("os").path.dirname(__file__), ".."))
import fastmlp  # noqa: E402
from bench_step import CASES, case_data, engine_steps  # noqa: E402
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
    buf = np.ones(2 << 20, np.float32)  # 8 MB
    for _ in range(5):
        run()
        buf.sum()
    rows = []
    t_end = time.time() + seconds
    while time.time() < t_end:
        buf.sum()
        t0 = time.perf_counter()
        buf.sum()
        buf.sum()
        t1 = time.perf_counter()
        run()
        t2 = time.perf_counter()
        rows.append((t1 - t0, (t2 - t1) / k, _core._cross_core_round_trip_ns(5)))
    a = np.array(rows)
    near = a[a[:, 2] < 150]
    q25, q50, q75 = np.quantile(near[:, 0], [0.25, 0.5, 0.75])
    fast, slow = near[near[:, 0] <= q25], near[near[:, 0] >= q75]
    print(f"{len(a)} rounds, {len(near)} with the vCPUs near")
    print(f"probe: p25 {q25 * 1e6:.0f} us, median {q50 * 1e6:.0f} us, p75 {q75 * 1e6:.0f} us")
    print(f"mnist step, near: {np.median(fast[:, 1]) * 1e6:.0f} us in the probe's fastest "
          f"quartile, {np.median(slow[:, 1]) * 1e6:.0f} us in its slowest, "
          f"{np.median(near[:, 1]) * 1e6:.0f} us overall")
    print(f"rank correlation: {np.corrcoef(ranks(near[:, 0]), ranks(near[:, 1]))[0, 1]:.2f}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
