"""Reading data files safely: a bounded read of any file (a crafted .gz cannot claim
terabytes), and MNIST's two formats, the IDX files and ``mnist.pkl.gz``, whose pickle is
read by an unpickler that builds arrays and nothing else. Every problem is a
:class:`DataError` naming the file.
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np

from ..validation import format_bytes, physical_memory

__all__ = ["DataError", "read_bounded", "read_idx_folder", "read_mnist_pkl"]

Array = np.ndarray


class DataError(ValueError):
    """A data source that is missing, unreadable or malformed."""


def read_bounded(path: Path, limit: int | None = None) -> bytes:
    """A file's bytes, decompressed if it ends in ``.gz``, refusing more than ``limit``
    (default: a quarter of physical memory): a small crafted .gz can claim terabytes."""
    total = physical_memory()
    limit = limit or (total // 4 if total else 2**34)
    opener = gzip.open if path.suffix == ".gz" else open
    chunks, size = [], 0
    with opener(path, "rb") as f:
        while chunk := f.read(1 << 24):
            size += len(chunk)
            if size > limit:
                raise DataError(f"{path}: holds more than {format_bytes(limit)} (decompressed); "
                                "not a data set this reader will load into memory")
            chunks.append(chunk)
    return b"".join(chunks)


def _read_idx(path: Path) -> Array:
    try:
        data = read_bounded(path)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot be read as IDX ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header ({ndim} dimensions declared, {len(data)} bytes in all)")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(dims):
        raise DataError(f"{path}: header says {dims} but holds {body.size} values (truncated?)")
    return body.reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise DataError(f"{folder}: no {stem} (or {stem}.gz): an IDX folder holds the four MNIST files")


def read_idx_folder(folder: Path) -> tuple[Array, Array, Array, Array]:
    """MNIST or Fashion-MNIST in the standard IDX format: pixels scaled to [0, 1]."""
    parts = []
    for split in ("train", "t10k"):
        images = _read_idx(_find(folder, f"{split}-images-idx3-ubyte"))
        labels = _read_idx(_find(folder, f"{split}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{folder}: {split} images and labels do not match")
        parts += [images.reshape(len(images), -1).astype(np.float32) / 255, labels.astype(np.int64)]
    return tuple(parts)


_NUMERIC = {"f4", "f8", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "b1"}


class _DType:
    """What a pickle says a dtype is; only plain numeric dtypes ever become one."""

    def __init__(self, spec, align=False, copy=False):
        if not isinstance(spec, str) or spec not in _NUMERIC:
            raise DataError(f"mnist.pkl.gz: refuses dtype {spec!r} (only plain numeric arrays are allowed)")
        self.spec, self.order = spec, "|"

    def __setstate__(self, state):
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags): no fields, no subarray
        if not (isinstance(state, tuple) and len(state) >= 5 and state[1] in ("<", ">", "|", "=")
                and state[2] is None and state[3] is None and state[4] is None):
            raise DataError("mnist.pkl.gz: refuses a structured or malformed dtype")
        self.order = state[1]

    def numpy(self) -> np.dtype:
        return np.dtype(self.spec).newbyteorder(self.order if self.order != "|" else "=")


class _Array:
    """What a pickle says an array is: shape, dtype and raw bytes, checked before any array exists."""

    def __init__(self, *args):
        self.array = None

    def __setstate__(self, state):
        # (version, shape, dtype, is_fortran, rawdata), as ndarray.__reduce__ writes it
        if not (isinstance(state, tuple) and len(state) == 5):
            raise DataError("mnist.pkl.gz: malformed array")
        _, shape, dtype, fortran, raw = state
        self.array = _checked_array(shape, dtype, raw, "F" if fortran else "C")


def _frombuffer(buf, dtype, shape, order):  # what protocol 5 pickles of arrays call
    return _checked_array(shape, dtype, bytes(memoryview(buf)), order)


def _latin1(text, encoding="latin1"):  # how protocol-2 pickles written by Python 3 spell bytes
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DataError("mnist.pkl.gz: malformed byte string")
    return text.encode("latin1")


def _checked_array(shape, dtype, raw, order) -> Array:
    if isinstance(raw, str):  # Python 2 pickles read with encoding="latin1"
        raw = raw.encode("latin1")
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)
            and isinstance(dtype, _DType) and isinstance(raw, (bytes, bytearray)) and order in ("C", "F")):
        raise DataError("mnist.pkl.gz: malformed array (shape, dtype or data)")
    dt = dtype.numpy()
    if len(raw) != dt.itemsize * int(np.prod(shape, dtype=np.int64)):
        raise DataError(f"mnist.pkl.gz: an array of shape {shape} holds {len(raw)} bytes, "
                        f"not {dt.itemsize * int(np.prod(shape))}")
    return np.frombuffer(raw, dtype=dt).reshape(shape, order=order).astype(dt.newbyteorder("="))


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds nothing but plain numeric NumPy arrays and tuples.

    NumPy's own reconstructors are never called: the globals a pickled array names
    resolve to stand-ins (:class:`_Array`, :class:`_DType`) that check the dtype
    (numeric only), the shape and the byte count before one array is made with
    ``np.frombuffer``, so no crafted file can reach code that trusts its input.
    """

    STAND_INS = {("numpy.core.multiarray", "_reconstruct"): _Array, ("numpy._core.multiarray", "_reconstruct"): _Array,
                 ("numpy", "ndarray"): _Array, ("numpy", "dtype"): _DType,
                 ("numpy.core.numeric", "_frombuffer"): _frombuffer, ("numpy._core.numeric", "_frombuffer"): _frombuffer,
                 ("_codecs", "encode"): _latin1}

    def find_class(self, module, name):
        if (module, name) in self.STAND_INS:
            return self.STAND_INS[module, name]
        raise DataError(f"mnist.pkl.gz: refuses to load {module}.{name} (only NumPy arrays are allowed)")


def _array_of(part, what: str, path: Path) -> Array:
    array = part.array if isinstance(part, _Array) else part
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: {what} is a {type(part).__name__}, not an array")
    return array


def read_mnist_pkl(path: Path) -> tuple[Array, Array, Array, Array]:
    """The ``mnist.pkl.gz`` format ((train, validation, test) pairs), read without running code.

    Its training and validation parts together are the 60,000 training images.
    """
    try:
        data = read_bounded(path)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a valid mnist.pkl.gz file ({type(e).__name__}: {e})") from None
    try:
        parts = _ArraysOnly(io.BytesIO(data), encoding="latin1").load()
    except DataError as e:
        raise DataError(f"{path}: {str(e).removeprefix('mnist.pkl.gz: ')}") from None
    except Exception as e:  # a malformed pickle or gzip stream can fail in many ways; none runs code here
        raise DataError(f"{path}: not a valid mnist.pkl.gz file ({type(e).__name__}: {e})") from None
    if not (isinstance(parts, tuple) and len(parts) == 3 and all(isinstance(p, tuple) and len(p) == 2 for p in parts)):
        raise DataError(f"{path}: expected three (images, labels) pairs: training, validation and test")
    names = ("training", "validation", "test")
    (a, ya), (b, yb), (c, yc) = [(_array_of(x, f"the {n} images", path), _array_of(y, f"the {n} labels", path))
                                 for n, (x, y) in zip(names, parts)]
    for n, x, y in zip(names, (a, b, c), (ya, yb, yc)):
        if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or x.dtype.kind != "f" or y.dtype.kind not in "iu":
            raise DataError(f"{path}: the {n} part must be float images of shape (n, pixels) and n integer labels")
    if not a.shape[1] == b.shape[1] == c.shape[1]:
        raise DataError(f"{path}: the parts have different numbers of pixels")
    X = np.concatenate([a, b]).astype(np.float32, copy=False)
    return X, np.concatenate([ya, yb]).astype(np.int64), c.astype(np.float32, copy=False), yc.astype(np.int64)
