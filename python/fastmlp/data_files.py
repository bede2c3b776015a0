"""Reading a data table from disk for the command-line tools: a CSV file with a header row, or
an .npz archive with arrays X and y. read_table reads features and targets for training;
read_columns reads the columns a saved model needs, by name, ignoring the others.

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


def read_table(path, target=None, *, text_target: bool = False):
    """Reads the features and targets in path.

    path: a ``.csv`` file with a header row (``target`` names the target column, or a list of
        names for several target columns; every other column is a feature), or an ``.npz``
        archive holding arrays ``X`` (n, n_features) and ``y`` (n,) or (n, n_targets), and
        optionally ``feature_names`` (n_features,) strings.
    text_target: False (default): every target must be a number. True: a single target column
        that holds any non-numeric value is returned as text labels (a str array), so a
        classifier can learn labels such as "setosa"; a numeric column is still float64.
    Returns (X, y, feature_names): X float32 (n, n_features) C-contiguous and finite; y (n,)
        for one target or (n, n_targets): float64 from a CSV (or str, see text_target), the
        stored dtype from an .npz; feature_names a list of n_features strings (the CSV header,
        or "x0", "x1", ...).
    Raises FileNotFoundError for a missing file and DataFileError for anything else.
    """
    path = _check_path(path)
    if path.lower().endswith(".npz") and target is not None:
        raise DataFileError(f"{path}: --target/target applies to CSV files only; an .npz "
                            f"file supplies its targets as the array 'y'")
    return read_columns(path, None, target if target is not None else True,
                        text_target=text_target)


def read_columns(path, features=None, target=None, *, text_target: bool = False):
    """Reads the columns a saved model needs from path: its features by name and in its order,
    and optionally the target; every other column is ignored (an ID column, say).

    path: a ``.csv`` file with a header row, or an ``.npz`` archive (see read_table).
    features: the feature names in the model's order, or None for every column of a CSV file
        that is not a target (all of X for an .npz). For an .npz archive, X's columns are picked
        by name when it stores ``feature_names``; otherwise X must have len(features) columns.
    target: the CSV target column name(s), or None to read no target (y is None). For an
        .npz archive any non-None target reads its array ``y``; True asks for it without a
        name (an error for a CSV file, whose target must be named).
    text_target: as for read_table.
    Returns (X, y or None, feature_names).
    Raises FileNotFoundError for a missing file and DataFileError for anything else, naming the
    missing column or the mismatch.
    """
    path = _check_path(path)
    if features is not None:
        features = [str(f) for f in features]
        if not features:
            raise DataFileError(f"{path}: features: expected at least one feature name")
    if path.lower().endswith(".csv"):
        return _read_csv(path, features, target, text_target)
    return _read_npz(path, features, target is not None, text_target)


def _check_path(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataFileError(f"{path}: is a directory; expected a .csv or .npz file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise DataFileError(f"{path}: unknown file type {ext or '(no extension)'!r}; expected "
                            f"{' or '.join(EXTENSIONS)}")
    return path


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


def _csv_rows(path: str):
    """(header, [(line number, cells), ...]) of a CSV file, every row as wide as the header."""
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
    width = len(header)
    for n, r in data:
        if len(r) != width:
            raise DataFileError(f"{path}: line {n} has {len(r)} fields, the header has {width}")
    return header, data


def _feature_columns(features, header: list[str], cols: list[int], path: str) -> list[int]:
    """Column indices of the named features (None: every non-target column)."""
    if features is None:
        index = [i for i in range(len(header)) if i not in cols]
        if not index:
            raise DataFileError(f"{path}: every column is a target; no feature columns are left")
        return index
    missing = [f for f in features if f not in header]
    if missing:
        raise DataFileError(f"{path}: the model's feature column{'s' if len(missing) > 1 else ''}"
                            f" {_columns(missing, 10)} {'are' if len(missing) > 1 else 'is'} "
                            f"not in the header; columns: {_columns(header)}; the data must "
                            f"have the columns the model was trained on")
    index = []
    for name in features:
        hits = [i for i, h in enumerate(header) if h == name]
        if len(hits) > 1:
            raise DataFileError(f"{path}: the header names column {name!r} {len(hits)} times "
                                f"(columns {', '.join(str(h + 1) for h in hits)}); rename them")
        index.append(hits[0])
    return index


def _read_csv(path: str, features, target, text_target: bool):
    header, data = _csv_rows(path)
    # target True (a target wanted, but unnamed) is refused by _targets like a missing name.
    cols = [] if target is None else _targets(None if target is True else target, header, path)
    fcols = _feature_columns(features, header, cols, path)
    if not data:
        raise DataFileError(f"{path}: has a header but no data rows")
    # A text target is parsed apart from the features: its cells may be labels.
    text = text_target and len(cols) == 1
    numeric = fcols + ([] if text else cols)
    try:
        # NumPy parses the whole table in one pass; the per-cell scan below runs only to find
        # the cell to name when it fails.
        table = np.array([[r[i] for i in numeric] for _, r in data], dtype=np.float64)
    except ValueError:
        table = None
    if table is None or not np.isfinite(table).all():
        _first_bad_cell(data, header, numeric, cols, path)
    # Values beyond float32 become Inf here (no RuntimeWarning) and are reported just below.
    with np.errstate(over="ignore"):
        X = np.ascontiguousarray(table[:, :len(fcols)], dtype=np.float32)
    if not np.isfinite(X).all():
        j = int(np.argwhere(~np.isfinite(X))[0][1])
        raise DataFileError(f"{path}: column {header[fcols[j]]!r} holds values beyond the "
                            f"float32 range (about 3.4e38)")
    names = [header[i] for i in fcols]
    if not cols:
        return X, None, names
    if text:
        return X, _text_or_numbers(data, header, cols[0], path), names
    y = table[:, len(fcols)].copy() if len(cols) == 1 else \
        np.ascontiguousarray(table[:, len(fcols):])
    return X, y, names


def _text_or_numbers(data, header, col: int, path: str) -> np.ndarray:
    """A target column as float64 when every cell is a finite number, else as text labels."""
    cells = [r[col].strip() for _, r in data]
    try:
        y = np.array(cells, dtype=np.float64)
    except ValueError:
        y = None
    if y is not None:
        if not np.isfinite(y).all():
            _first_bad_cell(data, header, [col], [col], path)
        return y
    for row, ((n, _), text) in enumerate(zip(data, cells), start=1):
        if not text:
            raise DataFileError(f"{path}: target column {header[col]!r}, row {row} (line {n}): "
                                f"an empty value; every row needs a label (drop the row or "
                                f"fill it in)")
    return np.array(cells, dtype=str)


def _first_bad_cell(data, header, used, cols, path):
    """Raises for the first cell of the columns `used` that is not a finite number."""
    for row, (n, r) in enumerate(data, start=1):
        for j in used:
            text = r[j]
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


def _read_npz(path: str, features, need_y: bool, text_y: bool):
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
        missing = [k for k in ("X", "y") if k not in archive.files and (k == "X" or need_y)]
        if missing:
            raise DataFileError(f"{path}: has no array {' or '.join(map(repr, missing))}; "
                                f"arrays found: {', '.join(map(repr, archive.files)) or 'none'}; "
                                f"save with np.savez(path, X=X, y=y)")
        X = _array(archive, "X", path)
        y = _array(archive, "y", path) if need_y else None
        names = (_array(archive, "feature_names", path)
                 if "feature_names" in archive.files else None)
    if X.dtype.kind not in "fiub":
        raise DataFileError(f"{path}: X has dtype {X.dtype}; expected numbers")
    if y is not None and y.dtype.kind not in ("fiubU" if text_y else "fiub"):
        raise DataFileError(f"{path}: y has dtype {y.dtype}; expected numbers (encode classes "
                            f"as integers 0..C-1)")
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise DataFileError(f"{path}: X has shape {X.shape}; expected (n_samples, n_features) "
                            f"with at least one of each (one feature: X.reshape(-1, 1))")
    if y is not None and (y.ndim not in (1, 2) or y.shape[0] != X.shape[0]):
        raise DataFileError(f"{path}: y has shape {y.shape}; expected ({X.shape[0]},) or "
                            f"({X.shape[0]}, n_targets) to match X {X.shape}")
    if names is not None and (names.dtype.kind != "U" or names.shape != (X.shape[1],)):
        raise DataFileError(f"{path}: feature_names must be {X.shape[1]} strings, got "
                            f"{names.dtype} of shape {names.shape}")
    names = None if names is None else [str(n) for n in names]
    if features is not None:
        X, names = _pick_npz_features(X, names, features, path)
    # Values beyond float32 become Inf here (no RuntimeWarning) and are reported just below.
    with np.errstate(over="ignore"):
        Xf = np.ascontiguousarray(X, dtype=np.float32)
    bad = np.argwhere(~np.isfinite(Xf))
    if len(bad):
        raise DataFileError(f"{path}: X[{bad[0][0]}, {bad[0][1]}] is {float(X[tuple(bad[0])]):g}; "
                            f"every value must be finite and within the float32 range")
    if y is not None and y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DataFileError(f"{path}: y[{int(np.argwhere(~np.isfinite(y))[0][0])}] is not "
                            f"finite; every target must be a finite number")
    if names is None:
        names = [f"x{j}" for j in range(X.shape[1])]
    return Xf, y, names


def _pick_npz_features(X: np.ndarray, names, features: list[str], path: str):
    """X's columns for the named features: by name when the archive names its columns, by
    position (the counts must agree) when it does not."""
    if names is None:
        if X.shape[1] != len(features):
            raise DataFileError(f"{path}: X has {X.shape[1]} columns, but the model takes "
                                f"{len(features)} features ({_columns(features, 10)}); store "
                                f"feature_names in the archive to pick columns by name")
        return X, list(features)
    missing = [f for f in features if f not in names]
    if missing:
        raise DataFileError(f"{path}: the model's feature{'s' if len(missing) > 1 else ''} "
                            f"{_columns(missing, 10)} {'are' if len(missing) > 1 else 'is'} not "
                            f"in the archive's feature_names ({_columns(names)})")
    return X[:, [names.index(f) for f in features]], list(features)


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
