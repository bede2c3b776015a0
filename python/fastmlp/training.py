"""fastmlp.train: whole training steps in C++, one call per epoch (or per slice of an epoch when a
progress bar is drawn), never one per layer.

Python does what happens once per epoch: validate the input, shuffle (seeded), evaluate the
learning-rate schedule for every step of the epoch, snapshot the weights, run callbacks. C++
(with the GIL released) does every batch: gather rows, forward, loss, backward, L1/L2, the fused
optimizer step with clipping, max-norm, metrics.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np

from . import _core
from . import _validate as v
from .backends import check_device, require_cuda
from ._divergence import ON_NONFINITE, _Epoch, _NonFiniteEvents, _skip_message, _stop_message
from ._train_checkpoint import (_MAX_STEP, _checkpoint_options, _resume_progress, _settings,
                                _write_checkpoint)
from ._train_data import _sample_weight, _split_validation, as_array, targets
from ._train_options import (LOSSES, OPTIMIZERS, _callbacks, _check_output, _choice, _hyper,
                             _scored_per_row)
from .callbacks import CallbackList, History, ReduceLROnPlateau
from .checkpoint import load_checkpoint
from .diagnostics import rules
from .diagnostics.monitor import Monitor, sample_rows, warn_finding
from .model import MLP, _batch_rows, _positive_int
from .schedules import Constant, as_schedule

# The helpers live in fastmlp._train_options (option checks), _train_data (targets, sample
# weights, validation rows), _divergence (NaN/Inf steps) and _train_checkpoint; the names other
# modules, tests and benchmarks import from fastmlp.training (targets, LOSSES, OPTIMIZERS,
# _hyper, _choice, _check_output) stay importable from here.


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

    def _buffers(self, optimizer: str, model: MLP):
        """(state0, state1, step): this state's, checked (its attributes are public, so they
        may have been reassigned), or fresh zeros for an empty one."""
        n_par = model._params.size
        if self.optimizer is None:
            self.optimizer = optimizer
            self.state0 = np.zeros(n_par, np.float32)
            self.state1 = np.zeros(n_par, np.float32)
            self.step = 0
        elif self.optimizer != optimizer:
            raise ValueError(f"optimizer_state: holds the state of optimizer "
                             f"{self.optimizer!r}, not {optimizer!r}; pass a new "
                             f"fastmlp.OptimizerState() to start afresh")
        step = v.integer(self.step, "optimizer_state.step", what="updates made so far")
        if step > _MAX_STEP:
            raise ValueError(f"optimizer_state.step: expected at most 2**62 (the engine counts "
                             f"steps in 64 bits), got {step}")
        arrays = {}
        for name in ("state0", "state1"):
            a = v.inplace_array(getattr(self, name), f"optimizer_state.{name}")
            if a.shape != (n_par,):
                raise ValueError(f"optimizer_state.{name}: has shape {a.shape}, so it belongs "
                                 f"to a model with a different number of parameters "
                                 f"({n_par}); pass a new fastmlp.OptimizerState()")
            arrays[name] = a
        # Both buffers are updated in place, and the weights too: no two may share memory.
        others = {"optimizer_state.state0": arrays["state0"],
                  "the model's parameters": model._params,
                  "the model's batch-norm statistics": model._stats}
        for name, a in arrays.items():
            for other, b in others.items():
                if other != f"optimizer_state.{name}" and np.may_share_memory(a, b):
                    raise ValueError(f"optimizer_state.{name}: shares memory with {other}; "
                                     f"each buffer is updated in place, so it must be an array "
                                     f"of its own (use .copy())")
        return arrays["state0"], arrays["state1"], step


def train(model: MLP, X, y, *, loss: str, optimizer: str = "adam", lr=1e-3,
          batch_size: int = 32, epochs: int = 10, momentum=None, nesterov: bool = False,
          rho: float = 0.9, beta1: float = 0.9, beta2: float = 0.999, eps=None,
          weight_decay: float = 0.0, clip_value=None, clip_norm=None, l1: float = 0.0,
          l2: float = 0.0, max_norm=None, validation_data=None, validation_split: float = 0.0,
          early_stopping=False, patience: int = 5, min_delta: float = 0.0,
          restore_best_weights: bool = True, callbacks=None, verbose: int = 1, seed=None,
          shuffle: bool = True, cache_frozen: bool = False, monitor=None,
          sample_weight=None, optimizer_state=None, on_nonfinite: str = "stop",
          checkpoint=None, checkpoint_every: int = 1, resume=None,
          device: str = "cpu") -> History:
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

    device: "cpu" (the default) or "cuda": every step on the GPU (fastmlp.backends() must list
        "cuda"), the data copied there once per call, the weights and optimizer state copied
        back after each engine call so callbacks, checkpoints and the NaN/Inf guard see them.
        The GEMMs use fastmlp.cuda's precision (TF32 tensor cores by default: results differ
        from the CPU's by ~1e-3 relative; fastmlp.cuda.set_precision("fp32") for float32).
        Leading frozen layers cached with cache_frozen are computed on the CPU.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model: expected a fastmlp.MLP, got {type(model).__name__}")
    seed = v.seed(seed)
    device = check_device(device)
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
    y = as_array(y, "y")
    if not isinstance(y, np.ndarray) or y.ndim == 0 or len(y) != len(X):
        raise ValueError(f"y: expected {len(X)} rows to match X, got "
                         f"{f'shape {y.shape}' if isinstance(y, np.ndarray) else type(y).__name__}")
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

    cbs, progress = _callbacks(callbacks, early_stopping, patience, min_delta,
                               restore_best_weights, Xv is not None, verbose)
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
        state0, state1, step = optimizer_state._buffers(optimizer, model)
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
    net = model._network(start, None, fused, device)
    backend = _core if device == "cpu" else require_cuda("device='cuda'")
    # The engine's buffers hold one batch: a batch_size beyond the data is one batch of n rows
    # (the same batches), and sizing them by it would allocate for rows that never come.
    engine = backend.Trainer(net, loss, kind, hp, min(batch_size, n), grads, state0, state1)

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
    bs = _batch_rows(batch_size, len(X))
    net = model._network(0, None, loss != "mse")
    z = np.zeros(model._params.size, np.float32)
    kind, hp = _hyper("sgd")  # evaluation never steps: any optimizer will do
    ev = _core.Trainer(net, loss, kind, hp, bs, z, z.copy(), z.copy()).evaluate(X, yt, bs)
    out = {"loss": ev["loss_sum"] / ev["rows"]}
    if loss != "mse":
        out["accuracy"] = ev["correct"] / (ev["rows"] * _scored_per_row(model, loss))
    return out
