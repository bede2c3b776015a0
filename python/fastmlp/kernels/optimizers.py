"""Fused optimizer steps over lists of float32 arrays (PyTorch's torch.optim formulas).

Each call updates every param and its state in place in one pass over memory and returns the
global gradient L2 norm (after value clipping, before norm clipping) as a float. Clipping and
weight decay are applied on the fly to each gradient element as it is read: the caller's `grads`
arrays are never modified. With clip_norm set, one extra read-only pass over the grads computes
the norm first (the coefficient depends on every gradient).

Params and state arrays must be writable, C-contiguous float32 arrays that share no memory (they
are updated in place, so they cannot be copied); grads must be float32 of the same shapes
(non-contiguous grads are copied). The formulas are in fastmlp.reference.optimizers.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _core
from .. import _validate as val

_MAX_STEP = 2 ** 63 - 1

def _array_list(arrays, name: str) -> list:
    if not isinstance(arrays, (list, tuple)):
        raise TypeError(f"{name}: expected a list of float32 numpy arrays, got "
                        f"{type(arrays).__name__}")
    return list(arrays)


def _check_lists(params, grads, states: dict) -> tuple[list, list, dict]:
    """Validates params, grads and the named state lists (None entries skipped); returns them
    with grads made C-contiguous. Rejects lists of different lengths, wrong shapes or dtypes."""
    params = _array_list(params, "params")
    if not params:
        raise ValueError("params: expected a non-empty list of float32 arrays")
    grads = _array_list(grads, "grads")
    lists = {"grads": grads}
    for name, arrays in states.items():
        if arrays is not None:
            lists[name] = _array_list(arrays, name)
    for name, arrays in lists.items():
        if len(arrays) != len(params):
            raise ValueError(f"{name}: expected {len(params)} arrays (one per param), got "
                             f"{len(arrays)}")
    params = [val.inplace_array(p, f"params[{i}]") for i, p in enumerate(params)]
    grads = [val.float_array(g, f"grads[{i}]", allow_empty=True) for i, g in enumerate(grads)]
    for i, (p, g) in enumerate(zip(params, grads)):
        val.check_shape(g, f"grads[{i}]", p.shape, "each gradient has its param's shape")
    out_states = {}
    for name, arrays in states.items():
        if arrays is not None:
            out_states[name] = [val.inplace_array(s, f"{name}[{i}]", p.shape)
                                for i, (p, s) in enumerate(zip(params, lists[name]))]
        else:
            out_states[name] = None
    # Memory shared between an updated array and any other array (the same param twice, a state
    # that is a param, a gradient that is a param) is rejected by _core, which has the addresses
    # at hand; reading them here would cost more than a small model's whole step.
    return params, grads, out_states


def _call(core_step, params, grads, states: dict, *scalars) -> float:
    """Runs core_step(params, grads, *state lists, *scalars), validating the lists first.

    _core checks every array itself (dtype, C order, writability, shapes, lengths, overlaps)
    before touching any memory, and raises TypeError/ValueError otherwise, leaving everything
    unchanged. So the usual call, lists of ready float32 arrays, goes straight to it; only when it
    raises do the Python checks run, to give the friendly message or to copy strided gradients
    and call again. Checking ~20 arrays in Python on every call would cost more than the whole
    step of a small model.
    """
    try:
        return core_step(params, grads, *states.values(), *scalars)
    except (TypeError, ValueError):
        pass
    params, grads, states = _check_lists(params, grads, states)
    return core_step(params, grads, *states.values(), *scalars)


def _flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def _clip_args(clip_value, clip_norm):
    # f32: clipping runs in float32, where a clip_value of 1e-46 is 0 (every gradient zeroed).
    return (val.optional_real(clip_value, "clip_value", low=0.0, low_open=True, f32=True),
            val.optional_real(clip_norm, "clip_norm", low=0.0, low_open=True))


def sgd_step(params, grads, velocities, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
             clip_value=None, clip_norm=None) -> float:
    """SGD with optional (Nesterov) momentum, in place; returns the gradient norm.

    velocities (zero-initialised, one per param) may be None when momentum == 0; nesterov
    requires momentum > 0. grads are not modified.
    """
    return _sgd_step(_core, params, grads, velocities, lr, momentum, nesterov, weight_decay,
                     clip_value, clip_norm)


def _sgd_step(core, params, grads, velocities, lr, momentum, nesterov, weight_decay, clip_value,
              clip_norm):
    """sgd_step on `core` (fastmlp._core, or the CUDA adapter of fastmlp.cuda): the
    argument checks shared by both backends, then the call."""
    lr = val.real(lr, "lr", low=0.0, f32=True)
    momentum = val.real(momentum, "momentum", low=0.0, high=1.0, high_open=True)
    nesterov = _flag(nesterov, "nesterov")
    weight_decay = val.real(weight_decay, "weight_decay", low=0.0, f32=True)
    clip_value, clip_norm = _clip_args(clip_value, clip_norm)
    if nesterov and momentum == 0.0:
        raise ValueError("nesterov: requires momentum > 0, got momentum=0; "
                         "set momentum (e.g. 0.9) or nesterov=False")
    if momentum != 0.0 and velocities is None:
        raise ValueError("velocities: required when momentum > 0; pass zero-initialised "
                         "arrays shaped like params, e.g. [np.zeros_like(p) for p in params]")
    return _call(core.sgd_step, params, grads, {"velocities": velocities}, lr, momentum,
                 nesterov, weight_decay, clip_value, clip_norm)


def adagrad_step(params, grads, accumulators, lr, eps=1e-10, weight_decay=0.0, clip_value=None,
                 clip_norm=None) -> float:
    """Adagrad, in place; accumulators start at zero. Returns the gradient norm; grads are not
    modified."""
    return _adagrad_step(_core, params, grads, accumulators, lr, eps, weight_decay, clip_value,
                         clip_norm)


def _adagrad_step(core, params, grads, accumulators, lr, eps, weight_decay, clip_value, clip_norm):
    """adagrad_step on `core` (fastmlp._core, or the CUDA adapter of fastmlp.cuda): the
    argument checks shared by both backends, then the call."""
    lr = val.real(lr, "lr", low=0.0, f32=True)
    eps = val.real(eps, "eps", low=0.0, low_open=True, f32=True)
    weight_decay = val.real(weight_decay, "weight_decay", low=0.0, f32=True)
    clip_value, clip_norm = _clip_args(clip_value, clip_norm)
    if accumulators is None:
        raise TypeError("accumulators: expected a list of float32 arrays, got None")
    return _call(core.adagrad_step, params, grads, {"accumulators": accumulators}, lr, eps,
                 weight_decay, clip_value, clip_norm)


def rmsprop_step(params, grads, mean_squares, lr, rho=0.9, eps=1e-8, weight_decay=0.0,
                 clip_value=None, clip_norm=None) -> float:
    """RMSprop (PyTorch's alpha is rho), in place; mean_squares start at zero. Returns the
    gradient norm; grads are not modified."""
    return _rmsprop_step(_core, params, grads, mean_squares, lr, rho, eps, weight_decay, clip_value,
                         clip_norm)


def _rmsprop_step(core, params, grads, mean_squares, lr, rho, eps, weight_decay, clip_value,
                  clip_norm):
    """rmsprop_step on `core` (fastmlp._core, or the CUDA adapter of fastmlp.cuda): the
    argument checks shared by both backends, then the call."""
    lr = val.real(lr, "lr", low=0.0, f32=True)
    rho = val.real(rho, "rho", low=0.0, high=1.0, high_open=True)
    eps = val.real(eps, "eps", low=0.0, low_open=True, f32=True)
    weight_decay = val.real(weight_decay, "weight_decay", low=0.0, f32=True)
    clip_value, clip_norm = _clip_args(clip_value, clip_norm)
    if mean_squares is None:
        raise TypeError("mean_squares: expected a list of float32 arrays, got None")
    return _call(core.rmsprop_step, params, grads, {"mean_squares": mean_squares}, lr, rho, eps,
                 weight_decay, clip_value, clip_norm)


def adam_step(params, grads, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, decoupled=False, clip_value=None, clip_norm=None) -> float:
    """Adam (AdamW when decoupled), in place; m and v start at zero and step is the 1-based
    index of this update. Returns the gradient norm; grads are not modified."""
    return _adam_step(_core, params, grads, m, v, step, lr, beta1, beta2, eps, weight_decay,
                      decoupled, clip_value, clip_norm)


def _adam_step(core, params, grads, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled,
               clip_value, clip_norm):
    """adam_step on `core` (fastmlp._core, or the CUDA adapter of fastmlp.cuda): the
    argument checks shared by both backends, then the call."""
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step: expected an integer >= 1 (the 1-based index of this update), "
                        f"got {step!r}")
    if not 1 <= step <= _MAX_STEP:  # _core takes a 64-bit step
        raise ValueError(f"step: expected an integer >= 1 and < 2**63 (the 1-based index of "
                         f"this update), got {step}")
    lr = val.real(lr, "lr", low=0.0, f32=True)
    beta1 = val.real(beta1, "beta1", low=0.0, high=1.0, high_open=True)
    beta2 = val.real(beta2, "beta2", low=0.0, high=1.0, high_open=True)
    eps = val.real(eps, "eps", low=0.0, low_open=True, f32=True)
    weight_decay = val.real(weight_decay, "weight_decay", low=0.0, f32=True)
    decoupled = _flag(decoupled, "decoupled")
    clip_value, clip_norm = _clip_args(clip_value, clip_norm)
    for name, arrays in (("m", m), ("v", v)):
        if arrays is None:
            raise TypeError(f"{name}: expected a list of float32 arrays, got None")
    return _call(core.adam_step, params, grads, {"m": m, "v": v}, int(step), lr, beta1, beta2,
                 eps, weight_decay, decoupled, clip_value, clip_norm)
