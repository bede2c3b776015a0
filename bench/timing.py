"""Timing helpers shared by the benchmarks: round-robin medians after warm-up.

The machine is shared and noisy, so contenders are timed in turn within each repetition (a
burst of noise hits all of them) and the median of the repetitions is reported.

Between contenders the timer sleeps for `cooldown` seconds. Thread pools keep their workers
spinning after a call (OpenBLAS for about 2^28 cycles, 0.1 s here; fastmlp for 200 us), and a
contender timed while another's workers still spin loses a core to them: on 2 cores that halves
a multi-threaded GEMM. The sleep lets every pool go idle, so each contender is timed as it runs
when called back to back, which is how a training loop calls it.
"""
from __future__ import annotations

import time

import numpy as np


def race(contenders: dict, repeats: int = 21, warmup: int = 3, min_time: float = 10e-3,
         cooldown: float = 0.15, settle: float = 50e-3) -> dict:
    """contenders: name -> zero-argument callable. Returns name -> median seconds per call.

    Each sample runs a callable enough times to last about min_time, so microsecond kernels are
    not measured at the clock's resolution.
    """
    samples = race_samples(contenders, repeats, warmup, min_time, cooldown, settle)
    return {name: float(np.median(s)) for name, s in samples.items()}


def race_samples(contenders: dict, repeats: int = 21, warmup: int = 3, min_time: float = 10e-3,
                 cooldown: float = 0.15, settle: float = 50e-3) -> dict:
    """race, but returns name -> the seconds per call of every repetition, in order: sample i
    of each contender was timed in the same round, seconds apart, so ratios can be paired."""
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
            if cooldown > 0:
                time.sleep(cooldown)
                # Re-warm after the sleep: wake this contender's pool, refill caches, and let
                # the virtual CPUs come back to speed (the first milliseconds after idle are slow).
                # 50 ms, the same for every contender: after 5 ms this VM still ran a 200x784x300
                # dense_backward at 1.66 ms (1.17 ms after 50 ms) and OpenBLAS's reference at
                # 1.34 ms (1.17 ms), so 5 ms timed the clock's ramp, not the kernels.
                t = time.perf_counter()
                while time.perf_counter() - t < settle:
                    fn()
            t = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t) / n)
    return samples


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:8.1f} us"
    return f"{s * 1e3:8.2f} ms"


def interleaved_pairs(a, b, seconds: float, warmup: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Seconds per call of a and b, called alternately (a b, b a, a b, ...) for about `seconds`:
    pair i's two samples were taken back to back, milliseconds apart, and each goes first in
    half the pairs. Only for contenders that share one thread pool (fastmlp against fastmlp):
    there is no cool-down between them, which race() needs for OpenBLAS's or torch's spinning
    workers.

    Why not race(): its samples of two contenders are a second or more apart (other contenders
    and the cool-downs between them), and this host's speed moves by 20-60% within seconds
    (bench/NOTES.md). Raced, the batch-norm step came out 13-14% slower than the plain one in
    two runs, while 400 interleaved pairs of the same code measured +2.4% and +2.6%."""
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end or len(ta) < 3:
        for fn, out in ((a, ta), (b, tb)) if i % 2 == 0 else ((b, tb), (a, ta)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        i += 1
    return np.array(ta), np.array(tb)
