"""Shared test utilities: one comparison helper and the shape sweep."""
from __future__ import annotations

import contextlib

import numpy as np

import fastmlp

# Sizes that break tiling: around the 6-row and 16-column micro-tiles, the 8-lane vectors, and
# the 144/256 cache blocks.
ODD_SIZES = (1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 257)

# (B, I, O) for the packed GEMM's edge tiles (the tiles its 12 x 16 pair kernel does not take):
# B = 24 + r leaves every row remainder r = 0-11 after two pairs of 6-row panels (a lone full
# panel at 30, a full panel + a partial one at 31-35); O = 32 + c every strip width c = 1-16
# (1-8 in ymm, 16 a full strip). dW turns I into the row count, so I takes remainders too; K
# spans one and two k-blocks.
EDGE_SHAPES = [(24 + (c % 12), (7, 400, 43, 391)[c % 4], 32 + c) for c in range(1, 17)]


def assert_close(actual, expected, rtol=1e-5, atol=1e-6, name="result"):
    """Fails through pytest with the worst element, its index and both values."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    if actual.size == 0:
        return
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    nan_mismatch = np.isnan(a) != np.isnan(e)
    assert not nan_mismatch.any(), (
        f"{name}: NaN pattern differs at {np.unravel_index(np.argmax(nan_mismatch), a.shape)}")
    ok = np.isnan(a) | (np.abs(a - e) <= atol + rtol * np.abs(e))
    if not ok.all():
        excess = np.where(ok, 0.0, np.abs(a - e) - (atol + rtol * np.abs(e)))
        i = np.unravel_index(np.argmax(excess), a.shape)
        raise AssertionError(
            f"{name}: {int((~ok).sum())} of {a.size} elements differ; worst at index {i}: "
            f"got {a[i]!r}, expected {e[i]!r} (abs err {abs(a[i] - e[i]):.3e}, "
            f"rtol={rtol}, atol={atol})")


def numeric_grad(f, x, h=1e-6):
    """Central finite differences of the scalar f() with respect to x, perturbed in place."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        fp = f()
        x[i] = old - h
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


@contextlib.contextmanager
def setting(get, put, value):
    """A process-wide switch set to `value` (put(value)) for the block, then back to get()'s."""
    old = get()
    put(value)
    try:
        yield
    finally:
        put(old)


def num_threads(n: int):
    return setting(fastmlp.get_num_threads, fastmlp.set_num_threads, n)


def isa(name: str):
    """Forces a kernel path ('portable' or 'avx2_fma') for the duration of the block."""
    return setting(fastmlp._core.active_isa, fastmlp._core.set_isa, name)


@contextlib.contextmanager
def direct_limit(macs: int):
    """GEMMs of at most `macs` multiply-adds take the direct (unpacked) path in the block; 0 packs
    every GEMM. Restores the default limit (1 << 17) afterwards."""
    fastmlp._core._set_gemm_direct_limit(macs)
    try:
        yield
    finally:
        fastmlp._core._set_gemm_direct_limit(1 << 17)


def available_isas():
    return ["portable"] + (["avx2_fma"] if fastmlp._core.cpu_has_avx2_fma() else [])


def rand(rng, *shape, scale=1.0, dtype=np.float32):
    """Random normal values, never all zero."""
    return (rng.standard_normal(shape) * scale).astype(dtype)
