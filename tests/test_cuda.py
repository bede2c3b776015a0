"""The CUDA backend.

Two halves. The first runs everywhere: what fastmlp.backends() and cuda_info() report, that
`import fastmlp` never loads the CUDA module, that a build on a machine with nvcc contains it,
that without a GPU every CUDA entry point raises a clear error (and the compiled module itself
loads and fails cleanly, never crashing the process). The second needs a GPU and is skipped
cleanly without one: every fastmlp.cuda kernel against fastmlp.reference over the shape sweep,
the fused narrow-network kernel, and train(device="cuda") against the CPU engine.
"""
import importlib
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp import reference as R
from helpers import ODD_SIZES, assert_close, rand

HAS_GPU = "cuda" in fastmlp.backends()
BUILT = fastmlp.cuda_info()["built"]
gpu = pytest.mark.skipif(not HAS_GPU, reason="no usable CUDA GPU: "
                         + fastmlp.cuda_info()["reason"])


# ---- everywhere -----------------------------------------------------------------------------

def test_backends_lists_cpu_and_cuda_only_when_usable():
    b = fastmlp.backends()
    assert b[0] == "cpu"
    info = fastmlp.cuda_info()
    assert set(info) == {"built", "available", "reason", "device", "compute_capability",
                         "architectures", "runtime_version"}
    assert ("cuda" in b) == info["available"]
    assert info["available"] == (info["built"] and info["reason"] == "")
    if not info["available"]:
        assert info["reason"], "an unusable backend must say why"


def test_import_fastmlp_does_not_load_the_cuda_module():
    code = ("import sys, fastmlp; assert 'fastmlp._cuda' not in sys.modules; "
            "fastmlp.backends(); print('fastmlp._cuda' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=os.environ.copy(), check=True).stdout.strip()
    assert out == str(BUILT)


@pytest.mark.skipif(shutil.which("nvcc") is None or os.environ.get("FASTMLP_CUDA", "").upper()
                    == "OFF", reason="no nvcc on PATH (or FASTMLP_CUDA=OFF): the CUDA backend "
                                     "is not expected in this build")
def test_a_build_with_nvcc_contains_the_cuda_module():
    # FASTMLP_CUDA=AUTO compiles the CUDA sources wherever nvcc is found, so they cannot rot on
    # machines without a GPU; this fails if the install silently skipped them.
    info = fastmlp.cuda_info()
    assert info["built"], info["reason"]
    assert info["architectures"] not in ("", "unknown")
    assert info["runtime_version"] >= 12000


@pytest.mark.skipif(HAS_GPU, reason="checks the behaviour without a GPU")
def test_without_a_gpu_every_entry_point_raises_a_clear_error():
    rng = np.random.default_rng(0)
    x, W, b = rand(rng, 4, 3), rand(rng, 3, 2), rand(rng, 2)
    with pytest.raises(RuntimeError, match=r"fastmlp.cuda.dense_forward: the CUDA backend is "
                                           r"not usable here"):
        fastmlp.cuda.dense_forward(x, W, b, "relu")
    with pytest.raises(RuntimeError, match="fastmlp.cuda.adam_step"):
        fastmlp.cuda.adam_step([W.copy()], [W], [np.zeros_like(W)], [np.zeros_like(W)], 1)
    model = fastmlp.MLP([3, 4, 2], seed=0)
    before = model.get_weights()
    with pytest.raises(RuntimeError, match="device='cuda'"):
        fastmlp.train(model, x, np.array([0, 1, 0, 1]), loss="cross_entropy", device="cuda",
                      verbose=0)
    for w0, w1 in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    with pytest.raises(RuntimeError, match="device='cuda'"):
        model.predict(x, device="cuda")
    with pytest.raises(RuntimeError, match="device='cuda'"):
        model.predict_proba(x, device="cuda")


def test_unknown_device_and_precision_are_rejected():
    model = fastmlp.MLP([3, 2], seed=0)
    x = np.ones((2, 3), np.float32)
    for bad in ("gpu", "CUDA", None, 0):
        with pytest.raises(ValueError, match="device: expected 'cpu' or 'cuda'"):
            fastmlp.train(model, x, np.array([0, 1]), loss="cross_entropy", device=bad,
                          verbose=0)
        with pytest.raises(ValueError, match="device: expected 'cpu' or 'cuda'"):
            model.predict(x, device=bad)
    with pytest.raises(ValueError, match="precision: expected 'tf32' or 'fp32'"):
        fastmlp.cuda.set_precision("fp16")
    assert fastmlp.cuda.get_precision() == "tf32"


def test_cuda_kernels_share_the_cpu_signatures():
    import inspect
    for name in fastmlp.kernels.__all__:
        cpu, dev = getattr(fastmlp.kernels, name), getattr(fastmlp.cuda, name)
        assert inspect.signature(cpu) == inspect.signature(dev), name


@pytest.mark.skipif(not BUILT or HAS_GPU, reason="needs the CUDA module built, and no GPU")
def test_the_compiled_module_loads_and_fails_cleanly_without_a_gpu():
    # The runtime is linked statically: the module loads with no driver and reports why it
    # cannot run; its functions check their arguments first, then raise, never crash.
    _cuda = importlib.import_module("fastmlp._cuda")
    assert _cuda.device_count() == 0
    assert _cuda.unavailable_reason()
    assert _cuda.device_name() == "" and _cuda.compute_capability() == 0
    x, W, b = np.ones((4, 3), np.float32), np.ones((3, 2), np.float32), np.ones(2, np.float32)
    with pytest.raises(ValueError, match="W: unexpected shape"):
        _cuda.dense_forward(x, np.ones((4, 2), np.float32), b, "relu", 0.0)
    with pytest.raises(ValueError, match="precision: expected 'tf32' or 'fp32'"):
        _cuda.dense_forward(x, W, b, "relu", 0.0, "fp16")
    with pytest.raises(RuntimeError, match="CUDA error"):
        _cuda.dense_forward(x, W, b, "relu", 0.0)
    model = fastmlp.MLP([3, 2], seed=0)
    with pytest.raises(RuntimeError):
        _cuda.Network(model._layer_specs(), model._params, model._stats, "fp32")
    assert fastmlp.MLP([3, 2], seed=0).predict(x).shape == (4, 2)  # the process is fine


# ---- on a GPU -------------------------------------------------------------------------------

SHAPES = [(b, i, o) for b, i, o in zip(ODD_SIZES, ODD_SIZES[3:] + ODD_SIZES[:3],
                                        ODD_SIZES[7:] + ODD_SIZES[:7])]
SHAPES += [(1, 1, 1), (257, 257, 257), (200, 784, 300), (50, 1, 50), (1000, 65, 130)]
# Batches long enough that dW and db split their reduction into chunks (cuda/splitk.cuh).
SHAPES += [(8192, 64, 64), (9001, 3, 17), (20000, 65, 1)]


@pytest.fixture
def precision():
    """Sets fastmlp.cuda's precision for one test and restores the default after it."""
    old = fastmlp.cuda.get_precision()

    def use(p):
        fastmlp.cuda.set_precision(p)
    yield use
    fastmlp.cuda.set_precision(old)


def gemm_tol(K, mode):
    # fp32: float32 sums of K products, error ~ sqrt(K) eps of the magnitude. tf32: inputs
    # rounded to a 10-bit mantissa (relative 2^-11 each), so ~1e-3 of the terms' magnitude.
    if mode == "fp32":
        return dict(rtol=1e-5, atol=1e-5 * max(1.0, np.sqrt(K) / 4))
    return dict(rtol=3e-3, atol=3e-3 * max(1.0, np.sqrt(K)))


@gpu
@pytest.mark.parametrize("mode", ["fp32", "tf32"])
@pytest.mark.parametrize("B,I,O", SHAPES)
def test_dense_matches_reference(B, I, O, mode, precision):
    precision(mode)
    rng = np.random.default_rng(B * 1000 + I * 10 + O)
    x, W, b = rand(rng, B, I), rand(rng, I, O, scale=1 / np.sqrt(I)), rand(rng, O, scale=0.5)
    dy = rand(rng, B, O)
    for act in R.ACTIVATIONS:
        y, z = fastmlp.cuda.dense_forward(x, W, b, act)
        yr, zr = R.dense_forward(x, W, b, act)
        assert_close(z, zr, **gemm_tol(I, mode), name=f"z {act}")
        assert_close(y, yr, **gemm_tol(I, mode), name=f"y {act}")
        dx, dW, db = fastmlp.cuda.dense_backward(dy, x, W, zr, act)
        dxr, dWr, dbr = R.dense_backward(dy, x, W, zr, act)
        assert_close(dx, dxr, **gemm_tol(O, mode), name=f"dx {act}")
        assert_close(dW, dWr, **gemm_tol(B, mode), name=f"dW {act}")
        assert_close(db, dbr, rtol=1e-5, atol=1e-5 * max(1.0, np.sqrt(B) / 4), name=f"db {act}")
    dx, dW, db = fastmlp.cuda.dense_backward(dy, x, W, zr, "relu", need_dx=False)
    assert dx is None


@gpu
def test_dense_is_deterministic(precision):
    precision("tf32")
    rng = np.random.default_rng(1)
    x, W, b, dy = rand(rng, 300, 257), rand(rng, 257, 129), rand(rng, 129), rand(rng, 300, 129)
    first = fastmlp.cuda.dense_backward(dy, x, W, fastmlp.cuda.dense_forward(x, W, b)[1])
    for _ in range(3):
        again = fastmlp.cuda.dense_backward(dy, x, W, fastmlp.cuda.dense_forward(x, W, b)[1])
        for a, e in zip(again, first):
            np.testing.assert_array_equal(a, e)


@gpu
@pytest.mark.parametrize("B,F", [(2, 1), (3, 17), (17, 3), (64, 257), (257, 64), (1000, 33)])
def test_batchnorm_matches_reference(B, F):
    rng = np.random.default_rng(B + F)
    x, gamma, beta = rand(rng, B, F, scale=3.0) + 1.0, rand(rng, F), rand(rng, F)
    rm, rv = rand(rng, F), np.abs(rand(rng, F)) + 0.5
    rm_ref, rv_ref = rm.copy(), rv.copy()
    y, mean, inv_std = fastmlp.cuda.batchnorm_forward(x, gamma, beta, rm, rv, True, 0.9, 1e-5)
    yr, mr, ir = R.batchnorm_forward(x, gamma, beta, rm_ref, rv_ref, True, 0.9, 1e-5)
    for got, want, name in ((y, yr, "y"), (mean, mr, "mean"), (inv_std, ir, "inv_std"),
                            (rm, rm_ref, "running_mean"), (rv, rv_ref, "running_var")):
        assert_close(got, want, rtol=1e-5, atol=1e-5, name=name)
    dy = rand(rng, B, F)
    got = fastmlp.cuda.batchnorm_backward(dy, x, gamma, mr, ir)
    want = R.batchnorm_backward(dy, x, gamma, mr, ir)
    for g, w, name in zip(got, want, ("dx", "dgamma", "dbeta")):
        assert_close(g, w, rtol=1e-4, atol=1e-5, name=name)
    y, _, _ = fastmlp.cuda.batchnorm_forward(x, gamma, beta, rm, rv, False)
    assert_close(y, R.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), False)[0],
                 rtol=1e-5, atol=1e-5, name="inference y")


@gpu
@pytest.mark.parametrize("B,C", [(1, 1), (3, 17), (17, 3), (257, 10), (64, 1000)])
def test_losses_match_reference(B, C):
    rng = np.random.default_rng(B * C)
    logits = rand(rng, B, C, scale=4.0)
    labels = rng.integers(0, C, B)
    target = rand(rng, B, C)
    probs = rng.random((B, C)).astype(np.float32)
    for name, args in (("softmax_cross_entropy", (logits, labels)), ("mse", (logits, target)),
                       ("mse", (logits[0], target[0])),
                       ("binary_cross_entropy", (logits, probs))):
        loss, grad = getattr(fastmlp.cuda, name)(*args)
        loss_ref, grad_ref = getattr(R, name)(*args)
        assert abs(loss - loss_ref) <= 1e-5 * max(1.0, abs(loss_ref)), name
        assert_close(grad, grad_ref, rtol=1e-5, atol=1e-7, name=f"{name} gradient")
    big = np.array([[1e30, -1e30, 0.0]], np.float32)
    loss, grad = fastmlp.cuda.softmax_cross_entropy(big, np.array([1]))
    assert np.isfinite(grad).all() and loss > 1e29


STEPS = {
    "sgd": lambda P, G, S, **kw: ("sgd_step", (P, G, S[0], 0.05), dict(momentum=0.9,
                                                                       nesterov=True, **kw)),
    "adagrad": lambda P, G, S, **kw: ("adagrad_step", (P, G, S[0], 0.05), kw),
    "rmsprop": lambda P, G, S, **kw: ("rmsprop_step", (P, G, S[0], 0.01), kw),
    "adam": lambda P, G, S, **kw: ("adam_step", (P, G, S[0], S[1], 3), dict(decoupled=True,
                                                                          weight_decay=0.01,
                                                                          **kw)),
}


@gpu
@pytest.mark.parametrize("opt", list(STEPS))
@pytest.mark.parametrize("clip", [{}, {"clip_value": 0.3}, {"clip_norm": 0.5},
                                  {"clip_value": 0.3, "clip_norm": 0.5}])
def test_optimizer_steps_match_the_cpu(opt, clip):
    rng = np.random.default_rng(len(opt))
    shapes = [(1,), (3, 17), (257,), (5000,), (64, 65)]
    P = [rand(rng, *s) for s in shapes]
    G = [rand(rng, *s) for s in shapes]
    S = [[np.abs(rand(rng, *s)) for s in shapes] for _ in range(2)]
    cpu = ([p.copy() for p in P], [[s.copy() for s in st] for st in S])
    dev = ([p.copy() for p in P], [[s.copy() for s in st] for st in S])
    name, args, kw = STEPS[opt](cpu[0], G, cpu[1], **clip)
    n_cpu = getattr(fastmlp.kernels, name)(*args, **kw)
    name, args, kw = STEPS[opt](dev[0], G, dev[1], **clip)
    n_dev = getattr(fastmlp.cuda, name)(*args, **kw)
    assert abs(n_cpu - n_dev) <= 1e-6 * n_cpu
    for a, e in zip(dev[0], cpu[0]):
        assert_close(a, e, rtol=1e-6, atol=1e-7, name="params")
    for sa, se in zip(dev[1], cpu[1]):
        for a, e in zip(sa, se):
            assert_close(a, e, rtol=1e-6, atol=1e-7, name="state")


@gpu
@pytest.mark.parametrize("mode", ["fp32", "tf32"])
@pytest.mark.parametrize("sizes", [[1, 1], [64, 64, 64, 64, 64, 16], [3, 17, 128, 5],
                                   [100, 128, 1]])
def test_fused_network_matches_reference(sizes, mode):
    _cuda = importlib.import_module("fastmlp._cuda")
    rng = np.random.default_rng(len(sizes))
    acts = ["relu", "tanh", "sigmoid", "elu", "selu", "gelu", "leaky_relu", "identity"]
    layers, params, off = [], [], 0
    for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])):
        W, b = rand(rng, i, o, scale=1 / np.sqrt(i)), rand(rng, o, scale=0.5)
        layers.append((i, o, off, off + W.size, acts[k % len(acts)], 0.2))
        params += [W.ravel(), b]
        off += W.size + b.size
    flat = np.concatenate(params).astype(np.float32)
    for n in (1, 17, 257, 5000):
        X = rand(rng, n, sizes[0])
        h = X
        for (i, o, w, bo, act, alpha) in layers:
            h = R.dense_forward(h, flat[w:w + i * o].reshape(i, o), flat[bo:bo + o], act,
                                alpha if act in ("leaky_relu", "elu") else None)[0]
        got = _cuda.fused_mlp_forward(layers, flat, X, mode)
        assert_close(got, h, **gemm_tol(max(sizes), mode), name=f"fused n={n}")


def _train_both(model_args, X, y, precision_mode, **kw):
    fastmlp.cuda.set_precision(precision_mode)
    cpu, dev = fastmlp.MLP(*model_args[0], **model_args[1]), fastmlp.MLP(*model_args[0],
                                                                          **model_args[1])
    h_cpu = fastmlp.train(cpu, X, y, verbose=0, seed=3, **kw)
    h_dev = fastmlp.train(dev, X, y, verbose=0, seed=3, device="cuda", **kw)
    return cpu, dev, h_cpu, h_dev


@gpu
@pytest.mark.parametrize("options", [
    dict(loss="cross_entropy", optimizer="adam", clip_norm=1.0),
    dict(loss="cross_entropy", optimizer="sgd", momentum=0.9, l2=1e-3, max_norm=2.0),
    dict(loss="mse", optimizer="rmsprop", l1=1e-4),
    dict(loss="binary_cross_entropy", optimizer="adagrad", clip_value=0.5),
])
@pytest.mark.parametrize("net", [dict(), dict(batchnorm=True), dict(dropout=0.2)])
def test_training_on_the_gpu_matches_the_cpu(options, net, precision):
    rng = np.random.default_rng(5)
    X = rand(rng, 300, 13)
    out = {"cross_entropy": 4, "mse": 2, "binary_cross_entropy": 3}[options["loss"]]
    if options["loss"] == "cross_entropy":
        y = rng.integers(0, out, 300)
    else:
        y = (rng.random((300, out)) > 0.5).astype(np.float32)
    args = (([13, 32, 17, out],), dict(activation="tanh", seed=1, **net))
    cpu, dev, h_cpu, h_dev = _train_both(args, X, y, "fp32", epochs=3, batch_size=37,
                                         **options)
    for a, e in zip(dev.get_weights(), cpu.get_weights()):
        assert_close(a, e, rtol=1e-3, atol=1e-4, name="weights after 3 epochs")
    assert_close(np.array(h_dev.history["loss"]), np.array(h_cpu.history["loss"]), rtol=1e-4,
                 name="loss history")
    assert_close(dev.predict(X, device="cuda"), cpu.predict(X), rtol=1e-3, atol=1e-4,
                 name="predict")


@gpu
def test_gpu_training_stops_where_the_cpu_does_with_the_last_good_weights(precision):
    # A learning rate that overflows the weights within a few epochs (tests/test_divergence.py).
    precision("fp32")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((96, 5)).astype(np.float32)
    y = (np.sin(X[:, :1]) + 0.3 * X[:, 1:2]).astype(np.float32)
    runs = {}
    for device in ("cpu", "cuda"):
        model = fastmlp.MLP([5, 17, 9, 1], seed=2)
        with pytest.warns(RuntimeWarning, match="diverged"):
            h = fastmlp.train(model, X, y, loss="mse", optimizer="sgd", lr=0.8, epochs=20,
                              batch_size=16, verbose=0, seed=0, shuffle=False, device=device)
        assert h.stopped_reason.startswith("diverged")
        assert np.isfinite(model._params).all()
        runs[device] = (h.nonfinite[0], model)
    assert runs["cuda"][0]["step"] == runs["cpu"][0]["step"]
    assert runs["cuda"][0]["cause"] == runs["cpu"][0]["cause"]
