"""Property-based tests (issue 7): the kernel bindings and model.predict over shapes, strides
and values drawn by hypothesis. Whatever is drawn, the process does not crash, the result
matches fastmlp.reference, and the memory layout of an input never changes a result (strided,
Fortran-ordered, negative-stride, misaligned and read-only inputs give the C-contiguous call's
result bit for bit).

Tolerances are the repo's (tests/helpers.py assert_close, as in test_dense / test_batchnorm /
test_losses / test_optimizers), scaled by the size of what is summed, since hypothesis draws
values far from O(1): a float32 sum of n terms is off by ~sqrt(n) * eps times the sum of the
terms' magnitudes, not times the (possibly cancelled) result.

derandomize=True: the examples are a fixed function of the test and of the code imported (recent
hypothesis also draws constants it finds in the loaded modules, so running this file alone or
with the whole suite draws different, equally fixed, examples): CI is reproducible. No example
database is written.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fastmlp
from fastmlp import kernels as K, reference as R
from fastmlp.reference import training as RT
from helpers import assert_close

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Sizes around the GEMM micro-tiles (6 rows, 16 columns) and the 8-float vectors, and any other.
SIZES = st.one_of(st.sampled_from([1, 3, 7, 8, 9, 16, 17]), st.integers(1, 40))


EPS = float(np.finfo(np.float32).eps)  # an ulp of 1


def floats(bound: float):
    return st.floats(-bound, bound, width=32, allow_nan=False)


def array(shape, bound: float = 10.0, elements=None):
    return hnp.arrays(np.float32, shape, elements=elements if elements is not None
                      else floats(bound))


# ---- layouts ----------------------------------------------------------------------------
def _misaligned(a):
    """Contiguous, but starting 4 bytes past an aligned address (SIMD loads must cope)."""
    buf = np.empty(a.size + 1, a.dtype)
    out = buf[1:].reshape(a.shape)
    out[...] = a
    return out


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


LAYOUTS = {
    "C": lambda a: a.copy(),
    "fortran": np.asfortranarray,
    "transposed twice": lambda a: np.ascontiguousarray(a.T).T,
    "every other row": lambda a: np.repeat(a, 2, axis=0)[::2],
    "every other column": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    "negative strides": lambda a: a[::-1].copy()[::-1],
    "misaligned": _misaligned,
    "read-only": _read_only,
}
layouts = st.sampled_from(sorted(LAYOUTS))


def laid_out(a, layout):
    out = LAYOUTS[layout](a)
    np.testing.assert_array_equal(out, a)
    return out


def same_bits(a, b, what):
    if isinstance(a, (tuple, list)):
        for i, (x, y) in enumerate(zip(a, b)):
            same_bits(x, y, f"{what}[{i}]")
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.tobytes() == b.tobytes(), f"{what}: layout changed the result"


def _max(a) -> float:
    return float(np.max(np.abs(a), initial=0.0))


# ---- dense ------------------------------------------------------------------------------
ACTS = sorted(R.ACTIVATIONS)
# Largest |act'(z)|: selu's scale * alpha for z -> 0-; gelu's ~1.13; the others <= 1.
SLOPE = 2.0


def _alpha(act, draw):
    return draw(st.floats(0.0, 2.0)) if act in ("leaky_relu", "elu") else None


@settings(max_examples=60, **SETTINGS)
@given(st.data())
def test_dense_forward_matches_reference(data):
    B, I, O = data.draw(SIZES), data.draw(SIZES), data.draw(SIZES)
    act = data.draw(st.sampled_from(ACTS))
    alpha = _alpha(act, data.draw)
    x = data.draw(array((B, I)), label="x")
    W = data.draw(array((I, O), 1.0), label="W")
    b = data.draw(array((O,)), label="b")
    y, z = K.dense_forward(x, W, b, act, alpha)
    yr, zr = R.dense_forward(x, W, b, act, alpha)
    # Each z is a sum of I products: its error scales with the sum of their magnitudes.
    scale = np.abs(x).astype(np.float64) @ np.abs(W) + np.abs(b)
    atol = 1e-5 * max(1.0, np.sqrt(I) / 4) * max(1.0, _max(scale))
    assert_close(z, zr, rtol=1e-5, atol=atol, name=f"z ({act})")
    assert_close(y, yr, rtol=1e-5, atol=SLOPE * atol, name=f"y ({act})")
    which = data.draw(st.sampled_from(["x", "W", "b"]))
    layout = data.draw(layouts)
    args = {"x": x, "W": W, "b": b}
    args[which] = laid_out(args[which], layout)
    same_bits(K.dense_forward(args["x"], args["W"], args["b"], act, alpha), (y, z),
              f"dense_forward with {which} {layout}")


@settings(max_examples=60, **SETTINGS)
@given(st.data())
def test_dense_backward_matches_reference(data):
    B, I, O = data.draw(SIZES), data.draw(SIZES), data.draw(SIZES)
    act = data.draw(st.sampled_from(ACTS))
    alpha = _alpha(act, data.draw)
    x = data.draw(array((B, I)), label="x")
    W = data.draw(array((I, O), 1.0), label="W")
    z = data.draw(array((B, O)), label="z")
    dy = data.draw(array((B, O)), label="dy")
    need_dx = data.draw(st.booleans())
    dx, dW, db = K.dense_backward(dy, x, W, z, act, alpha, need_dx)
    dxr, dWr, dbr = R.dense_backward(dy, x, W, z, act, alpha, need_dx)
    dz = SLOPE * np.abs(dy).astype(np.float64)  # bounds |dy * act'(z)|
    tol = lambda n, terms: dict(rtol=1e-5, atol=1e-5 * max(1.0, np.sqrt(n) / 4) *
                                max(1.0, _max(terms)))
    assert_close(dW, dWr, **tol(B, np.abs(x).T @ dz), name=f"dW ({act})")
    assert_close(db, dbr, **tol(B, dz.sum(axis=0)), name=f"db ({act})")
    if need_dx:
        assert_close(dx, dxr, **tol(O, dz @ np.abs(W).T), name=f"dx ({act})")
    else:
        assert dx is None and dxr is None
    which = data.draw(st.sampled_from(["dy", "x", "W", "z"]))
    layout = data.draw(layouts)
    args = {"dy": dy, "x": x, "W": W, "z": z}
    args[which] = laid_out(args[which], layout)
    got = K.dense_backward(args["dy"], args["x"], args["W"], args["z"], act, alpha, need_dx)
    same_bits(got[1:], (dW, db), f"dense_backward with {which} {layout}")
    if need_dx:
        same_bits(got[0], dx, f"dense_backward dx with {which} {layout}")


# ---- batch norm ---------------------------------------------------------------------------
def _bn_inputs(data, B, F):
    x = data.draw(array((B, F), 100.0), label="x")
    gamma = data.draw(array((F,), 4.0), label="gamma")
    beta = data.draw(array((F,), 10.0), label="beta")
    rm = data.draw(array((F,), 10.0), label="running_mean")
    rv = data.draw(array((F,), elements=st.floats(0.0, 10.0, width=32)), label="running_var")
    return x, gamma, beta, rm, rv


@settings(max_examples=60, **SETTINGS)
@given(st.data())
def test_batchnorm_forward_matches_reference(data):
    training = data.draw(st.booleans())
    B, F = data.draw(SIZES.filter(lambda n: n >= 2 or not training)), data.draw(SIZES)
    x, gamma, beta, rm, rv = _bn_inputs(data, B, F)
    momentum = data.draw(st.floats(0.0, 1.0))
    eps = data.draw(st.floats(1e-5, 0.1))
    rm_k, rv_k, rm_r, rv_r = rm.copy(), rv.copy(), rm.copy(), rv.copy()
    y, mean, inv_std = K.batchnorm_forward(x, gamma, beta, rm_k, rv_k, training, momentum, eps)
    yr, mean_r, inv_std_r = R.batchnorm_forward(x, gamma, beta, rm_r, rv_r, training, momentum,
                                                eps)
    # A rounding of x - mean (a few ulps of |x|) is amplified by gamma * inv_std.
    centred = max(_max(x), _max(mean_r)) * _max(gamma * inv_std_r)
    assert_close(mean, mean_r, rtol=1e-5, atol=1e-6 * max(1.0, _max(x)), name="mean")
    # The kernel sums each column in float over blocks of 32 rows, so its mean may be off by
    # delta ~ 16 ulps of |x|; the variance then gains delta^2, which moves inv_std by
    # delta^2 / (2 (var + eps)) relative: visible when a column is (nearly) constant and eps is
    # small (a constant column of 57.33 gives 1.2e-5).
    delta = 16 * EPS * np.abs(x).max(axis=0).astype(np.float64) \
        if training else 0.0
    var_eps = 1 / inv_std_r.astype(np.float64) ** 2
    assert_close(inv_std, inv_std_r, rtol=1e-5 + _max(delta ** 2 / (2 * var_eps)),
                 name="inv_std")
    assert_close(y, yr, rtol=1e-5, atol=2e-5 * max(1.0, centred) + 1e-6 * _max(beta), name="y")
    var = x.astype(np.float64).var(axis=0, ddof=1) if B > 1 else 0.0
    assert_close(rm_k, rm_r, rtol=1e-5, atol=1e-6 * max(1.0, _max(x), _max(rm)),
                 name="running_mean")
    assert_close(rv_k, rv_r, rtol=1e-5, atol=1e-6 * max(1.0, _max(var), _max(rv)),
                 name="running_var")
    which = data.draw(st.sampled_from(["x", "gamma", "beta"]))
    layout = data.draw(layouts)
    args = {"x": x, "gamma": gamma, "beta": beta}
    args[which] = laid_out(args[which], layout)
    rm2, rv2 = rm.copy(), rv.copy()
    got = K.batchnorm_forward(args["x"], args["gamma"], args["beta"], rm2, rv2, training,
                              momentum, eps)
    same_bits(got, (y, mean, inv_std), f"batchnorm_forward with {which} {layout}")
    same_bits((rm2, rv2), (rm_k, rv_k), f"running statistics with {which} {layout}")


@settings(max_examples=60, **SETTINGS)
@given(st.data())
def test_batchnorm_backward_matches_reference(data):
    B, F = data.draw(SIZES.filter(lambda n: n >= 2)), data.draw(SIZES)
    x, gamma, beta, rm, rv = _bn_inputs(data, B, F)
    eps = data.draw(st.floats(1e-5, 0.1))
    _, mean, inv_std = R.batchnorm_forward(x, gamma, beta, rm, rv, True, 0.9, eps)
    dy = data.draw(array((B, F)), label="dy")
    dx, dgamma, dbeta = K.batchnorm_backward(dy, x, gamma, mean, inv_std)
    dxr, dgammar, dbetar = R.batchnorm_backward(dy, x, gamma, mean, inv_std)
    # As test_batchnorm: the sums against their largest terms; dx's three terms of size
    # ~|dy| against gamma * inv_std.
    xhat = np.abs((x - mean) * inv_std).astype(np.float64)
    sum_dy = np.abs(dy).astype(np.float64).sum(axis=0)
    assert_close(dbeta, dbetar, rtol=1e-5, atol=1e-5 * max(1.0, _max(sum_dy)), name="dbeta")
    assert_close(dgamma, dgammar, rtol=1e-5, atol=1e-5 * max(1.0, _max(sum_dy) * _max(xhat)),
                 name="dgamma")
    terms = _max(dy) + (_max(sum_dy) + _max(xhat) * _max(sum_dy) * _max(xhat)) / B
    assert_close(dx, dxr, rtol=1e-4, atol=1e-5 * max(1.0, _max(gamma * inv_std) * terms),
                 name="dx")
    which = data.draw(st.sampled_from(["dy", "x", "gamma", "mean", "inv_std"]))
    layout = data.draw(layouts)
    args = {"dy": dy, "x": x, "gamma": gamma, "mean": mean, "inv_std": inv_std}
    args[which] = laid_out(args[which], layout)
    same_bits(K.batchnorm_backward(**args), (dx, dgamma, dbeta),
              f"batchnorm_backward with {which} {layout}")


# ---- losses -------------------------------------------------------------------------------
@settings(max_examples=60, **SETTINGS)
@given(st.data())
def test_softmax_cross_entropy_matches_reference(data):
    B, Cn = data.draw(SIZES), data.draw(SIZES)
    logits = data.draw(array((B, Cn), 50.0), label="logits")
    labels = data.draw(hnp.arrays(data.draw(st.sampled_from([np.int64, np.int32, np.uint8])),
                                  (B,), elements=st.integers(0, min(Cn - 1, 255))),
                       label="labels")
    loss, d = K.softmax_cross_entropy(logits, labels)
    loss_r, d_r = R.softmax_cross_entropy(logits, labels.astype(np.int64))
    assert isinstance(loss, float) and np.isfinite(loss) and loss >= 0
    assert loss == pytest.approx(loss_r, rel=1e-5, abs=1e-6 * max(1.0, _max(logits)))
    # (softmax - onehot) / B cancels for a confident row, leaving the rounding of softmax: a
    # sum of C exponentials is off by ~log2(C) ulps of 1, then divided by B.
    assert_close(d, d_r, rtol=1e-5, atol=(2 + np.log2(Cn)) * EPS / B, name="dlogits")
    layout = data.draw(layouts)
    same_bits(K.softmax_cross_entropy(laid_out(logits, layout), labels), (loss, d),
              f"softmax_cross_entropy with logits {layout}")
    strided = np.repeat(labels, 2)[::2]
    same_bits(K.softmax_cross_entropy(logits, strided), (loss, d), "strided labels")


@settings(max_examples=60, **SETTINGS)
@given(st.data())
def test_mse_and_binary_cross_entropy_match_reference(data):
    shape = data.draw(st.one_of(st.tuples(SIZES), st.tuples(SIZES, SIZES)))
    n = int(np.prod(shape))
    pred = data.draw(array(shape, 1000.0), label="pred")
    target = data.draw(array(shape, 1000.0), label="target")
    loss, d = K.mse(pred, target)
    loss_r, d_r = R.mse(pred, target)
    assert loss == pytest.approx(loss_r, rel=1e-5, abs=1e-12)
    assert_close(d, d_r, rtol=1e-6, atol=1e-6 * max(1.0, _max(pred) + _max(target)) / n,
                 name="dpred")

    logits = data.draw(array(shape, 50.0), label="logits")
    targets = data.draw(array(shape, elements=st.floats(0.0, 1.0, width=32)), label="targets")
    loss, d = K.binary_cross_entropy(logits, targets)
    loss_r, d_r = R.binary_cross_entropy(logits, targets)
    # Per element max(z, 0) - z * t + ... cancels: each is off by a few ulps of |z|.
    assert loss == pytest.approx(loss_r, rel=1e-5, abs=1e-6 * max(1.0, _max(logits)))
    assert_close(d, d_r, rtol=1e-5, atol=4 * EPS / n, name="dlogits")  # sigmoid - t cancels

    layout = data.draw(layouts)
    same_bits(K.mse(laid_out(pred, layout), target), K.mse(pred, target), f"mse {layout}")
    same_bits(K.binary_cross_entropy(logits, laid_out(targets, layout)), (loss, d),
              f"binary_cross_entropy targets {layout}")


# ---- optimizers --------------------------------------------------------------------------
OPTIMIZERS = {
    "sgd": (1, lambda d: dict(momentum=d(st.sampled_from([0.0, 0.5, 0.9])),
                              weight_decay=d(st.sampled_from([0.0, 0.01])))),
    "adagrad": (1, lambda d: dict(eps=d(st.sampled_from([1e-10, 1e-3])),
                                  weight_decay=d(st.sampled_from([0.0, 0.01])))),
    "rmsprop": (1, lambda d: dict(rho=d(st.floats(0.0, 0.99)),
                                  eps=d(st.sampled_from([1e-8, 1e-3])))),
    "adam": (2, lambda d: dict(beta1=d(st.floats(0.0, 0.99)), beta2=d(st.floats(0.0, 0.999)),
                               weight_decay=d(st.sampled_from([0.0, 0.01])),
                               decoupled=d(st.booleans()))),
}


def _step(impl, name, params, grads, states, t, lr, opts, clips):
    fn = getattr(impl, f"{name}_step")
    if name == "adam":
        return fn(params, grads, states[0], states[1], t, lr, **opts, **clips)
    velocities = states[0] if name != "sgd" or opts["momentum"] else None
    return fn(params, grads, velocities, lr, **opts, **clips)


@settings(max_examples=60, **SETTINGS)
@given(st.data())
def test_optimizer_steps_match_reference(data):
    name = data.draw(st.sampled_from(sorted(OPTIMIZERS)))
    n_states, options = OPTIMIZERS[name]
    opts = options(data.draw)
    shapes = data.draw(st.lists(st.one_of(st.tuples(SIZES), st.tuples(SIZES, SIZES)),
                                min_size=1, max_size=3))
    params = [data.draw(array(s), label=f"params[{i}]") for i, s in enumerate(shapes)]
    lr = data.draw(st.floats(1e-4, 1.0))
    clips = dict(clip_value=data.draw(st.sampled_from([None, 0.5])),
                 clip_norm=data.draw(st.sampled_from([None, 1.0])))
    kp, rp = [p.copy() for p in params], [p.copy() for p in params]
    ks = [[np.zeros_like(p) for p in params] for _ in range(n_states)]
    rs = [[np.zeros_like(p) for p in params] for _ in range(n_states)]
    for t in (1, 2):  # state carried into a second step
        grads = [data.draw(array(s), label=f"grads[{i}] step {t}") for i, s in enumerate(shapes)]
        layout = data.draw(layouts)
        laid = [laid_out(g, layout) for g in grads]
        norm = _step(K, name, kp, laid, ks, t, lr, opts, clips)
        norm_r = _step(R, name, rp, grads, rs, t, lr, opts, clips)
        assert norm == pytest.approx(norm_r, rel=1e-6, abs=1e-30)
        for i, s in enumerate(shapes):
            atol = 1e-6 * max(1.0, _max(rp[i]))
            assert_close(kp[i], rp[i], rtol=1e-5, atol=atol, name=f"{name} step {t}: params[{i}]")
            for j in range(n_states):
                assert_close(ks[j][i], rs[j][i], rtol=1e-5, atol=1e-6 * max(1.0, _max(rs[j][i])),
                             name=f"{name} step {t}: state{j}[{i}]")
            np.testing.assert_array_equal(laid[i], grads[i], err_msg="grads were modified")


# ---- model.predict ------------------------------------------------------------------------
@st.composite
def models(draw):
    n_layers = draw(st.integers(1, 3))
    sizes = [draw(SIZES) for _ in range(n_layers + 1)]
    act = draw(st.sampled_from(ACTS))
    out = draw(st.sampled_from(ACTS + ["softmax"]))
    bn = draw(st.booleans()) and n_layers > 1
    m = fastmlp.MLP(sizes, activation=act, output_activation=out, batchnorm=bn,
                    seed=draw(st.integers(0, 2 ** 32 - 1)))
    for layer in m.layers:  # statistics as training leaves them, not the fresh 0 / 1
        if layer.batchnorm:
            layer.running_mean = draw(array((layer.n_out,), 1.0))
            layer.running_var = draw(array((layer.n_out,), elements=st.floats(0.5, 2.0,
                                                                                width=32)))
            layer.beta = draw(array((layer.n_out,), 1.0))
    return m


@settings(max_examples=50, **SETTINGS)
@given(st.data())
def test_predict_matches_the_reference_forward_pass(data):
    m = data.draw(models(), label="model")
    B = data.draw(SIZES)
    X = data.draw(array((B, m.n_inputs)), label="X")
    out = m.predict(X)
    ref, _ = RT.forward(m._layer_specs(), m._params, m._stats, X, training=False)
    if m.output_activation == "softmax":
        e = np.exp(ref - ref.max(axis=1, keepdims=True))
        ref = e / e.sum(axis=1, keepdims=True)
    # Errors compound through the layers: the repo's dense tolerance, scaled by the outputs'
    # magnitude and the widest layer.
    widest = max(m.sizes)
    assert_close(out, ref, rtol=1e-4, atol=1e-4 * max(1.0, np.sqrt(widest) / 4, _max(ref)),
                 name="predict")
    # Any layout, any batch size, any subset of rows: the same bits.
    layout = data.draw(layouts)
    same_bits(m.predict(laid_out(X, layout)), out, f"predict with X {layout}")
    same_bits(m.predict(X.astype(np.float64)), out, "predict with float64 X")
    bs = data.draw(st.integers(1, B + 3))
    same_bits(m.predict(X, batch_size=bs), out, f"predict with batch_size={bs}")
    rows = data.draw(st.lists(st.integers(0, B - 1), min_size=1, max_size=B))
    same_bits(m.predict(X[rows]), out[rows], "predict of a subset of rows")
    classes = m.predict_classes(X)
    assert classes.shape == (B,) and classes.min() >= 0 and classes.max() < max(m.n_outputs, 2)
