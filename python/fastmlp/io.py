"""fastmlp.save / fastmlp.load: a model's architecture, weights, batch-norm statistics, input
standardisation and metadata in one .npz file that loading cannot execute (NumPy's loader runs
with allow_pickle=False; no pickle anywhere).

Format version 2 (version 1 files, which lack input/* and metadata, still load), a NumPy .npz
archive (a zip of .npy files) holding:
  "fastmlp"            uint8 array: a UTF-8 JSON header (at most MAX_HEADER_BYTES) with
                       {"format": "fastmlp.MLP", "version": 2, "fastmlp_version": str,
                        "sizes": [n_inputs, ..., n_outputs], "output_activation": str,
                        "bn_momentum": float, "bn_eps": float,
                        "layers": [{"activation", "alpha", "batchnorm", "dropout", "init",
                                    "trainable"}, ...],         (one per layer)
                        "input": {"mean": bool, "scale": bool}, (which input/* arrays exist)
                        "metadata": {...}}                      (model.metadata, any JSON)
  "layers/<i>/<name>"  float32 arrays: W (in, out) and b (out,), or for batch-norm layers
                       W, gamma, beta, running_mean, running_var (each (out,)).
  "input/mean", "input/scale"  float32 (n_inputs,), when model.input_mean / input_scale are set.
Every array's dtype and shape are checked against the header before it is used.

The file is written to a temporary name in the same directory, flushed to disk and renamed
over the target, so a crash never leaves a half-written model behind.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import zipfile

import numpy as np

from ._atomic import file_name, writable_target, write_atomic
from .model import MLP, Layer

FORMAT, VERSION = "fastmlp.MLP", 2
READS = (1, 2)  # format versions this fastmlp loads
# A real header is a few KiB (plus metadata); anything far larger is not a fastmlp file.
MAX_HEADER_BYTES = 16 * 1024 * 1024
_LAYER_KEYS = ("activation", "alpha", "batchnorm", "dropout", "init", "trainable")


def _writable_path(path) -> str:
    return writable_target(path, "model.npz")


def _readable_path(path) -> str:
    path = file_name(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path: {path!r}: no such file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"path: {path!r} is a directory, not a model file")
    return path


def architecture(model: MLP) -> dict:
    """The model's description in the header's terms, weights excluded (also a checkpoint's
    "model" section): sizes, output_activation, bn_momentum, bn_eps, layers, metadata."""
    return {"sizes": model.sizes, "output_activation": model.output_activation,
            "bn_momentum": model.bn_momentum, "bn_eps": model.bn_eps,
            "layers": [{"activation": l.activation, "alpha": l.alpha, "batchnorm": l.batchnorm,
                        "dropout": l.dropout,
                        # a callable initialiser is recorded by name only (it is code)
                        "init": l.init if isinstance(l.init, str) else
                        f"callable:{getattr(l.init, '__name__', 'init')}",
                        "trainable": l.trainable}
                       for l in model.layers],
            "metadata": model.metadata}


def save(model: MLP, path) -> None:
    """Writes model to path (".npz" is not appended: the name is used as given), atomically.

    Raises TypeError for a non-MLP or a path that is not a file name, ValueError when
    model.metadata is not JSON-serialisable, IsADirectoryError / FileNotFoundError when path is
    a directory or its directory does not exist.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model: expected a fastmlp.MLP, got {type(model).__name__}")
    from . import __version__
    path = _writable_path(path)
    meta = {"format": FORMAT, "version": VERSION, "fastmlp_version": __version__,
            **architecture(model),
            "input": {"mean": model.input_mean is not None,
                      "scale": model.input_scale is not None}}
    try:
        header = json.dumps(meta).encode()
    except (TypeError, ValueError, RecursionError) as e:  # RecursionError: nested too deep
        raise ValueError(f"model.metadata: expected JSON-serialisable values (str, numbers, "
                         f"bools, None, lists, dicts with str keys): {e}") from None
    arrays = {"fastmlp": np.frombuffer(header, dtype=np.uint8)}
    for l in model.layers:
        for name in Layer._ARRAYS:
            a = l._view(name)
            if a is not None:
                arrays[f"layers/{l.index}/{name}"] = a
    if model.input_mean is not None:
        arrays["input/mean"] = model.input_mean
    if model.input_scale is not None:
        arrays["input/scale"] = model.input_scale
    write_atomic(path, lambda f: np.savez(f, **arrays))


def load(path) -> MLP:
    """Reads a model written by save() (format version 1 or 2).

    Raises FileNotFoundError for a missing file, IsADirectoryError for a directory, TypeError
    for a path that is not a file name, and ValueError naming the file and the problem for
    anything else: not an .npz archive, not a fastmlp model, a newer format version, a corrupt
    header, or an array whose dtype or shape disagrees with the header.
    """
    path = _readable_path(path)
    with _open_archive(path) as archive:
        return _read(archive, path)


def read_header(path) -> dict:
    """The JSON header of a model file (format, version, fastmlp_version, sizes, layers,
    input, metadata) without building the model; ValueError as load() for other files."""
    path = _readable_path(path)
    with _open_archive(path) as archive:
        return _header(archive, path)


@contextlib.contextmanager
def _open_archive(path: str):
    """Yields the .npz archive at path (checked by _readable_path) for load() and read_header(),
    and closes the archive and the file on every path; ValueError naming the file when it is
    not an .npz archive, or when reading a member fails (truncated, encrypted, compressed with
    a method zipfile lacks)."""
    # Our own handle, closed on every path (np.load(path) leaks it when parsing fails).
    with open(path, "rb") as f:
        try:
            archive = np.load(f, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"path: {path!r} is not a fastmlp model file ({e})") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(f"path: {path!r} is a single .npy array, not a fastmlp model "
                             f"file")
        with archive:
            try:
                yield archive
            except (zipfile.BadZipFile, EOFError, OSError) as e:  # a truncated member
                raise ValueError(f"path: {path!r} is damaged ({type(e).__name__}: {e})") \
                    from None
            except (RuntimeError, NotImplementedError) as e:  # zipfile's "is encrypted", ...
                raise ValueError(f"path: {path!r} is not a valid fastmlp model file: a member "
                                 f"is encrypted or compressed in a way fastmlp never writes "
                                 f"({e})") from None


def _header(archive, path: str) -> dict:
    if "fastmlp" not in archive.files:
        raise ValueError(f"path: {path!r} is an .npz file but not a fastmlp model")
    if archive.zip.getinfo("fastmlp.npy").file_size > MAX_HEADER_BYTES:
        raise ValueError(f"path: {path!r} has a header over {MAX_HEADER_BYTES} bytes; not a "
                         f"fastmlp model file")
    raw = archive["fastmlp"]
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"header array has dtype {raw.dtype} and shape {raw.shape}")
        meta = json.loads(raw.tobytes().decode())
        if not isinstance(meta, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # JSON nested too deep
        raise ValueError(f"path: {path!r} has a corrupt header ({e})") from None
    return meta


def _read(archive, path: str) -> MLP:
    meta = _header(archive, path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"path: {path!r} holds {meta.get('format')!r}, not a {FORMAT}")
    version = meta.get("version")
    if version not in READS:
        newer = isinstance(version, int) and version > VERSION
        raise ValueError(f"path: {path!r} has format version {version!r}; this fastmlp "
                         f"reads versions {READS[0]}-{READS[-1]}"
                         + ("; upgrade fastmlp to read it" if newer else ""))
    _check_members(archive, meta, path)
    try:
        model = _build(meta)
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"path: {path!r} has a corrupt header (missing or malformed "
                         f"entry {e})") from None
    except ValueError as e:
        raise ValueError(f"path: {path!r} describes an invalid model ({e})") from None
    for layer in model.layers:
        for name in Layer._ARRAYS:
            view = layer._view(name)
            if view is not None:
                view[...] = _array(archive, f"layers/{layer.index}/{name}", view.shape, path)
    if version >= 2:
        wanted = meta.get("input") or {}
        if not isinstance(wanted, dict) or not all(
                type(wanted.get(k, False)) is bool for k in ("mean", "scale")):
            raise ValueError(f"path: {path!r} has a corrupt header (input: {wanted!r})")
        if wanted.get("mean"):
            model.input_mean = _array(archive, "input/mean", (model.n_inputs,), path)
        if wanted.get("scale"):
            model.input_scale = _array(archive, "input/scale", (model.n_inputs,), path)
        metadata = meta.get("metadata", {})
        if not isinstance(metadata, dict):
            raise ValueError(f"path: {path!r} has metadata that is not a JSON object")
        model.metadata = metadata
    return model


def _build(meta: dict) -> MLP:
    """The model the header describes, with zero weights (the arrays are read next)."""
    layers = meta["layers"]
    sizes = meta["sizes"]
    if not isinstance(layers, list) or len(layers) != len(sizes) - 1:
        raise ValueError(f"{len(sizes) - 1} layers expected from sizes, header lists "
                         f"{len(layers) if isinstance(layers, list) else layers!r}")
    for l in layers:
        missing = [k for k in _LAYER_KEYS if k not in l]
        if missing:
            raise KeyError(", ".join(missing))
    hidden = layers[:-1]
    model = MLP(sizes, activation=[l["activation"] for l in hidden],
                output_activation=meta["output_activation"],
                alpha=[l["alpha"] if l["activation"] in ("leaky_relu", "elu") else None
                       for l in hidden],
                init=["zeros"] * len(layers), batchnorm=[l["batchnorm"] for l in layers],
                dropout=[l["dropout"] for l in hidden], bn_momentum=meta["bn_momentum"],
                bn_eps=meta["bn_eps"])
    for layer, desc in zip(model.layers, layers):
        layer.init = desc["init"]
        if type(desc["trainable"]) is not bool:  # bool("no") is True: only JSON true / false
            raise TypeError(f"layers[{layer.index}].trainable = {desc['trainable']!r}, "
                            f"expected true or false")
        layer.trainable = desc["trainable"]
    return model


def _check_members(archive, meta: dict, path: str) -> None:
    """Every layer array the header describes is present with at least the bytes its shape
    needs, checked before the model is built: a header that claims huge layers over small
    arrays is refused without allocating them. A malformed header is left to _build."""
    sizes, layers = meta.get("sizes"), meta.get("layers")
    if not isinstance(sizes, list) or not isinstance(layers, list) or not all(
            type(s) is int and s >= 1 for s in sizes):
        return
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        desc = layers[i] if i < len(layers) else None
        bn = isinstance(desc, dict) and desc.get("batchnorm") is True
        _check_member(archive, f"layers/{i}/W", (n_in, n_out), path)
        for name in ("gamma", "beta", "running_mean", "running_var") if bn else ("b",):
            _check_member(archive, f"layers/{i}/{name}", (n_out,), path)


def _check_member(archive, key: str, shape: tuple, path: str) -> None:
    """archive holds key with at least the float32 bytes of shape (before anything is read)."""
    if key not in archive.files:
        raise ValueError(f"path: {path!r} lacks the array {key}")
    # The .npy header gives dtype and shape; the byte count must match before data is read.
    info = archive.zip.getinfo(key + ".npy")
    expected = math.prod(shape) * 4
    if info.file_size < expected:
        raise ValueError(f"path: {path!r}: {key} holds {info.file_size} bytes, fewer than the "
                         f"{expected} its shape {shape} needs")


def _array(archive, key: str, shape: tuple, path: str) -> np.ndarray:
    """archive[key], checked to be float32 of the given shape before it is used."""
    _check_member(archive, key, shape, path)
    try:
        a = archive[key]
    except ValueError as e:  # e.g. an object array: allow_pickle=False refuses to unpickle
        raise ValueError(f"path: {path!r}: {key} cannot be read safely ({e})") from None
    if a.dtype != np.float32:
        raise ValueError(f"path: {path!r}: {key} has dtype {a.dtype}, expected float32")
    if a.shape != tuple(shape):
        raise ValueError(f"path: {path!r}: {key} has shape {a.shape}, expected {tuple(shape)}")
    return a
