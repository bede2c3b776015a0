"""Timing helpers shared by the benchmarks: round-robin medians after warm-up.

The machine is shared and noisy, so contenders are timed in turn within each repetition (a
burst of noise hits all of them) and the median of the repetitions is reported.
"""
from __future__ import annotations

import time

import numpy as np


def race(contenders: dict, repeats: int = 21, warmup: int = 3, min_time: float = 2e-3) -> dict:
    """contenders: name -> zero-argument callable. Returns name -> median seconds per call.

    Each sample runs a callable enough times to last about min_time, so microsecond kernels are
    not measured at the clock's resolution.
    """
    inner = {}
    for name, fn in contenders.items():
        for _ in range(warmup):
            fn()
        t = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t, 1e-7)
        inner[name] = max(1, int(min_time / once))
    samples = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            n = inner[name]
            t = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t) / n)
    return {name: float(np.median(s)) for name, s in samples.items()}


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:8.1f} us"
    return f"{s * 1e3:8.2f} ms"
