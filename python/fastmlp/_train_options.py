"""train()'s and evaluate()'s options, validated and translated for the C++ engine: the loss and
optimizer names, the optimizer and regularisation settings, the model's output function for the
loss, and the callback list (early stopping, progress bar).

Each check raises before anything is trained, naming the argument, what it got and what is
accepted.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _validate as v
from .callbacks import EarlyStopping, ProgressBar
from .model import MLP

LOSSES = ("cross_entropy", "binary_cross_entropy", "mse")
# "momentum" and "nesterov" are SGD with momentum (the seeds' MomentumOptimizer and its
# use_nesterov=True); "adamw" is Adam with decoupled weight decay.
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
# PyTorch's default eps per optimizer.
_DEFAULT_EPS = {"adagrad": 1e-10, "rmsprop": 1e-8, "adam": 1e-8}
# Output activations each loss accepts: the softmax / sigmoid is fused into the loss.
_OUTPUTS = {"cross_entropy": ("identity", "softmax"),
            "binary_cross_entropy": ("identity", "sigmoid")}


def _choice(value, name: str, options) -> str:
    """value, when it is one of the strings in options; else ValueError listing them."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name}: expected one of {', '.join(options)}, got {value!r}")
    return value


def _check_output(model: MLP, loss: str) -> None:
    """ValueError when the model's output_activation does not suit loss (the classification
    losses fuse their own softmax / sigmoid)."""
    ok = _OUTPUTS.get(loss)
    out = model.output_activation
    if ok is not None and out not in ok:
        raise ValueError(f"loss={loss!r} fuses its own output function, so the model's "
                         f"output_activation must be one of {', '.join(ok)}, got {out!r}")
    if loss == "mse" and out == "softmax":
        raise ValueError("loss='mse' with output_activation='softmax' is not supported; use "
                         "loss='cross_entropy' for classification")
    if loss == "binary_cross_entropy" and model.n_outputs < 1:
        raise ValueError("binary_cross_entropy needs at least one output")


def _hyper(optimizer, momentum=None, nesterov=False, rho=0.9, beta1=0.9, beta2=0.999, eps=None,
           weight_decay=0.0, clip_value=None, clip_norm=None, l1=0.0, l2=0.0,
           max_norm=None) -> tuple[str, dict]:
    """The engine's optimizer and regularisation settings, validated (train's defaults)."""
    kind = {"momentum": "sgd", "nesterov": "sgd", "adamw": "adam"}.get(optimizer, optimizer)
    if momentum is None:
        momentum = 0.9 if optimizer in ("momentum", "nesterov") else 0.0
    if optimizer == "nesterov":
        nesterov = True
    if not isinstance(nesterov, (bool, np.bool_)):
        raise TypeError(f"nesterov: expected True or False, got {nesterov!r}")
    hp = dict(
        momentum=v.real(momentum, "momentum", low=0.0, high=1.0, high_open=True),
        nesterov=bool(nesterov),
        rho=v.real(rho, "rho", low=0.0, high=1.0, high_open=True),
        beta1=v.real(beta1, "beta1", low=0.0, high=1.0, high_open=True),
        beta2=v.real(beta2, "beta2", low=0.0, high=1.0, high_open=True),
        eps=v.real(_DEFAULT_EPS.get(kind, 1e-8) if eps is None else eps, "eps", low=0.0,
                   low_open=True, f32=True),  # 0 would divide 0/0 for an exactly-zero gradient
        # f32: lr, weight_decay, l1 and l2 reach the kernels as float32, where 1e39 is Inf.
        weight_decay=v.real(weight_decay, "weight_decay", low=0.0, f32=True),
        decoupled=optimizer == "adamw",
        # f32: the engine clips in float32, where 1e-46 is 0 and zeroed every gradient.
        clip_value=v.optional_real(clip_value, "clip_value", low=0.0, low_open=True, f32=True),
        clip_norm=v.optional_real(clip_norm, "clip_norm", low=0.0, low_open=True),
        l1=v.real(l1, "l1", low=0.0, f32=True), l2=v.real(l2, "l2", low=0.0, f32=True),
        max_norm=v.optional_real(max_norm, "max_norm", low=0.0, low_open=True))
    if kind != "sgd" and hp["momentum"] != 0.0:
        # Only the SGD family reads it: silently ignoring it would hide a misconfigured run.
        raise ValueError(f"momentum: only optimizer='sgd', 'momentum' or 'nesterov' uses it, "
                         f"got momentum={hp['momentum']} with optimizer={optimizer!r}; drop it "
                         f"(Adam's counterpart is beta1) or choose an SGD optimizer")
    if hp["nesterov"] and (kind != "sgd" or hp["momentum"] == 0.0):
        raise ValueError("nesterov: Nesterov momentum needs optimizer='sgd' with momentum > 0 "
                         "(or optimizer='nesterov')")
    return kind, hp


def _scored_per_row(model: MLP, loss: str) -> int:
    """Predictions that accuracy scores per row: one class, or every output of binary targets."""
    return model.n_outputs if loss == "binary_cross_entropy" else 1


def _callbacks(callbacks, early_stopping, patience, min_delta, restore_best_weights,
               validated: bool, verbose) -> tuple[list, ProgressBar | None]:
    """(train()'s callbacks in the order they run, the progress bar or None): the user's list,
    then early stopping (True, or an int meaning True with that patience, builds one from
    patience, min_delta and restore_best_weights that monitors val_loss when `validated`, else
    loss; an EarlyStopping is used as given), then a ProgressBar when verbose == 1."""
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks: expected a list of fastmlp.callbacks.Callback, got "
                        f"{type(callbacks).__name__}")
    cbs = list(callbacks or [])
    if early_stopping is True or (isinstance(early_stopping, numbers.Integral)
                                  and not isinstance(early_stopping, bool) and early_stopping):
        if early_stopping is not True:
            patience = int(early_stopping)
        cbs.append(EarlyStopping(monitor="val_loss" if validated else "loss",
                                 patience=patience, min_delta=min_delta,
                                 restore_best_weights=restore_best_weights))
    elif isinstance(early_stopping, EarlyStopping):
        cbs.append(early_stopping)
    elif early_stopping not in (False, None, 0):
        raise TypeError(f"early_stopping: expected True/False or an EarlyStopping, got "
                        f"{early_stopping!r}")
    progress = ProgressBar() if verbose == 1 else None
    if progress is not None:
        cbs.append(progress)
    return cbs, progress
