"""Model files and checkpoints in the safetensors format; never pickle.

A model file holds one tensor per layer, ``W.1`` .. ``W.L`` (the augmented
matrices of eq. (11)), and in its header a JSON ``config``: sizes, activations,
likelihood, dtype, deltaprop version, class labels and free-form metadata.
:func:`load` validates everything before building a network: the format tag,
known names only, shapes consistent layer to layer, dtype, finite values.

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

from .network import Network

MODEL_FORMAT = "deltaprop-model"
CHECKPOINT_FORMAT = "deltaprop-checkpoint"
FORMAT_VERSION = "1"
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


def network_config(net: Network) -> dict:
    """Everything but the weights that is needed to rebuild ``net``."""
    from . import __version__

    return {
        "sizes": net.sizes,
        "activations": net.activation_names,
        "likelihood": net.likelihood.name,
        "dtype": np.dtype(net.dtype).name,
        "init": net.init,
        "classes": net.classes,
        "deltaprop_version": __version__,
        "metadata": net.metadata,
    }


def _json_safe(obj):
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def write_safetensors(path, tensors: dict[str, np.ndarray], header: dict[str, str]) -> None:
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


def save_network(net: Network, path, metadata: dict | None = None) -> None:
    """Write ``net`` to ``path`` as a safetensors model file (atomically)."""
    if metadata:
        net.metadata.update(metadata)
    header = {"format": MODEL_FORMAT, "format_version": FORMAT_VERSION,
              "config": json.dumps(_json_safe(network_config(net)))}
    tensors = {f"W.{l}": net.W[l] for l in range(1, net.n_layers + 1)}
    write_safetensors(path, tensors, header)


def network_from_config(config: dict, source: str = "model file") -> Network:
    """Build an (unweighted) network from a config, validating every field."""
    from .activations import get_activation
    from .likelihoods import get_likelihood

    if not isinstance(config, dict):
        raise ModelFileError(f"{source}: config is not a JSON object")
    try:
        sizes = config["sizes"]
        acts = config["activations"]
        lik = config["likelihood"]
        dtype = config["dtype"]
    except KeyError as e:
        raise ModelFileError(f"{source}: config lacks the field {e.args[0]!r}") from None
    try:
        if not isinstance(acts, list) or len(acts) != max(len(sizes) - 2, 0):
            raise ValueError(f"activations: expected {len(sizes) - 2} names, found {acts!r}")
        for a in acts:
            get_activation(a)
        net = Network(sizes, activation=acts if acts else "identity", likelihood=get_likelihood(lik),
                      init=config.get("init"), seed=0, dtype=dtype)
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{source}: invalid config: {e}") from None
    classes = config.get("classes")
    if classes is not None:
        if not isinstance(classes, list) or len(classes) != _n_classes(net):
            raise ModelFileError(f"{source}: class labels do not match the {net.sizes[-1]} outputs")
        net.classes = classes
    meta = config.get("metadata") or {}
    if not isinstance(meta, dict):
        raise ModelFileError(f"{source}: metadata is not a JSON object")
    net.metadata = meta
    return net


def _n_classes(net: Network) -> int:
    K = net.sizes[-1]
    return 2 if (net.likelihood.name == "bernoulli" and K == 1) else K


def load_weights(net: Network, tensors: dict[str, np.ndarray], source: str, prefix: str = "W.") -> None:
    """Copy tensors ``W.1``..``W.L`` into ``net`` after checking names, shapes, dtype and values."""
    expected = {f"{prefix}{l}" for l in range(1, net.n_layers + 1)}
    found = {k for k in tensors if k.startswith(prefix)}
    if found != expected:
        raise ModelFileError(f"{source}: expected tensors {sorted(expected)}, found {sorted(found)}")
    for l in range(1, net.n_layers + 1):
        t = tensors[f"{prefix}{l}"]
        if t.shape != net.W[l].shape:
            raise ModelFileError(
                f"{source}: {prefix}{l} has shape {t.shape}, but sizes {net.sizes} need {net.W[l].shape}"
            )
        if t.dtype != net.dtype:
            raise ModelFileError(f"{source}: {prefix}{l} is {t.dtype}, config says {np.dtype(net.dtype).name}")
        if not np.all(np.isfinite(t)):
            raise ModelFileError(f"{source}: {prefix}{l} contains NaN or inf")
        net.W[l][...] = t


def load(path) -> Network:
    """Load and validate a model file written by :meth:`Network.save`.

    Raises
    ------
    ModelFileError
        If the file is missing, not a deltaprop safetensors file, truncated,
        corrupted, or inconsistent (unknown names, wrong shapes, NaN weights).
    """
    source = f"model file {str(path)!r}"
    tensors, header = read_safetensors(path)
    if header.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{source} is not a deltaprop model (format {header.get('format')!r})")
    try:
        config = json.loads(header.get("config", ""))
    except json.JSONDecodeError:
        raise ModelFileError(f"{source}: the config in its header is not valid JSON") from None
    net = network_from_config(config, source)
    load_weights(net, tensors, source)
    return net
