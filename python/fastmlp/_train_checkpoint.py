"""train()'s checkpoint hooks: the checkpoint= / resume= options checked, the settings a resumed
run must share with the checkpoint's, the RNG state and History restored from a checkpoint, and
the checkpoint written after an epoch. The file format is fastmlp.checkpoint's.
"""
from __future__ import annotations

import hashlib
import os
import tempfile

import numpy as np

from .callbacks import History
from .checkpoint import callback_states, write_training_checkpoint
from .model import _positive_int
from .schedules import FromCallable

# The largest step a run may start from (optimizer_state.step, a checkpoint's step): the
# engine's step counter is a signed 64-bit integer, and 2**62 leaves more steps to go than any
# run can make.
_MAX_STEP = 2 ** 62


def _check_writable(folder: str) -> None:
    """Raises PermissionError now when no file can be made in folder (read-only mount, no
    write permission), instead of after the first epoch's training. A real file is made and
    removed because os.access says yes to root even on a read-only filesystem."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".fastmlp-probe-", dir=folder)
    except OSError as e:
        raise PermissionError(f"checkpoint: cannot write in folder {folder!r} "
                              f"({e.strerror}); pass a path in a writable folder") from None
    os.close(fd)
    os.unlink(probe)


def _checkpoint_options(checkpoint, checkpoint_every, resume):
    """(checkpoint path or None, checkpoint_every, resume path or None), validated."""
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(f"checkpoint: expected a file path, got "
                            f"{type(checkpoint).__name__}")
        checkpoint = os.fspath(checkpoint)
        # Checked here, before training: the first write, an epoch later, would fail naming
        # its temporary file instead.
        if os.path.isdir(checkpoint):
            raise ValueError(f"checkpoint: {checkpoint!r} is a directory; pass a file path "
                             f"such as {os.path.join(checkpoint, 'run.ckpt')!r}")
        folder = os.path.dirname(os.path.abspath(checkpoint))
        if not os.path.isdir(folder):
            raise ValueError(f"checkpoint: folder {folder!r} does not exist; create it first")
        _check_writable(folder)
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
        if os.path.isdir(resume):
            raise ValueError(f"resume: {resume!r} is a directory, not a checkpoint file")
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
    if not (0 <= t["dropout_seed"] < 2 ** 64 and 0 <= t["step"] <= _MAX_STEP and 0 <= t["epoch"]):
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
