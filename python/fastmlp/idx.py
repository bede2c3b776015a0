"""Reading IDX files, the format MNIST, Fashion-MNIST, KMNIST and EMNIST ship in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the array in C order, big-endian. Type codes:
0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.

The reader trusts nothing in the header: it checks the data length against the file before it
allocates anything the header asks for, so a corrupt header claiming 10^12 items fails with a
ValueError instead of a MemoryError or a read past the end. Gzip is recognised by its content,
not its name (browsers often decompress ``.gz`` downloads and keep the name). Nothing in the
file is executed; there is no pickle.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

# type code -> big-endian dtype as stored in the file
DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"
# Deflate cannot expand data more than 1032:1, so a gzip file of n bytes holds at most about
# 1032 n bytes: a header claiming more is corrupt, and we can say so without decompressing.
_MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 22  # 4 MiB: gzip data is read in chunks, so memory follows the real data


def type_name(code: int) -> str:
    """'uint8 (0x08)' for an IDX type code, for messages."""
    dt = DTYPES.get(code)
    return f"{dt.newbyteorder('=').name if dt is not None else 'unknown'} (0x{code:02X})"


def read_idx(path) -> np.ndarray:
    """Reads one IDX file (gzipped or not) into a NumPy array.

    path: a file path (str or os.PathLike). Gzip is detected from the first bytes, so
        ``x.gz`` that a browser already decompressed, or a gzipped file without ``.gz``,
        read the same.
    Returns an array whose shape is the header's dimensions, in native byte order, of the
        header's type: uint8, int8, int16, int32, float32 or float64.
    Raises FileNotFoundError for a missing file, and ValueError naming the file for a bad
        magic number, a truncated file or header, bytes after the data, or corrupt gzip data.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder; expected an IDX file")
    with open(path, "rb") as raw:
        size = os.fstat(raw.fileno()).st_size
        if raw.read(2) == _GZIP_MAGIC:
            raw.seek(0)
            try:
                with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                    return _read(f, path, compressed_size=size)
            except (gzip.BadGzipFile, zlib.error) as e:
                raise ValueError(f"{path}: corrupt gzip data ({e}); download the file "
                                 f"again") from None
            except EOFError as e:
                raise ValueError(f"{path}: the gzip data is truncated ({e}); download the "
                                 f"file again") from None
        raw.seek(0)
        return _read(raw, path, file_size=size)


def _read(f, path: str, file_size=None, compressed_size=None) -> np.ndarray:
    """Header, size checks, then the data, from the (decompressing) stream f."""
    magic = _read_exact(f, 4, path, "the magic number")
    if magic[:2] != b"\0\0" or magic[2] not in DTYPES:
        raise ValueError(f"{path}: not an IDX file: it starts with bytes "
                         f"{' '.join(f'{b:02X}' for b in magic)} {_guess(magic)}")
    dtype = DTYPES[magic[2]]
    ndim = magic[3]
    if ndim == 0:
        raise ValueError(f"{path}: the IDX header says 0 dimensions; expected at least 1")
    sizes = _read_exact(f, 4 * ndim, path, f"the {ndim} dimension sizes")
    dims = tuple(int.from_bytes(sizes[4 * i:4 * i + 4], "big") for i in range(ndim))
    header = 4 + 4 * ndim
    n_bytes = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    what = f"{'x'.join(map(str, dims))} {type_name(magic[2])} = {n_bytes:,} data bytes"

    if file_size is not None:
        if file_size - header < n_bytes:
            raise ValueError(f"{path}: truncated: the header says {what}, the file has "
                             f"{file_size - header:,}; download the file again")
        if file_size - header > n_bytes:
            raise ValueError(f"{path}: {file_size - header - n_bytes:,} bytes follow the data "
                             f"the header describes ({what}); the header or the file is "
                             f"corrupt")
        buf = np.empty(n_bytes, np.uint8)  # size checked against the file above
        got = f.readinto(memoryview(buf))
        if got != n_bytes:  # the file shrank under us
            raise ValueError(f"{path}: truncated: read {got:,} of {n_bytes:,} data bytes")
    else:
        if n_bytes > _MAX_DEFLATE_RATIO * compressed_size:
            raise ValueError(f"{path}: the header says {what}, more than a gzip file of "
                             f"{compressed_size:,} bytes can hold; the file is truncated or "
                             f"its header is corrupt")
        buf, more = _read_bounded(f, n_bytes)
        if len(buf) < n_bytes:
            raise ValueError(f"{path}: truncated: the header says {what}, the decompressed "
                             f"file has {len(buf):,}; download the file again")
        if more:
            raise ValueError(f"{path}: bytes follow the data the header describes ({what}); "
                             f"the header or the file is corrupt")
        buf = np.frombuffer(buf, np.uint8)
    arr = buf.view(dtype).reshape(dims)
    return arr if dtype.itemsize == 1 else arr.astype(dtype.newbyteorder("="))


def _read_exact(f, n: int, path: str, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError(f"{path}: truncated inside the header: {len(data)} of the {n} bytes "
                         f"of {what}")
    return data


def _read_bounded(f, n: int) -> tuple[bytearray, bool]:
    """Up to n bytes of f read in chunks, so memory follows the data actually there, not the
    header's claim; and whether more bytes follow. Looking one byte past n reaches the end of
    the stream, which makes gzip check its CRC."""
    chunks, left = [], n
    while left:
        chunk = f.read(min(_CHUNK, left))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return bytearray().join(chunks), bool(f.read(1))


def _guess(magic: bytes) -> str:
    """A hint about what the file is instead, from its first bytes."""
    if magic[:2] == b"PK":
        return "(a zip archive: unzip it first)"
    if magic.lstrip()[:1] == b"<":
        return "(text, likely an HTML error page saved by a failed download)"
    if magic[:2] == b"\0\0":
        return (f"(type code 0x{magic[2]:02X} is not an IDX type; accepted: "
                f"{', '.join(type_name(c) for c in DTYPES)})")
    return "(IDX files start with two zero bytes, a type code and the number of dimensions)"
