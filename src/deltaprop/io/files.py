"""Files: safetensors containers (never pickle) and atomic writes.

What goes into a model file is :mod:`deltaprop.model`'s business, into a
checkpoint :mod:`deltaprop.training.checkpoints`'; this module only reads and
writes the container, refusing anything that is not one before parsing it.

Every file is written atomically: to a temporary file in the same folder,
flushed and fsynced, then renamed over the target, so a crash leaves either the
old file or the new one, never half of one.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import stat
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["ModelFileError", "atomic_write", "check_outputs"]

_MAX_HEADER = 100 * 2**20


class ModelFileError(ValueError):
    """A model or checkpoint file that is missing, malformed, tampered with or inconsistent."""


def atomic_write(path, write) -> None:
    """Call ``write(f)`` on a temporary binary file, fsync it, and rename it to ``path``.

    The temporary file (``.NAME.PID.XXXX.tmp`` beside the target) carries the
    writer's process id, so that one left behind by a killed process is removed by
    the next write of the same target, while another live writer's is left alone.
    Errors name ``path``, never the temporary file.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    _remove_stale_temporaries(folder, path.name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise OSError(e.errno, f"cannot write there ({e.strerror})", str(path)) from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # the permissions a plain open() would have given
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise OSError(e.errno, f"cannot write there ({e.strerror or e})", str(path)) from None
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def check_outputs(outputs: dict, inputs) -> None:
    """Refuse, before anything is read or written, outputs that could lose data.

    ``outputs`` maps how each output is named to the user (``"--out"``) to its path
    (None or "" for none); ``inputs`` are the paths read. Every output's folder must
    exist and be writable, an output must not be a folder, nor an input (the same
    file by any path: a symbolic or hard link included), nor a file inside an input
    folder (a data set stored as a folder), nor another output.

    Raises
    ------
    ValueError
        Naming the output and what it collides with.
    """
    ins = [(str(i), Path(i)) for i in inputs if i]
    seen: list[tuple[str, Path]] = []
    for option, path in outputs.items():
        if not path:
            continue
        p = Path(path)
        folder = p.parent if str(p.parent) else Path(".")
        if p.is_dir():
            raise ValueError(f"{option} {path}: is a folder; expected a file name")
        if not folder.is_dir():
            raise ValueError(f"{option} {path}: the folder {str(folder)!r} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"{option} {path}: cannot write in the folder {str(folder)!r} (permission denied)")
        for name, q in ins:
            if _same_file(p, q) or (q.is_dir() and p.exists() and p.resolve().is_relative_to(q.resolve())):
                raise ValueError(f"{option} {path}: is an input of this run ({name}); choose another file")
        for other, q in seen:
            if _same_file(p, q):
                raise ValueError(f"{option} {path}: is also given as {other}; choose another file")
        seen.append((option, p))


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same resolved path, or (both existing) the
    same inode, as hard links are."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _remove_stale_temporaries(folder: Path, name: str) -> None:
    """Delete ``.NAME.PID.*.tmp`` files in ``folder`` whose writing process no longer exists."""
    try:
        candidates = list(folder.glob(f".{glob.escape(name)}.*.tmp"))
    except OSError:
        return
    for tmp in candidates:
        pid = tmp.name[len(name) + 2:].split(".", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # still running (or another user's): its file is in use
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, ValueError):
            continue
        try:
            tmp.unlink()
        except OSError:
            pass


def json_safe(obj):
    """``obj`` with NumPy scalars turned into Python numbers (and anything else into str)."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


_DTYPES = {"F32": 4, "F64": 8, "I64": 8, "I32": 4}  # what deltaprop writes; nothing else is read
CHECKSUM_KEY = "checksum"


def checksum(tensors: dict[str, np.ndarray], header: dict[str, str]) -> str:
    """SHA-256 of the header's fields (but the checksum) and of every tensor's name,
    dtype, shape and bytes: any change to what a file says changes it."""
    h = hashlib.sha256()
    fields = {k: v for k, v in header.items() if k != CHECKSUM_KEY}
    h.update(json.dumps(fields, sort_keys=True).encode())
    for name in sorted(tensors):
        t = np.ascontiguousarray(tensors[name])
        h.update(json.dumps([name, t.dtype.str, list(t.shape)]).encode())
        h.update(t.tobytes())
    return "sha256:" + h.hexdigest()


def atomic_safetensors(path, tensors: dict[str, np.ndarray], header: dict[str, str]) -> None:
    """Atomically write tensors and string metadata as a safetensors file, with the
    :func:`checksum` of both in the metadata (verified by :func:`read_safetensors`)."""
    from safetensors.numpy import save

    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    header = {**header, CHECKSUM_KEY: checksum(tensors, header)}
    data = save(tensors, metadata=header)
    atomic_write(path, lambda f: f.write(data))


def read_safetensors(path, what: str = "model file") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file, turning every failure into a :class:`ModelFileError`.

    Nothing is parsed before it is bounded: the file must be a regular file, the
    8-byte header length must fit in it, the header is parsed (JSON, bounded in
    size and depth) and every tensor's dtype, shape and byte range are checked
    against the file before the library reads any data; a pickle or any other file
    renamed to the model extension is refused without being interpreted. When the
    metadata holds a checksum, it is verified: a single flipped bit anywhere is an
    error, not a different model. Whether a checksum is *required* is the caller's
    decision (by format version).
    """
    path = Path(path)
    source = f"{what} {str(path)!r}"
    data = _read_regular_file(path, source)
    if len(data) < 8:
        raise ModelFileError(f"{source} is not a safetensors file (only {len(data)} bytes)")
    n = int.from_bytes(data[:8], "little")
    if n > min(len(data) - 8, _MAX_HEADER) or data[8:9] != b"{":
        raise ModelFileError(f"{source} is not a safetensors file (bad header; truncated, or another format)")
    try:
        layout = json.loads(data[8:8 + n])
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ModelFileError(f"{source} is corrupted: its header is not valid JSON") from None
    header = _check_layout(layout, len(data) - 8 - n, source)
    try:
        from safetensors.numpy import load

        tensors = load(data)
    except Exception as e:  # the parser's own errors (it has already passed the checks above)
        raise ModelFileError(f"{source} is corrupted: {e}") from None
    if CHECKSUM_KEY in header and header[CHECKSUM_KEY] != checksum(tensors, header):
        raise ModelFileError(f"{source} is corrupted: its checksum does not match its contents "
                             "(the file was changed or damaged after it was written)")
    return tensors, header


def _read_regular_file(path: Path, source: str) -> bytes:
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ModelFileError(f"{source} is not a regular file")
            return f.read(info.st_size + 1)
    except FileNotFoundError:
        raise ModelFileError(f"{source} does not exist") from None
    except IsADirectoryError:
        raise ModelFileError(f"{source} is a folder, not a file") from None
    except OSError as e:
        raise ModelFileError(f"{source} cannot be read: {e.strerror or e}") from None


def _check_layout(layout, n_bytes: int, source: str) -> dict:
    """The ``__metadata__`` of a parsed safetensors header, after checking every tensor entry."""
    if not isinstance(layout, dict):
        raise ModelFileError(f"{source} is corrupted: its header is not a JSON object")
    header = layout.get("__metadata__") or {}
    if not isinstance(header, dict) or not all(isinstance(v, str) for v in header.values()):
        raise ModelFileError(f"{source} has a malformed header (metadata must map names to strings)")
    for name, entry in layout.items():
        if name == "__metadata__":
            continue
        ok = isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}
        dtype, shape, offsets = (entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")) if ok else (
            None, None, None)
        if dtype not in _DTYPES:
            raise ModelFileError(f"{source}: tensor {name!r} has dtype {dtype!r}; expected one of "
                                 f"{', '.join(_DTYPES)}")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)
                and isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= n_bytes
                and offsets[1] - offsets[0] == _DTYPES[dtype] * math.prod(shape)):
            raise ModelFileError(f"{source} is corrupted: tensor {name!r} has an inconsistent shape or byte range")
    return header
