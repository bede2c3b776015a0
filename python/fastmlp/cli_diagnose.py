"""``fastmlp diagnose DATA``: fastmlp.diagnose from the command line.

Reads a data table (the shipped ``digits``, a CSV file or an .npz archive; see
fastmlp.data_files), builds a network from the flags or loads a saved one, runs the diagnosis and
prints the report; ``--out DIR`` also writes report.txt, report.json and the pictures.

Exit codes: 0 when the diagnosis ran, whatever it found (a finding is a result, not a failure);
2 for input the command cannot use (a missing or malformed file, a bad option value), with one
``fastmlp diagnose: error: ...`` line on stderr and no traceback.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from ._atomic import write_atomic
from .cli_common import (INPUT_ERRORS, MAX_AUTO_CLASSES, UsageError, describe, fail,
                         hidden_sizes, integral, label_classes, load_model, read_training_data)
from .diagnostics.stats import feature_moments

PROG = "fastmlp diagnose"
# Flags that describe a new network; with --model they would be silently ignored, so they are
# refused instead. Their defaults are applied in run() so that "given" can be detected.
_ARCHITECTURE = {"hidden": "300,100", "activation": "relu", "output_activation": "identity",
                 "init": None, "bias_init": 0.0, "batchnorm": False}
_PLOT_HINT = "pictures skipped: they need matplotlib: pip install 'fastmlp[plot]'"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers the ``diagnose`` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser(
        "diagnose", help="find out why a network does not learn, and what to change",
        description="Measures a network's gradient health on a data set (gradient and weight\n"
                    "scales per layer, dead and saturated units, input scaling, a short probe\n"
                    "training run) and explains each problem found with the options that fix\n"
                    "it. Exit code 0 when the diagnosis ran, whatever it found; 2 on unusable\n"
                    "input.",
        epilog="examples:\n"
               "  fastmlp diagnose digits --hidden 30 --activation sigmoid --init fan_in\n"
               "  fastmlp diagnose houses.csv --target price --standardize --out diag/\n"
               "  fastmlp diagnose data.npz --model model.npz --lr 0.1",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA",
                   help="'digits' (the shipped digits, training part), a .csv file with a "
                        "header row (needs --target), or an .npz file with arrays X and y")
    p.add_argument("--target", metavar="COL",
                   help="CSV target column (several: COL1,COL2); every other column is a "
                        "feature")
    p.add_argument("--model", metavar="MODEL",
                   help="diagnose a model saved with fastmlp.save instead of building one")
    net = p.add_argument_group("new network (without --model)")
    net.add_argument("--hidden", metavar="SIZES",
                     help="hidden layer sizes, comma-separated ('' for none; default 300,100)")
    net.add_argument("--activation", metavar="NAME", help="hidden activation (default relu)")
    net.add_argument("--output-activation", metavar="NAME",
                     help="output activation (default identity)")
    net.add_argument("--init", metavar="NAME",
                     help="weight initialiser (default: He for ReLUs, Glorot otherwise)")
    net.add_argument("--bias-init", type=float, metavar="X", help="initial bias (default 0)")
    net.add_argument("--batchnorm", action="store_const", const=True,
                     help="batch normalisation on every hidden layer")
    tr = p.add_argument_group("training options (for the gradient passes and the probe run)")
    tr.add_argument("--loss", default="auto", metavar="NAME",
                    help="auto (default), cross_entropy, binary_cross_entropy or mse; auto "
                         f"picks cross_entropy for a 1-D integer target with at most "
                         f"{MAX_AUTO_CLASSES} distinct values, mse otherwise")
    tr.add_argument("--optimizer", default="adam", metavar="NAME", help="default adam")
    tr.add_argument("--lr", type=float, default=1e-3, metavar="X",
                    help="learning rate (default 1e-3)")
    tr.add_argument("--batch-size", type=int, default=32, metavar="N", help="default 32")
    tr.add_argument("--clip-norm", type=float, metavar="X", help="clip gradients by global norm")
    tr.add_argument("--clip-value", type=float, metavar="X", help="clip gradients by value")
    tr.add_argument("--probe-steps", type=int, default=100, metavar="N",
                    help="steps of the probe training run on a copy (0: none; default 100)")
    tr.add_argument("--seed", type=int, default=0, metavar="N",
                    help="seeds the new network, the sampling and the probe (default 0)")
    p.add_argument("--standardize", action="store_true",
                   help="standardise X with its own mean and std before diagnosing")
    p.add_argument("--out", metavar="DIR",
                   help="also write report.txt, report.json and PNG pictures into DIR")
    return p


def run(args) -> int:
    """Runs the command for parsed arguments; returns the exit code."""
    try:
        text, report = _diagnose(args)
    except INPUT_ERRORS as e:
        # ValueError/TypeError: fastmlp's argument checks (they name the option and the fix).
        return _fail(e)
    print(text)
    if args.out is None:
        return 0
    try:
        written, note = _write_outputs(args.out, text, report)
    except OSError as e:
        return _fail(f"--out {args.out}: cannot write ({e.strerror or e})")
    if note:
        print(note)
    print(f"wrote {len(written)} files:")
    for path in written:
        print(f"  {path}")
    return 0


def _fail(error) -> int:
    return fail(PROG, error)


# ---- the diagnosis --------------------------------------------------------------------------
def _diagnose(args):
    """(text to print, Report) for parsed arguments; raises on unusable input."""
    from .diagnostics import diagnose

    given = [k for k in _ARCHITECTURE if getattr(args, k) is not None]
    if args.model is not None and given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise UsageError(f"{flags}: describe a new network, so they cannot be combined with "
                         f"--model (the saved model has its own architecture)")
    if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out}: exists and is not a directory")

    X, y, names, source = _read_data(args.data, args.target)
    n_targets = 1 if y.ndim == 1 else y.shape[1]
    lines = [f"data: {source}: {X.shape[0]} rows, {X.shape[1]} features, {n_targets} "
             f"target{'s' if n_targets > 1 else ''}"]
    if args.standardize:
        X, n_constant = standardize(X)
        lines.append("inputs: standardized with their own mean and standard deviation "
                     "(--standardize)" + (f"; {n_constant} constant column(s) set to 0"
                                          if n_constant else ""))
    model = load_model(args.model, "--model") if args.model is not None else None
    out_act = model.output_activation if model is not None else (
        args.output_activation or _ARCHITECTURE["output_activation"])
    loss, y, n_outputs, why = choose_loss(y, args.loss, out_act,
                                          None if model is None else model.n_outputs)
    if model is None:
        model = _build_model(args, X.shape[1], n_outputs)
        lines.append(f"model: new {describe(model)}, seed {args.seed}")
    else:
        lines.append(f"model: {args.model}: {describe(model)}")
    lines.append(f"loss: {loss}" + (f" ({why})" if why else ""))

    options = {"optimizer": args.optimizer, "lr": args.lr, "batch_size": args.batch_size}
    if args.clip_norm is not None:
        options["clip_norm"] = args.clip_norm
    if args.clip_value is not None:
        options["clip_value"] = args.clip_value
    report = diagnose(model, X, y, loss=loss, probe_steps=args.probe_steps, seed=args.seed,
                      **options)
    text = "\n".join(lines) + "\n\n" + str(report)
    if "unscaled_inputs" in report.kinds():
        text += "\n" + _worst_features(X, names)
    return text, report


def _read_data(data: str, target):
    """(X, y, feature names, description) for the DATA argument."""
    X, y, names, _, source = read_training_data(data, target)
    return X, y, names, source


def standardize(X: np.ndarray):
    """(X - mean) / std per column, with constant columns mapped to 0; returns (X, n_constant)."""
    # The same test for "constant" as the diagnosis' input statistics.
    mean, std, live = feature_moments(X)
    Z = (X.astype(np.float64) - mean) / np.where(live, std, 1.0)
    Z[:, ~live] = 0.0
    return np.ascontiguousarray(Z, dtype=np.float32), int((~live).sum())


def _worst_features(X: np.ndarray, names, top: int = 3) -> str:
    """The feature names behind an unscaled_inputs finding (the report counts, not names)."""
    mean, std, live = feature_moments(X)
    cols = np.flatnonzero(live)
    if not len(cols):
        return "inputs: every feature is constant"
    # Decades away from unit scale, by spread or by offset, whichever is worse.
    score = np.maximum(np.abs(np.log10(std[cols])), np.log10(1.0 + np.abs(mean[cols]) / std[cols]))
    worst = cols[np.argsort(-score, kind="stable")[:top]]
    shown = ", ".join(f"{names[j]!r} (mean {mean[j]:.3g}, std {std[j]:.3g})" for j in worst)
    return (f"features furthest from unit scale: {shown}; --standardize rescales them for "
            f"the diagnosis")


# ---- targets and the loss -------------------------------------------------------------------
def choose_loss(y: np.ndarray, loss: str, output_activation: str, n_outputs=None):
    """(loss, y, n_outputs, reason) for the --loss flag.

    n_outputs: the loaded model's output count, or None when the network is built to fit y.
    auto: a 1-D integer target with at most MAX_AUTO_CLASSES distinct values and fewer than
    half as many distinct values as rows is class labels: cross_entropy (binary_cross_entropy
    for 0/1 labels under a sigmoid output); anything else is regression: mse. For a new
    network, class labels that are not exactly 0..C-1 are mapped, in sorted order, to 0..C-1.
    """
    if loss not in ("auto", "cross_entropy", "binary_cross_entropy", "mse"):
        raise UsageError(f"--loss: expected auto, cross_entropy, binary_cross_entropy or mse, "
                         f"got {loss!r}")
    width = 1 if y.ndim == 1 else y.shape[1]
    reason = ""
    if loss == "auto":
        classes, few = label_classes(y)
        if few and output_activation == "sigmoid" and set(classes.tolist()) <= {0, 1}:
            loss = "binary_cross_entropy"
            reason = "auto: 0/1 labels under a sigmoid output"
        elif few and output_activation in ("identity", "softmax") and n_outputs != 1:
            loss = "cross_entropy"
            reason = (f"auto: the target holds {len(classes)} distinct integers in {len(y)} "
                      f"rows; pass --loss mse for regression")
        else:
            loss = "mse"
            if classes is None:
                what = "the target is not one column of integers"
            elif not few:
                what = (f"{len(classes)} distinct values in {len(y)} rows are too many for "
                        f"class labels")
            elif n_outputs == 1:
                what = "the model has a single output"
            else:
                what = f"class labels do not suit a {output_activation} output"
            reason = f"auto: {what}; pass --loss to choose"
    if loss == "cross_entropy":
        if y.ndim != 1:
            raise UsageError(f"--loss cross_entropy: takes one target column of class labels, "
                             f"got {width} columns")
        if not integral(y):
            bad = y[np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))[0]]
            raise UsageError(f"--loss cross_entropy: needs integer class labels, but the "
                             f"target holds {bad.item()!r}; use --loss mse for regression")
        y = y.astype(np.int64)
        if n_outputs is None:
            classes = np.unique(y)
            if classes[0] != 0 or classes[-1] != len(classes) - 1:
                shown = ", ".join(map(str, classes[:8])) + (", ..." if len(classes) > 8 else "")
                reason += ("; " if reason else "") + (
                    f"labels {shown} mapped in sorted order to 0..{len(classes) - 1}")
                y = np.searchsorted(classes, y).astype(np.int64)
            n_outputs = len(classes)
    elif loss == "binary_cross_entropy" and y.ndim == 1:
        y = y.reshape(-1, 1)
    if n_outputs is None:
        n_outputs = width
    return loss, y, n_outputs, reason


# ---- the model ------------------------------------------------------------------------------
def _build_model(args, n_features: int, n_outputs: int):
    from .model import MLP

    a = {k: _ARCHITECTURE[k] if getattr(args, k) is None else getattr(args, k)
         for k in _ARCHITECTURE}
    sizes = [n_features, *hidden_sizes(a["hidden"]), n_outputs]
    return MLP(sizes, activation=a["activation"], output_activation=a["output_activation"],
               init=a["init"], bias_init=a["bias_init"], batchnorm=a["batchnorm"],
               seed=args.seed)


# ---- files ----------------------------------------------------------------------------------
def _write_outputs(directory: str, text: str, report):
    """Writes report.txt, report.json and the pictures; returns (paths, note or None)."""
    os.makedirs(directory, exist_ok=True)
    written = []
    for name, content in (("report.txt", text + "\n"), ("report.json", report.to_json() + "\n")):
        path = os.path.join(directory, name)
        write_atomic(path, lambda f: f.write(content), binary=False)
        written.append(path)
    from .plot import plot_report
    try:
        written += plot_report(report, directory)
    except ImportError:
        return written, _PLOT_HINT
    return written, None
