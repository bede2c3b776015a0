"""fastmlp.train: whole training steps in C++, one call per epoch (or per slice of an epoch when a
progress bar is drawn), never one per layer.

Python does what happens once per epoch: validate the input, shuffle (seeded), evaluate the
learning-rate schedule for every step of the epoch, snapshot the weights, run callbacks. C++
(with the GIL released) does every batch: gather rows, forward, loss, backward, L1/L2, the fused
optimizer step with clipping, max-norm, metrics.
"""
from __future__ import annotations

import hashlib
import math
import numbers
import os
import time
import warnings

import numpy as np

from . import _core
from . import _validate as v
from .callbacks import CallbackList, EarlyStopping, History, ProgressBar, ReduceLROnPlateau
from .checkpoint import callback_states, load_checkpoint, write_training_checkpoint
from .diagnostics import rules
from .diagnostics.monitor import Monitor, sample_rows, warn_finding
from .model import MLP, _positive_int
from .schedules import Constant, FromCallable, as_schedule

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
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name}: expected one of {', '.join(options)}, got {value!r}")
    return value


def targets(model: MLP, y, loss: str, n: int, name: str = "y") -> np.ndarray:
    """y as the engine wants it: int64 labels (n,) for cross_entropy, float32 (n, n_outputs)
    otherwise; checked for length, range and finiteness."""
    if isinstance(y, (list, tuple)):
        y = np.asarray(y)
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(y).__name__}")
    if y.shape[:1] != (n,):
        raise ValueError(f"{name}: expected {n} rows to match X, got shape {y.shape}")
    C = model.n_outputs
    if loss == "cross_entropy":
        if y.dtype.kind == "f":
            if not np.isfinite(y).all() or (y != np.round(y)).any():
                raise TypeError(f"{name}: cross_entropy takes integer class labels, got "
                                f"non-integral {y.dtype} values; pass labels 0..{C - 1}")
        elif y.dtype.kind not in "iu":
            raise TypeError(f"{name}: expected integer class labels, got dtype {y.dtype}")
        if y.ndim != 1:
            raise ValueError(f"{name}: cross_entropy takes a 1-D array of class labels, got "
                             f"shape {y.shape} (one-hot targets: use y.argmax(axis=1))")
        if y.min() < 0 or y.max() >= C:
            raise ValueError(f"{name}: labels must lie in [0, {C}) for a model with {C} "
                             f"outputs, got values in [{y.min()}, {y.max()}]")
        return np.ascontiguousarray(y, dtype=np.int64)
    if y.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected numeric targets, got dtype {y.dtype}")
    src = y.reshape(-1, 1) if (y.ndim == 1 and C == 1) else y
    arr = v.to_float32(src)  # a value beyond float32's range becomes Inf, reported below
    if arr.shape != (n, C):
        raise ValueError(f"{name}: expected shape ({n}, {C}) for a model with {C} outputs, "
                         f"got {y.shape}")
    if not np.isfinite(arr).all():
        raise v.nonfinite_error(name, arr, src)
    if loss == "binary_cross_entropy" and ((arr < 0).any() or (arr > 1).any()):
        raise ValueError(f"{name}: binary_cross_entropy targets must lie in [0, 1]")
    return np.ascontiguousarray(arr)


def _check_output(model: MLP, loss: str) -> None:
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
                   low_open=True),  # 0 would divide 0/0 for an exactly-zero gradient
        weight_decay=v.real(weight_decay, "weight_decay", low=0.0),
        decoupled=optimizer == "adamw",
        clip_value=v.optional_real(clip_value, "clip_value", low=0.0, low_open=True),
        clip_norm=v.optional_real(clip_norm, "clip_norm", low=0.0, low_open=True),
        l1=v.real(l1, "l1", low=0.0), l2=v.real(l2, "l2", low=0.0),
        max_norm=v.optional_real(max_norm, "max_norm", low=0.0, low_open=True))
    if hp["nesterov"] and (kind != "sgd" or hp["momentum"] == 0.0):
        raise ValueError("nesterov: Nesterov momentum needs optimizer='sgd' with momentum > 0 "
                         "(or optimizer='nesterov')")
    return kind, hp


def _scored_per_row(model: MLP, loss: str) -> int:
    """Predictions that accuracy scores per row: one class, or every output of binary targets."""
    return model.n_outputs if loss == "binary_cross_entropy" else 1


class OptimizerState:
    """The optimizer's memory carried from one train() call to the next: pass the same object
    as ``train(..., optimizer_state=state)`` to every call, and each continues where the last
    stopped (momentum, Adam's moments and bias correction, the schedule's step and the dropout
    masks' step) instead of starting fresh. scikit-learn's partial_fit keeps its optimizer this
    way. A new OptimizerState() is empty; train() fills it.

    Attributes: optimizer (name of the optimizer it belongs to, None while empty), state0 and
    state1 (flat float32 buffers laid out like the model's parameters: momentum / squared-
    gradient averages / Adam's first and second moments), step (updates made so far).
    """

    def __init__(self):
        self.optimizer = None
        self.state0 = self.state1 = None
        self.step = 0

    def __repr__(self) -> str:
        return f"OptimizerState(optimizer={self.optimizer!r}, step={self.step})"

    def _buffers(self, optimizer: str, n_par: int):
        """(state0, state1, step): this state's, or fresh zeros for an empty one."""
        if self.optimizer is None:
            self.optimizer = optimizer
            self.state0 = np.zeros(n_par, np.float32)
            self.state1 = np.zeros(n_par, np.float32)
            self.step = 0
        elif self.optimizer != optimizer:
            raise ValueError(f"optimizer_state: holds the state of optimizer "
                             f"{self.optimizer!r}, not {optimizer!r}; pass a new "
                             f"fastmlp.OptimizerState() to start afresh")
        elif self.state0 is None or self.state0.shape != (n_par,):
            raise ValueError("optimizer_state: belongs to a model with a different number of "
                             "parameters; pass a new fastmlp.OptimizerState()")
        return self.state0, self.state1, self.step


def _sample_weight(sample_weight, n: int):
    """None, or the weights as a float32 (n,) array, checked: finite, >= 0, not all zero."""
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"sample_weight: expected an array of {n} numbers ({e})") from None
    if w.dtype == object or not (np.issubdtype(w.dtype, np.number) or w.dtype == np.bool_) \
            or np.iscomplexobj(w):
        raise TypeError(f"sample_weight: expected real numbers, got dtype {w.dtype}")
    if w.shape != (n,):
        raise ValueError(f"sample_weight: expected shape ({n},) (one weight per row of X), "
                         f"got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight: expected finite values >= 0")
    w32 = v.to_float32(w)
    if not np.isfinite(w32).all():
        raise v.nonfinite_error("sample_weight", w32, w)
    w = w32
    if n and not w.any():
        raise ValueError("sample_weight: every weight is 0; nothing would be learned")
    return np.ascontiguousarray(w)


def _split_validation(X, y, validation_data, validation_split):
    if validation_data is not None and validation_split:
        raise ValueError("validation_data and validation_split: pass one or the other")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data: expected a pair (X_val, y_val)")
        return X, y, validation_data[0], validation_data[1]
    split = v.real(validation_split, "validation_split", low=0.0, high=1.0, high_open=True)
    if split == 0.0:
        return X, y, None, None
    # Keras: the last fraction of the rows, taken before any shuffling.
    n_val = int(math.floor(len(X) * split))
    if n_val < 1 or n_val >= len(X):
        raise ValueError(f"validation_split: {split} of {len(X)} rows leaves an empty "
                         f"training or validation set")
    return X[:-n_val], y[:-n_val], X[-n_val:], y[-n_val:]


def train(model: MLP, X, y, *, loss: str, optimizer: str = "adam", lr=1e-3,
          batch_size: int = 32, epochs: int = 10, momentum=None, nesterov: bool = False,
          rho: float = 0.9, beta1: float = 0.9, beta2: float = 0.999, eps=None,
          weight_decay: float = 0.0, clip_value=None, clip_norm=None, l1: float = 0.0,
          l2: float = 0.0, max_norm=None, validation_data=None, validation_split: float = 0.0,
          early_stopping=False, patience: int = 5, min_delta: float = 0.0,
          restore_best_weights: bool = True, callbacks=None, verbose: int = 1, seed=None,
          shuffle: bool = True, cache_frozen: bool = False, monitor=None,
          sample_weight=None, optimizer_state=None, on_nonfinite: str = "stop",
          checkpoint=None, checkpoint_every: int = 1, resume=None) -> History:
    """Trains model in place and returns a History (per-epoch loss, val_loss, accuracy,
    val_accuracy, lr, grad_norm, time).

    loss: "cross_entropy" (integer labels; softmax fused), "binary_cross_entropy" (targets in
        [0, 1]; sigmoid fused), "mse".
    optimizer: "sgd" (momentum, nesterov), "momentum", "nesterov", "adagrad", "rmsprop" (rho),
        "adam" (beta1, beta2), "adamw" (decoupled weight_decay); PyTorch's update formulas and
        default eps. A fresh optimizer state is made for every call.
    lr: a float, or a schedule: any callable of the global step (0-based count of updates in
        this call) such as fastmlp.schedules.ExponentialDecay.
    clip_value, clip_norm: gradient clipping by value, then by global norm, fused into the
        update. l1, l2: penalties l1*sum|W| + l2*sum W^2 on trainable layers' weights (Keras
        convention; included in the reported loss). max_norm: after each update, each unit's
        incoming weight vector is rescaled to L2 norm <= max_norm.
    validation_data=(X_val, y_val) or validation_split (the last fraction of rows, Keras).
    early_stopping: True, or an EarlyStopping callback; patience, min_delta and
        restore_best_weights configure the default one (monitoring val_loss, or loss without
        validation data). The best epoch's weights are restored at the end by default.
    callbacks: fastmlp.callbacks.Callback objects (on_epoch_end may stop training).
    verbose: 1 draws a progress line per epoch on stderr, 0 is quiet.
    seed: seeds shuffling and dropout; with the model's seed, the same seed gives bitwise-
        identical weights whatever the thread count.
    cache_frozen: compute the outputs of the leading frozen layers once, then train the rest on
        them; results are identical to training without the cache.

    sample_weight: None, or (n,) finite weights >= 0, one per row of X (float64 and ints are
        converted). Each batch's loss is sum(w_i * loss_i) / sum(w_i), scikit-learn's MLP
        convention: a weight of 2 counts a row twice within its batch, a weight of 0 removes it
        (a batch whose weights are all 0 makes a zero-gradient step). With validation_split the
        held-out rows' weights are dropped: validation metrics are unweighted. Accuracy is
        always the unweighted fraction of rows.

    optimizer_state: a fastmlp.OptimizerState to continue from and update in place (see its
        docstring); None (the default) starts a fresh optimizer that is dropped afterwards.

    monitor: record per-layer gradient, weight, update and activation statistics after the
        first step and every `monitor` steps into ``history.monitor`` (record format:
        fastmlp.diagnostics.stats; fastmlp.plot draws them). A gradient-health finding (dead ReLUs,
        vanishing or exploding gradients, saturation, NaN) is reported the first time its kind
        appears: to callbacks' ``on_finding(finding, step)`` and, with verbose > 0, as a
        fastmlp.DiagnosticWarning; all are kept in ``history.findings`` as (step, finding).
        None (the default) records nothing and costs nothing.

    on_nonfinite: what a step whose loss or gradient is NaN/Inf does. The step is always
        rejected before it changes anything (weights, optimizer state, batch-norm running
        statistics; the guard costs one read of the gradients per step when clip_norm is off,
        nothing when it is on). "stop" (the default) ends training there, with the weights
        of the last good step, bit for bit; "skip" drops the batch and goes on (the step
        counter still advances), and stops only when every batch of an epoch was dropped.
        A step that overflowed float32 although its loss and gradient were finite (an lr far
        too large; an extreme input row through batch norm's statistics) is found afterwards
        and undone exactly by replaying the epoch from a copy taken at its start.
        Either way a RuntimeWarning names the step, the cause and what to try, and the History
        records it: ``history.nonfinite`` lists the events (dicts with step, epoch, batch:
        0-based; cause: "loss", "gradient" or "overflow"; action: "stopped" or "skipped"; the
        first 1000 are kept), ``history.skipped_batches`` counts the skipped batches and
        ``history.stopped_reason`` starts with "diverged" when training stopped. Weights that
        hold NaN/Inf before training stop it at once, with the same warning.
        With early stopping that restores its best weights, those replace the last good ones.

    checkpoint: a file path; after every `checkpoint_every` epochs (default 1), after the last
        epoch and when a callback stops training, the model, optimizer state and step,
        random state, epoch, History and early-stopping / ReduceLROnPlateau state are written
        there atomically (fastmlp.checkpoint describes the file; a crash leaves the previous
        or the new checkpoint, never a torn one). Not written when training diverges.
    resume: a checkpoint path (or True: the `checkpoint` file when it exists, else a fresh
        start) to continue from: the model's weights are replaced by the checkpoint's and
        training goes on from its epoch to `epochs`, ending bitwise identical to a run that
        was never interrupted. Pass the same model architecture, data and options: the
        options that decide the arithmetic and a SHA-256 of the data are checked (ValueError
        naming the difference); a learning-rate function and custom callbacks cannot be
        checked, and custom callbacks' own state is not restored.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model: expected a fastmlp.MLP, got {type(model).__name__}")
    seed = v.seed(seed)
    loss = _choice(loss, "loss", LOSSES)
    optimizer = _choice(optimizer, "optimizer", OPTIMIZERS)
    kind, hp = _hyper(optimizer, momentum, nesterov, rho, beta1, beta2, eps, weight_decay,
                      clip_value, clip_norm, l1, l2, max_norm)
    _check_output(model, loss)
    batch_size = _positive_int(batch_size, "batch_size")
    epochs = _positive_int(epochs, "epochs")
    if verbose not in (0, 1, 2, True, False):
        raise ValueError(f"verbose: expected 0, 1 or 2, got {verbose!r}")
    schedule = as_schedule(lr)
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle: expected True or False, got {shuffle!r}")
    on_nonfinite = _choice(on_nonfinite, "on_nonfinite", ON_NONFINITE)
    checkpoint, checkpoint_every, resume = _checkpoint_options(checkpoint, checkpoint_every,
                                                               resume)

    X = model._input(X, "X")
    if isinstance(y, (list, tuple)):
        y = np.asarray(y)
    if not isinstance(y, np.ndarray) or len(y) != len(X):
        raise ValueError(f"y: expected {len(X)} rows to match X, got "
                         f"{len(y) if hasattr(y, '__len__') else type(y).__name__}")
    sw = _sample_weight(sample_weight, len(X))
    X, y, Xv, yv = _split_validation(X, y, validation_data, validation_split)
    if sw is not None:
        sw = np.ascontiguousarray(sw[:len(X)])
    yt = targets(model, y, loss, len(X))
    if Xv is not None:
        if validation_data is not None:  # rows split off X are validated and scaled already
            Xv = model._input(Xv, "validation_data[0]")
        yv = targets(model, yv, loss, len(Xv), "validation_data[1]")

    lo = next((i for i, l in enumerate(model.layers) if l.trainable), None)
    if lo is None:
        raise ValueError("model: every layer is frozen (trainable=False); nothing to train")
    uses_batch_stats = any(l.batchnorm and l.trainable for l in model.layers)
    if uses_batch_stats and min(batch_size, len(X)) < 2:
        raise ValueError("batch_size: batch normalisation needs batches of at least 2 rows")
    if not isinstance(cache_frozen, (bool, np.bool_)):
        raise TypeError(f"cache_frozen: expected True or False, got {cache_frozen!r}")
    if cache_frozen and lo == 0:
        raise ValueError("cache_frozen: the first layer is trainable, so there is nothing to "
                         "cache; freeze leading layers (layer.trainable = False) first")

    # Early stopping and user callbacks.
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks: expected a list of fastmlp.callbacks.Callback, got "
                        f"{type(callbacks).__name__}")
    cbs = list(callbacks or [])
    if early_stopping is True or (isinstance(early_stopping, numbers.Integral)
                                  and not isinstance(early_stopping, bool) and early_stopping):
        if early_stopping is not True:
            patience = int(early_stopping)
        cbs.append(EarlyStopping(monitor="val_loss" if Xv is not None else "loss",
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

    if monitor is not None:
        monitor = _positive_int(monitor, "monitor")
    if optimizer_state is not None and not isinstance(optimizer_state, OptimizerState):
        raise TypeError(f"optimizer_state: expected a fastmlp.OptimizerState, got "
                        f"{type(optimizer_state).__name__}")

    # The engine: cached inputs for the frozen prefix, then the trainable part.
    n_par = model._params.size
    grads = np.zeros(n_par, np.float32)
    if optimizer_state is None:
        state0, state1, step = np.zeros(n_par, np.float32), np.zeros(n_par, np.float32), 0
    else:
        state0, state1, step = optimizer_state._buffers(optimizer, n_par)
    rng = np.random.default_rng(seed)
    dropout_seed = int(rng.integers(0, 2 ** 63))
    n = len(X)
    n_used = n
    if uses_batch_stats and n % batch_size == 1:
        n_used = n - 1  # a last batch of one row has no batch statistics: leave it out
    n_batches = -(-n_used // batch_size)
    params = dict(epochs=epochs, steps=n_batches, batch_size=batch_size, loss=loss,
                  optimizer=optimizer, samples=n, on_nonfinite=on_nonfinite)
    history = History()
    history.params = params
    history.stopped_reason = None
    events = _NonFiniteEvents(history)

    settings = start_epoch = None
    finished = False
    if checkpoint is not None or resume is not None:
        settings = _settings(loss, optimizer, hp, batch_size, shuffle, cache_frozen,
                             on_nonfinite, schedule, (X, yt, sw, Xv, yv))
    if resume is not None:
        saved = load_checkpoint(resume)
        saved.check_model(model)
        saved.check_settings(settings)
        saved.load_into(model)
        state0[...] = saved.array("optimizer/state0", (n_par,))
        state1[...] = saved.array("optimizer/state1", (n_par,))
        step, dropout_seed, start_epoch, finished = _resume_progress(saved, rng, history)
        if optimizer_state is not None:
            optimizer_state.step = step
    fault_at_start = not all(np.isfinite(b).all()
                             for b in (model._params, model._stats, state0, state1))

    start = lo if cache_frozen else 0
    X_raw = X
    fused = loss in ("cross_entropy", "binary_cross_entropy")
    if start:
        prefix = model._network(0, start)
        X = prefix.predict(X, 1024, False)
        if Xv is not None:
            Xv = prefix.predict(Xv, 1024, False)
    net = model._network(start, None, fused)
    engine = _core.Trainer(net, loss, kind, hp, batch_size, grads, state0, state1)

    callback_list = CallbackList(cbs, model, params)
    watch = None
    if monitor is not None:
        def deliver(finding, at_step):
            callback_list.on_finding(finding, at_step)
            if verbose:
                warn_finding(finding, at_step)
        # Its own generator: drawing from `rng` would change the shuffles of a monitored run.
        sample = sample_rows(X_raw, np.random.default_rng(0))
        watch = Monitor(model, loss, monitor, sample, grads, start, history, deliver)
    plateau = [c for c in cbs if isinstance(c, ReduceLROnPlateau)]
    classify = loss in ("cross_entropy", "binary_cross_entropy")
    acc_den = n_used * _scored_per_row(model, loss)
    callback_list.on_train_begin()
    if resume is not None:
        saved.restore_callbacks(cbs)
    if fault_at_start:
        finished = True
        history.stopped_reason = ("diverged before the first step: the model's weights or "
                                  "statistics, or optimizer_state, already hold NaN/Inf")
        warnings.warn(f"fastmlp.train: {history.stopped_reason}; nothing was trained. Start "
                      f"from finite weights (a new fastmlp.MLP, or fastmlp.load of a good "
                      f"file).", RuntimeWarning, stacklevel=2)
    for epoch in range(start_epoch or 0, 0 if finished else epochs):
        t0 = time.perf_counter()
        callback_list.on_epoch_begin(epoch)
        order = rng.permutation(n) if shuffle else np.arange(n)
        order = np.ascontiguousarray(order[:n_used], dtype=np.int64)
        scale = math.prod(c.scale for c in plateau) if plateau else 1.0
        if isinstance(schedule, Constant):  # no per-step Python call for the common case
            lrs = np.full(n_batches, schedule.lr * scale)
        else:
            lrs = np.array([schedule(step + k) for k in range(n_batches)], np.float64) * scale
        run = _Epoch(engine, (X, yt, sw), order, lrs, step, dropout_seed,
                     on_nonfinite == "skip", (model._params, model._stats, state0, state1))
        due = set() if watch is None else watch.due_in(step, n_batches)
        for b0, b1 in _slices(n_batches, progress is not None, due):
            watched = b1 in due
            before = model._params.copy() if watched else None
            loss_sum, rows = run.batches(b0, b1)
            if run.fault is not None:
                break
            if watch is not None:
                watch.add_loss(loss_sum, rows)
                if watched:
                    watch.record(step + b1, epoch, before)
            if progress is not None and run.total["rows"]:
                progress.update(b1, n_batches,
                                {"loss": run.total["loss_sum"] / run.total["rows"]})
        total = run.total
        if run.fault is not None or not total["rows"]:
            done = run.fault[0] if run.fault is not None else n_batches
            if optimizer_state is not None:
                optimizer_state.step = step + done
            if watch is not None:
                watch.deliver(rules.nonfinite([], math.nan, True)[0], step + done + 1)
            history.stopped_reason, message = _stop_message(run, epoch, step, n_batches, hp,
                                                            model)
            events.add(epoch, step, run.events)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            break
        events.add(epoch, step, run.events)
        step += n_batches
        if optimizer_state is not None:
            optimizer_state.step = step
        logs = {"loss": total["loss_sum"] / total["rows"]}
        if classify:
            logs["accuracy"] = total["correct"] / acc_den
        if Xv is not None:
            ev = engine.evaluate(Xv, yv, 1024)
            logs["val_loss"] = ev["loss_sum"] / ev["rows"]
            if classify:
                logs["val_accuracy"] = ev["correct"] / (ev["rows"] * _scored_per_row(model, loss))
        logs["lr"] = float(lrs[-1]) if n_batches else float(schedule(step))
        logs["grad_norm"] = total["grad_norm_sum"] / max(total["steps"], 1)
        logs["time"] = time.perf_counter() - t0
        history.epoch.append(epoch)
        for key, value in logs.items():
            history.history.setdefault(key, []).append(value)
        stop = callback_list.on_epoch_end(epoch, logs)
        if checkpoint is not None and (stop or (epoch + 1) % checkpoint_every == 0
                                       or epoch + 1 == epochs):
            _write_checkpoint(checkpoint, model, state0, state1, epoch + 1, step, bool(stop),
                              rng, dropout_seed, optimizer, settings, history, cbs)
        if stop:
            break
    if history.skipped_batches and not (history.stopped_reason or "").startswith("diverged"):
        warnings.warn(_skip_message(history, hp, model), RuntimeWarning, stacklevel=2)
    callback_list.on_train_end()
    return history


# ---- NaN/Inf in a step ---------------------------------------------------------------------

ON_NONFINITE = ("stop", "skip")
# history.nonfinite keeps the first this many events (history.skipped_batches counts them all):
# a run that skips most batches must not grow a record per step.
MAX_NONFINITE_EVENTS = 1000
_CAUSES = {"loss": "the loss became NaN/Inf in the forward pass",
           "gradient": "the gradient became NaN/Inf in the backward pass",
           "overflow": "the step overflowed float32: its loss and gradient were finite, but "
                       "the weights, optimizer state or batch-norm running statistics it "
                       "wrote became NaN/Inf"}


class _Epoch:
    """One epoch's batches through the engine, with train()'s NaN/Inf handling.

    The engine rejects a step whose loss or gradient is NaN/Inf before writing anything
    (weights, optimizer state, batch-norm statistics), then stops there or, with skip, drops
    the batch and goes on. A step that overflowed float32 with a finite loss and gradient is
    only seen afterwards (the engine checks its buffers once per call); it is then found
    exactly by replaying from the last known-good copy (the epoch's start, or the state just
    before the previous overflowing step) one step at a time: every step is deterministic, so
    the replay retraces the same weights, and the state just before the bad step is kept.

    total: sums of the accepted batches (loss_sum, correct, grad_norm_sum, rows, steps);
    events: (batch, cause, action) of this epoch; fault: (batch, cause) that ended the epoch,
    or None; fallback: None, or the batch whose starting state was put back because a replay
    did not reproduce the overflow (it cannot, short of a non-deterministic kernel).
    """

    def __init__(self, engine, data, order, lrs, step, dropout_seed, skip, buffers):
        self.engine, self.data, self.order, self.lrs = engine, data, order, lrs
        self.step, self.dropout_seed, self.skip, self.buffers = step, dropout_seed, skip, buffers
        self.total = _zero_total()
        self.events = []
        self.fault = None
        self.fallback = None
        self._anchor(0)

    def _anchor(self, batch: int) -> None:
        """Remembers the current buffers, totals and events as the known-good state before
        `batch`: replays start there (so a run of overflowing steps costs one replay each, not one
        from the epoch's start each)."""
        self.anchor = (batch, _copies(self.buffers), dict(self.total), list(self.events))

    def _run(self, b0: int, b1: int) -> dict:
        X, yt, sw = self.data
        return self.engine.run(X, yt, self.order, b0, b1, self.lrs[b0:b1], self.step + b0,
                               self.dropout_seed, sw, self.skip)

    def _add(self, log: dict) -> None:
        for key in self.total:
            self.total[key] += log[key]
        self.events += [(k, cause, "skipped") for k, cause in log["skipped"]]

    def batches(self, b0: int, b1: int) -> tuple[float, int]:
        """Trains batches [b0, b1); returns their (loss_sum, rows). Sets fault to stop."""
        loss_sum, rows, pos = 0.0, 0, b0
        while pos < b1:
            log = self._run(pos, b1)
            self._add(log)
            loss_sum, rows = loss_sum + log["loss_sum"], rows + log["rows"]
            if log["fault"] is None:
                break
            if log["fault"] != "state":
                self.fault = (log["fault_batch"], log["fault"])
                break
            bad = self._replay(log["fault_batch"])
            if bad is None:
                self.fallback = self.anchor[0]
                self._restore_anchor()
                self.fault = (log["fault_batch"], "overflow")
            elif not self.skip:
                self.fault = (bad, "overflow")
            else:
                self.events.append((bad, "overflow", "skipped"))
                self._anchor(bad + 1)
                pos = bad + 1
                continue
            break
        return loss_sum, rows

    def _restore_anchor(self) -> None:
        _, copies, total, events = self.anchor
        _put_back(self.buffers, copies)
        self.total, self.events = dict(total), list(events)

    def _replay(self, upto: int):
        """Redoes batches [anchor, upto] from the anchor, checking after each; returns the
        first whose update left NaN/Inf (the state is then just before it), or None."""
        self._restore_anchor()
        for k in range(self.anchor[0], upto + 1):
            before = _copies(self.buffers)
            log = self._run(k, k + 1)
            if log["fault"] == "state":
                _put_back(self.buffers, before)
                return k
            if log["fault"] is not None:
                return None
            self._add(log)
        return None


def _zero_total() -> dict:
    return dict(loss_sum=0.0, correct=0.0, grad_norm_sum=0.0, rows=0, steps=0)


def _copies(buffers) -> tuple:
    return tuple(b.copy() for b in buffers)


def _put_back(buffers, copies) -> None:
    for live, saved in zip(buffers, copies):
        live[...] = saved


class _NonFiniteEvents:
    """Fills history.nonfinite (dicts: step, epoch, batch, cause, action) and
    history.skipped_batches."""

    def __init__(self, history: History):
        self.history = history
        history.nonfinite = []
        history.skipped_batches = 0

    def add(self, epoch: int, step: int, events) -> None:
        h = self.history
        for batch, cause, action in events:
            h.skipped_batches += action == "skipped"
            if len(h.nonfinite) < MAX_NONFINITE_EVENTS:
                h.nonfinite.append(dict(step=step + batch, epoch=epoch, batch=batch,
                                        cause=cause, action=action))


def _advice(hp: dict, model: MLP) -> str:
    """What to try, from the diagnostics' nonfinite rule, minus what is already on."""
    finding = rules.nonfinite([], math.nan, False)[0]
    tips = [s for s in finding.suggestions
            if not (s.startswith("clip_norm") and hp["clip_norm"] is not None)
            and not (s.startswith("batchnorm") and any(l.batchnorm for l in model.layers))]
    return (f"Try {', '.join(tips)}; fastmlp.diagnose(model, X, y, loss=...) probes the "
            f"network layer by layer for the cause.")


def _stop_message(run: _Epoch, epoch: int, step: int, n_batches: int, hp: dict,
                  model: MLP) -> tuple[str, str]:
    """(history.stopped_reason, warning) for an epoch that ended training; a fault's event is
    added to run.events."""
    if run.fault is None:
        reason = (f"diverged: every batch of epoch {epoch + 1} had a NaN/Inf loss, gradient "
                  f"or update and was skipped")
        kept = "the weights are those after the last good step"
    else:
        batch, cause = run.fault
        run.events.append((batch, cause, "stopped"))
        reason = (f"diverged at step {step + batch} (epoch {epoch + 1}, batch {batch + 1} of "
                  f"{n_batches}): {_CAUSES[cause]}")
        if run.fallback is not None:
            kept = (f"the weights are those before step {step + run.fallback} (a replay to "
                    f"find the overflowing step did not reproduce it)")
        elif step + batch == 0:
            kept = "the weights are unchanged (it was the first step)"
        else:
            kept = (f"the weights are those after step {step + batch - 1}, the last good one "
                    f"(nothing of step {step + batch} was applied)")
    return reason, f"fastmlp.train: {reason}; {kept}. {_advice(hp, model)}"


def _skip_message(history: History, hp: dict, model: MLP) -> str:
    first = history.nonfinite[0]
    return (f"fastmlp.train: skipped {history.skipped_batches} batch(es) whose loss, gradient "
            f"or update was NaN/Inf (on_nonfinite='skip'; the first at step {first['step']}, "
            f"epoch {first['epoch'] + 1}: {_CAUSES[first['cause']]}); history.nonfinite lists "
            f"them. {_advice(hp, model)}")


# ---- checkpoints -----------------------------------------------------------------------------

def _checkpoint_options(checkpoint, checkpoint_every, resume):
    """(checkpoint path or None, checkpoint_every, resume path or None), validated."""
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(f"checkpoint: expected a file path, got "
                            f"{type(checkpoint).__name__}")
        checkpoint = os.fspath(checkpoint)
        folder = os.path.dirname(os.path.abspath(checkpoint))
        if not os.path.isdir(folder):
            raise ValueError(f"checkpoint: folder {folder!r} does not exist; create it first")
    checkpoint_every = _positive_int(checkpoint_every, "checkpoint_every")
    if resume is True:
        if checkpoint is None:
            raise ValueError("resume=True resumes from checkpoint=PATH, but checkpoint is None;"
                             " pass checkpoint=PATH or resume=PATH")
        resume = checkpoint if os.path.exists(checkpoint) else None
    elif resume is False:
        resume = None
    elif resume is not None:
        if not isinstance(resume, (str, os.PathLike)):
            raise TypeError(f"resume: expected a checkpoint path, True or None, got "
                            f"{type(resume).__name__}")
        resume = os.fspath(resume)
        if not os.path.exists(resume):
            raise FileNotFoundError(f"resume: {resume!r}: no such file (resume=True starts "
                                    f"afresh when the checkpoint does not exist yet)")
    return checkpoint, checkpoint_every, resume


def _settings(loss, optimizer, hp, batch_size, shuffle, cache_frozen, on_nonfinite, schedule,
              data) -> dict:
    """What a resumed run must share with the checkpoint's to reproduce it: the options that
    decide the arithmetic and a SHA-256 of the training data (one pass over X and y, ~0.2 s
    per 200 MB)."""
    sha = hashlib.sha256()
    for a in data:
        if a is None:
            sha.update(b"none;")
            continue
        a = np.ascontiguousarray(a)
        sha.update(f"{a.dtype.str}{a.shape};".encode())
        sha.update(memoryview(a).cast("B"))
    described = not isinstance(schedule, FromCallable)  # a user function has no description
    return dict(hp, loss=loss, optimizer=optimizer, batch_size=batch_size, shuffle=bool(shuffle),
                cache_frozen=bool(cache_frozen), on_nonfinite=on_nonfinite,
                lr=repr(schedule) if described else "a callable", data_sha256=sha.hexdigest())


def _resume_progress(saved, rng, history: History):
    """Applies the checkpoint's RNG state and History to this call; returns (step, dropout
    seed, first epoch to run, whether training had already been stopped)."""
    t = saved.training
    where = f"checkpoint {saved.path!r}"
    try:
        rng.bit_generator.state = t["rng"]
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"resume: {where} holds a random state this run's generator cannot "
                         f"take ({type(rng.bit_generator).__name__}: {e}); pass seed= as an "
                         f"integer, as the interrupted run did") from None
    h = t["history"]
    try:
        epochs = [int(e) for e in h["epoch"]]
        logs = {str(k): [float(x) for x in v] for k, v in h["history"].items()}
        nonfinite = [dict(step=int(e["step"]), epoch=int(e["epoch"]), batch=int(e["batch"]),
                          cause=str(e["cause"]), action=str(e["action"]))
                     for e in h["nonfinite"]]
        skipped = int(h["skipped_batches"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{where} has a corrupt history ({e!r})") from None
    if not (0 <= t["dropout_seed"] < 2 ** 64 and 0 <= t["step"] and 0 <= t["epoch"]):
        raise ValueError(f"{where} has a corrupt header (step, epoch or dropout seed)")
    history.epoch, history.history = epochs, logs
    history.nonfinite, history.skipped_batches = nonfinite, skipped
    return t["step"], t["dropout_seed"], t["epoch"], t["stopped"]


def _write_checkpoint(path, model, state0, state1, epoch, step, stopped, rng, dropout_seed,
                      optimizer, settings, history, callbacks) -> None:
    states, arrays = callback_states(callbacks)
    training = dict(
        epoch=epoch, step=step, stopped=stopped, rng=_plain(rng.bit_generator.state),
        dropout_seed=dropout_seed, optimizer=optimizer, settings=settings,
        history=dict(epoch=list(history.epoch),
                     history={k: [float(x) for x in v] for k, v in history.history.items()},
                     nonfinite=history.nonfinite, skipped_batches=history.skipped_batches),
        callbacks=states)
    write_training_checkpoint(path, model, training,
                              {"optimizer/state0": state0, "optimizer/state1": state1,
                               **arrays})


def _plain(state):
    """A bit generator's state as JSON values (MT19937 keeps a uint32 array; NumPy takes the
    list back)."""
    if isinstance(state, dict):
        return {k: _plain(v) for k, v in state.items()}
    if isinstance(state, (np.ndarray, np.generic)):
        return state.tolist()
    return state


def _slices(n_batches: int, progress: bool, monitored: set):
    """The [b0, b1) batch ranges of one epoch's engine calls: the whole epoch, or 1/20 of it
    per call when a progress bar is drawn, and each monitored batch (ending at b1 in
    `monitored`) alone, so the weights can be copied just before it."""
    cuts = {0, n_batches}
    if progress:
        cuts.update(range(0, n_batches, max(1, -(-n_batches // 20))))
    for b1 in monitored:
        cuts.update((b1 - 1, b1))
    cuts = sorted(cuts)
    return list(zip(cuts[:-1], cuts[1:]))


def evaluate(model: MLP, X, y, *, loss: str, batch_size: int = 1024) -> dict:
    """Inference-mode loss (and accuracy for classification losses) of model on (X, y)."""
    if not isinstance(model, MLP):
        raise TypeError(f"model: expected a fastmlp.MLP, got {type(model).__name__}")
    loss = _choice(loss, "loss", LOSSES)
    _check_output(model, loss)
    X = model._input(X, "X")
    yt = targets(model, y, loss, len(X))
    bs = _positive_int(batch_size, "batch_size")
    net = model._network(0, None, loss != "mse")
    z = np.zeros(model._params.size, np.float32)
    kind, hp = _hyper("sgd")  # evaluation never steps: any optimizer will do
    ev = _core.Trainer(net, loss, kind, hp, bs, z, z.copy(), z.copy()).evaluate(X, yt, bs)
    out = {"loss": ev["loss_sum"] / ev["rows"]}
    if loss != "mse":
        out["accuracy"] = ev["correct"] / (ev["rows"] * _scored_per_row(model, loss))
    return out
