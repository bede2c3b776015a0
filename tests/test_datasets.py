"""Data sets: load_digits' contract, the IDX reader (every type code, gzip or not, every way a
file can be broken), load_mnist on small fake MNIST folders, and the MNIST example.

The IDX files here are written by _idx_bytes below, straight from the format description
(struct and tobytes), not by fastmlp, so a round trip checks the reader against the format.
"""
import gzip
import importlib.util
import os
import pathlib
import struct
import tracemalloc

import numpy as np
import pytest

from fastmlp.datasets import load_digits, load_mnist
from fastmlp.idx import read_idx

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")


def _idx_bytes(arr, code=0x08, dims=None) -> bytes:
    """An IDX file: 0, 0, type code, ndim, big-endian uint32 sizes, big-endian data."""
    arr = np.asarray(arr, dtype=TYPES[code])
    dims = arr.shape if dims is None else dims
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + \
        arr.tobytes()


def _write(path, data: bytes, gz: bool = False):
    if gz:
        data = gzip.compress(data, mtime=0)
    pathlib.Path(path).write_bytes(data)
    return path


def _random(rng, code, shape):
    """Random values of the type, never all zero, spanning its range (NaN-free floats)."""
    if code in (0x0D, 0x0E):
        return rng.standard_normal(shape) * 1e3
    info = np.iinfo(np.dtype(TYPES[code]))
    return rng.integers(info.min, info.max, shape, endpoint=True)


def _fake_mnist(rng, n, learnable=False):
    """n random 28x28 uint8 images and labels 0..9; learnable: each class also lights up its
    own pair of rows, so a network can learn the labels from the pixels."""
    y = rng.integers(0, 10, n).astype(np.uint8)
    X = rng.integers(1, 256 if not learnable else 60, (n, 28, 28), dtype=np.uint8)
    if learnable:
        for i, k in enumerate(y):
            X[i, 2 * k + 4:2 * k + 6, :] = 255
    return X, y


def _write_mnist(folder, arrays, names=FILES, gz=(False, True, True, False)):
    """The four files (train images, train labels, test images, test labels) in folder."""
    os.makedirs(folder, exist_ok=True)
    for name, arr, z in zip(names, arrays, gz):
        _write(os.path.join(folder, name), _idx_bytes(arr), gz=z)
    return folder


@pytest.fixture
def mnist(tmp_path):
    """A folder with 7 training and 3 test images (the test split's files gzipped), and the
    arrays written."""
    rng = np.random.default_rng(7)
    arrays = [*_fake_mnist(rng, 7), *_fake_mnist(rng, 3)]
    return _write_mnist(tmp_path / "mnist", arrays), arrays


# ---- load_digits --------------------------------------------------------------------------

@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.013])
def test_load_digits_shapes_dtypes_ranges(fraction):
    X_train, y_train, X_test, y_test = load_digits(test_fraction=fraction, seed=3)
    n = len(X_train) + len(X_test)
    assert n == 1797  # the data set's size (UCI optical digits, scikit-learn's copy)
    assert len(X_test) == round(n * fraction)
    assert X_train.shape == (len(y_train), 64) and X_test.shape == (len(y_test), 64)
    assert X_train.dtype == X_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    for X in (X_train, X_test):
        assert X.min() == 0.0 and X.max() == 1.0
        np.testing.assert_array_equal(X * 16, np.round(X * 16))  # pixel / 16 exactly
    assert set(np.unique(y_train)) == set(range(10))
    assert set(np.unique(y_test)) <= set(range(10))


def test_load_digits_split_is_reproducible_and_a_partition():
    a = load_digits(seed=5)
    b = load_digits(seed=5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = load_digits(seed=6)
    assert not np.array_equal(a[3], c[3]) or not np.array_equal(a[2], c[2])

    def rows(split):  # every (pixels, label) row, sorted: the same multiset for any seed
        X = np.vstack([split[0], split[2]])
        y = np.concatenate([split[1], split[3]])
        table = np.hstack([X, y[:, None].astype(np.float32)])
        return table[np.lexsort(table.T[::-1])]
    np.testing.assert_array_equal(rows(a), rows(c))


@pytest.mark.parametrize("bad", [0, 0.0, 1, 1.0, -0.1, 1.5, float("nan"), float("inf"), True,
                                 "0.2", None, 1e-6, 0.99999])
def test_load_digits_rejects_bad_test_fraction(bad):
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=bad)


# ---- read_idx: round trips ----------------------------------------------------------------

@pytest.mark.parametrize("code", sorted(TYPES))
@pytest.mark.parametrize("shape", [(1,), (17,), (3, 17), (7, 1, 3), (2, 3, 1, 5)])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip_every_type(tmp_path, code, shape, gz):
    rng = np.random.default_rng(code * 100 + len(shape))
    expected = _random(rng, code, shape).astype(TYPES[code])
    got = read_idx(_write(tmp_path / "a.idx", _idx_bytes(expected, code), gz))
    assert got.shape == shape
    assert got.dtype == expected.dtype.newbyteorder("=") and got.dtype.isnative
    np.testing.assert_array_equal(got, expected)
    got[...] = 0  # the caller owns a writable array


def test_read_idx_empty_array(tmp_path):
    got = read_idx(_write(tmp_path / "e", _idx_bytes(np.zeros((0, 5), np.int16), 0x0B)))
    assert got.shape == (0, 5) and got.dtype == np.int16


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (3, 17), dtype=np.uint8)
    # a browser-decompressed download that kept its .gz name, and a gzip file without .gz
    plain = read_idx(_write(tmp_path / "x.gz", _idx_bytes(arr)))
    zipped = read_idx(_write(tmp_path / "x-idx2-ubyte", _idx_bytes(arr), gz=True))
    np.testing.assert_array_equal(plain, arr)
    np.testing.assert_array_equal(zipped, arr)


def test_read_idx_accepts_pathlike_and_str(tmp_path):
    arr = np.arange(1, 8, dtype=np.uint8)
    p = _write(tmp_path / "p", _idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(p), read_idx(str(p)))


# ---- read_idx: broken files ---------------------------------------------------------------

GOOD = _idx_bytes(np.arange(1, 3 * 7 * 5 + 1).reshape(3, 7, 5), 0x08)
BROKEN = {  # name -> (file bytes, words the message must contain)
    "empty": (b"", "truncated inside the header"),
    "short magic": (b"\0\0\x08", "truncated inside the header"),
    "short dims": (GOOD[:9], "truncated inside the header: 5 of the 12 bytes"),
    "bad magic": (b"\x08\x03" + GOOD[2:], "not an IDX file: it starts with bytes 08 03"),
    "unknown type": (b"\0\0\x0A\x03" + GOOD[4:], "type code 0x0A is not an IDX type"),
    "zero dims": (b"\0\0\x08\0", "0 dimensions"),
    "zip": (b"PK\x03\x04" + GOOD[4:], "zip archive"),
    "html": (b"<!DOCTYPE html><html>403 Forbidden</html>", "HTML"),
    "truncated data": (GOOD[:-1], "truncated: the header says 3x7x5 uint8 (0x08) = 105 data "
                                  "bytes, the file has 104"),
    "extra bytes": (GOOD + b"\x01\x02", "2 bytes follow the data"),
    "huge claim": (b"\0\0\x08\x03" + struct.pack(">III", 10**4, 10**4, 10**4) + GOOD[16:],
                   "1,000,000,000,000 data bytes"),
}


# a gzipped zip or HTML page is not a case of its own
@pytest.mark.parametrize("name,gz", [(name, gz) for name in sorted(BROKEN) for gz in (0, 1)
                                     if not (gz and name in ("zip", "html"))])
def test_read_idx_names_the_file_and_the_fault(tmp_path, name, gz):
    data, words = BROKEN[name]
    path = _write(tmp_path / f"{name.replace(' ', '_')}-idx3-ubyte", data, gz)
    if gz and name in ("truncated data", "extra bytes"):
        words = words.replace("the file has", "the decompressed file has")
        words = "bytes follow the data" if name == "extra bytes" else words
    if gz and name == "huge claim":
        words = "more than a gzip file of"
    with pytest.raises(ValueError) as err:
        read_idx(path)
    assert str(path) in str(err.value) and words in str(err.value), str(err.value)


@pytest.mark.parametrize("gz", [False, True])
def test_huge_claim_fails_before_allocating(tmp_path, gz):
    # 10^12 items claimed by a 128-byte file: the reader must not try to allocate them, nor
    # allocate in proportion to the claim while reading.
    data = b"\0\0\x08\x02" + struct.pack(">II", 10**6, 10**6) + bytes(range(1, 121))
    path = _write(tmp_path / "huge", data, gz)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="huge"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"reading a corrupt header allocated {peak:,} bytes"


def test_gzip_claim_within_deflate_ratio_still_reads_only_what_is_there(tmp_path):
    # 4 MB of random bytes barely compress, so a header claiming 400 MB passes the deflate-ratio
    # test; the data then stops at 4 MB: the error comes from the data, memory follows it.
    n_claim, n_real = 400_000_000, 4_000_000
    data = np.random.default_rng(3).integers(0, 256, n_real, dtype=np.uint8).tobytes()
    path = _write(tmp_path / "short.gz", b"\0\0\x08\x01" + struct.pack(">I", n_claim) + data,
                  gz=True)
    assert n_claim <= 1032 * os.path.getsize(path)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="decompressed file has 4,000,000"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * n_real, f"peak {peak:,} bytes for {n_real:,} bytes of data"


def _gzip_faults():
    good = gzip.compress(GOOD, mtime=0)
    body = bytearray(good)
    body[len(good) // 2] ^= 0xFF  # a flipped byte inside the deflate stream
    crc = bytearray(good)
    crc[-8] ^= 0x01  # the stored CRC-32 no longer matches the data
    method = bytearray(good)
    method[2] = 7  # compression method 7 does not exist (8 is deflate)
    return {"corrupt body": (bytes(body), "corrupt gzip data|gzip data is truncated"),
            "bad crc": (bytes(crc), "corrupt gzip data"),
            "bad method": (bytes(method), "corrupt gzip data"),
            "cut short": (good[:len(good) // 2], "gzip data is truncated"),
            "cut trailer": (good[:-4], "gzip data is truncated")}


@pytest.mark.parametrize("name", sorted(_gzip_faults()))
def test_corrupt_gzip_is_a_value_error_naming_the_file(tmp_path, name):
    data, pattern = _gzip_faults()[name]
    path = _write(tmp_path / "images.gz", data)
    with pytest.raises(ValueError, match=pattern) as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_read_idx_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nothing-here")
    with pytest.raises(ValueError, match="is a folder"):
        read_idx(tmp_path)


# ---- load_mnist ---------------------------------------------------------------------------

def test_load_mnist_round_trip_exact(mnist):
    folder, (Xa, ya, Xb, yb) = mnist
    X_train, y_train, X_test, y_test = load_mnist(folder, normalize=False, flatten=False)
    for got, want in ((X_train, Xa), (X_test, Xb)):
        assert got.dtype == np.uint8 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    for got, want in ((y_train, ya), (y_test, yb)):
        assert got.dtype == np.int64 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_load_mnist_normalized_and_flat(mnist):
    folder, (Xa, ya, Xb, yb) = mnist
    X_train, y_train, X_test, y_test = load_mnist(folder)  # normalize, flatten by default
    for got, want in ((X_train, Xa), (X_test, Xb)):
        assert got.dtype == np.float32 and got.shape == (len(want), 784)
        assert got.flags.c_contiguous and 0.0 <= got.min() and got.max() <= 1.0
        np.testing.assert_array_equal(got, (want.reshape(len(want), -1) / 255.0)
                                      .astype(np.float32))
    np.testing.assert_array_equal(y_train, ya)
    square = load_mnist(folder, flatten=False)[2]
    assert square.shape == (3, 28, 28) and square.dtype == np.float32
    np.testing.assert_array_equal(square.reshape(3, -1), X_test)
    flat_raw = load_mnist(folder, normalize=False)[0]
    assert flat_raw.shape == (7, 784) and flat_raw.dtype == np.uint8


@pytest.mark.parametrize("spelling", ["dash", "dot", "dot.gz", "kaggle-folders"])
def test_load_mnist_accepts_the_common_spellings(tmp_path, spelling):
    rng = np.random.default_rng(len(spelling))
    arrays = [*_fake_mnist(rng, 3), *_fake_mnist(rng, 1)]
    if spelling == "dash":
        names, gz = FILES, (False,) * 4
    elif spelling == "dot":
        names, gz = [n.replace("-idx", ".idx") for n in FILES], (False,) * 4
    elif spelling == "dot.gz":
        names, gz = [n.replace("-idx", ".idx") + ".gz" for n in FILES], (True,) * 4
    else:  # the Kaggle archive: each file inside a folder of the file's name
        names, gz = [f"{n}/{n.replace('-idx', '.idx')}" for n in FILES], (False,) * 4
        for n in FILES:
            os.makedirs(tmp_path / n)
    _write_mnist(tmp_path, arrays, names, gz)
    got = load_mnist(tmp_path, normalize=False, flatten=False)
    for g, want in zip(got, arrays):
        np.testing.assert_array_equal(g, want)


def test_load_mnist_prefers_the_uncompressed_copy(mnist):
    folder, (Xa, *_) = mnist
    # torchvision keeps both; the .gz beside the plain file here holds different pixels
    _write(folder / "train-images-idx3-ubyte.gz", _idx_bytes(255 - Xa), gz=True)
    np.testing.assert_array_equal(load_mnist(folder, normalize=False, flatten=False)[0], Xa)


@pytest.mark.parametrize("missing", FILES)
def test_load_mnist_missing_file_names_folder_and_names(mnist, missing):
    folder, _ = mnist
    for p in folder.iterdir():
        if p.name.startswith(missing):
            p.unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_mnist(folder)
    msg = str(err.value)
    assert str(folder) in msg and f"lacks {missing} " in msg and ".gz" in msg
    assert all(name in msg for name in FILES)  # what a complete folder holds


def test_load_mnist_points_to_the_subfolder_holding_the_files(tmp_path):
    rng = np.random.default_rng(2)
    _write_mnist(tmp_path / "MNIST" / "raw", [*_fake_mnist(rng, 3), *_fake_mnist(rng, 1)])
    with pytest.raises(FileNotFoundError, match="pass that folder") as err:
        load_mnist(tmp_path)
    assert str(tmp_path / "MNIST" / "raw") in str(err.value)


def test_load_mnist_bad_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_mnist(tmp_path / "absent")
    file = _write(tmp_path / "train-images-idx3-ubyte", b"")
    with pytest.raises(ValueError, match="expected a folder.*idx.read_idx"):
        load_mnist(file)


def _replace(folder, name, data):
    """Writes data over the file of the fixture whose name starts with name."""
    for p in folder.iterdir():
        if p.name.startswith(name):
            _write(p, data, gz=p.name.endswith(".gz"))
            return p
    raise AssertionError(name)


def test_load_mnist_count_mismatch(mnist):
    folder, (Xa, ya, Xb, yb) = mnist
    _replace(folder, "t10k-labels", _idx_bytes(np.append(yb, 1)))
    with pytest.raises(ValueError, match=r"holds 3 images but .*t10k-labels.* holds 4 labels"):
        load_mnist(folder)


@pytest.mark.parametrize("fault,data,words", [
    ("labels as images", _idx_bytes(np.arange(1, 8)), "(a labels file?)"),
    ("27 rows", _idx_bytes(np.ones((7, 27, 28))), "got (7, 27, 28) of uint8"),
    ("flat images", _idx_bytes(np.ones((7, 784))), "got (7, 784) of uint8"),
    ("int16 pixels", _idx_bytes(np.ones((7, 28, 28)), 0x0B), "got (7, 28, 28) of int16"),
])
def test_load_mnist_rejects_files_that_are_not_mnist_images(mnist, fault, data, words):
    folder, _ = mnist
    path = _replace(folder, "train-images", data)
    with pytest.raises(ValueError, match="expected MNIST images") as err:
        load_mnist(folder)
    assert str(path) in str(err.value) and words in str(err.value)


@pytest.mark.parametrize("fault,data,words", [
    ("images as labels", _idx_bytes(np.ones((3, 28, 28))), "(an images file?)"),
    ("2-D labels", _idx_bytes(np.ones((3, 1))), "got (3, 1) of uint8"),
    ("int32 labels", _idx_bytes(np.ones(3), 0x0C), "got (3,) of int32"),
])
def test_load_mnist_rejects_files_that_are_not_mnist_labels(mnist, fault, data, words):
    folder, _ = mnist
    path = _replace(folder, "t10k-labels", data)
    with pytest.raises(ValueError, match="expected MNIST labels") as err:
        load_mnist(folder)
    assert str(path) in str(err.value) and words in str(err.value)


def test_load_mnist_label_range_and_n_classes(mnist):
    folder, (Xa, ya, Xb, yb) = mnist
    bad = yb.copy()
    bad[1] = 46  # an EMNIST-balanced label
    _replace(folder, "t10k-labels", _idx_bytes(bad))
    with pytest.raises(ValueError, match=r"label 46 at row 1 is outside 0\.\.9"):
        load_mnist(folder)
    np.testing.assert_array_equal(load_mnist(folder, n_classes=47)[3], bad)
    np.testing.assert_array_equal(load_mnist(folder, n_classes=None)[3], bad)
    with pytest.raises(ValueError, match=r"outside 0\.\.45"):
        load_mnist(folder, n_classes=46)


def test_load_mnist_reports_a_broken_file_by_name(mnist):
    folder, _ = mnist
    gz = next(p for p in folder.iterdir() if p.name.startswith("train-labels"))
    _write(gz, gzip.compress(_idx_bytes(np.arange(1, 8)), mtime=0)[:-6])
    with pytest.raises(ValueError, match="gzip data is truncated") as err:
        load_mnist(folder)
    assert str(gz) in str(err.value)


@pytest.mark.parametrize("kwargs,error", [
    (dict(normalize="yes"), TypeError), (dict(flatten=1), TypeError),
    (dict(n_classes=0), ValueError), (dict(n_classes=True), ValueError),
    (dict(n_classes=2.5), ValueError), (dict(n_classes="10"), ValueError)])
def test_load_mnist_rejects_bad_options(mnist, kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        load_mnist(mnist[0], **kwargs)


# ---- the example ----------------------------------------------------------------------

def _example():
    spec = importlib.util.spec_from_file_location("mnist_classifier",
                                                  EXAMPLES / "mnist_classifier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("variant,epochs", [("leaky_relu", 60), ("batchnorm", 30)])
def test_mnist_example_learns_a_learnable_fake_mnist(tmp_path, variant, epochs):
    # Each class lights its own rows, so test accuracy near 1 shows images and labels reach
    # the network paired (a misaligned reader would score ~0.1 on the held-out images).
    rng = np.random.default_rng(11)
    arrays = [*_fake_mnist(rng, 47, learnable=True), *_fake_mnist(rng, 13, learnable=True)]
    _write_mnist(tmp_path, arrays, gz=(True,) * 4)
    out = _example().main(tmp_path, variant=variant, epochs=epochs, verbose=False)
    model = out["model"]
    assert model.sizes == [784, 300, 100, 10]
    assert [layer.batchnorm for layer in model.layers] == [variant == "batchnorm"] * 3
    assert (out["n_train"], out["n_test"]) == (47, 13)
    assert len(out["history"].epoch) == epochs
    losses = out["history"].history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert out["train_accuracy"] == 1.0
    assert out["test_accuracy"] >= 12 / 13


def test_mnist_example_rejects_an_unknown_variant(mnist):
    with pytest.raises(ValueError, match="variant: expected one of leaky_relu, batchnorm"):
        _example().main(mnist[0], variant="dropout", epochs=1, verbose=False)
