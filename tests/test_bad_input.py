"""Bad input, everywhere (issue 7): every public entry point fed what users get wrong.

One table per entry point. A refused row is (call, exception type, regex): the regex must be
found in the message and names the argument (anchored at the start where fastmlp's convention
puts it, "X: expected ..."). An accepted row is (converted call, float32 call): fastmlp converts
the input safely and the two results must be equal bit for bit. A refused train() (and a
refused set_weights, diagnose) leaves the model's parameters and batch-norm statistics bitwise
unchanged.

What is accepted, in one place (the README's "Accepted inputs" says the same):
  * Model level (MLP.predict / predict_proba / predict_classes, train, evaluate, diagnose,
    fastmlp.sklearn): X of any real dtype (float64, float16, ints, bool, big-endian), lists,
    Fortran-ordered, strided and read-only arrays are converted to C-contiguous float32. Complex,
    object, string and datetime arrays, masked arrays with masked cells, NaN/Inf and finite values
    beyond float32's range (|x| > 3.4e38) are refused. Class labels: any integer dtype, or floats
    holding whole numbers; bool, strings and fractional floats are refused.
  * Kernels (fastmlp.kernels.*): float32 only (float64 is refused, never silently rounded);
    strided, Fortran-ordered and read-only inputs are copied; arrays updated in place (running
    statistics, params, optimizer state) must already be writable C-contiguous float32. Labels:
    any integer dtype. NaN/Inf in a kernel's inputs propagate as in fastmlp.reference (kernels do
    not scan their inputs).
"""
from __future__ import annotations

import io
import json
import os
import re
import warnings
import zipfile

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, diagnose, evaluate, kernels as K, train
from fastmlp.__main__ import main
from helpers import rand

N, D, C = 17, 3, 4  # rows, features, classes: odd sizes
RNG = np.random.default_rng(7)
X32 = rand(RNG, N, D)
LABELS = RNG.permutation(np.arange(N) % C)  # every class present, in random order
HUGE = 1e300  # finite in float64, beyond float32's range


# ---- layouts: the same values, stored the ways users' arrays come --------------------------
def fortran(a):
    return np.asfortranarray(a)


def every_other_row(a):
    """A view that skips every other row of a larger array (non-contiguous)."""
    return np.repeat(a, 2, axis=0)[::2]


def negative_strides(a):
    return a[::-1].copy()[::-1]


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def big_endian(a):
    return a.astype(a.dtype.newbyteorder(">"))


LAYOUTS = [fortran, every_other_row, negative_strides, read_only]


def test_layouts_are_what_they_claim():
    a = rand(np.random.default_rng(0), 5, 3)
    assert not fortran(a).flags.c_contiguous and fortran(a).flags.f_contiguous
    assert not every_other_row(a).flags.c_contiguous
    assert negative_strides(a).strides[0] < 0
    assert not read_only(a).flags.writeable
    for layout in LAYOUTS + [big_endian]:
        np.testing.assert_array_equal(layout(a), a)


def refuses(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def assert_same(a, b, what="result"):
    """Bitwise equality of (nested tuples of) arrays and floats."""
    if isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list)) and len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{what}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for k in a:
            assert_same(a[k], b[k], f"{what}[{k!r}]")
    elif a is None or b is None:
        assert a is b, what
    else:
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype, f"{what}: {a.dtype}{a.shape} != " \
                                                          f"{b.dtype}{b.shape}"
        assert a.tobytes() == b.tobytes(), f"{what} differs"


# =============================================================================================
# Kernels
# =============================================================================================
def _r(seed):
    return np.random.default_rng(seed)


def _dense_forward():
    r = _r(1)
    return [rand(r, N, D), rand(r, D, C), rand(r, C)], {"activation": "tanh"}


def _dense_backward():
    r = _r(2)
    return [rand(r, N, C), rand(r, N, D), rand(r, D, C), rand(r, N, C)], {"activation": "elu"}


def _batchnorm_forward():
    r = _r(3)
    return [rand(r, N, D), rand(r, D), rand(r, D), rand(r, D),
            np.abs(rand(r, D)) + 0.5], {"momentum": 0.8}


def _batchnorm_backward():
    r = _r(4)
    return [rand(r, N, D), rand(r, N, D), rand(r, D), rand(r, D),
            np.abs(rand(r, D)) + 0.5], {}


def _softmax_cross_entropy():
    return [rand(_r(5), N, C), LABELS.copy()], {}


def _mse():
    r = _r(6)
    return [rand(r, N, C), rand(r, N, C)], {}


def _binary_cross_entropy():
    r = _r(7)
    return [rand(r, N, C), r.uniform(0, 1, (N, C)).astype(np.float32)], {}


def _opt_lists(seed, n_states):
    r = _r(seed)
    shapes = [(D, 5), (5,)]
    params = [rand(r, *s) for s in shapes]
    grads = [rand(r, *s) for s in shapes]
    states = [[np.abs(rand(r, *s)) for s in shapes] for _ in range(n_states)]
    return params, grads, states


def _sgd_step():
    p, g, (v,) = _opt_lists(8, 1)
    return [p, g, v, 0.1], {"momentum": 0.9, "clip_norm": 1.0}


def _adagrad_step():
    p, g, (a,) = _opt_lists(9, 1)
    return [p, g, a, 0.1], {}


def _rmsprop_step():
    p, g, (ms,) = _opt_lists(10, 1)
    return [p, g, ms, 0.01], {"weight_decay": 0.1}


def _adam_step():
    p, g, (m, v) = _opt_lists(11, 2)
    return [p, g, m, v, 3], {"lr": 0.01}


# name -> (kernel, fresh arguments, input slots, in-place slots); a slot is (argument index,
# list index or None) and names the argument the way its error message does.
KERNELS = {
    "dense_forward": (K.dense_forward, _dense_forward,
                      {"x": (0, None), "W": (1, None), "b": (2, None)}, {}),
    "dense_backward": (K.dense_backward, _dense_backward,
                       {"dy": (0, None), "x": (1, None), "W": (2, None), "z": (3, None)}, {}),
    "batchnorm_forward": (K.batchnorm_forward, _batchnorm_forward,
                          {"x": (0, None), "gamma": (1, None), "beta": (2, None)},
                          {"running_mean": (3, None), "running_var": (4, None)}),
    "batchnorm_backward": (K.batchnorm_backward, _batchnorm_backward,
                           {"dy": (0, None), "x": (1, None), "gamma": (2, None),
                            "mean": (3, None), "inv_std": (4, None)}, {}),
    "softmax_cross_entropy": (K.softmax_cross_entropy, _softmax_cross_entropy,
                              {"logits": (0, None), "labels": (1, None)}, {}),
    "mse": (K.mse, _mse, {"pred": (0, None), "target": (1, None)}, {}),
    "binary_cross_entropy": (K.binary_cross_entropy, _binary_cross_entropy,
                             {"logits": (0, None), "targets": (1, None)}, {}),
    "sgd_step": (K.sgd_step, _sgd_step, {"grads[0]": (1, 0), "grads[1]": (1, 1)},
                 {"params[0]": (0, 0), "params[1]": (0, 1), "velocities[0]": (2, 0)}),
    "adagrad_step": (K.adagrad_step, _adagrad_step, {"grads[0]": (1, 0)},
                     {"params[0]": (0, 0), "accumulators[1]": (2, 1)}),
    "rmsprop_step": (K.rmsprop_step, _rmsprop_step, {"grads[1]": (1, 1)},
                     {"params[1]": (0, 1), "mean_squares[0]": (2, 0)}),
    "adam_step": (K.adam_step, _adam_step, {"grads[0]": (1, 0)},
                  {"params[0]": (0, 0), "m[0]": (2, 0), "v[1]": (3, 1)}),
}


def _get(args, slot):
    i, j = slot
    return args[i] if j is None else args[i][j]


def _set(args, slot, value):
    i, j = slot
    if j is None:
        args[i] = value
    else:
        args[i] = list(args[i])
        args[i][j] = value


def _updated(args, slots):
    """Copies of every array a kernel updates in place (all of every list argument)."""
    return [[a.copy() for a in args[i]] if j is not None else args[i].copy()
            for i, j in slots.values()]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("kernel,arg", [(k, a) for k, v in KERNELS.items() for a in v[2]])
def test_kernel_inputs_in_any_layout_give_the_contiguous_result(kernel, arg, layout):
    """Strided, Fortran, negative-stride and read-only inputs are copied, never misread: the
    result, and every array updated in place, equal the C-contiguous call's bit for bit."""
    fn, make, inputs, inplace = KERNELS[kernel]
    args, kw = make()
    expected = fn(*args, **kw)
    expected_state = _updated(args, inplace)
    args2, kw2 = make()
    _set(args2, inputs[arg], layout(_get(args2, inputs[arg])))
    got = fn(*args2, **kw2)
    assert_same(got, expected, kernel)
    assert_same(_updated(args2, inplace), expected_state, f"{kernel} state")


@pytest.mark.parametrize("bad", [every_other_row, negative_strides, read_only, fortran,
                                 lambda a: a.astype(np.float64)],
                         ids=["every_other_row", "negative_strides", "read_only", "fortran",
                              "float64"])
@pytest.mark.parametrize("kernel,arg", [(k, a) for k, v in KERNELS.items() for a in v[3]])
def test_kernel_state_updated_in_place_must_be_writable_c_float32(kernel, arg, bad):
    """An array updated in place cannot be copied (the update would be lost), so anything but
    a writable C-contiguous float32 array is refused, naming it, and nothing is updated."""
    fn, make, _, inplace = KERNELS[kernel]
    args, kw = make()
    original = _get(args, inplace[arg])
    replacement = bad(original)
    _set(args, inplace[arg], replacement)
    if replacement.flags.c_contiguous and replacement.flags.writeable and \
            replacement.dtype == np.float32:
        # A 1-D array in Fortran order is C-contiguous too: valid, so it must be accepted.
        fn(*args, **kw)
        return
    before = _updated(args, inplace)
    exc = TypeError if replacement.dtype != np.float32 else ValueError
    refuses(lambda: fn(*args, **kw), exc, "^" + arg.replace("[", r"\[").replace("]", r"\]"))
    assert_same(_updated(args, inplace), before, "state after a refused call")


def _call(kernel, **changes):
    """A call of `kernel` with some arguments replaced: changes maps a slot name (or a keyword)
    to a function of the fresh value (or, for keywords, the value itself)."""
    fn, make, inputs, inplace = KERNELS[kernel]
    slots = {**inputs, **inplace}

    def call():
        args, kw = make()
        for name, change in changes.items():
            if name in slots:
                _set(args, slots[name], change(_get(args, slots[name])))
            else:
                kw[name] = change
        return fn(*args, **kw)
    return call


def _dtype(t):
    return lambda a: a.astype(t)


def _keep(n):
    return lambda a: a[:n]


KERNEL_REFUSALS = [
    # dtype: kernels take float32 only (a float64 pipeline never loses precision unnoticed)
    ("x int64", _call("dense_forward", x=_dtype(np.int64)), TypeError,
     r"^x: expected dtype float32, got int64; use x.astype\(np.float32\)"),
    ("x float64", _call("dense_forward", x=_dtype(np.float64)), TypeError, r"^x: .*float64"),
    ("x bool", _call("dense_forward", x=lambda a: a > 0), TypeError, r"^x: .*bool"),
    ("x complex", _call("dense_forward", x=_dtype(np.complex64)), TypeError, r"^x: .*complex"),
    ("x object", _call("dense_forward", x=_dtype(object)), TypeError, r"^x: .*object"),
    ("x list", _call("dense_forward", x=lambda a: a.tolist()), TypeError, r"^x: .*list"),
    ("x big-endian", _call("dense_forward", x=big_endian), TypeError, r"^x: .*>f4"),
    ("W float64", _call("dense_forward", W=_dtype(np.float64)), TypeError, r"^W: "),
    ("z float64", _call("dense_backward", z=_dtype(np.float64)), TypeError, r"^z: "),
    ("gamma float16", _call("batchnorm_forward", gamma=_dtype(np.float16)), TypeError,
     r"^gamma: "),
    ("grads[0] float64", _call("sgd_step", **{"grads[0]": _dtype(np.float64)}), TypeError,
     r"^grads\[0\]: "),
    # ndim, empty, shapes
    ("x 1-D", _call("dense_forward", x=lambda a: a[0]), ValueError, r"^x: expected a 2-D"),
    ("x 3-D", _call("dense_forward", x=lambda a: a[None]), ValueError, r"^x: expected a 2-D"),
    ("x zero rows", _call("dense_forward", x=_keep(0)), ValueError, r"^x: .*non-empty"),
    ("x zero features", _call("dense_forward", x=lambda a: a[:, :0], W=_keep(0)), ValueError,
     r"^x: .*non-empty"),
    ("W rows != x columns", _call("dense_forward", W=_keep(D - 1)), ValueError,
     r"^W: expected 3 rows"),
    ("b length", _call("dense_forward", b=lambda a: np.append(a, a)), ValueError, r"^b: "),
    ("dy shape", _call("dense_backward", dy=lambda a: a[:, :-1]), ValueError, r"^dy: "),
    ("x rows != dy rows", _call("dense_backward", x=_keep(N - 1)), ValueError, r"^dy: "),
    ("gamma length", _call("batchnorm_forward", gamma=_keep(D - 1)), ValueError, r"^gamma: "),
    ("running_mean length", _call("batchnorm_forward", running_mean=_keep(D - 1)), ValueError,
     r"^running_mean: "),
    ("inv_std length", _call("batchnorm_backward", inv_std=_keep(1)), ValueError,
     r"^inv_std: "),
    ("logits 1-D", _call("softmax_cross_entropy", logits=lambda a: a[0]), ValueError,
     r"^logits: "),
    ("logits zero rows", _call("softmax_cross_entropy", logits=_keep(0), labels=_keep(0)),
     ValueError, r"^logits: "),
    ("pred 3-D", _call("mse", pred=lambda a: a[None], target=lambda a: a[None]), ValueError,
     r"^pred: "),
    ("target shape", _call("mse", target=lambda a: a.T.copy()), ValueError, r"^target: "),
    ("grads[1] shape", _call("adam_step", **{"grads[0]": lambda a: a.T.copy()}), ValueError,
     r"^grads\[0\]: "),
    ("batch norm of one row", _call("batchnorm_forward", x=_keep(1)), ValueError,
     r"^x: .*at least 2 rows"),
    # labels and targets
    ("labels float", _call("softmax_cross_entropy", labels=_dtype(np.float64)), TypeError,
     r"^labels: expected integer class labels"),
    ("labels bool", _call("softmax_cross_entropy", labels=lambda a: a > 0), TypeError,
     r"^labels: "),
    ("labels str", _call("softmax_cross_entropy", labels=_dtype(str)), TypeError, r"^labels: "),
    ("labels list", _call("softmax_cross_entropy", labels=lambda a: a.tolist()), TypeError,
     r"^labels: "),
    ("labels = C", _call("softmax_cross_entropy", labels=lambda a: np.where(a == 0, C, a)),
     ValueError, r"^labels: expected labels in \[0, 4\)"),
    ("labels negative", _call("softmax_cross_entropy", labels=lambda a: a - 1), ValueError,
     r"^labels: .*\[0, 4\)"),
    ("labels uint64 above int64", _call("softmax_cross_entropy", labels=lambda a: np.where(
        a == 0, 2 ** 63 + 1, a).astype(np.uint64)), ValueError, r"^labels: "),
    ("labels length", _call("softmax_cross_entropy", labels=_keep(N - 1)), ValueError,
     r"^labels: expected shape \(17,\)"),
    ("targets > 1", _call("binary_cross_entropy", targets=lambda a: a + 1), ValueError,
     r"^targets: .*\[0, 1\]"),
    ("targets NaN", _call("binary_cross_entropy", targets=lambda a: np.where(a > .5, np.nan, a)
                          .astype(np.float32)), ValueError, r"^targets: "),
    # options and hyper-parameters
    ("unknown activation", _call("dense_forward", activation="swish"), ValueError,
     r"^activation: expected one of identity, relu"),
    ("alpha < 0", _call("dense_forward", activation="leaky_relu", alpha=-0.1), ValueError,
     r"^alpha: "),
    ("alpha NaN", _call("dense_forward", activation="elu", alpha=float("nan")), ValueError,
     r"^alpha: "),
    ("alpha for relu", _call("dense_forward", activation="relu", alpha=0.1), ValueError,
     r"^alpha: activation 'relu' takes no alpha"),
    ("need_dx=1", _call("dense_backward", need_dx=1), TypeError, r"^need_dx: "),
    ("training=1", _call("batchnorm_forward", training=1), TypeError, r"^training: "),
    ("momentum > 1", _call("batchnorm_forward", momentum=1.5), ValueError, r"^momentum: "),
    ("eps = 0", _call("batchnorm_forward", eps=0.0), ValueError, r"^eps: "),
    ("negative running_var in inference", _call("batchnorm_forward", training=False,
                                                running_var=lambda a: -a), ValueError,
     r"^running_var: "),
    ("lr < 0", lambda: K.sgd_step(*_opt_lists(8, 0)[:2], None, -0.1), ValueError, r"^lr: "),
    ("lr NaN", lambda: K.sgd_step(*_opt_lists(8, 0)[:2], None, float("nan")), ValueError,
     r"^lr: .*finite"),
    ("lr str", lambda: K.sgd_step(*_opt_lists(8, 0)[:2], None, "0.1"), TypeError, r"^lr: "),
    ("momentum = 1", _call("sgd_step", momentum=1.0), ValueError, r"^momentum: "),
    ("nesterov without momentum", lambda: K.sgd_step(*_opt_lists(8, 0)[:2], None, 0.1,
                                                     nesterov=True), ValueError, r"^nesterov: "),
    ("velocities missing", lambda: K.sgd_step(*_opt_lists(8, 0)[:2], None, 0.1, momentum=0.9),
     ValueError, r"^velocities: required"),
    ("clip_norm = 0", _call("sgd_step", clip_norm=0.0), ValueError, r"^clip_norm: "),
    ("weight_decay < 0", _call("rmsprop_step", weight_decay=-1.0), ValueError,
     r"^weight_decay: "),
    ("rho = 1", _call("rmsprop_step", rho=1.0), ValueError, r"^rho: "),
    ("adagrad eps = 0", _call("adagrad_step", eps=0.0), ValueError, r"^eps: "),
    ("beta1 = 1", _call("adam_step", beta1=1.0), ValueError, r"^beta1: "),
    ("adam step 0", lambda: K.adam_step(*_opt_lists(11, 2)[:2], *_opt_lists(11, 2)[2], 0),
     ValueError, r"^step: "),
    ("adam step 1.0", lambda: K.adam_step(*_opt_lists(11, 2)[:2], *_opt_lists(11, 2)[2], 1.0),
     TypeError, r"^step: "),
    ("params not a list", lambda: K.sgd_step(_opt_lists(8, 0)[0][0], _opt_lists(8, 0)[1], None,
                                             0.1), TypeError, r"^params: "),
    ("params empty", lambda: K.sgd_step([], [], None, 0.1), ValueError, r"^params: "),
    ("grads list too long", lambda: K.sgd_step(_opt_lists(8, 0)[0], _opt_lists(8, 0)[1] * 2,
                                               None, 0.1), ValueError, r"^grads: expected 2"),
    ("a param twice", lambda: (lambda p: K.sgd_step([p, p], [p.copy(), p.copy()], None, 0.1))(
        rand(_r(0), 3)), ValueError, r"^params\[1\]: shares memory"),
    ("m is a param", lambda: (lambda p, g, s: K.adam_step(p, g, p, s[1], 1))(
        *_opt_lists(11, 2)), ValueError, r"^m\[[01]\]: shares memory with params"),
    ("m missing", lambda: K.adam_step(*_opt_lists(11, 2)[:2], None, _opt_lists(11, 2)[2][1], 1),
     TypeError, r"^m: "),
    ("unknown option", _call("dense_forward", actvation="relu"), TypeError,
     r"unexpected keyword argument 'actvation'"),
    ("unknown option (optimizer)", _call("adam_step", betas=(0.9, 0.99)), TypeError,
     r"unexpected keyword argument 'betas'"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in KERNEL_REFUSALS],
                         ids=[c[0] for c in KERNEL_REFUSALS])
def test_kernel_refuses_naming_the_argument(call, exc, match):
    refuses(call, exc, match)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.uint32, np.uint64])
def test_kernel_labels_of_any_integer_dtype_are_accepted(dtype):
    args, _ = _softmax_cross_entropy()
    assert_same(K.softmax_cross_entropy(args[0], args[1].astype(dtype)),
                K.softmax_cross_entropy(*args))


def test_kernel_output_too_large_to_allocate_raises_memory_error():
    """2^23 x 2^23 outputs (256 TiB, beyond any address space, so even an overcommitting kernel
    refuses): a MemoryError from the allocation, before anything is computed, never a crash."""
    n = 2 ** 23
    x, W, b = np.ones((n, 1), np.float32), np.ones((1, n), np.float32), np.zeros(n, np.float32)
    refuses(lambda: K.dense_forward(x, W, b), MemoryError, r"allocate")


def test_kernel_nan_and_inf_propagate_as_in_the_reference():
    """Kernels do not scan their inputs: a NaN row stays a NaN row (and only that row), like
    fastmlp.reference; finding NaN early is the model-level entry points' job."""
    (x, W, b), _ = _dense_forward()
    x_bad = x.copy()
    x_bad[3, 1] = np.nan
    x_bad[5, 0] = np.inf
    y, z = K.dense_forward(x_bad, W, b, "tanh")
    # The reference is NumPy: its matmul may warn about the Inf * 0 it is fed here (OpenBLAS's
    # AVX-512 kernels raise the invalid flag), which is the point of the input, not a fault.
    with np.errstate(invalid="ignore"):
        y_ref, _ = fastmlp.reference.dense_forward(x_bad, W, b, "tanh")
    clean = K.dense_forward(x, W, b, "tanh")[0]
    assert np.isnan(y[3]).all() and np.isnan(y_ref[3]).all()
    assert not np.isfinite(z[5]).any()
    rows = [i for i in range(N) if i not in (3, 5)]
    assert_same(y[rows], clean[rows])


# =============================================================================================
# MLP(...) and its setters
# =============================================================================================
MLP_REFUSALS = [
    ("sizes one entry", lambda: MLP([3]), ValueError, r"^sizes: expected a list"),
    ("sizes a string", lambda: MLP("3,4"), ValueError, r"^sizes: "),
    ("sizes an array", lambda: MLP(np.array([3, 4])), ValueError, r"^sizes: "),
    ("sizes zero", lambda: MLP([3, 0]), ValueError, r"^sizes\[1\]: expected an integer >= 1"),
    ("sizes negative", lambda: MLP([3, -4]), ValueError, r"^sizes\[1\]: "),
    ("sizes float", lambda: MLP([3.0, 4]), ValueError, r"^sizes\[0\]: "),
    ("sizes bool", lambda: MLP([True, 4]), ValueError, r"^sizes\[0\]: "),
    ("sizes huge", lambda: MLP([10 ** 9, 10 ** 9]), MemoryError,
     r"^sizes: \[1000000000, 1000000000\] needs .* use smaller layers"),
    ("sizes beyond addressable", lambda: MLP([2 ** 31, 2 ** 31]), MemoryError, r"^sizes: "),
    ("hidden layers huge", lambda: MLP([D, 10 ** 6, 10 ** 6, C]), MemoryError, r"^sizes: "),
    ("activation unknown", lambda: MLP([3, 5, 2], activation="swish"), ValueError,
     r"^activation: expected one of"),
    ("activation list length", lambda: MLP([3, 5, 2], activation=["relu", "tanh"]), ValueError,
     r"^activation: expected one entry per hidden layer \(1\)"),
    ("output_activation unknown", lambda: MLP([3, 2], output_activation="soft_max"), ValueError,
     r"^output_activation: "),
    ("dropout 1", lambda: MLP([3, 5, 2], dropout=1.0), ValueError, r"^dropout: expected < 1"),
    ("dropout < 0", lambda: MLP([3, 5, 2], dropout=-0.1), ValueError, r"^dropout: "),
    ("dropout list entry", lambda: MLP([3, 5, 5, 2], dropout=[0.1, 2.0]), ValueError,
     r"^dropout\[1\]: "),
    ("init unknown", lambda: MLP([3, 2], init="he_normall"), ValueError, r"^init: "),
    ("batchnorm str", lambda: MLP([3, 5, 2], batchnorm="yes"), TypeError, r"^batchnorm: "),
    ("bn_momentum > 1", lambda: MLP([3, 2], bn_momentum=2.0), ValueError, r"^bn_momentum: "),
    ("bn_eps 0", lambda: MLP([3, 2], bn_eps=0.0), ValueError, r"^bn_eps: "),
    ("alpha for relu", lambda: MLP([3, 5, 2], alpha=0.1), ValueError, r"^alpha: "),
    ("alpha NaN", lambda: MLP([3, 5, 2], activation="elu", alpha=float("nan")), ValueError,
     r"^alpha: "),
    ("bias_init NaN", lambda: MLP([3, 2], bias_init=float("nan")), ValueError, r"^bias_init: "),
    ("bias_init str", lambda: MLP([3, 2], bias_init="0"), TypeError, r"^bias_init: "),
    ("seed str", lambda: MLP([3, 2], seed="a"), TypeError, r"^seed: expected None or an "
                                                           r"integer >= 0, got str 'a'"),
    ("seed negative", lambda: MLP([3, 2], seed=-1), ValueError, r"^seed: "),
    ("seed float", lambda: MLP([3, 2], seed=1.5), TypeError, r"^seed: "),
    ("unknown option", lambda: MLP([3, 2], activaton="relu"), TypeError,
     r"unexpected keyword argument 'activaton'"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in MLP_REFUSALS],
                         ids=[c[0] for c in MLP_REFUSALS])
def test_mlp_refuses_naming_the_argument(call, exc, match):
    refuses(call, exc, match)


def test_mlp_sizes_as_tuple_or_numpy_integers_are_accepted():
    expected = MLP([D, 5, C], seed=3).get_weights()
    for sizes in [(D, 5, C), [np.int64(D), np.uint8(5), np.int32(C)]]:
        assert_same(MLP(sizes, seed=3).get_weights(), expected)


def model(**kw):
    """The model every train/predict row uses: seeded, odd sizes, C classes."""
    return MLP([D, 7, C], seed=1, **kw)


def snapshot(m):
    return m._params.copy(), m._stats.copy()


def unchanged(m, snap):
    assert_same(snapshot(m), snap, "model parameters after a refused call")


SETTER_REFUSALS = [
    ("W shape", lambda m: setattr(m.layers[0], "W", np.zeros((D, 6))), ValueError,
     r"^W: expected shape \(3, 7\)"),
    ("W NaN", lambda m: setattr(m.layers[0], "W", np.full((D, 7), np.nan)), ValueError, r"^W: "),
    ("W beyond float32", lambda m: setattr(m.layers[0], "W", np.full((D, 7), HUGE)), ValueError,
     r"^W: .*float32 range"),
    ("W str", lambda m: setattr(m.layers[0], "W", np.full((D, 7), "1")), TypeError, r"^W: "),
    ("W complex", lambda m: setattr(m.layers[0], "W", np.ones((D, 7), complex)), TypeError,
     r"^W: expected real numbers"),
    ("b on a batch-norm layer", lambda m: setattr(MLP([D, 5, C], batchnorm=True).layers[0], "b",
                                                  np.zeros(5)), AttributeError,
     r"^b: .*set layer.beta"),
    ("trainable 1", lambda m: setattr(m.layers[0], "trainable", 1), TypeError, r"^trainable: "),
    ("set_weights count", lambda m: m.set_weights(m.get_weights()[:-1]), ValueError,
     r"^weights: expected 4 arrays"),
    ("set_weights not a list", lambda m: m.set_weights(np.zeros(4)), TypeError, r"^weights: "),
    ("set_weights last shape", lambda m: m.set_weights(m.get_weights()[:-1] + [np.zeros(3)]),
     ValueError, r"^weights\[3\]: layer 1 b expects shape \(4,\)"),
    ("set_weights last NaN", lambda m: m.set_weights(
        m.get_weights()[:-1] + [np.full(C, np.nan)]), ValueError, r"^weights\[3\]: "),
    ("set_weights last str", lambda m: m.set_weights(
        [w + 1 for w in m.get_weights()[:-1]] + [np.full(C, "x")]), TypeError, r"^weights\[3\]"),
    ("input_mean shape", lambda m: setattr(m, "input_mean", np.zeros(D + 1)), ValueError,
     r"^input_mean: expected shape \(3,\)"),
    ("input_mean NaN", lambda m: setattr(m, "input_mean", np.full(D, np.nan)), ValueError,
     r"^input_mean: "),
    ("input_scale 0", lambda m: setattr(m, "input_scale", np.zeros(D)), ValueError,
     r"^input_scale: .*> 0"),
    ("input_scale beyond float32", lambda m: setattr(m, "input_scale", np.full(D, HUGE)),
     ValueError, r"^input_scale: "),
    ("input_scale str", lambda m: setattr(m, "input_scale", ["a"] * D), TypeError,
     r"^input_scale: "),
    ("fit_input_scaling NaN", lambda m: m.fit_input_scaling(_with(np.nan)), ValueError,
     r"^X: contains NaN"),
    ("fit_input_scaling beyond float32", lambda m: m.fit_input_scaling(_with(HUGE)), ValueError,
     r"^X: .*float32 range"),
    ("fit_input_scaling features", lambda m: m.fit_input_scaling(X32[:, :2]), ValueError,
     r"^X: the model takes 3 features"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in SETTER_REFUSALS],
                         ids=[c[0] for c in SETTER_REFUSALS])
def test_setters_refuse_and_change_nothing(call, exc, match):
    m = model()
    snap = snapshot(m)
    refuses(lambda: call(m), exc, match)
    unchanged(m, snap)
    assert m.input_mean is None and m.input_scale is None


def test_setters_convert_real_dtypes():
    m, ref = model(), model()
    W = rand(RNG, D, 7)
    m.layers[0].W = W.astype(np.float64)
    ref.layers[0].W = W
    m.set_weights([w.astype(np.float64) for w in ref.get_weights()])
    assert_same(m.get_weights(), ref.get_weights())
    m.input_scale, ref.input_scale = [1, 2, 3], np.array([1, 2, 3], np.float32)
    assert_same(m.input_scale, ref.input_scale)


# =============================================================================================
# predict / predict_proba / predict_classes
# =============================================================================================
PREDICT_METHODS = ["predict", "predict_proba", "predict_classes"]

# (id, X as the user passes it, the float32 array it must behave as)
X_INT = RNG.integers(-5, 5, (N, D))
ACCEPTED_X = [
    ("float64", X32.astype(np.float64), X32),
    ("float16", X32.astype(np.float16), X32.astype(np.float16).astype(np.float32)),
    ("int64", X_INT, X_INT.astype(np.float32)),
    ("int8", X_INT.astype(np.int8), X_INT.astype(np.float32)),
    ("uint8", np.abs(X_INT).astype(np.uint8), np.abs(X_INT).astype(np.float32)),
    ("bool", X32 > 0, (X32 > 0).astype(np.float32)),
    ("list", X32.tolist(), X32),
    ("tuple of tuples", tuple(map(tuple, X32.tolist())), X32),
    ("big-endian float32", big_endian(X32), X32),
    ("big-endian float64", big_endian(X32.astype(np.float64)), X32),
    ("masked without masked cells", np.ma.masked_array(X32, mask=False), X32),
] + [(f.__name__, f(X32), X32) for f in LAYOUTS] + [
    ("float64 fortran", fortran(X32.astype(np.float64)), X32),
    ("float64 every_other_row", every_other_row(X32.astype(np.float64)), X32),
]


@pytest.mark.parametrize("method", PREDICT_METHODS)
@pytest.mark.parametrize("X,X_float32", [a[1:] for a in ACCEPTED_X], ids=[a[0] for a in ACCEPTED_X])
def test_predict_accepts_safe_conversions(method, X, X_float32):
    m = model(output_activation="softmax")
    assert_same(getattr(m, method)(X), getattr(m, method)(np.ascontiguousarray(X_float32)))


def test_predict_accepts_1d_input_for_a_one_feature_model():
    m = MLP([1, 5, 2], seed=0)
    x = rand(RNG, N)
    assert_same(m.predict(x), m.predict(x.reshape(-1, 1)))
    assert_same(m.predict(x.astype(np.float64)), m.predict(x.reshape(-1, 1)))


def _with(value, i=2, j=1):
    a = X32.astype(np.float64)
    a[i, j] = value
    return a


REFUSED_X = [
    ("complex", X32.astype(np.complex64), TypeError, r"^X: expected real numbers .*complex64"
                                                     r".*np.abs"),
    ("object", X32.astype(object), TypeError, r"^X: .*dtype object"),
    ("None", None, TypeError, r"^X: "),
    ("strings", X32.astype(str), TypeError, r"^X: .*<U"),
    ("datetime", np.zeros((N, D), "datetime64[s]"), TypeError, r"^X: .*datetime64"),
    ("ragged list", [[1.0, 2.0, 3.0], [1.0, 2.0]], TypeError, r"^X: expected a 2-D array"),
    ("scalar", 1.0, ValueError, r"^X: expected a 2-D array"),
    ("1-D", X32[0], ValueError, r"^X: expected a 2-D array \(n_samples, 3\), got shape \(3,\)"),
    ("3-D", X32[None], ValueError, r"^X: expected a 2-D"),
    ("zero rows", X32[:0], ValueError, r"^X: expected at least one row"),
    ("zero features", X32[:, :0], ValueError, r"^X: the model takes 3 features, got 0"),
    ("too many features", np.hstack([X32, X32]), ValueError, r"^X: the model takes 3 features"),
    ("NaN", _with(np.nan), ValueError, r"^X: contains NaN or Inf \(first at row 2, column 1\)"),
    ("-Inf", _with(-np.inf, 0, 0), ValueError, r"^X: contains NaN or Inf .*row 0, column 0"),
    ("beyond float32", _with(HUGE, 4, 2), ValueError,
     r"^X: the value 1e\+300 at row 4, column 2 is beyond the float32 range"),
    ("beyond float32, negative", _with(-HUGE), ValueError, r"^X: .*-1e\+300.*float32 range"),
    ("masked cells", np.ma.masked_array(X32, mask=X32 > 1), ValueError, r"^X: .*masked"),
]


@pytest.mark.parametrize("method", PREDICT_METHODS)
@pytest.mark.parametrize("X,exc,match", [r[1:] for r in REFUSED_X], ids=[r[0] for r in REFUSED_X])
def test_predict_refuses_naming_x(method, X, exc, match):
    m = model(output_activation="softmax")
    refuses(lambda: getattr(m, method)(X), exc, match)


@pytest.mark.parametrize("method", PREDICT_METHODS)
@pytest.mark.parametrize("bs", [0, -1, 2.0, True, "8", None])
def test_predict_refuses_a_bad_batch_size(method, bs):
    refuses(lambda: getattr(model(), method)(X32, batch_size=bs), ValueError, r"^batch_size: ")


def test_predict_refuses_unknown_options():
    refuses(lambda: model().predict(X32, batchsize=4), TypeError,
            r"unexpected keyword argument 'batchsize'")


def test_standardised_input_that_overflows_is_refused():
    m = model()
    m.input_scale = np.full(D, 1e-30)
    refuses(lambda: m.predict(np.full((2, D), 1e10, np.float32)), ValueError,
            r"^X: standardised .* overflows float32")


# =============================================================================================
# train
# =============================================================================================
def _train(m=None, X=X32, y=LABELS, **kw):
    args = dict(loss="cross_entropy", epochs=2, batch_size=5, verbose=0, seed=0)
    args.update(kw)
    return train(model() if m is None else m, X, y, **args)


def _y(change):
    return change(LABELS.copy())


TRAIN_REFUSALS = [
    # X
    ("X complex", dict(X=X32.astype(complex)), TypeError, r"^X: expected real numbers"),
    ("X strings", dict(X=X32.astype(str)), TypeError, r"^X: "),
    ("X NaN", dict(X=_with(np.nan)), ValueError, r"^X: contains NaN"),
    ("X Inf", dict(X=_with(np.inf)), ValueError, r"^X: contains NaN or Inf"),
    ("X beyond float32", dict(X=_with(HUGE)), ValueError, r"^X: .*float32 range"),
    ("X zero rows", dict(X=X32[:0], y=LABELS[:0]), ValueError, r"^X: expected at least one"),
    ("X wrong features", dict(X=X32[:, :2]), ValueError, r"^X: the model takes 3 features"),
    ("X 3-D", dict(X=X32[None]), ValueError, r"^X: expected a 2-D"),
    # y: lengths, dtypes, ranges
    ("y shorter", dict(y=LABELS[:-1]), ValueError, r"^y: expected 17 rows"),
    ("y None", dict(y=None), ValueError, r"^y: "),
    ("y one-hot", dict(y=np.eye(C)[LABELS]), ValueError, r"^y: cross_entropy takes a 1-D"),
    ("y fractional", dict(y=LABELS + 0.5), TypeError, r"^y: cross_entropy takes integer"),
    ("y NaN", dict(y=_y(lambda a: np.where(a == 0, np.nan, a))), TypeError, r"^y: "),
    ("y strings", dict(y=LABELS.astype(str)), TypeError, r"^y: expected integer class labels"),
    ("y bool", dict(y=LABELS > 1), TypeError, r"^y: "),
    ("y object", dict(y=LABELS.astype(object)), TypeError, r"^y: "),
    ("y complex", dict(y=LABELS.astype(complex)), TypeError, r"^y: "),
    ("y = C", dict(y=_y(lambda a: np.where(a == 0, C, a))), ValueError,
     r"^y: labels must lie in \[0, 4\) for a model with 4 outputs"),
    ("y negative", dict(y=LABELS - 1), ValueError, r"^y: labels must lie in \[0, 4\)"),
    ("y uint64 above int64", dict(y=_y(lambda a: np.where(a == 0, 2 ** 63 + 1, a)
                                       .astype(np.uint64))), ValueError, r"^y: labels must lie"),
    ("bce y > 1", dict(loss="binary_cross_entropy", y=np.full((N, C), 2.0)), ValueError,
     r"^y: binary_cross_entropy targets must lie in \[0, 1\]"),
    ("mse y wrong width", dict(loss="mse", y=np.ones((N, C + 1))), ValueError,
     r"^y: expected shape \(17, 4\)"),
    ("mse y NaN", dict(loss="mse", y=np.full((N, C), np.nan)), ValueError, r"^y: contains NaN"),
    ("mse y strings", dict(loss="mse", y=np.full((N, C), "1")), TypeError, r"^y: "),
    # options
    ("loss unknown", dict(loss="crossentropy"), ValueError, r"^loss: expected one of"),
    ("optimizer unknown", dict(optimizer="adamax"), ValueError, r"^optimizer: expected one of"),
    ("lr < 0", dict(lr=-0.1), ValueError, r"^lr: "),
    ("lr NaN", dict(lr=float("nan")), ValueError, r"^lr: "),
    ("lr str", dict(lr="0.1"), TypeError, r"^lr: "),
    ("lr schedule gives NaN", dict(lr=lambda step: float("nan")), ValueError, r"^lr: "),
    ("batch_size 0", dict(batch_size=0), ValueError, r"^batch_size: "),
    ("batch_size float", dict(batch_size=8.0), ValueError, r"^batch_size: "),
    ("epochs 0", dict(epochs=0), ValueError, r"^epochs: "),
    ("momentum 1", dict(optimizer="sgd", momentum=1.0), ValueError, r"^momentum: "),
    ("beta1 1", dict(beta1=1.0), ValueError, r"^beta1: "),
    ("beta2 < 0", dict(beta2=-0.1), ValueError, r"^beta2: "),
    ("rho 1", dict(optimizer="rmsprop", rho=1.0), ValueError, r"^rho: "),
    ("eps < 0", dict(eps=-1e-8), ValueError, r"^eps: "),
    ("weight_decay < 0", dict(weight_decay=-1.0), ValueError, r"^weight_decay: "),
    ("clip_value 0", dict(clip_value=0.0), ValueError, r"^clip_value: "),
    ("clip_norm < 0", dict(clip_norm=-1.0), ValueError, r"^clip_norm: "),
    ("l1 < 0", dict(l1=-1.0), ValueError, r"^l1: "),
    ("l2 NaN", dict(l2=float("nan")), ValueError, r"^l2: "),
    ("max_norm 0", dict(max_norm=0.0), ValueError, r"^max_norm: "),
    ("nesterov with adam", dict(nesterov=True), ValueError, r"^nesterov: "),
    ("momentum with adam", dict(momentum=0.9), ValueError, r"^momentum: only optimizer='sgd'"),
    ("momentum with rmsprop", dict(optimizer="rmsprop", momentum=0.5), ValueError,
     r"^momentum: "),
    ("validation_split 1", dict(validation_split=1.0), ValueError, r"^validation_split: "),
    ("validation_split too small", dict(validation_split=0.01), ValueError,
     r"^validation_split: "),
    ("validation_data a triple", dict(validation_data=(X32, LABELS, LABELS)), ValueError,
     r"^validation_data: expected a pair"),
    ("validation_data features", dict(validation_data=(X32[:, :2], LABELS)), ValueError,
     r"^validation_data\[0\]: the model takes 3 features"),
    ("validation_data labels", dict(validation_data=(X32, LABELS + C)), ValueError,
     r"^validation_data\[1\]: labels must lie"),
    ("sample_weight < 0", dict(sample_weight=-np.ones(N)), ValueError, r"^sample_weight: "),
    ("sample_weight length", dict(sample_weight=np.ones(N - 1)), ValueError,
     r"^sample_weight: expected shape \(17,\)"),
    ("sample_weight NaN", dict(sample_weight=np.full(N, np.nan)), ValueError, r"^sample_weight"),
    ("sample_weight all 0", dict(sample_weight=np.zeros(N)), ValueError, r"^sample_weight: "),
    ("sample_weight complex", dict(sample_weight=np.ones(N, complex)), TypeError,
     r"^sample_weight: "),
    ("early_stopping str", dict(early_stopping="yes"), TypeError, r"^early_stopping: "),
    ("patience < 0", dict(early_stopping=True, patience=-1), ValueError, r"^patience: "),
    ("callbacks entry", dict(callbacks=[3]), TypeError, r"^callbacks\[0\]: "),
    ("shuffle 1", dict(shuffle=1), TypeError, r"^shuffle: "),
    ("verbose 3", dict(verbose=3), ValueError, r"^verbose: "),
    ("monitor 0", dict(monitor=0), ValueError, r"^monitor: "),
    ("optimizer_state", dict(optimizer_state={}), TypeError, r"^optimizer_state: "),
    ("cache_frozen with nothing frozen", dict(cache_frozen=True), ValueError,
     r"^cache_frozen: "),
    ("unknown option", dict(learning_rate=0.1), TypeError,
     r"unexpected keyword argument 'learning_rate'"),
    # Formerly gaps in training.py, fixed:
    ("seed str", dict(seed="a"), TypeError, r"^seed: "),
    ("callbacks not a list", dict(callbacks=3), TypeError, r"^callbacks: "),
    ("eps 0 with adam", dict(eps=0.0), ValueError, r"^eps: "),
    ("mse y beyond float32", dict(loss="mse", y=np.full((N, C), HUGE)), ValueError,
     r"^y: .*float32 range"),
    ("sample_weight beyond float32", dict(sample_weight=np.full(N, HUGE)), ValueError,
     r"^sample_weight: "),
]


def _ids(rows):
    return [r.values[0] if hasattr(r, "values") else r[0] for r in rows]


def _rest(rows):
    return [pytest.param(*r.values[1:], marks=r.marks) if hasattr(r, "values") else r[1:]
            for r in rows]


@pytest.mark.parametrize("kw,exc,match", _rest(TRAIN_REFUSALS), ids=_ids(TRAIN_REFUSALS))
def test_train_refuses_naming_the_argument_and_leaves_the_model_unchanged(kw, exc, match):
    m = model()
    snap = snapshot(m)
    refuses(lambda: _train(m, **kw), exc, match)
    unchanged(m, snap)


def test_train_refuses_a_model_that_is_not_an_mlp_or_too_small_batches_for_batch_norm():
    refuses(lambda: train(None, X32, LABELS, loss="cross_entropy"), TypeError, r"^model: ")
    refuses(lambda: train(X32, X32, LABELS, loss="cross_entropy"), TypeError, r"^model: ")
    refuses(lambda: train(model(), X32, LABELS), TypeError, r"'loss'")
    m = model(batchnorm=True)
    snap = snapshot(m)
    refuses(lambda: _train(m, batch_size=1), ValueError, r"^batch_size: batch normalisation")
    unchanged(m, snap)


# (id, train keywords as the user passes them, the float32 / int64 keywords they must equal)
ACCEPTED_TRAIN = [
    ("X float64", dict(X=X32.astype(np.float64)), {}),
    ("X list", dict(X=X32.tolist()), {}),
    ("X int", dict(X=X_INT), dict(X=X_INT.astype(np.float32))),
    ("X bool", dict(X=X32 > 0), dict(X=(X32 > 0).astype(np.float32))),
    ("X big-endian", dict(X=big_endian(X32)), {}),
] + [(f"X {f.__name__}", dict(X=f(X32)), {}) for f in LAYOUTS] + [
    ("y uint8", dict(y=LABELS.astype(np.uint8)), {}),
    ("y int32", dict(y=LABELS.astype(np.int32)), {}),
    ("y uint64", dict(y=LABELS.astype(np.uint64)), {}),
    ("y whole floats", dict(y=LABELS.astype(np.float64)), {}),
    ("y list", dict(y=LABELS.tolist()), {}),
    ("y strided", dict(y=every_other_row(LABELS)), {}),
    ("mse y float64", dict(loss="mse", y=np.eye(C)[LABELS]),
     dict(loss="mse", y=np.eye(C, dtype=np.float32)[LABELS])),
    ("mse y int", dict(loss="mse", y=np.eye(C, dtype=int)[LABELS]),
     dict(loss="mse", y=np.eye(C, dtype=np.float32)[LABELS])),
    ("bce y bool", dict(loss="binary_cross_entropy", y=np.eye(C, dtype=bool)[LABELS]),
     dict(loss="binary_cross_entropy", y=np.eye(C, dtype=np.float32)[LABELS])),
    ("sample_weight int", dict(sample_weight=np.arange(N) % 3 + 1),
     dict(sample_weight=(np.arange(N) % 3 + 1).astype(np.float32))),
    ("sample_weight list", dict(sample_weight=[0.5] * N),
     dict(sample_weight=np.full(N, 0.5, np.float32))),
    ("validation_data float64", dict(validation_data=(X32.astype(np.float64), LABELS)),
     dict(validation_data=(X32, LABELS))),
]


@pytest.mark.parametrize("given,expected", [a[1:] for a in ACCEPTED_TRAIN],
                         ids=[a[0] for a in ACCEPTED_TRAIN])
def test_train_accepts_safe_conversions(given, expected):
    """The converted input trains exactly as the float32 (int64 labels) input does."""
    base = dict(X=X32, y=LABELS)
    m1, m2 = model(), model()
    h1 = _train(m1, **{**base, **given})
    h2 = _train(m2, **{**base, **given, **expected})
    assert_same(snapshot(m1), snapshot(m2), "weights")
    assert h1.history["loss"] == h2.history["loss"]
    assert not np.array_equal(m1._params, model()._params), "training changed nothing"


def test_evaluate_refuses_and_accepts_like_train():
    m = model()
    refuses(lambda: evaluate(m, X32, LABELS + C, loss="cross_entropy"), ValueError, r"^y: ")
    refuses(lambda: evaluate(m, _with(np.nan), LABELS, loss="cross_entropy"), ValueError,
            r"^X: contains NaN")
    refuses(lambda: evaluate(m, X32, LABELS[:3], loss="cross_entropy"), ValueError, r"^y: ")
    refuses(lambda: evaluate(m, X32, LABELS, loss="nll"), ValueError, r"^loss: ")
    refuses(lambda: evaluate(m, X32, LABELS, loss="cross_entropy", batch_size=0), ValueError,
            r"^batch_size: ")
    refuses(lambda: evaluate(m, X32, LABELS, loss="cross_entropy", epochs=2), TypeError,
            r"'epochs'")
    refuses(lambda: evaluate("model", X32, LABELS, loss="cross_entropy"), TypeError,
            r"^model: ")
    expected = evaluate(m, X32, LABELS, loss="cross_entropy")
    assert_same(evaluate(m, X32.astype(np.float64), LABELS.astype(np.uint8),
                         loss="cross_entropy"), expected)
    assert_same(evaluate(m, fortran(X32), LABELS.astype(float), loss="cross_entropy"), expected)


# =============================================================================================
# diagnose
# =============================================================================================
DIAGNOSE_REFUSALS = [
    ("unknown training option", dict(learning_rate=0.1), TypeError,
     r"unknown training option 'learning_rate'"),
    ("reserved option", dict(epochs=3), TypeError, r"unknown training option 'epochs'"),
    ("loss unknown", dict(loss="ce"), ValueError, r"^loss: "),
    ("sample_size 0", dict(sample_size=0), ValueError, r"^sample_size: "),
    ("n_batches 0", dict(n_batches=0), ValueError, r"^n_batches: "),
    ("probe_steps < 0", dict(probe_steps=-1), ValueError, r"^probe_steps: "),
    ("probe_steps float", dict(probe_steps=2.0), ValueError, r"^probe_steps: "),
    ("seed str", dict(seed="a"), TypeError, r"^seed: "),
    ("seed < 0", dict(seed=-1), ValueError, r"^seed: "),
    ("batch_size 0", dict(batch_size=0), ValueError, r"^batch_size: "),
    ("lr < 0 (probe run)", dict(lr=-1.0, probe_steps=2), ValueError, r"^lr: "),
    ("X NaN", dict(X=_with(np.nan)), ValueError, r"^X: contains NaN"),
    ("X beyond float32", dict(X=_with(HUGE)), ValueError, r"^X: .*float32 range"),
    ("X zero rows", dict(X=X32[:0], y=LABELS[:0]), ValueError, r"^X: "),
    ("y out of range", dict(y=LABELS + C), ValueError, r"^y: labels must lie"),
    ("y shorter", dict(y=LABELS[:5]), ValueError, r"^y: "),
]


def _diagnose(m, **kw):
    args = dict(X=X32, y=LABELS, loss="cross_entropy", probe_steps=0)
    args.update(kw)
    return diagnose(m, args.pop("X"), args.pop("y"), **args)


@pytest.mark.parametrize("kw,exc,match", [r[1:] for r in DIAGNOSE_REFUSALS],
                         ids=[r[0] for r in DIAGNOSE_REFUSALS])
def test_diagnose_refuses_naming_the_argument(kw, exc, match):
    m = model()
    snap = snapshot(m)
    refuses(lambda: _diagnose(m, **kw), exc, match)
    unchanged(m, snap)


def test_diagnose_accepts_safe_conversions():
    m = model()
    expected = _diagnose(m).to_dict()
    assert _diagnose(m, X=X32.astype(np.float64), y=LABELS.astype(np.int8)).to_dict() == expected
    assert _diagnose(m, X=X32.tolist(), y=LABELS.tolist()).to_dict() == expected
    refuses(lambda: diagnose(None, X32, LABELS, loss="cross_entropy"), TypeError, r"^model: ")


# =============================================================================================
# save / load / export_onnx
# =============================================================================================
def _no_temp_files(directory):
    return [f for f in os.listdir(directory) if f.endswith(".tmp")] == []


def test_save_refuses_naming_the_argument_and_writes_nothing(tmp_path):
    m = model()
    target = tmp_path / "m.npz"
    refuses(lambda: fastmlp.save(None, target), TypeError, r"^model: ")
    refuses(lambda: fastmlp.save(m, 3), TypeError, r"^path: expected a file name")
    refuses(lambda: fastmlp.save(m, None), TypeError, r"^path: ")
    refuses(lambda: fastmlp.save(m, tmp_path), IsADirectoryError,
            r"^path: .* is a directory; pass a file name")
    refuses(lambda: fastmlp.save(m, tmp_path / "missing" / "m.npz"), FileNotFoundError,
            r"^path: directory .*missing' does not exist")
    m.metadata = {"when": object()}
    refuses(lambda: fastmlp.save(m, target), ValueError, r"^model.metadata: ")
    assert os.listdir(tmp_path) == []


def test_save_and_load_accept_str_pathlib_and_bytes_paths(tmp_path):
    m = model()
    for path in [str(tmp_path / "a.npz"), tmp_path / "b.npz", os.fsencode(tmp_path / "c.npz")]:
        fastmlp.save(m, path)
        assert_same(fastmlp.load(path).get_weights(), m.get_weights())
    assert _no_temp_files(tmp_path)


def _write(path, data: bytes):
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_load_refuses_naming_the_path(tmp_path):
    m = model()
    good = tmp_path / "good.npz"
    fastmlp.save(m, good)
    with open(good, "rb") as f:
        raw = f.read()
    np.save(tmp_path / "array.npy", X32)
    cases = [
        (tmp_path / "missing.npz", FileNotFoundError, r"^path: .*no such file"),
        (tmp_path, IsADirectoryError, r"^path: .* is a directory"),
        (None, TypeError, r"^path: expected a file name"),
        (3, TypeError, r"^path: "),
        (_write(tmp_path / "empty.npz", b""), ValueError, r"^path: .* not a fastmlp model"),
        (_write(tmp_path / "text.npz", b"a,b\n1,2\n"), ValueError, r"^path: .* not a fastmlp"),
        (tmp_path / "array.npy", ValueError, r"^path: .* single .npy array"),
        (_write(tmp_path / "cut.npz", raw[:len(raw) // 2]), ValueError, r"^path: "),
    ]
    for path, exc, match in cases:
        refuses(lambda: fastmlp.load(path), exc, match)
        if path is not None and not isinstance(path, int) and os.path.isfile(path):
            refuses(lambda: fastmlp.io.read_header(path), exc, match)


def test_load_refuses_a_header_claiming_huge_layers_before_allocating(tmp_path):
    """A stranger's file whose header claims a 10^9 x 10^9 layer over small arrays: refused by
    the arrays' byte counts, never by a MemoryError or an allocation."""
    good = tmp_path / "good.npz"
    fastmlp.save(model(), good)
    with zipfile.ZipFile(good) as z:
        meta = json.loads(np.load(io.BytesIO(z.read("fastmlp.npy"))).tobytes())
        members = {name: z.read(name) for name in z.namelist()}
    for sizes, match in [([10 ** 9, 10 ** 9, C], r"layers/0/W holds \d+ bytes, fewer than the "
                                                 r"4000000000000000000"),
                         ([D, 7, 10 ** 5], r"layers/1/W holds")]:
        meta["sizes"] = sizes
        buf = io.BytesIO()
        np.save(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
        bad = tmp_path / "bad.npz"
        with zipfile.ZipFile(bad, "w") as z:
            for name, data in members.items():
                z.writestr(name, buf.getvalue() if name == "fastmlp.npy" else data)
        refuses(lambda: fastmlp.load(bad), ValueError, r"^path: .*" + match)


def test_export_onnx_refuses_naming_the_argument(tmp_path):
    pytest.importorskip("onnx")
    m = model()
    target = tmp_path / "m.onnx"
    refuses(lambda: fastmlp.export_onnx(None, target), TypeError, r"^model: ")
    refuses(lambda: fastmlp.export_onnx(m, None), TypeError, r"^path: ")
    refuses(lambda: fastmlp.export_onnx(m, tmp_path), IsADirectoryError, r"^path: ")
    refuses(lambda: fastmlp.export_onnx(m, tmp_path / "no" / "m.onnx"), FileNotFoundError,
            r"^path: directory")
    refuses(lambda: fastmlp.export_onnx(m, target, output="logits"), ValueError, r"^output: ")
    refuses(lambda: fastmlp.export_onnx(m, target, opset=5), ValueError, r"^opset: ")
    refuses(lambda: fastmlp.export_onnx(m, target, opset="13"), ValueError, r"^opset: ")
    refuses(lambda: fastmlp.export_onnx(m, target, opst=13), TypeError, r"'opst'")
    assert os.listdir(tmp_path) == []
    fastmlp.export_onnx(m, os.fsencode(target))  # bytes paths, as save accepts
    assert os.path.getsize(target) > 0


# =============================================================================================
# fastmlp.sklearn (briefly: sklearn's estimator checks in test_sklearn.py cover the rest)
# =============================================================================================
def test_sklearn_estimators_refuse_values_beyond_float32_and_bad_parameters():
    pytest.importorskip("sklearn")
    from fastmlp.sklearn import MLPClassifier, MLPRegressor

    def clf(**kw):
        return MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0, **kw)
    huge = np.full((N, D), HUGE)
    refuses(lambda: clf().fit(huge, LABELS), ValueError, r"^X: the value 1e\+300 .*float32")
    refuses(lambda: MLPRegressor(hidden_layer_sizes=(5,), max_iter=2).fit(
        X32, np.full(N, -HUGE)), ValueError, r"^y: the value -1e\+300 .*float32")
    for kw, match in [(dict(dropout=1.0), r"^dropout: "),
                      (dict(hidden_layer_sizes=(0,)), r"^hidden_layer_sizes: "),
                      (dict(learning_rate_init=0.0), r"^learning_rate_init: "),
                      (dict(solver="newton"), r"^solver: "),
                      (dict(clip_norm=-1.0), r"^clip_norm: "),
                      (dict(init="he"), r"^init: ")]:
        kw = {"hidden_layer_sizes": (5,), "max_iter": 2, **kw}
        refuses(lambda: MLPClassifier(**kw).fit(X32, LABELS), ValueError, match)

    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = clf().fit(X32, LABELS)
        refuses(lambda: fitted.predict(np.full((2, D), HUGE)), ValueError, r"^X: .*float32")
        # float64 X holding float32 values trains and predicts exactly as float32 X
        assert_same(clf().fit(X32.astype(np.float64), LABELS).predict_proba(X32),
                    fitted.predict_proba(X32))


# =============================================================================================
# The command line
# =============================================================================================
def _csv(path, rows, header="a,b,c,t"):
    with open(path, "w") as f:
        f.write(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return str(path)


def _table():
    return [list(x) + [int(c)] for x, c in zip(X32.round(3), LABELS)]


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


CLI_REFUSALS = [
    ("value beyond float32", lambda d: ["train", _csv(d / "big.csv", [[1, "1e300", 0, 0]] +
                                                      _table())], r"column 'b'.*float32 range"),
    ("NaN cell", lambda d: ["train", _csv(d / "nan.csv", [[1, "nan", 0, 0]] + _table())],
     r"column 'b', row 1 \(line 2\).* not finite"),
    ("text cell", lambda d: ["train", _csv(d / "text.csv", [[1, "x", 0, 0]] + _table())],
     r"column 'b'.* non-numeric value 'x'"),
    ("header only", lambda d: ["train", _csv(d / "header.csv", [])], r"no data rows"),
    ("missing file", lambda d: ["train", str(d / "missing.csv")], r"missing.csv: no such file"),
    ("npz X complex", lambda d: ["train", _npz(d / "c.npz", X=X32.astype(complex), y=LABELS)],
     r"X has dtype complex128"),
    ("npz X 3-D", lambda d: ["train", _npz(d / "3d.npz", X=X32[None], y=LABELS)],
     r"X has shape \(1, 17, 3\)"),
    ("npz X beyond float32", lambda d: ["train", _npz(d / "bx.npz", X=_with(HUGE), y=LABELS)],
     r"X\[2, 1\] is 1e\+300"),
    ("npz target beyond float32", lambda d: ["train", _npz(d / "by.npz", X=X32,
                                                           y=X32[:, 0].astype(np.float64) * 1e300),
                                             "--task", "regression"],
     r"target: the value \S+e\+\d+ at index 0 is beyond the float32 range"),
    ("npz lengths", lambda d: ["train", _npz(d / "len.npz", X=X32, y=LABELS[:5])],
     r"y has shape \(5,\)"),
    ("--hidden huge", lambda d: ["train", "digits", "--hidden", "1000000000,1000000000"],
     r"sizes: \[64, 1000000000, 1000000000, 10\] needs"),
    ("--hidden text", lambda d: ["train", "digits", "--hidden", "16,x"], r"--hidden: "),
    ("--epochs 0", lambda d: ["train", "digits", "--epochs", "0"], r"--epochs: "),
    ("--lr nan", lambda d: ["train", "digits", "--lr", "nan"], r"lr: .*finite"),
    ("--dropout 1", lambda d: ["train", "digits", "--dropout", "1"], r"dropout: "),
    ("--activation", lambda d: ["train", "digits", "--activation", "swish"], r"activation: "),
    ("--optimizer", lambda d: ["train", "digits", "--optimizer", "adamax"], r"--optimizer: "),
    ("--validation-split", lambda d: ["train", "digits", "--validation-split", "1"],
     r"--validation-split: "),
    ("--target missing", lambda d: ["train", _csv(d / "t.csv", _table()), "--target", "y"],
     r"target column 'y' is not in the header"),
]


@pytest.mark.parametrize("argv,match", [r[1:] for r in CLI_REFUSALS],
                         ids=[r[0] for r in CLI_REFUSALS])
def test_command_line_exits_2_with_one_line_naming_the_problem(tmp_path, capsys, argv, match):
    args = argv(tmp_path)
    if args[0] == "train":
        args = args + ["--out", str(tmp_path / "m.npz"), "--epochs" if "--epochs" not in args
                       else "--seed", "1", "-q"]
        if args.count("--target") == 0 and args[1].endswith(".csv"):
            args += ["--target", "t"]
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastmlp train: error: "), err
    assert re.search(match, lines[0]), lines[0]
    assert not os.path.exists(tmp_path / "m.npz")


def test_command_line_refuses_a_model_or_options_it_cannot_use(tmp_path, capsys):
    not_model = _csv(tmp_path / "x.csv", _table())
    for argv, match in [
        (["predict", not_model, not_model], r"^fastmlp predict: error: MODEL .* not a fastmlp"),
        (["info", str(tmp_path / "none.npz")], r"^fastmlp info: error: MODEL .* no such file"),
        (["diagnose", "digits", "--probe-steps", "-1"], r"^fastmlp diagnose: error: probe_steps"),
        (["diagnose", "digits", "--hidden", "1000000000,1000000000"],
         r"^fastmlp diagnose: error: sizes: "),
    ]:
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert re.search(match, err.strip()), err
    for argv, match in [(["train", "digits", "--out", "m.npz", "--learning-rate", "1"],
                         r"unrecognized arguments: --learning-rate"),
                        (["train", "digits", "--out", "m.npz", "--epochs", "abc"],
                         r"argument --epochs: invalid int value: 'abc'"),
                        (["train", "digits", "--out", "m.npz", "--task", "guess"],
                         r"argument --task: invalid choice: 'guess'")]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        assert re.search(match, capsys.readouterr().err)
