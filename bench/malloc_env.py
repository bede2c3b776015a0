"""Steady allocation for benchmarks: re-runs the script once with glibc's malloc told to serve
large blocks from the heap and to keep freed memory (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_).

Every contender (fastmlp, NumPy, PyTorch) allocates its outputs on each call. By default glibc
maps blocks above a moving threshold fresh from the kernel and hands freed heap back to it, so
whether a call pays hundreds of page faults (a 1 MB output is 256 of them) depends on what ran
before it: measured, the same NumPy call took 300 us or 73 us depending on the order of cases.
With these settings no contender pays page faults after warm-up, so the ratios measure the
kernels. Applies to the benchmark process only; the library never changes allocator settings.
"""
from __future__ import annotations

import os
import sys

_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 31)}


def ensure_steady_malloc() -> None:
    if sys.platform != "linux" or all(os.environ.get(k) == v for k, v in _SETTINGS.items()):
        return
    os.environ.update(_SETTINGS)
    os.execv(sys.executable, [sys.executable] + sys.argv)
