"""Using a saved model from the command line:

``fastmlp predict MODEL DATA [--out PRED.csv] [--proba]``: predictions as CSV;
``fastmlp evaluate MODEL DATA [--target COL] [--json]``: loss and accuracy, or MSE/MAE/R^2;
``fastmlp info MODEL [--json]``: architecture, task, classes, features, training settings.

DATA's columns are picked by the feature names the model was trained on (other columns, the
target included, are ignored), so a table with its columns in another order still works.
A model saved from Python without metadata is used by position: a softmax output is a
classifier over classes 0..C-1, anything else a regressor.

Exit codes: 0 on success; 2 for input the command cannot use (a missing file, a file that is not
a fastmlp model, a missing column, non-numeric data, data that does not fit the model), with one
``fastmlp <command>: error: ...`` line on stderr and no traceback.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys

import numpy as np

from ._atomic import write_atomic
from .cli_common import (INPUT_ERRORS, UsageError, describe, encode_labels, fail,
                         format_scores, load_model, read_model_inputs, scores)
from .io import read_header

_DATA_HELP = ("'digits' (the shipped digits, test part), a .csv file with a header row, or an "
              ".npz file with array X (and y to evaluate)")


def add_parsers(subparsers) -> None:
    """Registers ``predict``, ``evaluate`` and ``info`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "predict", help="predict with a saved model; write a CSV file",
        description="Predicts every row of DATA with MODEL and writes a CSV file with a header:\n"
                    "the predicted label (classifiers, in the original label values) or value(s)\n"
                    "(regressors), and with --proba one probability column per class.",
        epilog="example:\n  fastmlp predict iris.npz new_flowers.csv --proba --out pred.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="a model saved by fastmlp train / fastmlp.save")
    p.add_argument("data", metavar="DATA", help=_DATA_HELP)
    p.add_argument("--out", metavar="PRED.csv",
                   help="output file, written atomically (default: standard output)")
    p.add_argument("--proba", action="store_true",
                   help="classifiers: also one probability column per class, p_<label>")
    p.set_defaults(run=_runner("predict", _predict))

    e = subparsers.add_parser(
        "evaluate", help="score a saved model on labelled data",
        description="Scores MODEL on DATA: loss and accuracy for a classifier, MSE, MAE and R^2\n"
                    "for a regressor (inference mode: no dropout, batch-norm running stats).",
        epilog="example:\n  fastmlp evaluate iris.npz iris_test.csv --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("model", metavar="MODEL", help="a model saved by fastmlp train / fastmlp.save")
    e.add_argument("data", metavar="DATA", help=_DATA_HELP)
    e.add_argument("--target", metavar="COL",
                   help="CSV target column (default: the column the model was trained on)")
    e.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    e.set_defaults(run=_runner("evaluate", _evaluate))

    i = subparsers.add_parser(
        "info", help="describe a saved model",
        description="Prints MODEL's architecture, parameter count, task, classes, feature names,\n"
                    "training settings and scores, and its file format version.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    i.add_argument("model", metavar="MODEL", help="a model saved by fastmlp train / fastmlp.save")
    i.add_argument("--json", action="store_true", help="print everything as one JSON object")
    i.set_defaults(run=_runner("info", _info))


def _runner(command: str, body):
    prog = f"fastmlp {command}"

    def run(args) -> int:
        try:
            return body(args)
        except INPUT_ERRORS as e:
            return fail(prog, e)
    return run


# ---- what the model knows about itself --------------------------------------------------------
def _facts(model):
    """(task, classes, feature names or None, target names) from model.metadata, with the
    by-position defaults for a model saved without them."""
    meta = getattr(model, "metadata", None) or {}
    task = meta.get("task")
    if task not in ("classification", "regression"):
        task = "classification" if model.output_activation == "softmax" else "regression"
    classes = meta.get("classes") or (list(range(model.n_outputs))
                                      if task == "classification" else None)
    if classes is not None and len(classes) != model.n_outputs:
        raise UsageError(f"MODEL: its metadata lists {len(classes)} classes for "
                         f"{model.n_outputs} outputs; the file is inconsistent")
    features = meta.get("feature_names")
    if features is not None and len(features) != model.n_inputs:
        raise UsageError(f"MODEL: its metadata names {len(features)} features for "
                         f"{model.n_inputs} inputs; the file is inconsistent")
    targets = meta.get("target")
    if not targets:
        targets = None
    elif isinstance(targets, str):
        targets = [targets]
    return task, classes, features, targets


def _check_width(X: np.ndarray, model, source: str) -> None:
    if X.shape[1] != model.n_inputs:
        raise UsageError(f"{source}: has {X.shape[1]} feature columns, but the model takes "
                         f"{model.n_inputs}; the data must have the columns the model was "
                         f"trained on")


# ---- predict ----------------------------------------------------------------------------------
def _predict(args) -> int:
    model = load_model(args.model)
    task, classes, features, targets = _facts(model)
    if args.proba and task != "classification":
        raise UsageError("--proba: the model is a regressor; probabilities exist for "
                         "classifiers only")
    X, _, source = read_model_inputs(args.data, features)
    _check_width(X, model, source)
    if task == "classification":
        proba = model.predict_proba(X)
        labels = [str(classes[k]) for k in proba.argmax(axis=1)]
        header = [targets[0] if targets else "prediction"]
        rows = [[label] for label in labels]
        if args.proba:
            header += [f"p_{c}" for c in classes]
            rows = [row + [f"{p:.6g}" for p in ps] for row, ps in zip(rows, proba.tolist())]
    else:
        pred = model.predict(X)
        header = targets if targets and len(targets) == pred.shape[1] else (
            ["prediction"] if pred.shape[1] == 1 else
            [f"prediction_{j}" for j in range(pred.shape[1])])
        # 9 significant digits: a float32 reads back exactly.
        rows = [[f"{v:.9g}" for v in r] for r in pred.tolist()]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    if args.out is None:
        sys.stdout.write(buffer.getvalue())
        return 0
    try:
        write_atomic(args.out, lambda f: f.write(buffer.getvalue()), binary=False)
    except OSError as e:
        raise UsageError(f"--out {args.out}: cannot write ({e.strerror or e})") from None
    print(f"wrote {len(rows)} predictions of {args.model} on {source} to {args.out}")
    return 0


# ---- evaluate ---------------------------------------------------------------------------------
def _evaluate(args) -> int:
    model = load_model(args.model)
    task, classes, features, targets = _facts(model)
    target = args.target if args.target is not None else targets
    if target is None and args.data != "digits" and not args.data.lower().endswith(".npz"):
        raise UsageError(f"--target: the model does not record its target column; name the "
                         f"column of {args.data} that holds the true values with --target COL")
    X, y, source = read_model_inputs(args.data, features, target if target else True,
                                     text_target=True)
    _check_width(X, model, source)
    if task == "classification":
        y = encode_labels(y, classes, source)
    else:
        if y.dtype.kind == "U":
            raise UsageError(f"{source}: the target holds text, but the model is a regressor "
                             f"that predicts numbers")
        width = 1 if y.ndim == 1 else y.shape[1]
        if width != model.n_outputs:
            raise UsageError(f"{source}: {width} target column{'s' if width > 1 else ''}, but "
                             f"the model predicts {model.n_outputs} values per row")
    result = scores(model, X, y, task)
    if args.json:
        print(json.dumps({"model": args.model, "data": source, "rows": len(X), "task": task,
                          **result}))
        return 0
    print(f"{args.model} on {source}: {len(X)} rows, {task}"
          + (f" ({len(classes)} classes)" if task == "classification" else ""))
    print(format_scores(result))
    return 0


# ---- info -------------------------------------------------------------------------------------
def _info(args) -> int:
    model = load_model(args.model)
    header = read_header(args.model)  # fastmlp.load has accepted the file just above
    task, classes, features, targets = _facts(model)
    meta = getattr(model, "metadata", None) or {}
    scaled = getattr(model, "input_mean", None) is not None or \
        getattr(model, "input_scale", None) is not None
    trainable = sum(l.n_params for l in model.layers if l.trainable)
    if args.json:
        print(json.dumps({
            "file": args.model, "format": header.get("format"), "version": header.get("version"),
            "sizes": model.sizes, "output_activation": model.output_activation,
            "layers": [{"index": l.index, "in": l.n_in, "out": l.n_out,
                        "activation": l.activation, "batchnorm": l.batchnorm,
                        "dropout": l.dropout, "trainable": l.trainable, "init": str(l.init),
                        "parameters": l.n_params} for l in model.layers],
            "parameters": model.count_params(), "trainable_parameters": trainable,
            "input_standardization": scaled, "task": task, "classes": classes,
            "feature_names": features, "target": targets, "metadata": meta}))
        return 0
    writer = meta.get("fastmlp_version") or header.get("fastmlp_version")
    lines = [f"file: {args.model} ({header.get('format')} format version "
             f"{header.get('version')}" + (f", written by fastmlp {writer})" if writer else ")")]
    if meta.get("created"):
        lines.append(f"created: {meta['created']}")
    lines.append(f"task: {task}" + (f", loss {meta['loss']}" if meta.get("loss") else "")
                 + ("" if meta.get("task") else " (no metadata: guessed from the output "
                                                 "activation)"))
    if classes is not None:
        lines.append(f"classes ({len(classes)}): {', '.join(map(repr, classes))}")
    if targets:
        lines.append(f"target: {', '.join(targets)}")
    lines.append(f"features ({model.n_inputs}): " + (
        ", ".join(features) if features else "not named (DATA columns are used by position)"))
    lines.append("input standardization: " + (
        "stored (mean and scale per feature, applied before the first layer)" if scaled
        else "none"))
    lines.append(f"architecture: {describe(model)}")
    lines.append(model.summary())
    lines.append(f"parameters: {model.count_params():,} ({trainable:,} trainable)")
    training = meta.get("training")
    if isinstance(training, dict):
        lines.append("training: " + ", ".join(f"{k} {_value(v)}" for k, v in training.items()))
    metrics = meta.get("metrics")
    if isinstance(metrics, dict):
        for part, values in metrics.items():
            if isinstance(values, dict):
                lines.append(f"scores on the {part} rows: {format_scores(values)}")
    shown = {"task", "loss", "classes", "target", "feature_names", "training", "metrics",
             "fastmlp_version", "created"}
    for key, value in meta.items():
        if key not in shown:
            lines.append(f"{key}: {_value(value)}")
    print("\n".join(lines))
    return 0


def _value(v) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return "none" if v is None else str(v)
