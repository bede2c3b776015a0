"""``fastmlp train DATA --target COL --out MODEL``: train a network on a table and save it.

Reads DATA (the shipped ``digits``, a CSV file or an .npz archive; see fastmlp.data_files),
decides classification or regression from the target (--task), holds out a seeded random
validation fraction, standardises the inputs with the training rows' mean and std (stored in the
model, so predict applies them), trains with fastmlp.train, prints the final scores and saves the
model with its metadata (task, feature and target names, original class labels, the options).

Exit codes: 0 when the model was trained and saved; 2 for input the command cannot use, with one
``fastmlp train: error: ...`` line on stderr and no traceback.
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import time
import warnings

import numpy as np

from ._moments import standardisation
from ._validate import nonfinite_error, to_float32
from .cli_common import (INPUT_ERRORS, UsageError, describe, fail, format_scores, hidden_sizes,
                         infer_task, is_number, json_classes, read_training_data,
                         scores)

PROG = "fastmlp train"
TASKS = ("auto", "classification", "regression")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers the ``train`` subcommand on an argparse subparsers object."""
    from .training import OPTIMIZERS

    p = subparsers.add_parser(
        "train", help="train a classifier or regressor on a CSV/NPZ table and save it",
        description="Trains an MLP on DATA and saves it to MODEL (with its input\n"
                    "standardisation, feature names, class labels and training options).\n"
                    "Exit code 0 when the model was saved; 2 on unusable input.",
        epilog="examples:\n"
               "  fastmlp train iris.csv --target species --hidden 16 --out iris.npz\n"
               "  fastmlp train houses.csv --target price --task regression --epochs 200 "
               "--out houses.npz\n"
               "  fastmlp train digits --early-stopping --out digits.npz",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA",
                   help="'digits' (the shipped digits, training part), a .csv file with a "
                        "header row (needs --target), or an .npz file with arrays X and y")
    p.add_argument("--target", metavar="COL",
                   help="CSV target column (regression: several as COL1,COL2); every other "
                        "column is a feature")
    p.add_argument("--out", metavar="MODEL", required=True,
                   help="where to save the model (written atomically; .npz by convention)")
    p.add_argument("--task", choices=TASKS, default="auto",
                   help="auto (default): text labels, or one integer column with few distinct "
                        "values, is classification; anything else regression")
    net = p.add_argument_group("network")
    net.add_argument("--hidden", default="300,100", metavar="SIZES",
                     help="hidden layer sizes, comma-separated ('' for none; default 300,100)")
    net.add_argument("--activation", default="relu", metavar="NAME",
                     help="hidden activation (default relu)")
    net.add_argument("--batchnorm", action="store_true",
                     help="batch normalisation on every hidden layer")
    net.add_argument("--dropout", type=float, default=0.0, metavar="RATE",
                     help="dropout rate after each hidden layer (default 0)")
    tr = p.add_argument_group("training")
    tr.add_argument("--epochs", type=int, default=50, metavar="N", help="default 50")
    tr.add_argument("--batch-size", type=int, default=32, metavar="N", help="default 32")
    tr.add_argument("--lr", type=float, default=1e-3, metavar="X",
                    help="learning rate (default 1e-3)")
    tr.add_argument("--optimizer", default="adam", metavar="NAME",
                    help=f"{', '.join(OPTIMIZERS)} (default adam)")
    tr.add_argument("--clip-norm", type=float, metavar="X", help="clip gradients by global norm")
    tr.add_argument("--validation-split", type=float, default=0.1, metavar="F",
                    help="fraction of rows, drawn at random (seeded), held out for validation "
                         "(default 0.1; 0 for none)")
    tr.add_argument("--early-stopping", action="store_true",
                    help="stop when the validation loss (the training loss without validation "
                         "rows) stops improving, and keep the best epoch's weights")
    tr.add_argument("--patience", type=int, metavar="N",
                    help="epochs without improvement before early stopping (default 5; "
                         "implies --early-stopping)")
    tr.add_argument("--no-standardize", dest="standardize", action="store_false",
                    help="feed inputs and regression targets as they are (default: "
                         "standardise both with the training rows' mean and std; the input "
                         "scaling is stored in the model, the target scaling folded into its "
                         "output layer)")
    tr.add_argument("--seed", type=int, default=0, metavar="N",
                    help="seeds the weights, the validation split, shuffling and dropout "
                         "(default 0)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--verbose", "-v", action="store_true",
                     help="also print the layer table before training")
    out.add_argument("--quiet", "-q", action="store_true",
                     help="no progress bar, only the final scores")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    """Runs the command for parsed arguments; returns the exit code."""
    try:
        return _train(args)
    except INPUT_ERRORS as e:
        return fail(PROG, e)


def _check_options(args) -> list[int]:
    """The cheap checks, before any data is read; returns the hidden sizes."""
    from .training import OPTIMIZERS

    if os.path.isdir(args.out):
        raise UsageError(f"--out {args.out}: is a directory; give the model file's name, "
                         f"e.g. {os.path.join(args.out, 'model.npz')}")
    parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(parent):
        raise UsageError(f"--out {args.out}: the directory {parent} does not exist; create it "
                         f"first")
    if args.optimizer not in OPTIMIZERS:
        raise UsageError(f"--optimizer: expected one of {', '.join(OPTIMIZERS)}, got "
                         f"{args.optimizer!r}")
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            raise UsageError(f"{flag}: expected an integer >= 1, got {value}")
    if args.patience is not None and args.patience < 1:
        raise UsageError(f"--patience: expected an integer >= 1, got {args.patience}")
    if not 0.0 <= args.validation_split < 1.0:
        raise UsageError(f"--validation-split: expected a fraction in [0, 1), got "
                         f"{args.validation_split}")
    return hidden_sizes(args.hidden)


def _train(args) -> int:
    from . import __version__
    from .io import save
    from .model import MLP
    from .training import train

    hidden = _check_options(args)
    X, y, names, target_names, source = read_training_data(args.data, args.target,
                                                           text_target=True)
    task, why = _task(y, args.task)
    classes = None
    if task == "classification":
        found, y = np.unique(y, return_inverse=True)
        classes = json_classes(found)
        if len(classes) < 2:
            raise UsageError(f"{source}: the target {target_names[0]!r} holds the single "
                             f"class {classes[0]!r}; a classifier needs at least two")
        n_outputs, loss = len(classes), "cross_entropy"
    else:
        y32 = to_float32(y)
        if not np.isfinite(y32).all():  # the reader checked finiteness: an overflow
            raise UsageError(f"{source}: {nonfinite_error('target', y32, y)}")
        y = y32
        n_outputs, loss = (1 if y.ndim == 1 else y.shape[1]), "mse"
    train_rows, val_rows = _split(len(X), args.validation_split, args.seed)

    model = MLP([X.shape[1], *hidden, n_outputs], activation=args.activation,
                output_activation="softmax" if classes is not None else "identity",
                batchnorm=args.batchnorm, dropout=args.dropout, seed=args.seed)
    X_tr, y_tr = X[train_rows], y[train_rows]
    if args.standardize:
        # Training rows only: the validation rows must look like unseen data.
        model.fit_input_scaling(X_tr)
    y_val = None if val_rows is None else y[val_rows]
    target_scaling = None
    if task == "regression" and args.standardize:
        # Train on standardised targets (a price in the 1e5 range would otherwise need ~1e5
        # steps of the output bias alone), then fold the inverse into the output layer.
        target_scaling = _target_scaling(y_tr)
        y_tr = ((y_tr - target_scaling[0]) / target_scaling[1]).astype(np.float32)
        if y_val is not None:
            y_val = ((y_val - target_scaling[0]) / target_scaling[1]).astype(np.float32)
    validation = None if val_rows is None else (X[val_rows], y_val)
    early = args.early_stopping or args.patience is not None
    patience = 5 if args.patience is None else args.patience
    if not args.quiet:
        n_targets = 1 if y.ndim == 1 else y.shape[1]
        print(f"data: {source}: {len(X)} rows ({len(train_rows)} training, "
              f"{0 if val_rows is None else len(val_rows)} validation), {X.shape[1]} features, "
              f"{n_targets} target{'s' if n_targets > 1 else ''}")
        print(f"task: {task} ({why}); loss {loss}" + (
            f"; {len(classes)} classes: {_shown(classes)}" if classes else ""))
        print(f"model: {describe(model)}")
        if args.verbose:
            print(model.summary())

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        # A divergence warning is news for the user, not an exception (pytest runs with
        # warnings as errors): it is printed after the run.
        warnings.simplefilter("always")
        history = train(model, X_tr, y_tr, loss=loss, optimizer=args.optimizer, lr=args.lr,
                        batch_size=args.batch_size, epochs=args.epochs,
                        clip_norm=args.clip_norm, validation_data=validation,
                        early_stopping=early, patience=patience,
                        verbose=0 if args.quiet else 1, seed=args.seed)
    elapsed = time.perf_counter() - t0
    for w in caught:
        print(f"warning: {w.message}")
    if target_scaling is not None:
        _fold_target_scaling(model, *target_scaling)
        y_tr = y[train_rows]
        if validation is not None:
            validation = (validation[0], y[val_rows])

    final = {"training": scores(model, X_tr, y_tr, task)}
    if validation is not None:
        final["validation"] = scores(model, *validation, task)
    epochs_run = len(history.epoch)
    print(f"trained {epochs_run} epoch{'s' if epochs_run != 1 else ''} in {_seconds(elapsed)}"
          + (f" (early stopping: {epochs_run} of {args.epochs} epochs run, the best epoch's "
             f"weights kept)" if early and epochs_run < args.epochs else ""))
    print(f"training rows ({len(train_rows)}): {format_scores(final['training'])}")
    if validation is not None:
        print(f"validation rows ({len(val_rows)}): {format_scores(final['validation'])}")

    model.metadata = {
        "task": task, "loss": loss, "feature_names": names, "target": target_names,
        "classes": classes,
        "training": {"data": source, "rows": len(X), "training_rows": len(train_rows),
                     "validation_rows": 0 if val_rows is None else len(val_rows),
                     "hidden": hidden, "activation": args.activation,
                     "batchnorm": args.batchnorm, "dropout": args.dropout,
                     "epochs": args.epochs, "epochs_run": epochs_run,
                     "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer,
                     "clip_norm": args.clip_norm, "validation_split": args.validation_split,
                     "early_stopping": early, "patience": patience if early else None,
                     "standardize": args.standardize, "seed": args.seed,
                     "target_scaling": None if target_scaling is None else {
                         "mean": target_scaling[0].tolist(),
                         "scale": target_scaling[1].tolist(),
                         "folded_into_output_layer": True},
                     "seconds": round(elapsed, 3)},
        "metrics": final,
        "fastmlp_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        save(model, args.out)  # atomic: a temporary file in the same directory, then a rename
    except OSError as e:
        raise UsageError(f"--out {args.out}: cannot write ({e.strerror or e})") from None
    print(f"saved {args.out}")
    return 0


def _target_scaling(y: np.ndarray):
    """Per-target mean and standard deviation (1 where a target is constant), float32 (k,)."""
    mean, std = standardisation(y.reshape(len(y), -1))
    if y.ndim == 1:
        return np.float32(mean[0]), np.float32(std[0])
    return mean.astype(np.float32), std.astype(np.float32)


def _fold_target_scaling(model, mean, scale) -> None:
    """Makes the identity output layer emit out * scale + mean: exact for an affine output,
    so the saved model predicts in the target's own units with no extra machinery."""
    last = model.layers[-1]
    scale = np.broadcast_to(np.asarray(scale, np.float32), (last.n_out,))
    mean = np.broadcast_to(np.asarray(mean, np.float32), (last.n_out,))
    if last.batchnorm:  # y = gamma * norm(z) + beta
        last.gamma = last.gamma * scale
        last.beta = last.beta * scale + mean
    else:               # y = x W + b
        last.W = last.W * scale
        last.b = last.b * scale + mean


def _task(y: np.ndarray, wanted: str):
    """(task, reason) for --task."""
    if wanted == "auto":
        return infer_task(y)
    if wanted == "classification":
        if y.ndim != 1:
            raise UsageError(f"--task classification: takes one target column of class labels, "
                             f"got {y.shape[1]} columns")
        return wanted, "--task"
    if y.dtype.kind == "U":
        example = next(v for v in y.tolist() if not is_number(v))
        raise UsageError(f"--task regression: needs numbers, but the target holds text labels "
                         f"such as {example!r}; use --task classification (or auto)")
    return wanted, "--task"


def _split(n: int, fraction: float, seed: int):
    """(training rows, validation rows or None): a seeded random fraction held out, so a file
    sorted by class still validates on every class (Keras' last-rows split would not)."""
    if fraction == 0.0:
        return np.arange(n), None
    n_val = int(math.floor(n * fraction))
    if n_val < 1 or n_val >= n:
        raise UsageError(f"--validation-split: {fraction} of {n} rows leaves an empty training "
                         f"or validation set; use --validation-split 0 for none")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _shown(classes: list, limit: int = 10) -> str:
    text = ", ".join(map(repr, classes[:limit]))
    return text + (f", ... ({len(classes)} in all)" if len(classes) > limit else "")


def _seconds(t: float) -> str:
    return f"{t * 1e3:.1f} ms" if t < 1.0 else f"{t:.2f} s"
