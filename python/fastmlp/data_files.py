"""Reading a data table from disk for the command-line tools: a CSV file with a header row, or
an .npz archive with arrays X and y.

Every failure is a DataFileError (a ValueError) or FileNotFoundError whose one-line message names
the file, the column or array, the row, and what to do instead, so a command can print it as is.
Nothing here executes code from the file: .npz archives are read with allow_pickle=False.
"""
from __future__ import annotations

import csv
import os
import zipfile

import numpy as np

EXTENSIONS = (".csv", ".npz")


class DataFileError(ValueError):
    """A data file that cannot be used as (X, y); the message says why and what to do."""


def read_table(path, target=None):
    """Reads the features and targets in path.

    path: a ``.csv`` file with a header row (``target`` names the target column, or a list of
        names for several target columns; every other column is a feature), or an ``.npz``
        archive holding arrays ``X`` (n, n_features) and ``y`` (n,) or (n, n_targets), and
        optionally ``feature_names`` (n_features,) strings.
    Returns (X, y, feature_names): X float32 (n, n_features) C-contiguous and finite; y (n,)
        for one target or (n, n_targets): float64 from a CSV, the stored numeric dtype from an
        .npz; feature_names a list of n_features strings (the CSV header, or "x0", "x1", ...).
    Raises FileNotFoundError for a missing file and DataFileError for anything else.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataFileError(f"{path}: is a directory; expected a .csv or .npz file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        return _read_csv(path, target)
    if ext == ".npz":
        if target is not None:
            raise DataFileError(f"{path}: --target/target applies to CSV files only; an .npz "
                                f"file supplies its targets as the array 'y'")
        return _read_npz(path)
    raise DataFileError(f"{path}: unknown file type {ext or '(no extension)'!r}; expected "
                        f"{' or '.join(EXTENSIONS)}")


def _targets(target, header: list[str], path: str) -> list[int]:
    """Column indices of the target names (a name, a list of names, or a comma-separated
    string of names), checked against the header."""
    if target is None:
        raise DataFileError(f"{path}: a CSV file needs the target column named (--target COL); "
                            f"columns: {_columns(header)}")
    if isinstance(target, str):
        # An exact header match wins, so a column whose name contains a comma still works.
        names = [target] if target in header else [t.strip() for t in target.split(",")]
    else:
        names = list(target)
    if not names or any(not isinstance(n, str) or not n for n in names):
        raise DataFileError(f"{path}: target: expected column names, got {target!r}")
    index = []
    for name in names:
        hits = [i for i, h in enumerate(header) if h == name]
        if not hits:
            hint = ""
            if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
                hint = "; the header has a single column: fastmlp reads comma-separated files"
            raise DataFileError(f"{path}: target column {name!r} is not in the header; "
                                f"columns: {_columns(header)}{hint}")
        if len(hits) > 1:
            raise DataFileError(f"{path}: the header names column {name!r} {len(hits)} times "
                                f"(columns {', '.join(str(h + 1) for h in hits)}); rename them")
        index.append(hits[0])
    if len(set(index)) != len(index):
        raise DataFileError(f"{path}: target: a column is named twice in {names}")
    if len(index) == len(header):
        raise DataFileError(f"{path}: every column is a target; no feature columns are left")
    return index


def _columns(header: list[str], limit: int = 20) -> str:
    shown = ", ".join(repr(h) for h in header[:limit])
    return shown + (f", ... ({len(header)} in all)" if len(header) > limit else "")


def _read_csv(path: str, target):
    try:
        # utf-8-sig drops the byte-order mark spreadsheet programs put before the header.
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as e:
        raise DataFileError(f"{path}: is not UTF-8 text ({e.reason} at byte {e.start}); save "
                            f"it as UTF-8 CSV") from None
    except csv.Error as e:
        raise DataFileError(f"{path}: is not a readable CSV file ({e})") from None
    # Blank lines carry no row (a trailing newline, a spreadsheet export's padding).
    lines = [(n, r) for n, r in enumerate(rows, start=1) if any(c.strip() for c in r)]
    if not lines:
        raise DataFileError(f"{path}: is empty; expected a header row, then one row per sample")
    header = [h.strip() for h in lines[0][1]]
    data = lines[1:]
    cols = _targets(target, header, path)
    if not data:
        raise DataFileError(f"{path}: has a header but no data rows")
    width = len(header)
    for n, r in data:
        if len(r) != width:
            raise DataFileError(f"{path}: line {n} has {len(r)} fields, the header has {width}")
    cells = [r for _, r in data]
    try:
        # NumPy parses the whole table in one pass; the per-cell scan below runs only to find
        # the cell to name when it fails.
        table = np.array(cells, dtype=np.float64)
    except ValueError:
        table = None
    if table is None or not np.isfinite(table).all():
        _first_bad_cell(data, header, cols, path)
    features = [i for i in range(width) if i not in cols]
    X = np.ascontiguousarray(table[:, features], dtype=np.float32)
    if not np.isfinite(X).all():
        j = int(np.argwhere(~np.isfinite(X))[0][1])
        raise DataFileError(f"{path}: column {header[features[j]]!r} holds values beyond the "
                            f"float32 range (about 3.4e38)")
    y = table[:, cols[0]].copy() if len(cols) == 1 else np.ascontiguousarray(table[:, cols])
    return X, y, [header[i] for i in features]


def _first_bad_cell(data, header, cols, path):
    for row, (n, r) in enumerate(data, start=1):
        for j, text in enumerate(r):
            try:
                value = float(text)
            except ValueError:
                value = None
            if value is not None and np.isfinite(value):
                continue
            where = (f"{path}: {'target ' if j in cols else ''}column {header[j]!r}, row {row} "
                     f"(line {n})")
            if value is None:
                fix = ("encode the classes as integers 0..C-1" if j in cols else
                       "encode categories as numbers, or drop the column")
                what = "an empty value" if not text.strip() else f"the non-numeric value {text!r}"
                raise DataFileError(f"{where}: {what}; every value must be a number ({fix})")
            raise DataFileError(f"{where}: the value {text!r} is not finite; fill in or drop "
                                f"missing values first")
    raise DataFileError(f"{path}: could not read the values as numbers")


def _read_npz(path: str):
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as e:
        # np.load reads anything that is neither .npy nor .npz as a pickle, which it refuses.
        why = ("NumPy could only read it as a pickle, which can run code and is never loaded"
               if "pickle" in str(e) else str(e))
        raise DataFileError(f"{path}: is not an .npz archive ({why}); save with "
                            f"np.savez(path, X=X, y=y)") from None
    except (OSError, zipfile.BadZipFile) as e:
        raise DataFileError(f"{path}: cannot be read as an .npz archive ({e})") from None
    if not hasattr(archive, "files"):
        raise DataFileError(f"{path}: holds a single .npy array, not an .npz archive; save "
                            f"with np.savez(path, X=X, y=y)")
    with archive:
        missing = [k for k in ("X", "y") if k not in archive.files]
        if missing:
            raise DataFileError(f"{path}: has no array {' or '.join(map(repr, missing))}; "
                                f"arrays found: {', '.join(map(repr, archive.files)) or 'none'}; "
                                f"save with np.savez(path, X=X, y=y)")
        X, y = _array(archive, "X", path), _array(archive, "y", path)
        names = (_array(archive, "feature_names", path)
                 if "feature_names" in archive.files else None)
    if X.dtype.kind not in "fiub":
        raise DataFileError(f"{path}: X has dtype {X.dtype}; expected numbers")
    if y.dtype.kind not in "fiub":
        raise DataFileError(f"{path}: y has dtype {y.dtype}; expected numbers (encode classes "
                            f"as integers 0..C-1)")
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise DataFileError(f"{path}: X has shape {X.shape}; expected (n_samples, n_features) "
                            f"with at least one of each (one feature: X.reshape(-1, 1))")
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        raise DataFileError(f"{path}: y has shape {y.shape}; expected ({X.shape[0]},) or "
                            f"({X.shape[0]}, n_targets) to match X {X.shape}")
    Xf = np.ascontiguousarray(X, dtype=np.float32)
    bad = np.argwhere(~np.isfinite(Xf))
    if len(bad):
        raise DataFileError(f"{path}: X[{bad[0][0]}, {bad[0][1]}] is {X[tuple(bad[0])]!r}; "
                            f"every value must be finite and within the float32 range")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DataFileError(f"{path}: y[{int(np.argwhere(~np.isfinite(y))[0][0])}] is not "
                            f"finite; every target must be a finite number")
    if names is None:
        names = [f"x{j}" for j in range(X.shape[1])]
    elif names.dtype.kind != "U" or names.shape != (X.shape[1],):
        raise DataFileError(f"{path}: feature_names must be {X.shape[1]} strings, got "
                            f"{names.dtype} of shape {names.shape}")
    else:
        names = [str(n) for n in names]
    return Xf, y, names


def _array(archive, key: str, path: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as e:
        if "pickle" in str(e):
            raise DataFileError(f"{path}: array {key!r} holds Python objects, which need pickle "
                                f"to load (unsafe: it can run code); save numeric arrays, e.g. "
                                f"np.savez(path, X=X.astype(np.float32), y=y)") from None
        raise DataFileError(f"{path}: array {key!r} cannot be read ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataFileError(f"{path}: array {key!r} cannot be read ({e})") from None
