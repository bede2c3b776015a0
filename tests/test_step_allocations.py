"""A training step allocates nothing (issue 5): the engine's scratch is sized once per call.

Until 2026-12-07 the batch-norm kernels allocated their per-column scratch and block sums on
every call (7 heap allocations per step of a 784-300-100-10 batch-norm network), the loss
kernels their partial sums (1 per step; with sample weights 1 per row), and max_norm its
column norms. The check counts the process's malloc/calloc/realloc calls with a small preloaded
shim (compiled here with the C compiler that built the package) around one engine call of a few
steps and one of many: the difference must not grow with the step count.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
static long n_calls = 0;
static void* (*real_malloc)(size_t);
static void* (*real_calloc)(size_t, size_t);
static void* (*real_realloc)(void*, size_t);
/* dlsym itself may calloc before real_calloc is known: serve it from a static buffer. */
static char early[4096];
static size_t early_used = 0;
static void count(void) { __atomic_add_fetch(&n_calls, 1, __ATOMIC_RELAXED); }
void* malloc(size_t n) {
  if (!real_malloc) real_malloc = dlsym(RTLD_NEXT, "malloc");
  count();
  return real_malloc(n);
}
void* calloc(size_t a, size_t b) {
  if (!real_calloc) {
    static int resolving = 0;
    if (resolving) {
      size_t n = (a * b + 15) & ~(size_t)15;
      if (early_used + n > sizeof early) return NULL;
      void* p = early + early_used;
      early_used += n;
      return p;
    }
    resolving = 1;
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    resolving = 0;
  }
  count();
  return real_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  if (!real_realloc) real_realloc = dlsym(RTLD_NEXT, "realloc");
  count();
  return real_realloc(p, n);
}
long fastmlp_test_alloc_calls(void) { return __atomic_load_n(&n_calls, __ATOMIC_RELAXED); }
"""

# Runs in the child: each case's engine, one call of SHORT steps and one of LONG, three times;
# prints the fewest allocations seen for each length.
CHILD = r"""
import ctypes, json, sys
import numpy as np
import fastmlp
from fastmlp import _core
from fastmlp.training import _hyper, targets

probe = ctypes.CDLL(sys.argv[1]).fastmlp_test_alloc_calls
probe.restype = ctypes.c_long
SHORT, LONG = 3, 43
out = {}
# The probe counts: a NumPy allocation of 4 MB goes through malloc.
a = probe(); np.empty(1 << 20, np.float32); out["probe_sees_numpy"] = probe() - a
for case in json.loads(sys.argv[2]):
    fastmlp.set_num_threads(case["threads"])
    rng = np.random.default_rng(0)
    sizes, batch, loss = case["sizes"], case["batch"], case["loss"]
    n = batch * LONG
    X = rng.standard_normal((n, sizes[0]), dtype=np.float32)
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], n)
    else:
        y = (rng.random((n, sizes[-1])) > 0.5).astype(np.float32)
    m = fastmlp.MLP(sizes, activation=case.get("activation", "relu"),
                    batchnorm=case.get("batchnorm", False), dropout=case.get("dropout", 0.0),
                    seed=0)
    for i in case.get("frozen", []):
        m.layers[i].trainable = False
    yt = targets(m, y, loss, n)
    kind, hp = _hyper(case["optimizer"], **case.get("hyper", {}))
    net = m._network(0, None, loss != "mse")
    bufs = [np.zeros(m._params.size, np.float32) for _ in range(3)]
    eng = _core.Trainer(net, loss, kind, hp, batch, *bufs)
    order = rng.permutation(n).astype(np.int64)
    lrs = np.full(LONG, 1e-3)
    sw = rng.random(n).astype(np.float32) + 0.5 if case.get("weights") else None
    step = [0]
    def calls(k):
        a = probe()
        log = eng.run(X, yt, order, 0, k, lrs[:k], step[0], 7, sw, True)
        b = probe()
        assert log["steps"] == k, log
        step[0] += k
        return b - a
    calls(SHORT)  # the first call sizes the engine's buffers
    short = min(calls(SHORT) for _ in range(3))
    long_ = min(calls(LONG) for _ in range(3))
    out[case["name"]] = [short, long_]
print(json.dumps(out))
"""

CASES = [
    # layer-by-layer path with batch statistics (the 7 allocations per step)
    dict(name="batchnorm, adam, clip_norm", sizes=[20, 40, 30, 5], batch=64,
         loss="cross_entropy", batchnorm=True, optimizer="adam", hyper=dict(clip_norm=1.0)),
    # the tiny seed network: serial, MSE
    dict(name="tiny mse", sizes=[1, 50, 10, 1], batch=50, loss="mse", optimizer="adam",
         hyper=dict(clip_norm=1.0)),
    # row shards; sample weights (one loss call per row), dropout, max_norm, L2, clip_value
    dict(name="shards, weights, dropout, max_norm", sizes=[64, 64, 64, 10], batch=256,
         loss="cross_entropy", dropout=0.2, weights=True, optimizer="nesterov",
         hyper=dict(clip_value=0.5, l2=1e-4, max_norm=2.0)),
    # binary cross-entropy, ELU, RMSProp with L1, a frozen batch-norm first layer
    dict(name="bce, frozen batchnorm, rmsprop", sizes=[30, 50, 40, 3], batch=100,
         loss="binary_cross_entropy", activation="elu", batchnorm=True, frozen=[0],
         optimizer="rmsprop", hyper=dict(l1=1e-5)),
    # a layer wide enough for the packed GEMMs and the split first layer
    dict(name="mnist-like, adamw", sizes=[784, 300, 100, 10], batch=200,
         loss="cross_entropy", optimizer="adamw", hyper=dict(weight_decay=1e-2, clip_norm=1.0)),
]


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    if not sys.platform.startswith("linux"):
        pytest.skip("the allocation probe is an LD_PRELOAD shim: Linux only")
    # A C compiler, or the C++ one that built the package told to read C (-x c).
    names = [os.environ.get("CC", "cc"), "gcc", "clang"]
    found = [(c, []) for c in names if shutil.which(c)]
    found += [(c, ["-x", "c"]) for c in ("c++", "g++", "clang++") if shutil.which(c)]
    if not found:
        pytest.skip("no C or C++ compiler to build the allocation probe with")
    cc, lang = found[0]
    d = tmp_path_factory.mktemp("alloc_probe")
    (d / "probe.c").write_text(SHIM)
    so = d / "probe.so"
    subprocess.run([shutil.which(cc), *lang, "-O2", "-shared", "-fPIC", "-o", str(so),
                    str(d / "probe.c"), "-ldl"], check=True, capture_output=True)
    return so


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_training_steps_allocate_nothing(shim, threads):
    cases = [dict(c, threads=threads) for c in CASES]
    env = dict(os.environ, LD_PRELOAD=str(shim))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), str(shim), json.dumps(cases)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    counts = json.loads(r.stdout.strip().splitlines()[-1])
    assert counts.pop("probe_sees_numpy") >= 1, "the preloaded probe counted nothing"
    extra = {name: long_ - short for name, (short, long_) in counts.items()}
    # 40 more steps: a per-step allocation would add at least 40. A call's own allocations
    # (the log's dict and arrays) are the same for both lengths; 2 allows for Python's own
    # bookkeeping landing in one call and not the other.
    assert all(e <= 2 for e in extra.values()), (
        f"allocations added by 40 more steps, per case: {extra} (call totals: {counts})")
