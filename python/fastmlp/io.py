"""fastmlp.save / fastmlp.load: a model's architecture and weights in one .npz file that loading
cannot execute (NumPy's loader runs with allow_pickle=False; no pickle anywhere).

Format (version 1), a NumPy .npz archive holding:
  "fastmlp"            uint8 array: UTF-8 JSON {"format": "fastmlp.MLP", "version": 1,
                       "sizes": [...], "output_activation": str, "bn_momentum": float,
                       "bn_eps": float, "layers": [{"activation", "alpha", "batchnorm",
                       "dropout", "init", "trainable"}, ...]}
  "layers/<i>/<name>"  float32 arrays: W (in, out) and b (out,), or for batch-norm layers
                       W, gamma, beta, running_mean, running_var.
The file is written to a temporary name in the same directory, flushed to disk and renamed
over the target, so a crash never leaves a half-written model behind.
"""
from __future__ import annotations

import json
import os

import numpy as np

from ._atomic import write_atomic
from .model import MLP, Layer

FORMAT, VERSION = "fastmlp.MLP", 1


def save(model: MLP, path) -> None:
    """Writes model to path (".npz" is not appended: the name is used as given)."""
    if not isinstance(model, MLP):
        raise TypeError(f"model: expected a fastmlp.MLP, got {type(model).__name__}")
    path = os.fspath(path)
    meta = {"format": FORMAT, "version": VERSION, "sizes": model.sizes,
            "output_activation": model.output_activation, "bn_momentum": model.bn_momentum,
            "bn_eps": model.bn_eps,
            "layers": [{"activation": l.activation, "alpha": l.alpha, "batchnorm": l.batchnorm,
                        "dropout": l.dropout,
                        # a callable initialiser is recorded by name only (it is code)
                        "init": l.init if isinstance(l.init, str) else
                        f"callable:{getattr(l.init, '__name__', 'init')}",
                        "trainable": l.trainable}
                       for l in model.layers]}
    arrays = {"fastmlp": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    for l in model.layers:
        for name in Layer._ARRAYS:
            a = l._view(name)
            if a is not None:
                arrays[f"layers/{l.index}/{name}"] = a
    write_atomic(path, lambda f: np.savez(f, **arrays))


def load(path) -> MLP:
    """Reads a model written by save(); raises ValueError for anything else."""
    path = os.fspath(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"path: {path!r} is not a fastmlp model file ({e})") from None
    with archive:
        if "fastmlp" not in archive.files:
            raise ValueError(f"path: {path!r} is an .npz file but not a fastmlp model")
        try:
            meta = json.loads(archive["fastmlp"].tobytes().decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"path: {path!r} has a corrupt header ({e})") from None
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"path: {path!r} has format {meta.get('format')!r} version "
                             f"{meta.get('version')!r}; this fastmlp reads {FORMAT} {VERSION}")
        layers = meta["layers"]
        hidden = layers[:-1]
        model = MLP(meta["sizes"], activation=[l["activation"] for l in hidden],
                    output_activation=meta["output_activation"],
                    alpha=[l["alpha"] if l["activation"] in ("leaky_relu", "elu") else None
                           for l in hidden],
                    init=["zeros"] * len(layers), batchnorm=[l["batchnorm"] for l in layers],
                    dropout=[l["dropout"] for l in hidden], bn_momentum=meta["bn_momentum"],
                    bn_eps=meta["bn_eps"])
        for layer, desc in zip(model.layers, layers):
            layer.init = desc["init"]
            layer.trainable = bool(desc["trainable"])
            for name in Layer._ARRAYS:
                if layer._view(name) is None:
                    continue
                key = f"layers/{layer.index}/{name}"
                if key not in archive.files:
                    raise ValueError(f"path: {path!r} lacks {key}")
                a = archive[key]
                if a.dtype != np.float32:
                    raise ValueError(f"path: {key} has dtype {a.dtype}, expected float32")
                setattr(layer, name, a)
    return model
