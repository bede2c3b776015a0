"""Training checkpoints: what fastmlp.train needs to continue a run exactly, in one file that
loading verifies and cannot execute.

``train(..., checkpoint=PATH)`` writes one; ``train(..., resume=PATH)`` continues from it, and
a run interrupted after epoch k and resumed ends with weights bitwise identical to the run that
was never interrupted. :func:`load_checkpoint` reads one (to inspect it, or to rebuild its model
with :meth:`Checkpoint.model`).

What a checkpoint holds (written after epoch k's callbacks):
  - the model: architecture (as fastmlp.save describes it), parameters, batch-norm running
    statistics, input standardisation and metadata;
  - the optimizer: its name, both state buffers and the global step, which is also the
    learning-rate schedule's position and keys dropout masks and Adam's bias correction;
  - the RNG: the state of train's numpy Generator (shuffling) and the dropout seed;
  - the epoch count, the History so far (per-epoch logs, NaN/Inf events, skipped batches), and
    whether a callback had asked training to stop;
  - the state of EarlyStopping (best value and epoch, patience counter, best weights) and
    ReduceLROnPlateau (scale, best, counters) callbacks;
  - the settings that decide the arithmetic (loss, optimizer and its hyper-parameters,
    batch size, shuffle, the learning-rate schedule's description) and a SHA-256 fingerprint
    of the training data, checked on resume.
Not restored: other callbacks' own state (a custom callback starts afresh), the progress bar,
``monitor`` records from before the checkpoint, and the "time" of each epoch.

File layout (version 1), all integers little-endian:
  MAGIC           the 19 bytes b"fastmlp.checkpoint\\n"
  header length   uint64, at most MAX_HEADER_BYTES
  header          UTF-8 JSON object: {"format": "fastmlp.checkpoint", "version": 1,
                  "fastmlp_version", "model": {...}, "training": {...},
                  "arrays": [{"name": str, "dtype": "<f4", "shape": [int, ...],
                              "nbytes": int}, ...]}
  payload         each array's bytes (C order) back to back, in the order "arrays" lists them
  digest          32 bytes: SHA-256 of everything before it
The digest is checked before the header is parsed, so a truncated, bit-flipped or edited file
raises ValueError; then every array's dtype, shape and byte length are checked against the
header (and the payload's total length against the file) before its bytes are read. No pickle,
no code: JSON and raw float32.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct

import numpy as np

from ._atomic import file_name, write_atomic
from .callbacks import EarlyStopping, ReduceLROnPlateau
from .io import _build, architecture
from .model import MLP

FORMAT, VERSION = "fastmlp.checkpoint", 1
MAGIC = b"fastmlp.checkpoint\n"
# A header is a few KiB plus the History (tens of bytes per epoch); far larger is not ours.
MAX_HEADER_BYTES = 16 * 1024 * 1024
_DIGEST = 32
_PREFIX = len(MAGIC) + 8
_DTYPE = "<f4"  # every array is float32; nothing else is accepted
_MAX_NDIM = 4


# ---- the container: header + raw float32 arrays + SHA-256 ---------------------------------

def write_container(path, header: dict, arrays: dict) -> None:
    """Writes header (JSON-able dict; its "arrays" entry is filled here) and arrays (name ->
    float32 array) to path atomically: a temporary file, flushed and fsynced, renamed over
    path, so a crash leaves the previous file or the new one, never a torn one."""
    arrays = {k: np.ascontiguousarray(a, dtype=_DTYPE) for k, a in arrays.items()}
    header = dict(header, arrays=[{"name": k, "dtype": _DTYPE, "shape": list(a.shape),
                                   "nbytes": a.nbytes} for k, a in arrays.items()])
    text = json.dumps(header).encode()
    if len(text) > MAX_HEADER_BYTES:
        raise ValueError(f"checkpoint: header of {len(text)} bytes exceeds {MAX_HEADER_BYTES}")

    def write(f):
        sha = hashlib.sha256()
        for chunk in (MAGIC, struct.pack("<Q", len(text)), text):
            sha.update(chunk)
            f.write(chunk)
        for a in arrays.values():
            view = memoryview(a).cast("B")
            sha.update(view)
            f.write(view)
        f.write(sha.digest())
    write_atomic(path, write)


def read_container(path) -> tuple[dict, dict]:
    """(header, arrays) of a file written by write_container, verified as the module docstring
    says. FileNotFoundError for a missing file; ValueError naming the file and the problem
    otherwise."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint: {path!r}: no such file")
    with open(path, "rb") as f:
        data = f.read()
    where = f"checkpoint {path!r}"
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            raise ValueError(f"{where} is truncated ({len(data)} bytes)")
        raise ValueError(f"{where} is not a fastmlp checkpoint (it does not start with "
                         f"{MAGIC!r}); fastmlp.save files load with fastmlp.load")
    if len(data) < _PREFIX + _DIGEST:
        raise ValueError(f"{where} is truncated ({len(data)} bytes)")
    (n_header,) = struct.unpack_from("<Q", data, len(MAGIC))
    if n_header > MAX_HEADER_BYTES:
        raise ValueError(f"{where} declares a header of {n_header} bytes, over the "
                         f"{MAX_HEADER_BYTES} limit: damaged or not a fastmlp checkpoint")
    if _PREFIX + n_header + _DIGEST > len(data):
        raise ValueError(f"{where} is truncated: its header alone needs {n_header} bytes")
    body = memoryview(data)[:-_DIGEST]
    if hashlib.sha256(body).digest() != data[-_DIGEST:]:
        raise ValueError(f"{where} fails its SHA-256 checksum: the file is truncated or "
                         f"altered; use an intact copy (or start training afresh)")
    try:
        header = json.loads(bytes(body[_PREFIX:_PREFIX + n_header]).decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # JSON nested too deep
        raise ValueError(f"{where} has a corrupt header ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{where} is not a fastmlp checkpoint (format "
                         f"{header.get('format') if isinstance(header, dict) else header!r})")
    if header.get("version") != VERSION:
        raise ValueError(f"{where} has version {header.get('version')!r}; this fastmlp reads "
                         f"version {VERSION}")
    specs = _array_specs(header.get("arrays"), where)
    payload = body[_PREFIX + n_header:]
    total = sum(nbytes for _, _, nbytes in specs)
    if total != len(payload):
        raise ValueError(f"{where}: its arrays need {total} bytes, the file holds "
                         f"{len(payload)}")
    arrays, offset = {}, 0
    for name, shape, nbytes in specs:
        # Checked above: dtype, shape and nbytes agree and fit in the payload.
        arrays[name] = np.frombuffer(payload, _DTYPE, math.prod(shape), offset) \
            .reshape(shape).copy()
        offset += nbytes
    return header, arrays


def _array_specs(entries, where: str) -> list[tuple[str, tuple, int]]:
    """The header's array list as (name, shape, nbytes), each entry validated."""
    if not isinstance(entries, list):
        raise ValueError(f"{where} has a corrupt header: 'arrays' is not a list")
    specs, names = [], set()
    for i, e in enumerate(entries):
        bad = f"{where} has a corrupt header: arrays[{i}] = {str(e)[:200]}"
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or e["name"] in names:
            raise ValueError(f"{bad} (expected a unique name)")
        if e.get("dtype") != _DTYPE:
            raise ValueError(f"{bad} (dtype must be {_DTYPE!r})")
        shape = e.get("shape")
        if not (isinstance(shape, list) and len(shape) <= _MAX_NDIM and all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
            raise ValueError(f"{bad} (shape must be a list of at most {_MAX_NDIM} integers "
                             f">= 0)")
        nbytes = e.get("nbytes")
        if nbytes != math.prod(shape) * 4 or isinstance(nbytes, bool):
            raise ValueError(f"{bad} (nbytes must be 4 * the product of the shape)")
        names.add(e["name"])
        specs.append((e["name"], tuple(shape), nbytes))
    return specs


# ---- what train() puts in it ----------------------------------------------------------------

def _same_architecture(a: dict, b: dict) -> bool:
    """Equal but for initialisers and metadata, which do not change the arithmetic."""
    strip = lambda d: dict(d, metadata=None, layers=[dict(l, init=None) for l in d["layers"]])
    return strip(a) == strip(b)


def _stateful(callbacks) -> list:
    """The callbacks whose state a checkpoint keeps, in order."""
    return [c for c in callbacks if type(c) in (EarlyStopping, ReduceLROnPlateau)]


def callback_states(callbacks) -> tuple[list, dict]:
    """(JSON-able states, arrays) of the EarlyStopping / ReduceLROnPlateau callbacks."""
    states, arrays = [], {}
    for i, c in enumerate(_stateful(callbacks)):
        if isinstance(c, EarlyStopping):
            best = c.best_weights
            state = {"best": c.best, "best_epoch": c.best_epoch, "wait": c.wait,
                     "stopped_epoch": c.stopped_epoch,
                     "best_weights": None if best is None else len(best)}
            for j, w in enumerate(best or []):
                arrays[f"callbacks/{i}/best_weights/{j}"] = w
        else:
            state = {"scale": c.scale, "best": c.best, "wait": c.wait,
                     "cooldown_counter": c.cooldown_counter}
        states.append({"type": type(c).__name__, "state": state})
    return states, arrays


def write_training_checkpoint(path, model: MLP, training: dict, arrays: dict) -> None:
    """train()'s checkpoint: the model's description and buffers plus training (the JSON-able
    progress, settings, RNG and callback states) and arrays (optimizer state, best weights)."""
    from . import __version__
    model_arrays = {"model/params": model._params, "model/stats": model._stats}
    if model.input_mean is not None:
        model_arrays["model/input_mean"] = model.input_mean
    if model.input_scale is not None:
        model_arrays["model/input_scale"] = model.input_scale
    header = {"format": FORMAT, "version": VERSION, "fastmlp_version": __version__,
              "model": architecture(model), "training": training}
    try:
        write_container(path, header, {**model_arrays, **arrays})
    except (TypeError, ValueError, RecursionError) as e:
        if isinstance(e, ValueError) and str(e).startswith("checkpoint:"):
            raise
        raise ValueError(f"checkpoint: the model's metadata must be JSON-serialisable ({e})") \
            from None


class Checkpoint:
    """A checkpoint read by :func:`load_checkpoint`.

    header: the JSON header (``header["training"]`` holds epoch, step, rng, settings, history,
    callbacks); arrays: name -> float32 array; path: where it was read from.
    """

    def __init__(self, header: dict, arrays: dict, path: str):
        self.header, self.arrays, self.path = header, arrays, path
        self._where = f"checkpoint {path!r}"
        t = header.get("training")
        if not isinstance(t, dict) or not isinstance(header.get("model"), dict):
            raise ValueError(f"{self._where} has a corrupt header (no training or model "
                             f"section)")
        for key, kind in (("epoch", int), ("step", int), ("stopped", bool),
                          ("settings", dict), ("history", dict), ("callbacks", list),
                          ("dropout_seed", int), ("rng", dict), ("optimizer", str)):
            if not isinstance(t.get(key), kind):
                raise ValueError(f"{self._where} has a corrupt header (training.{key} = "
                                 f"{str(t.get(key))[:100]})")
        self.training = t

    @property
    def epoch(self) -> int:
        """Epochs completed when it was written (training resumes at this 0-based epoch)."""
        return self.training["epoch"]

    @property
    def step(self) -> int:
        """Global step (batches trained or skipped) when it was written."""
        return self.training["step"]

    def __repr__(self) -> str:
        return f"Checkpoint({self.path!r}, epoch={self.epoch}, step={self.step})"

    def array(self, name: str, shape: tuple) -> np.ndarray:
        """The float32 array `name` (e.g. "model/params", "optimizer/state0"), checked to have
        `shape`; ValueError naming the file otherwise."""
        a = self.arrays.get(name)
        if a is None or a.shape != tuple(shape):
            raise ValueError(f"{self._where}: array {name} is "
                             f"{'missing' if a is None else f'of shape {a.shape}'}, expected "
                             f"shape {tuple(shape)}")
        return a

    def model(self) -> MLP:
        """A new fastmlp.MLP with the checkpoint's architecture, weights, statistics, input
        standardisation and metadata (the weights after the checkpoint's epoch)."""
        meta = self.header["model"]
        try:
            model = _build(meta)
        except (KeyError, TypeError, IndexError, ValueError) as e:
            raise ValueError(f"{self._where} describes an invalid model ({e})") from None
        model.metadata = meta.get("metadata") if isinstance(meta.get("metadata"), dict) else {}
        for name in ("input_mean", "input_scale"):
            if f"model/{name}" in self.arrays:
                setattr(model, name, self.array(f"model/{name}", (model.n_inputs,)))
        self.load_into(model)
        return model

    def load_into(self, model: MLP) -> None:
        """Copies the checkpoint's parameters and statistics into model, which must pass
        check_model."""
        self.check_model(model)
        model._params[...] = self.array("model/params", model._params.shape)
        model._stats[...] = self.array("model/stats", model._stats.shape)

    def check_model(self, model: MLP) -> None:
        """ValueError unless model has the checkpoint's architecture (sizes, activations,
        batch norm, dropout, trainable flags) and input standardisation."""
        theirs = self.header["model"]
        try:
            same = _same_architecture(architecture(model), theirs)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{self._where} has a corrupt model description") from None
        if not same:
            raise ValueError(f"model: its architecture differs from the one in {self._where} "
                             f"(model: sizes {model.sizes}, checkpoint: sizes "
                             f"{theirs.get('sizes')}; activations, batch norm, dropout and "
                             f"trainable flags must match too); build it with "
                             f"fastmlp.load_checkpoint(path).model()")
        for name in ("input_mean", "input_scale"):
            mine, saved = getattr(model, name), self.arrays.get(f"model/{name}")
            if (mine is None) != (saved is None) or (
                    mine is not None and not np.array_equal(mine, saved)):
                raise ValueError(f"model.{name}: differs from the one in {self._where}; the "
                                 f"run must see its inputs scaled the same way (build the "
                                 f"model with fastmlp.load_checkpoint(path).model())")

    def check_settings(self, settings: dict) -> None:
        """ValueError naming the first setting of this train() call that differs from the
        checkpoint's: continuing with it would not reproduce the uninterrupted run."""
        saved = self.training["settings"]
        for key in sorted(set(saved) | set(settings)):
            a, b = saved.get(key), settings.get(key)
            if a != b and not (_is_nan(a) and _is_nan(b)):
                what = "training data (X, y, sample_weight or validation data)" \
                    if key == "data_sha256" else f"{key}={b!r}"
                raise ValueError(f"resume: {self._where} was written by a run with different "
                                 f"settings: this call has {what}, the checkpoint "
                                 f"{'other data' if key == 'data_sha256' else repr(a)}; pass "
                                 f"the same data and options to continue exactly (or drop "
                                 f"resume= to start afresh)")

    def restore_callbacks(self, callbacks) -> None:
        """Puts the saved EarlyStopping / ReduceLROnPlateau states into this call's callbacks
        (matched by order), after their on_train_begin reset them."""
        saved = self.training["callbacks"]
        mine = _stateful(callbacks)
        if [type(c).__name__ for c in mine] != [s.get("type") for s in saved]:
            raise ValueError(f"resume: {self._where} holds the state of callbacks "
                             f"{[s.get('type') for s in saved]}, this call has "
                             f"{[type(c).__name__ for c in mine]}; pass the same "
                             f"early_stopping and callbacks as the interrupted run")
        for i, (c, s) in enumerate(zip(mine, saved)):
            state = s.get("state")
            try:
                if isinstance(c, EarlyStopping):
                    c.best, c.best_epoch = float(state["best"]), int(state["best_epoch"])
                    c.wait, c.stopped_epoch = int(state["wait"]), int(state["stopped_epoch"])
                    n = state["best_weights"]
                    c.best_weights = None if n is None else [
                        self.arrays[f"callbacks/{i}/best_weights/{j}"].copy() for j in range(n)]
                else:
                    c.scale, c.best = float(state["scale"]), float(state["best"])
                    c.wait = int(state["wait"])
                    c.cooldown_counter = int(state["cooldown_counter"])
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{self._where} has a corrupt state for callback {i} "
                                 f"({type(c).__name__}: {e!r})") from None
            if isinstance(c, EarlyStopping) and c.best_weights is not None:
                shapes = [w.shape for w in c.model.get_weights()]
                if [w.shape for w in c.best_weights] != shapes:
                    raise ValueError(f"{self._where}: EarlyStopping's best weights do not fit "
                                     f"the model")


def _is_nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


def load_checkpoint(path) -> Checkpoint:
    """Reads and verifies a checkpoint written by ``train(..., checkpoint=path)``.

    Raises FileNotFoundError for a missing file and ValueError (naming the file and the
    problem) for one that is not a checkpoint, truncated, altered (SHA-256 mismatch), of
    another version, or whose header and arrays disagree.
    """
    path = file_name(path, "path")
    if os.path.isdir(path):
        raise IsADirectoryError(f"path: {path!r} is a directory, not a checkpoint file")
    header, arrays = read_container(path)
    return Checkpoint(header, arrays, path)
