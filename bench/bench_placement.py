"""Does the mnist step's time follow where the host runs this VM's two vCPUs? (issue 5)

    python bench/bench_placement.py [--seconds 40] [--case mnist]

Runs fastmlp's engine (as bench_step.py's "fastmlp" contender) in windows of 100 ms and, before
and after each window, bounces a cache line between the first two CPUs for 5 ms
(_core._cross_core_round_trip_ns). Then it prints the step time of the windows whose round trip
was short (both vCPUs on one CPU die) and of those whose round trip was long (far apart: another
die or socket), and the sequence of both numbers.

Why: on this project's 2-vCPU VM the 2-thread mnist step was bimodal, ~1.5 ms or ~2.6 ms per
100 ms window, while single-thread yardsticks (an 8 MB copy, a 512^3 matmul) ran at the same
speed in both kinds of window. bench/NOTES.md has the analysis.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastmlp  # noqa: E402
from fastmlp import _core  # noqa: E402
from fastmlp.training import targets  # noqa: E402
import bench_step as B  # noqa: E402

FAR_NS = B.FAR_NS  # round trips above this: the two vCPUs were not on one die


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--case", default="mnist", choices=[c[0] for c in B.CASES])
    args = ap.parse_args()
    if _core._cross_core_round_trip_ns(1) == 0.0:
        sys.exit("needs Linux and at least two CPUs")
    name, sizes, batch, bn, loss, k = next(c for c in B.CASES if c[0] == args.case)
    X, y, order = B.case_data(sizes, batch, loss, k)
    model = fastmlp.MLP(sizes, batchnorm=bn, seed=0)
    run, _ = B.engine_steps(model, X, targets(model, y, loss, len(X)), order, batch, loss, k)
    for _ in range(10):
        run()
    steps, trips = [], []
    end = time.perf_counter() + args.seconds
    while time.perf_counter() < end:
        before = _core._cross_core_round_trip_ns(5)
        t, n = time.perf_counter(), 0
        while time.perf_counter() - t < 0.1:
            run()
            n += 1
        steps.append((time.perf_counter() - t) / n / k)
        trips.append((before + _core._cross_core_round_trip_ns(5)) / 2)
    steps, trips = np.array(steps) * 1e6, np.array(trips)
    far = trips > FAR_NS
    print(f"# {name} {'-'.join(map(str, sizes))}, batch {batch}, {fastmlp.get_num_threads()} "
          f"threads: {len(steps)} windows of 100 ms\n")
    print("| windows | round trip (median) | count | step median | p10 | p90 |")
    print("|---|---|---|---|---|---|")
    for label, sel in ((f"near (<= {FAR_NS} ns)", ~far), (f"far (> {FAR_NS} ns)", far)):
        if sel.any():
            print(f"| {label} | {np.median(trips[sel]):.0f} ns | {sel.sum()} | "
                  f"{np.median(steps[sel]):.0f} us | {np.percentile(steps[sel], 10):.0f} us | "
                  f"{np.percentile(steps[sel], 90):.0f} us |")
    print("\nstep us / round trip ns, window by window:")
    print(" ".join(f"{s:.0f}/{r:.0f}" for s, r in zip(steps, trips)))


if __name__ == "__main__":
    main()
