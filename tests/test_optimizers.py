"""Fused optimizer steps: kernels vs the NumPy reference, the reference vs hand-worked steps,
clipping and norm semantics, thread-count reproducibility and argument checks."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from fastmlp import kernels, reference
from helpers import assert_close, available_isas, isa, num_threads, rand

# Odd sizes around the 4-float vector width and the 16384-element chunk, plus 1-D to 3-D.
SHAPES = [(1,), (3,), (7,), (17,), (257,), (65, 63), (300, 784), (2, 3, 5)]
STATES = {"sgd": ["velocities"], "adagrad": ["accumulators"], "rmsprop": ["mean_squares"],
          "adam": ["m", "v"]}
# Non-negative state for the optimizers that take a square root of it.
POSITIVE_STATE = {"accumulators", "mean_squares", "v"}


def step(impl, name, params, grads, states, t=1, **opts):
    """Calls impl.<name>_step with every argument by keyword."""
    fn = getattr(impl, f"{name}_step")
    kw = dict(zip(STATES[name], states))
    if name == "adam":
        kw["step"] = t
    opts.setdefault("lr", 1e-2)
    return fn(params=params, grads=grads, **kw, **opts)


def make_problem(rng, name, shapes=SHAPES):
    params = [rand(rng, *s) for s in shapes]
    states = [[np.abs(rand(rng, *s)) if sname in POSITIVE_STATE else rand(rng, *s)
               for s in shapes] for sname in STATES[name]]
    return params, states


def copies(arrays):
    return [a.copy() for a in arrays]


def option_grid():
    """Every option combination per optimizer; clip_norm 1e6 never triggers, 1.0 always does
    (the gradients' norm is about 500)."""
    clips = list(itertools.product([None, 0.1], [None, 1e6, 1.0]))
    for mom, nest in [(0.0, False), (0.9, False), (0.9, True)]:
        for wd, (cv, cn) in itertools.product([0.0, 0.01], clips):
            yield "sgd", dict(momentum=mom, nesterov=nest, weight_decay=wd, clip_value=cv,
                              clip_norm=cn)
    for name in ("adagrad", "rmsprop"):
        for wd, (cv, cn) in itertools.product([0.0, 0.01], clips):
            yield name, dict(weight_decay=wd, clip_value=cv, clip_norm=cn)
    for dec, wd, (cv, cn) in itertools.product([False, True], [0.0, 0.01], clips):
        yield "adam", dict(decoupled=dec, weight_decay=wd, clip_value=cv, clip_norm=cn)


GRID = list(option_grid())


@pytest.mark.parametrize("seed,name,opts", [(i, n, o) for i, (n, o) in enumerate(GRID)],
                         ids=[f"{n}-" + "-".join(f"{k}={v}" for k, v in o.items())
                              for n, o in GRID])
def test_kernel_matches_reference(seed, name, opts):
    rng = np.random.default_rng(seed)
    params, states = make_problem(rng, name)
    kp, ks = copies(params), [copies(s) for s in states]
    rp, rs = copies(params), [copies(s) for s in states]
    for t in range(1, 4):  # state carried over three steps, new gradients each step
        grads = [rand(rng, *s) for s in SHAPES]
        kn = step(kernels, name, kp, grads, ks, t, **opts)
        rn = step(reference, name, rp, grads, rs, t, **opts)
        assert isinstance(kn, float)
        assert kn == pytest.approx(rn, rel=1e-6), f"step {t}: norm"
        for i in range(len(SHAPES)):
            assert_close(kp[i], rp[i], rtol=1e-5, name=f"step {t}: params[{i}]")
            for sname, k_list, r_list in zip(STATES[name], ks, rs):
                assert_close(k_list[i], r_list[i], rtol=1e-5, name=f"step {t}: {sname}[{i}]")
    assert not np.array_equal(kp[6], params[6]), "params were not updated"


# Lengths around both vector widths (4 and 8 floats) and the 2-vector AVX2 unroll.
TAIL_SHAPES = [(1,), (3,), (4,), (5,), (7,), (8,), (9,), (15,), (16,), (17,), (31,), (33,),
               (65, 63)]


@pytest.mark.skipif(len(available_isas()) < 2, reason="this CPU or build has no AVX2 path")
@pytest.mark.parametrize("name,opts", [(n, o) for n, o in GRID if o["clip_norm"] != 1.0],
                         ids=[f"{n}-" + "-".join(f"{k}={v}" for k, v in o.items())
                              for n, o in GRID if o["clip_norm"] != 1.0])
def test_avx2_path_bitwise_equal_to_portable(name, opts):
    # Both paths do the same IEEE float32 operations in the same order (no FMA contraction), so
    # params and state agree bit for bit; only the norm's summation order differs. (A clip_norm
    # that triggers is left out: its coefficient derives from the norm, so may differ by an ulp.)
    rng = np.random.default_rng(5)
    params, states = make_problem(rng, name, TAIL_SHAPES)
    out = {}
    for isa_name in ("portable", "avx2_fma"):
        p, s = copies(params), [copies(x) for x in states]
        with isa(isa_name):
            norms = [step(kernels, name, p, [rand(np.random.default_rng(t), *sh)
                                             for sh in TAIL_SHAPES], s, t, **opts)
                     for t in (1, 2)]
        out[isa_name] = (norms, p, s)
    (n1, p1, s1), (n2, p2, s2) = out["portable"], out["avx2_fma"]
    assert n1 == pytest.approx(n2, rel=1e-13)
    for i in range(len(TAIL_SHAPES)):
        assert p1[i].tobytes() == p2[i].tobytes(), f"params[{i}] differ between paths"
        for sname, a, b in zip(STATES[name], s1, s2):
            assert a[i].tobytes() == b[i].tobytes(), f"{sname}[{i}] differ between paths"


def test_sgd_without_velocities_matches_reference():
    rng = np.random.default_rng(1)
    params, _ = make_problem(rng, "sgd")
    grads = [rand(rng, *s) for s in SHAPES]
    kp, rp = copies(params), copies(params)
    kernels.sgd_step(kp, grads, None, 0.1)
    reference.sgd_step(rp, grads, None, 0.1)
    for i in range(len(SHAPES)):
        assert_close(kp[i], rp[i], name=f"params[{i}]")


# Hand-worked steps: both implementations against numbers computed on paper.
IMPLS = [kernels, reference]


@pytest.mark.parametrize("impl", IMPLS, ids=["kernel", "reference"])
def test_sgd_by_hand(impl):
    # lr 0.1, momentum 0.9, g = [0.5, 1.0] twice, p0 = [1, -2]:
    # step 1: buf = g = [0.5, 1.0];           p = [1 - 0.05, -2 - 0.1]    = [0.95, -2.1]
    # step 2: buf = 0.9 buf + g = [0.95, 1.9]; p = [0.95 - 0.095, -2.1 - 0.19] = [0.855, -2.29]
    p = [np.array([1.0, -2.0], np.float32)]
    g = [np.array([0.5, 1.0], np.float32)]
    buf = [np.zeros(2, np.float32)]
    n = impl.sgd_step(p, g, buf, 0.1, momentum=0.9)
    assert_close(p[0], [0.95, -2.1], rtol=1e-6)
    impl.sgd_step(p, g, buf, 0.1, momentum=0.9)
    assert_close(buf[0], [0.95, 1.9], rtol=1e-6)
    assert_close(p[0], [0.855, -2.29], rtol=1e-6)
    assert n == pytest.approx(math.sqrt(1.25), rel=1e-12)
    # Nesterov, weight decay 0.1, from p0 = [1, -2], buf0 = 0:
    # g' = g + 0.1 p = [0.6, 0.8]; buf = [0.6, 0.8]; g'' = g' + 0.9 buf = [1.14, 1.52];
    # p = [1 - 0.114, -2 - 0.152] = [0.886, -2.152]
    p = [np.array([1.0, -2.0], np.float32)]
    buf = [np.zeros(2, np.float32)]
    impl.sgd_step(p, g, buf, 0.1, momentum=0.9, nesterov=True, weight_decay=0.1)
    assert_close(buf[0], [0.6, 0.8], rtol=1e-6)
    assert_close(p[0], [0.886, -2.152], rtol=1e-6)


@pytest.mark.parametrize("impl", IMPLS, ids=["kernel", "reference"])
def test_adagrad_by_hand(impl):
    # lr 0.5, g = [3, 4] twice, p0 = [1, 2]:
    # step 1: acc = [9, 16]; p = [1 - 0.5*3/3, 2 - 0.5*4/4] = [0.5, 1.5]
    # step 2: acc = [18, 32]; p = [0.5 - 1.5/sqrt(18), 1.5 - 2/sqrt(32)]
    #                           = [0.5 - 0.3535534, 1.5 - 0.3535534] = [0.1464466, 1.1464466]
    p = [np.array([1.0, 2.0], np.float32)]
    g = [np.array([3.0, 4.0], np.float32)]
    acc = [np.zeros(2, np.float32)]
    assert impl.adagrad_step(p, g, acc, 0.5) == pytest.approx(5.0, rel=1e-12)
    assert_close(p[0], [0.5, 1.5], rtol=1e-6)
    impl.adagrad_step(p, g, acc, 0.5)
    assert_close(acc[0], [18.0, 32.0], rtol=1e-6)
    assert_close(p[0], [0.1464466, 1.1464466], rtol=1e-6)


@pytest.mark.parametrize("impl", IMPLS, ids=["kernel", "reference"])
def test_rmsprop_by_hand(impl):
    # lr 0.01, rho 0.9, g = [1, -2], p0 = 0: ms = 0.1 g^2 = [0.1, 0.4];
    # p = -0.01 * [1/sqrt(0.1), -2/sqrt(0.4)] = [-0.0316228, 0.0316228]
    p = [np.zeros(2, np.float32)]
    ms = [np.zeros(2, np.float32)]
    impl.rmsprop_step(p, [np.array([1.0, -2.0], np.float32)], ms, 0.01)
    assert_close(ms[0], [0.1, 0.4], rtol=1e-6)
    assert_close(p[0], [-0.0316228, 0.0316228], rtol=1e-5)


@pytest.mark.parametrize("impl", IMPLS, ids=["kernel", "reference"])
def test_adam_by_hand(impl):
    # lr 0.1, betas (0.9, 0.999), p0 = 0, g1 = 1, g2 = 3:
    # step 1: m = 0.1, v = 0.001, m_hat = 1, v_hat = 1 -> p = -0.1
    # step 2: m = 0.09 + 0.3 = 0.39, v = 0.000999 + 0.009 = 0.009999,
    #         bc1 = 0.19, bc2 = 0.001999: m_hat = 2.0526316, v_hat = 5.0020010,
    #         p = -0.1 - 0.1 * 2.0526316 / sqrt(5.0020010) = -0.1917781
    p, m, v = [np.zeros(1, np.float32)], [np.zeros(1, np.float32)], [np.zeros(1, np.float32)]
    impl.adam_step(p, [np.ones(1, np.float32)], m, v, 1, lr=0.1)
    assert_close(p[0], [-0.1], rtol=1e-6)
    impl.adam_step(p, [np.full(1, 3.0, np.float32)], m, v, 2, lr=0.1)
    assert_close(m[0], [0.39], rtol=1e-6)
    assert_close(v[0], [0.009999], rtol=1e-6)
    assert_close(p[0], [-0.1917781], rtol=1e-6)
    # AdamW, weight decay 0.5, lr 0.1, p0 = [1, 1], g = [0.5, -2]: p *= 1 - 0.05 = 0.95, then
    # step 1 moves each element by lr * sign(g): p = [0.85, 1.05]. (Adam's L2 form would give
    # g' = g + 0.5 p = [1, -1.5] and p = [0.9, 1.1].)
    for decoupled, expected in [(True, [0.85, 1.05]), (False, [0.9, 1.1])]:
        p = [np.ones(2, np.float32)]
        impl.adam_step(p, [np.array([0.5, -2.0], np.float32)], [np.zeros(2, np.float32)],
                       [np.zeros(2, np.float32)], 1, lr=0.1, weight_decay=0.5,
                       decoupled=decoupled)
        assert_close(p[0], expected, rtol=1e-6, name=f"decoupled={decoupled}")


@pytest.mark.parametrize("impl", IMPLS, ids=["kernel", "reference"])
def test_clipping_by_hand(impl):
    # g = [3, -4, 0.5] over two arrays; clip_value 1 -> [1, -1, 0.5], norm = sqrt(2.25) = 1.5;
    # clip_norm 0.75 -> coef = 0.75 / (1.5 + 1e-6) ~ 0.5 -> SGD lr 1 from p0 = 0 moves p to
    # -coef * [1, -1, 0.5] = [-0.5, 0.5, -0.25].
    p = [np.zeros(2, np.float32), np.zeros(1, np.float32)]
    g = [np.array([3.0, -4.0], np.float32), np.array([0.5], np.float32)]
    n = impl.sgd_step(p, g, None, 1.0, clip_value=1.0, clip_norm=0.75)
    assert n == pytest.approx(1.5, rel=1e-12)
    coef = 0.75 / (1.5 + 1e-6)
    assert_close(p[0], [-coef, coef], rtol=1e-6)
    assert_close(p[1], [-0.5 * coef], rtol=1e-6)
    # clip_norm above the norm leaves the gradient as it is.
    p = [np.zeros(2, np.float32), np.zeros(1, np.float32)]
    impl.sgd_step(p, g, None, 1.0, clip_norm=100.0)
    assert_close(p[0], [-3.0, 4.0], rtol=1e-7)


@pytest.mark.parametrize("name", list(STATES))
def test_grads_unmodified_and_norm_of_value_clipped_grads(name):
    rng = np.random.default_rng(7)
    params, states = make_problem(rng, name)
    grads = [rand(rng, *s) for s in SHAPES]
    before = copies(grads)
    n = step(kernels, name, params, grads, states, 1, clip_value=0.1, clip_norm=1.0)
    for i, (g, g0) in enumerate(zip(grads, before)):
        assert np.array_equal(g, g0), f"grads[{i}] was modified"
    expected = math.sqrt(sum(np.sum(np.clip(g, -0.1, 0.1).astype(np.float64) ** 2)
                             for g in before))
    assert n == pytest.approx(expected, rel=1e-10)
    # Without clipping the norm is the plain float64 norm, computed in the update pass.
    n = step(kernels, name, params, grads, states, 2)
    assert n == pytest.approx(math.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in before)),
                              rel=1e-10)


def test_strided_grads_are_copied_not_misread():
    rng = np.random.default_rng(3)
    big = rand(rng, 40, 60)
    grads = [big[::2, ::3], np.asfortranarray(rand(rng, 17, 5))]
    params = [rand(rng, 20, 20), rand(rng, 17, 5)]
    kp, rp = copies(params), copies(params)
    m1, v1 = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    m2, v2 = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    kn = kernels.adam_step(kp, grads, m1, v1, 1)
    rn = reference.adam_step(rp, [np.ascontiguousarray(g) for g in grads], m2, v2, 1)
    assert kn == pytest.approx(rn, rel=1e-12)
    for i in range(2):
        assert_close(kp[i], rp[i], name=f"params[{i}]")


@pytest.mark.parametrize("name", list(STATES))
@pytest.mark.parametrize("clip_norm", [None, 1.0])
def test_bitwise_identical_across_thread_counts(name, clip_norm):
    # > 1M elements in total, so the step is split across the pool; chunks of odd lengths.
    shapes = [(1000, 1000), (300, 100), (12345,), (7,)]
    rng = np.random.default_rng(11)
    params, states = make_problem(rng, name, shapes)
    grads = [rand(rng, *s) for s in shapes]
    results = []
    for threads in (1, 2):
        p, s = copies(params), [copies(x) for x in states]
        with num_threads(threads):
            norms = [step(kernels, name, p, grads, s, t, clip_value=0.5, clip_norm=clip_norm,
                          weight_decay=0.01) for t in (1, 2)]
        results.append((norms, p, s))
    (n1, p1, s1), (n2, p2, s2) = results
    assert n1 == n2, "norm depends on the thread count"
    for i in range(len(shapes)):
        assert np.array_equal(p1[i], p2[i]), f"params[{i}] depends on the thread count"
        for sname, a, b in zip(STATES[name], s1, s2):
            assert np.array_equal(a[i], b[i]), f"{sname}[{i}] depends on the thread count"


# Argument checks: each case mutates a valid call and names the exception and the argument.

def base_args(name):
    f32 = np.float32
    params = [np.ones((2, 3), f32), np.ones(3, f32)]
    args = {"params": params, "grads": [np.full((2, 3), 0.5, f32), np.full(3, 0.5, f32)]}
    for sname in STATES[name]:
        args[sname] = [np.zeros((2, 3), f32), np.zeros(3, f32)]
    args["lr"] = 0.1
    if name == "sgd":
        args["momentum"] = 0.9
    if name == "adam":
        args["step"] = 1
    return args


def _set(key, value):
    return lambda a: a.__setitem__(key, value)


def _set_item(key, i, value):
    return lambda a: a[key].__setitem__(i, value)


F32 = np.float32
BAD = [
    ("sgd", _set("lr", -0.1), ValueError, r"lr: expected >= 0"),
    ("sgd", _set("lr", float("nan")), ValueError, r"lr: expected a finite"),
    ("sgd", _set("lr", "0.1"), TypeError, r"lr: expected a real"),
    ("sgd", _set("momentum", 1.0), ValueError, r"momentum: expected < 1"),
    ("sgd", _set("momentum", float("nan")), ValueError, r"momentum"),
    ("sgd", lambda a: a.update(momentum=0.0, nesterov=True), ValueError, r"nesterov: requires"),
    ("sgd", _set("nesterov", "yes"), TypeError, r"nesterov"),
    ("sgd", _set("velocities", None), ValueError, r"velocities: required"),
    ("sgd", _set("weight_decay", -1e-4), ValueError, r"weight_decay"),
    ("sgd", _set("clip_value", 0.0), ValueError, r"clip_value: expected > 0"),
    ("sgd", _set("clip_norm", -1.0), ValueError, r"clip_norm: expected > 0"),
    ("sgd", _set("clip_norm", float("inf")), ValueError, r"clip_norm: expected a finite"),
    ("sgd", _set("bogus", 1), TypeError, r"bogus"),
    ("adagrad", _set("eps", 0.0), ValueError, r"eps: expected > 0"),
    ("adagrad", _set("accumulators", None), TypeError, r"accumulators"),
    ("rmsprop", _set("rho", 1.0), ValueError, r"rho: expected < 1"),
    ("rmsprop", _set("rho", -0.5), ValueError, r"rho: expected >= 0"),
    ("adam", _set("beta1", 1.0), ValueError, r"beta1: expected < 1"),
    ("adam", _set("beta2", -0.1), ValueError, r"beta2: expected >= 0"),
    ("adam", _set("step", 0), ValueError, r"step: expected an integer >= 1"),
    ("adam", _set("step", True), TypeError, r"step"),
    ("adam", _set("step", 1.5), TypeError, r"step"),
    ("adam", _set("decoupled", 1), TypeError, r"decoupled"),
    ("adam", _set("eps", float("nan")), ValueError, r"eps"),
    # Arrays.
    ("adam", _set("params", []), ValueError, r"params: expected a non-empty"),
    ("adam", _set("params", np.ones(3, F32)), TypeError, r"params: expected a list"),
    ("adam", _set_item("grads", 1, np.ones(4, F32)), ValueError,
     r"grads\[1\]: expected shape \(3,\), got \(4,\)"),
    ("adam", _set_item("grads", 0, np.ones((2, 3))), TypeError, r"grads\[0\]: expected dtype"),
    ("adam", _set_item("params", 0, np.ones((2, 3))), TypeError, r"params\[0\]"),
    ("adam", _set_item("params", 0, np.ones((2, 6), F32)[:, ::2]), ValueError,
     r"params\[0\]: expected a C-contiguous"),
    ("adam", _set_item("m", 1, np.zeros(5, F32)), ValueError,
     r"m\[1\]: expected shape \(3,\), got \(5,\)"),
    ("adam", _set_item("v", 1, [0.0, 0.0, 0.0]), TypeError, r"v\[1\]"),
    ("adam", lambda a: a["v"].pop(), ValueError, r"v: expected 2 arrays"),
    ("sgd", lambda a: a["grads"].append(np.ones(3, F32)), ValueError, r"grads: expected 2"),
    # Given but unused (no momentum): still checked, as any argument is.
    ("sgd", lambda a: a.update(momentum=0.0) or a["velocities"].__setitem__(1, np.zeros(5, F32)),
     ValueError, r"velocities\[1\]: expected shape \(3,\), got \(5,\)"),
    ("adam", _set_item("m", 0, np.zeros((2, 3), ">f4")), TypeError, r"m\[0\]"),
    ("rmsprop", _set("mean_squares", None), TypeError, r"mean_squares"),
    ("adam", _set("v", {0: 1}), TypeError, r"v: expected a list"),
    # Aliasing: updated arrays must not share memory with each other or with a gradient.
    ("adam", lambda a: a["params"].__setitem__(1, a["params"][0][0]), ValueError,
     r"shares memory"),
    ("sgd", lambda a: a["params"].append(a["params"][0]) or a["grads"].append(a["grads"][0])
     or a["velocities"].append(np.zeros((2, 3), F32)), ValueError, r"params\[.\]: shares memory"),
    ("rmsprop", lambda a: a["mean_squares"].__setitem__(0, a["params"][0]), ValueError,
     r"shares memory with params\[0\]"),
    ("adagrad", lambda a: a["grads"].__setitem__(1, a["accumulators"][1]), ValueError,
     r"grads\[1\]: shares memory with accumulators\[1\]"),
]


def _readonly(a):
    ro = np.ones((2, 3), F32)
    ro.flags.writeable = False
    a["params"][0] = ro


BAD.append(("sgd", _readonly, ValueError, r"params\[0\]: expected a writable"))


@pytest.mark.parametrize("name,mutate,exc,match", BAD,
                         ids=[f"{i}-{c[0]}-{c[3][:24]}" for i, c in enumerate(BAD)])
def test_bad_arguments_rejected_and_arrays_untouched(name, mutate, exc, match):
    args = base_args(name)
    mutate(args)
    arrays = [x for key in ("params", "grads", *STATES[name]) if isinstance(args.get(key), list)
              for x in args[key] if isinstance(x, np.ndarray)]
    before = copies(arrays)
    with pytest.raises(exc, match=match):
        getattr(kernels, f"{name}_step")(**args)
    for i, (a, b) in enumerate(zip(arrays, before)):
        assert np.array_equal(a, b), f"array {i} was modified by a rejected call"


@pytest.mark.parametrize("name", list(STATES))
def test_tuples_of_arrays_accepted_like_lists(name):
    as_lists, as_tuples = base_args(name), base_args(name)
    for key in ("params", "grads", *STATES[name]):
        as_tuples[key] = tuple(as_tuples[key])
    n_lists = getattr(kernels, f"{name}_step")(**as_lists)
    n_tuples = getattr(kernels, f"{name}_step")(**as_tuples)
    assert n_lists == n_tuples
    for key in ("params", *STATES[name]):
        for a, b in zip(as_lists[key], as_tuples[key]):
            assert np.array_equal(a, b), key


def test_base_args_are_valid():
    # The bad-argument table only means something if the unmutated call succeeds.
    for name in STATES:
        args = base_args(name)
        assert getattr(kernels, f"{name}_step")(**args) == pytest.approx(math.sqrt(9 * 0.25))
        assert not np.array_equal(args["params"][0], np.ones((2, 3), np.float32))


def test_core_rechecks_what_reaches_cpp():
    # The wrappers call _core first and validate in Python only when it raises, so _core itself
    # must reject every bad list before touching memory.
    from fastmlp import _core
    a = base_args("adam")
    p, g, m, v = a["params"], a["grads"], a["m"], a["v"]
    before = copies(p)
    with pytest.raises(TypeError, match="accumulators: expected a list"):
        _core.adagrad_step(p, g, None, 0.1, 1e-10, 0.0, None, None)
    with pytest.raises(TypeError, match="v: expected a list"):
        _core.adam_step(p, g, m, tuple(v), 1, 0.1, 0.9, 0.999, 1e-8, 0.0, False, None, None)
    with pytest.raises(TypeError, match=r"grads\[0\]: expected float32, got dtype >f4"):
        _core.adam_step(p, [g[0].astype(">f4"), g[1]], m, v, 1, 0.1, 0.9, 0.999, 1e-8, 0.0,
                        False, None, None)
    with pytest.raises(ValueError, match=r"grads\[0\]: expected a C-contiguous"):
        _core.adam_step(p, [np.asfortranarray(g[0]), g[1]], m, v, 1, 0.1, 0.9, 0.999, 1e-8, 0.0,
                        False, None, None)
    for a, b in zip(p, before):
        assert np.array_equal(a, b)
