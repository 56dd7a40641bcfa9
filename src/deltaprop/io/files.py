"""Files: safetensors containers (never pickle) and atomic writes.

What goes into a model file is :mod:`deltaprop.model`'s business, into a
checkpoint :mod:`deltaprop.training.checkpoints`'; this module only reads and
writes the container, refusing anything that is not one before parsing it.

Every file is written atomically: to a temporary file in the same folder,
flushed and fsynced, then renamed over the target, so a crash leaves either the
old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

_MAX_HEADER = 100 * 2**20


class ModelFileError(ValueError):
    """A model or checkpoint file that is missing, malformed, tampered with or inconsistent."""


def atomic_write(path, write) -> None:
    """Call ``write(f)`` on a temporary binary file, fsync it, and rename it to ``path``."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # the permissions a plain open() would have given
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def json_safe(obj):
    """``obj`` with NumPy scalars turned into Python numbers (and anything else into str)."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def atomic_safetensors(path, tensors: dict[str, np.ndarray], header: dict[str, str]) -> None:
    """Atomically write tensors and string metadata as a safetensors file."""
    from safetensors.numpy import save

    data = save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=header)
    atomic_write(path, lambda f: f.write(data))


def read_safetensors(path, what: str = "model file") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file, turning every failure into a :class:`ModelFileError`.

    The 8-byte header length is checked against the file size before the
    library parses anything, so a pickle or any other file renamed to the
    model extension is refused without being interpreted.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{what} {str(path)!r} does not exist") from None
    except OSError as e:
        raise ModelFileError(f"{what} {str(path)!r} cannot be read: {e.strerror}") from None
    if len(data) < 8:
        raise ModelFileError(f"{what} {str(path)!r} is not a safetensors file (only {len(data)} bytes)")
    n = int.from_bytes(data[:8], "little")
    if n > min(len(data) - 8, _MAX_HEADER) or data[8:9] != b"{":
        raise ModelFileError(
            f"{what} {str(path)!r} is not a safetensors file (bad header; truncated, or another format)"
        )
    try:
        header = json.loads(data[8:8 + n]).get("__metadata__") or {}
        tensors = load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError, AttributeError) as e:
        raise ModelFileError(f"{what} {str(path)!r} is corrupted: {e}") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{what} {str(path)!r} has a malformed header")
    return tensors, header
