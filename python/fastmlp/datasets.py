"""Data sets: the 8x8 digits that ship with fastmlp (so the examples run offline), and MNIST /
Fashion-MNIST read from IDX files the user has downloaded (fastmlp never downloads)."""
from __future__ import annotations

import numbers
import os
from importlib import resources

import numpy as np

from .idx import read_idx, type_name

MNIST_SHAPE = (28, 28)
# (images, labels) file stems per split, as LeCun's site and Fashion-MNIST name them.
MNIST_FILES = {"train": ("train-images", "train-labels"), "test": ("t10k-images", "t10k-labels")}


# Names of the digits' 64 features: the pixel at row r, column c of the 8x8 image.
DIGITS_FEATURES = [f"pixel_{j // 8}_{j % 8}" for j in range(64)]


def load_digits(*, test_fraction: float = 0.2, seed: int = 0):
    """The 8x8 handwritten digits (1,797 samples, 64 features, 10 classes).

    test_fraction: share of the samples held out for testing, in (0, 1); both parts must be
        non-empty.
    seed: seeds the shuffle that splits the data (not stratified); a given seed gives the same
        split on every machine.
    Returns ``(X_train, y_train, X_test, y_test)``: X float32 (n, 64) scaled to [0, 1]
        (pixel / 16), y int64 (n,) in 0..9.
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real) or \
            not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    with resources.files("fastmlp").joinpath("data/digits.npz").open("rb") as f:
        data = np.load(f)
        X = data["X"].astype(np.float32) / np.float32(16.0)
        y = data["y"].astype(np.int64)
    n_test = int(round(len(y) * test_fraction))
    if not 1 <= n_test < len(y):
        raise ValueError(f"test_fraction: {test_fraction!r} of {len(y)} samples gives {n_test} "
                         f"test samples, leaving an empty training or test set; use a value "
                         f"nearer 0.5")
    order = np.random.default_rng(seed).permutation(len(y))
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test]


def load_mnist(path, *, normalize: bool = True, flatten: bool = True, n_classes=10):
    """MNIST, Fashion-MNIST (or KMNIST, EMNIST) from the folder of IDX files you downloaded.

    path: a folder holding the four files ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``
        (Fashion-MNIST uses the same names). Each may end in ``.gz`` and may use a dot before
        ``idx`` (``train-images.idx3-ubyte``, as the Kaggle copy does), and may sit inside a
        folder of its own name (also Kaggle). Gzip is recognised by content, not by name.
        Both splits are required; to read a single file use ``fastmlp.idx.read_idx``.
        (EMNIST stores each image transposed; transpose X yourself with flatten=False.)
    normalize: True gives X float32 in [0, 1] (pixel / 255); False the raw uint8 pixels.
    flatten: True gives X (n, 784); False (n, 28, 28).
    n_classes: labels must lie in 0..n_classes-1 (10 for MNIST and Fashion-MNIST; 47 for
        EMNIST balanced, 49 for Kuzushiji-49); None accepts any byte label. The check catches
        a corrupt or mismatched labels file before it trains a wrong-sized output layer.
    Returns ``(X_train, y_train, X_test, y_test)``, y int64 (n,); 60,000 training and 10,000
        test samples for MNIST.
    Raises FileNotFoundError naming the folder and the names looked for when a file is missing,
    and ValueError naming the file and the fault when one is malformed (bad magic number,
    truncated, corrupt gzip, not 28x28 uint8 images, label count differing from image count,
    label out of range).
    """
    for name, value in (("normalize", normalize), ("flatten", flatten)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name}: expected True or False, got {value!r}")
    if n_classes is not None and (isinstance(n_classes, bool) or
                                  not isinstance(n_classes, numbers.Integral) or n_classes < 1):
        raise ValueError(f"n_classes: expected an integer >= 1 or None, got {n_classes!r}")
    files = _find_mnist_files(path)
    out = []
    for split, (images_file, labels_file) in files.items():
        images = _read_images(images_file)
        labels = _read_labels(labels_file, n_classes)
        if len(images) != len(labels):
            raise ValueError(f"{images_file} holds {len(images):,} images but {labels_file} "
                             f"holds {len(labels):,} labels; the {split} files do not belong "
                             f"together")
        if normalize:
            X = images.astype(np.float32)
            X /= np.float32(255.0)
        else:
            X = images
        out += [X.reshape(len(X), -1) if flatten else X, labels.astype(np.int64)]
    return tuple(out)


def _find_mnist_files(path) -> dict:
    """{split: (images file, labels file)} in path, or FileNotFoundError listing all missing."""
    folder = os.fspath(path)
    if not os.path.exists(folder):
        raise FileNotFoundError(f"path: no such folder {folder!r}; pass the folder holding the "
                                f"MNIST IDX files (fastmlp does not download them)")
    if not os.path.isdir(folder):
        raise ValueError(f"path: expected a folder holding the four MNIST files, got the file "
                         f"{folder!r}; pass its folder, or read one file with "
                         f"fastmlp.idx.read_idx")
    found, missing = {}, []
    for split, stems in MNIST_FILES.items():
        pair = []
        for stem, kind in zip(stems, ("idx3-ubyte", "idx1-ubyte")):
            hit = _find(folder, stem, kind)
            if hit is None:
                missing.append(f"{stem}-{kind}")
            pair.append(hit)
        found[split] = tuple(pair)
    if missing:
        raise FileNotFoundError(
            f"path: {folder!r} lacks {', '.join(missing)} (looked for each name with '-' or "
            f"'.' before 'idx', with or without '.gz'); MNIST needs train-images-idx3-ubyte, "
            f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte"
            f"{_subfolder_hint(folder)}")
    return found


def _names(stem: str, kind: str) -> list[str]:
    return [f"{stem}{sep}{kind}{gz}" for gz in ("", ".gz") for sep in ("-", ".")]


def _find(folder: str, stem: str, kind: str):
    """The first existing spelling of the file in folder (uncompressed first: faster), also
    looking inside a folder that carries the file's name, as the Kaggle archive has."""
    names = _names(stem, kind)
    for name in names:
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            return p
        if os.path.isdir(p):
            for inner in names:
                if os.path.isfile(os.path.join(p, inner)):
                    return os.path.join(p, inner)
    return None


def _subfolder_hint(folder: str) -> str:
    """'; IDX files are in <sub>: pass that folder' when the files sit one or two levels down
    (torchvision keeps them in MNIST/raw or FashionMNIST/raw)."""
    def subdirs(d):
        try:
            return sorted(e.path for e in os.scandir(d) if e.is_dir())
        except OSError:
            return []
    hits = [d for child in subdirs(folder) for d in [child] + subdirs(child)
            if _find(d, "train-images", "idx3-ubyte")]
    return f"; IDX files are in {', '.join(map(repr, hits))}: pass that folder" if hits else ""


def _read_images(file: str) -> np.ndarray:
    images = read_idx(file)
    if images.dtype != np.uint8 or images.shape[1:] != MNIST_SHAPE:
        got = f"{images.shape} of {images.dtype}"
        hint = " (a labels file?)" if images.ndim == 1 else ""
        raise ValueError(f"{file}: expected MNIST images, an IDX array (n, 28, 28) of "
                         f"{type_name(0x08)}; got {got}{hint}")
    return images


def _read_labels(file: str, n_classes) -> np.ndarray:
    labels = read_idx(file)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        hint = " (an images file?)" if labels.ndim == 3 else ""
        raise ValueError(f"{file}: expected MNIST labels, an IDX array (n,) of "
                         f"{type_name(0x08)}; got {labels.shape} of {labels.dtype}{hint}")
    if n_classes is not None and len(labels) and labels.max() >= n_classes:
        i = int(np.argmax(labels >= n_classes))
        raise ValueError(f"{file}: label {labels[i]} at row {i} is outside 0..{n_classes - 1}; "
                         f"MNIST and Fashion-MNIST labels are 0..9; pass n_classes for a data "
                         f"set with more classes, or None to accept any label")
    return labels
