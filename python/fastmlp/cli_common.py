"""What the fastmlp commands share: the error convention, reading DATA, telling class labels
from a regression target, class labels <-> indices, scores, loading a model file.

Error convention: input a command cannot use raises UsageError (or FileNotFoundError, or one of
fastmlp's ValueError/TypeError argument checks, which name the option and the fix); the command
turns it into exit code 2 and one ``fastmlp <cmd>: error: ...`` line on stderr, no traceback.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from .datasets import DIGITS_FEATURES  # the commands' name for the digits' columns

# What a command's run() catches and reports as unusable input (exit code 2). MemoryError: a
# network too large for this machine (--hidden 100000,100000) is refused by fastmlp.MLP with a
# message naming the sizes; a line saying so beats a traceback.
INPUT_ERRORS = (FileNotFoundError, ValueError, TypeError, MemoryError)
# A 1-D integer target with at most this many distinct values (and fewer distinct values than
# half the rows) is read as class labels. 50 covers the usual classification sets (digits 10,
# CIFAR-10, 20 newsgroups) while an integer regression target (ages, counts) over a few thousand
# rows usually has more distinct values or repeats each one rarely.
MAX_AUTO_CLASSES = 50
DIGITS_TARGET = "digit"
_DATA_HINT = "DATA is 'digits', a .csv file or an .npz file"


class UsageError(ValueError):
    """Input the command cannot use; the message is printed as the error line."""


def fail(prog: str, error) -> int:
    """Prints ``<prog>: error: <message on one line>`` to stderr; returns exit code 2."""
    print(f"{prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
    return 2


# ---- DATA -----------------------------------------------------------------------------------
def read_training_data(data: str, target, *, text_target: bool = False):
    """(X, y, feature names, target names, description) for a command's DATA argument.

    data: 'digits' (the shipped digits, training part), a .csv file (target: its target
        column(s)) or an .npz file (arrays X and y). text_target: see data_files.read_table.
    """
    from .data_files import read_table
    from .datasets import load_digits

    if data == "digits":
        if target is not None:
            raise UsageError("--target: applies to CSV files; 'digits' has its own labels")
        X, y, _, _ = load_digits(seed=0)
        return X, y, list(DIGITS_FEATURES), [DIGITS_TARGET], "digits (shipped, training part)"
    try:
        X, y, names = read_table(data, target, text_target=text_target)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e}; {_DATA_HINT}") from None
    if target is None:
        targets = ["y"]
    elif isinstance(target, str):
        targets = [target] if y.ndim == 1 else [t.strip() for t in target.split(",")]
    else:
        targets = list(target)
    return X, y, names, targets, data


def read_model_inputs(data: str, features, target=None, *, text_target: bool = False):
    """(X, y or None, description) for a saved model: its features picked by name.

    features: the model's feature names (None: every non-target column, by position).
    target: CSV target column(s) to read too, True for an .npz's y or the digits' labels, or
        None for no target. 'digits' gives the held-out test part of the shipped digits (the
        rows ``fastmlp train digits`` did not see).
    """
    from .data_files import read_columns
    from .datasets import load_digits

    if data == "digits":
        if features is not None and list(features) != DIGITS_FEATURES:
            raise UsageError(f"digits: has the 64 pixel features {DIGITS_FEATURES[0]}..."
                             f"{DIGITS_FEATURES[-1]}, but the model was trained on "
                             f"{len(features)} features ({_names(features)})")
        _, _, X, y = load_digits(seed=0)
        return X, (y if target is not None else None), "digits (shipped, test part)"
    if data.lower().endswith(".npz") and target is not None:
        target = True  # an archive's target is its array y, whatever the column was called
    try:
        X, y, _ = read_columns(data, features, target, text_target=text_target)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e}; {_DATA_HINT}") from None
    return X, y, data


def _names(names, limit: int = 8) -> str:
    shown = ", ".join(map(str, names[:limit]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


# ---- targets: class labels or numbers ---------------------------------------------------------
def integral(y: np.ndarray) -> bool:
    """Whether every value of a numeric array is a whole number."""
    if y.dtype.kind in "iub":
        return True
    return y.dtype.kind == "f" and bool(np.isfinite(y).all()) and bool((y == np.round(y)).all())


def label_classes(y: np.ndarray):
    """(distinct values or None, few): the rule that reads a numeric target as class labels.

    distinct values: for a 1-D integer target, else None. few: at most MAX_AUTO_CLASSES of
    them and fewer than half as many as rows, so the values repeat like class labels do.
    """
    classes = np.unique(y) if y.ndim == 1 and integral(y) else None
    few = classes is not None and len(classes) <= MAX_AUTO_CLASSES and len(classes) < len(y) / 2
    return classes, few


def infer_task(y: np.ndarray):
    """("classification" or "regression", reason) for --task auto: text labels and the
    label_classes rule mean classification, anything else regression."""
    if y.dtype.kind == "U":
        return "classification", (f"auto: the target holds text labels "
                                  f"({len(np.unique(y))} distinct)")
    classes, few = label_classes(y)
    if few:
        return "classification", (f"auto: the target holds {len(classes)} distinct integers "
                                  f"in {len(y)} rows; pass --task regression to fit them as "
                                  f"numbers")
    if classes is None:
        what = ("the target has several columns" if y.ndim == 2 else
                "the target is not one column of integers")
    else:
        what = f"{len(classes)} distinct values in {len(y)} rows are too many for class labels"
    return "regression", f"auto: {what}; pass --task classification to choose"


def json_classes(classes: np.ndarray) -> list:
    """Distinct labels as a JSON list: str for text, int for whole numbers, else float."""
    if classes.dtype.kind == "U":
        return [str(c) for c in classes]
    if integral(classes):
        return [int(c) for c in classes]
    return [float(c) for c in classes]


def encode_labels(y: np.ndarray, classes: list, where: str) -> np.ndarray:
    """int64 class indices (n,) of labels y in the model's classes (a JSON list).

    Numeric classes match numerically (3 == 3.0 from a CSV); text classes match the text, with
    numbers written as a CSV would hold them. where: names the data in the error.
    """
    if y.ndim != 1:
        raise UsageError(f"{where}: a classifier takes one target column, got {y.shape[1]}")
    text = any(isinstance(c, str) for c in classes)
    if text:
        keys = np.array([str(c) for c in classes])
        if y.dtype.kind != "U":
            y = np.array([str(int(v)) if float(v).is_integer() else repr(float(v))
                          for v in y.tolist()])
    else:
        keys = np.array(classes, dtype=np.float64)
        if y.dtype.kind == "U":
            bad = [v for v in y.tolist() if not is_number(v)]
            if bad:
                raise UsageError(f"{where}: the label {bad[0]!r} is not among the model's "
                                 f"classes ({_names(classes)})")
        y = y.astype(np.float64)
    order = np.argsort(keys, kind="stable")
    pos = np.clip(np.searchsorted(keys[order], y), 0, len(keys) - 1)
    found = keys[order][pos] == y
    if not found.all():
        bad = y[np.flatnonzero(~found)[0]]
        shown = str(bad) if text else (int(bad) if float(bad).is_integer() else float(bad))
        raise UsageError(f"{where}: the label {shown!r} is not among the model's classes "
                         f"({_names(classes)}); the model can only score labels it was "
                         f"trained on")
    return order[pos].astype(np.int64)


def is_number(text: str) -> bool:
    """Whether float() reads text."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def scores(model, X: np.ndarray, y: np.ndarray, task: str) -> dict:
    """Inference-mode scores of model on (X, y): {"loss", "accuracy"} for classification (y:
    class indices (n,)), {"mse", "mae", "r2"} for regression (y: (n,) or (n, n_outputs));
    r2 is the mean over outputs of 1 - SS_res / SS_tot, None where a target is constant."""
    from .training import evaluate

    if task == "classification":
        return {k: float(v) for k, v in evaluate(model, X, y, loss="cross_entropy").items()}
    pred = model.predict(X).astype(np.float64)
    t = np.asarray(y, dtype=np.float64).reshape(pred.shape)
    err = pred - t
    ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    ss_res = (err ** 2).sum(axis=0)
    r2 = None if (ss_tot == 0).any() else float(np.mean(1.0 - ss_res / ss_tot))
    return {"mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err))), "r2": r2}


def format_scores(s: dict) -> str:
    """'loss 0.1234, accuracy 0.9500' or 'mse 0.0123, mae 0.0876, r2 0.9712'."""
    return ", ".join(f"{k} {'n/a (constant target)' if v is None else f'{v:.4f}'}"
                     for k, v in s.items())


# ---- the model --------------------------------------------------------------------------------
def hidden_sizes(text: str) -> list[int]:
    """--hidden '300,100' -> [300, 100]; '' or 'none' -> []."""
    if not text.strip() or text.strip().lower() == "none":
        return []
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        sizes = None
    if sizes is None or any(s < 1 for s in sizes):
        raise UsageError(f"--hidden: expected comma-separated layer sizes >= 1 such as "
                         f"300,100 ('' for no hidden layer), got {text!r}")
    return sizes


def load_model(path: str, flag: str = "MODEL"):
    """fastmlp.load(path) with its failures as one-line errors that start with flag."""
    from .io import load

    if not os.path.exists(path):
        raise FileNotFoundError(f"{flag} {path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path}: is a directory; expected a model file written by "
                         f"fastmlp train or fastmlp.save")
    with open(path, "rb") as f:
        zipped = f.read(2) == b"PK"
    if not zipped:
        # Not a zip archive (a CSV, say): say so plainly instead of NumPy's pickle message.
        raise UsageError(f"{flag} {path}: is not a fastmlp model file (not an .npz archive); "
                         f"expected a model file written by fastmlp train or fastmlp.save")
    try:
        return load(path)
    except ValueError as e:
        # load's messages start "path: '<path>' ..." (its argument's name).
        message = str(e).removeprefix("path: ")
        raise UsageError(f"{flag}: {message}; expected a model file written by fastmlp train "
                         f"or fastmlp.save") from None


def describe(model) -> str:
    """'MLP 64-300-100-10, relu hidden, identity output, init he_normal (...)'."""
    hidden = sorted({l.activation for l in model.layers[:-1]})
    inits = [str(l.init) for l in model.layers]
    parts = [f"MLP {'-'.join(map(str, model.sizes))}"]
    if hidden:
        parts.append(f"{'/'.join(hidden)} hidden")
    parts.append(f"{model.output_activation} output")
    parts.append("init " + (inits[0] if len(set(inits)) == 1 else ", ".join(inits)))
    if any(l.batchnorm for l in model.layers):
        parts.append("batchnorm")
    return ", ".join(parts) + f" ({model.count_params():,} parameters)"
