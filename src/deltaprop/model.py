"""The saved predictor: input preprocessing, the network, and the output mapping.

A :class:`Model` is everything needed to go from raw rows to answers in the
user's terms: the standardizer fitted on the training inputs, the
:class:`~deltaprop.core.network.Network`, and the map from its outputs back to
class labels (of their original type) or to target units. ``deltaprop.load``,
``deltaprop predict``, the ONNX export and the Python API all use it, so their
answers agree on the same raw rows.

The file is one safetensors container: tensors ``W.1`` .. ``W.L`` (the augmented
matrices of eq. (11)), ``input.mean``/``input.scale`` and ``target.mean``/
``target.scale`` when present, and in the header a JSON ``config`` (architecture,
classes, the input columns' names, the encoding of a mixed table, the rows held out) and free-form
``metadata`` (how it was trained: information only, never applied). :func:`load`
validates everything before building anything.
"""

from __future__ import annotations

import json

import numpy as np

from .core.activations import get_activation
from .core.likelihoods import get_likelihood
from .core.network import Network
from .data.blocks import Blocks
from .data.columns import Columns, to_array
from .data.preprocessing import Standardizer, encode_labels
from .data.splits import HeldOut
from .data.tables import TableEncoder
from .io.files import CHECKSUM_KEY, ModelFileError, atomic_safetensors, json_safe, read_safetensors
from .metrics import accuracy, r2
from .validation import is_sparse
from .version import __version__

Array = np.ndarray

MODEL_FORMAT = "deltaprop-model"
MODEL_VERSION = "7"  # 7: the data trained on (source); 6: the rows held out; 5: the encoding of mixed tables; 4: the input columns' names;
# 3: a checksum of header and tensors (2 had none)


class Model:
    """A network with what it needs to take raw inputs and give answers in their units.

    Parameters
    ----------
    network : Network
    preprocessor : Standardizer, optional
        Applied to raw inputs before the network.
    classes : array-like, optional
        For a classifier with one label per row: the label of each class index
        (sorted, as :func:`~deltaprop.data.preprocessing.encode_labels` gives).
    target_scaler : Standardizer, optional
        For a regressor trained on standardized targets: maps outputs back.
    columns : Columns, optional
        The names of the input columns (and of the target) for a model trained on a
        named table: tables given to :meth:`predict` are then matched by name.
    table : TableEncoder, optional
        For a table of mixed columns (text, booleans, gaps): how each of ``columns``
        becomes network inputs (:mod:`deltaprop.data.tables`); it replaces the
        preprocessor.
    held_out : HeldOut, optional
        The rows of its data the model never trained on (its test rows), as the rule that
        draws them again: ``model.held_out.split(X, y)`` gives them back.
    source : str, optional
        The data it was trained on, as :func:`deltaprop.load_data` names it (a file's path,
        or a built-in set's name: ``digits``, ``moons``...): the data ``deltaprop explain``
        reads unless told otherwise.
    metadata : dict, optional
        Free-form information saved with the model (never applied to predictions).

    Examples
    --------
    >>> import numpy as np, deltaprop as dp
    >>> X = np.random.default_rng(0).normal(size=(40, 3)); y = np.where(X[:, 0] > 0, "yes", "no")
    >>> model, state = dp.fit(X, y, hidden=[8], epochs=5, seed=0)
    >>> model.predict(X[:3]).dtype.kind
    'U'
    """

    def __init__(self, network: Network, *, preprocessor: Standardizer | None = None, classes=None,
                 target_scaler: Standardizer | None = None, columns: Columns | None = None,
                 table: TableEncoder | None = None, held_out: HeldOut | None = None,
                 source: str | None = None, metadata: dict | None = None):
        self.network = network
        self.held_out = held_out
        self.source = source
        self.columns = columns
        self.table = table
        self.preprocessor = preprocessor
        self.classes = None if classes is None else np.asarray(classes)
        self.target_scaler = target_scaler
        self.metadata = dict(metadata or {})
        self._check()

    def _check(self) -> None:
        net, K = self.network, self.network.sizes[-1]
        if self.held_out is not None and not isinstance(self.held_out, HeldOut):
            raise TypeError(f"held_out: expected a HeldOut, found {type(self.held_out).__name__}")
        if self.source is not None and not (isinstance(self.source, str) and self.source):
            raise TypeError(f"source: expected the name or path of a data set, found {self.source!r}")
        if self.table is not None:
            if self.columns is None or list(self.columns.features) != self.table.names:
                raise ValueError("table: expected the encodings of the model's columns, in their order")
            if self.table.n_outputs != net.sizes[0] or self.preprocessor is not None:
                raise ValueError(f"table: gives {self.table.n_outputs} inputs for a network of {net.sizes[0]}, "
                                 "and replaces the preprocessor")
        elif self.columns is not None and len(self.columns.features) != net.sizes[0]:
            raise ValueError(f"columns: {len(self.columns.features)} names for {net.sizes[0]} inputs")
        if self.preprocessor is not None and self.preprocessor.mean.size != net.sizes[0]:
            raise ValueError(f"preprocessor: {self.preprocessor.mean.size} columns for {net.sizes[0]} inputs")
        if self.classes is not None:
            if net.task != "classification":
                raise ValueError(f"classes: a {net.likelihood.name} network is not a classifier")
            # one sigmoid output is two classes (or one: a classifier fitted on a single class)
            expected = (1, 2) if net.binary else (K,)
            if self.classes.ndim != 1 or len(self.classes) not in expected:
                raise ValueError(f"classes: expected {' or '.join(map(str, expected))} labels for {K} output(s), found "
                                 f"{self.classes.tolist()}")
            plain = self.classes.dtype.kind in "biufUS" or all(
                isinstance(c, (str, int, float, np.generic)) for c in self.classes)
            if not plain or len(set(self.classes.tolist())) != len(self.classes):
                raise ValueError(f"classes: expected distinct numbers or strings, found {self.classes.tolist()}")
        if self.target_scaler is not None:
            if net.task != "regression" or self.target_scaler.mean.size != K:
                raise ValueError(f"target_scaler: expected a regressor with {self.target_scaler.mean.size} outputs")

    # -- description ------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.network.task

    @property
    def n_features(self) -> int:
        return self.network.sizes[0]

    def __repr__(self) -> str:
        parts = [repr(self.network)]
        if self.columns is not None:
            parts.append(f"columns={list(self.columns.features)!r}")
        if self.preprocessor is not None:
            parts.append("standardized inputs")
        if self.table is not None:
            parts.append(f"table encoding ({self.table.n_outputs} inputs)")
        if self.classes is not None:
            parts.append(f"classes={self.classes.tolist()!r}")
        if self.target_scaler is not None:
            parts.append("standardized targets")
        return f"Model({', '.join(parts)})"

    # -- from raw rows to answers -----------------------------------------------------------
    def transform(self, X) -> Array:
        """Raw rows as the network takes them: a named table's columns matched by name
        (when the model knows its columns), checked, then standardized if the model was.

        ``X`` is an array of shape (n_samples, n_features), taken in order, or a named table
        (a DataFrame, a pyarrow Table, a dict of columns).
        """
        if self.table is not None:
            ignored = [c.name for c in self.table.columns if c.kind == "ignored"]
            columns = self.columns.pick(X, optional=ignored)
            n = next(len(c) for c in columns if c is not None)
            return self.network.check_X(self.table.transform(
                [np.full(n, None) if c is None else c for c in columns]))
        X = self.columns.arrange(X) if self.columns is not None else to_array(X)
        if self.preprocessor is None:
            return self.network.check_X(X)
        if is_sparse(X):  # centring would fill in every zero
            raise TypeError("X: this model standardizes its inputs, which takes dense rows; pass X.toarray()")
        # the raw values first, so that an error names the value the user gave
        return self.network.check_X(self.preprocessor.transform(self.network.check_X(X, convert=False)))

    def forward(self, X) -> Array:
        """The lecture's output o on raw rows (network units: probabilities, or the mean
        of standardized targets)."""
        return self.network.forward(self.transform(X))

    def predict(self, X) -> Array:
        """Labels (of the classes' own type) for a classifier, values in target units
        for a regressor (1-D for a single target). X may be :class:`Blocks`, read a
        block at a time (the predictions of every row come back together)."""
        if isinstance(X, Blocks):
            return np.concatenate([self.predict(self._block_rows(X, i)) for i in range(len(X))])
        net = self.network
        pred = net.predict(self.transform(X))
        if net.task == "classification":
            if self.classes is not None and len(self.classes) == 1:  # fitted on a single class
                return np.full(len(pred), self.classes[0])
            return pred if self.classes is None else self.classes[pred]
        if self.target_scaler is not None:
            pred = self.target_scaler.inverse_transform(pred)
        return pred[:, 0] if pred.shape[1] == 1 else pred

    def predict_proba(self, X) -> Array:
        """Class probabilities, one column per class in the order of ``classes``
        (for multilabel models, one column per label)."""
        return self.network.predict_proba(self.transform(X))

    def encode_targets(self, y) -> Array:
        """Raw targets as the network was trained on them (labels to indices, targets
        standardized), encoded for its likelihood."""
        return self.network.encode_targets(self.map_targets(y))

    def map_targets(self, y) -> Array:
        """Raw targets in the network's terms (labels to indices, targets standardized),
        before the likelihood encodes them (:meth:`Network.encode_targets`)."""
        y = np.asarray(y)
        if self.classes is not None:
            idx, _ = encode_labels(y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y, self.classes)
            return idx.reshape(-1, 1) if self.network.binary else idx
        if self.target_scaler is not None:
            return self.target_scaler.transform(y.reshape(len(y), -1))
        return y

    def score(self, X, y=None) -> float:
        """Accuracy (classifiers) or R^2 averaged over targets (regressors), on raw rows,
        or on every row of :class:`Blocks` (which carry their targets: y is then None)."""
        if isinstance(X, Blocks):
            if y is not None:
                raise TypeError("y: Blocks carry their own targets; pass X=blocks alone")
            y = X.targets()
        pred = self.predict(X)
        y = np.asarray(y)
        if self.task == "classification":
            return accuracy(y.reshape(pred.shape), pred)
        return r2(y, pred)

    def _block_rows(self, blocks: Blocks, i: int):
        """Block i's raw rows as :meth:`predict` takes them: by column name when both the
        blocks and the model know the names, else the array in order."""
        X, _, _ = blocks.read(i)
        if blocks.feature_names and self.columns is not None:
            return dict(zip(blocks.feature_names, X.T))
        return X

    # -- files ---------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the model to a safetensors file, atomically (read it with :func:`deltaprop.load`).

        The model is checked first (its parts may have been changed since it was
        built): what :func:`load` would refuse is never written.
        """
        self._check()
        net = self.network if self.network.backend.host else self.network.copy(backend="numpy")  # (a file is host data)
        if not np.all(np.isfinite(net.theta)):
            raise ValueError("save: the network's weights contain NaN or inf")
        tensors = {f"W.{l}": net.W[l] for l in range(1, net.n_layers + 1)}
        for prefix, scaler in (("input", self.preprocessor), ("target", self.target_scaler)):
            if scaler is not None:
                tensors[f"{prefix}.mean"], tensors[f"{prefix}.scale"] = scaler.mean, scaler.scale
        config = {**net.config(), "classes": None if self.classes is None else self.classes.tolist(),
                  "columns": None if self.columns is None else self.columns.to_config(),
                  "table": None if self.table is None else self.table.to_config(),
                  "held_out": None if self.held_out is None else self.held_out.to_config(),
                  "source": self.source, "deltaprop_version": __version__}
        atomic_safetensors(path, tensors, {"format": MODEL_FORMAT, "format_version": MODEL_VERSION,
                                           "config": json.dumps(json_safe(config)),
                                           "metadata": json.dumps(json_safe(self.metadata))})


def load(path) -> Model:
    """Load and validate a model file written by :meth:`Model.save`.

    Files of format version 1 (deltaprop 0.1, whose standardization and target
    scaling lived in metadata) and 2 are read into the same :class:`Model`, so
    they predict as the command line that wrote them did. Files of version 3 and
    later carry a checksum of everything they hold, which must match; version 4
    records the input columns' names (older files' ``feature_names`` metadata,
    written for CSV data, is taken as them), and version 5 the encoding of a table of
    mixed columns (kinds, medians, scales and vocabularies, in the checksummed header), and version
    6 the rows held out (:class:`~deltaprop.data.splits.HeldOut`; older files' ``test_fraction``,
    ``seed`` and ``block_rows`` metadata, written by the command line, is taken as them), and
    version 7 the data it was trained on (:attr:`Model.source`; older files' ``data`` metadata).

    Raises
    ------
    ModelFileError
        If the file is missing, not a deltaprop safetensors file, truncated,
        corrupted (checksum), or inconsistent (unknown names, wrong shapes, NaN weights).
    """
    source = f"model file {str(path)!r}"
    tensors, header = read_safetensors(path)
    if header.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{source} is not a deltaprop model (format {header.get('format')!r})")
    version = header.get("format_version")
    if version not in ("1", "2", "3", "4", "5", "6", MODEL_VERSION):
        raise ModelFileError(f"{source} has format version {version!r}; this deltaprop reads versions 1 to "
                             f"{MODEL_VERSION} (a newer deltaprop wrote it?)")
    if version in ("3", "4", "5", "6", MODEL_VERSION) and CHECKSUM_KEY not in header:
        raise ModelFileError(f"{source} is corrupted: its checksum is missing")
    try:
        config = json.loads(header.get("config", ""))
        metadata = json.loads(header.get("metadata", "{}")) if version != "1" else config.get("metadata") or {}
    except (json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{source}: the config in its header is not valid JSON") from None
    if not isinstance(config, dict) or not isinstance(metadata, dict):
        raise ModelFileError(f"{source}: config and metadata must be JSON objects")
    known = {f"W.{l}" for l in range(1, len(tensors) + 1)} | {f"{p}.{k}" for p in ("input", "target")
                                                             for k in ("mean", "scale")}
    unknown = sorted(set(tensors) - known)
    if unknown:
        raise ModelFileError(f"{source}: unknown tensors {unknown}; a model file holds W.1..W.L, "
                             "input.mean/scale and target.mean/scale")
    _check_sizes_against_tensors(config, tensors, source)
    net = _network_from_config(config, source)
    _load_weights(net, tensors, source)
    try:
        if version == "1":  # the fitted scalers were JSON lists in free-form metadata
            scalers = [metadata.pop(k, None) for k in ("standardize", "target_standardize")]
            scalers = [None if s is None else Standardizer(s["mean"], s["std"]) for s in scalers]
        else:
            scalers = [_scaler(tensors, prefix, source) for prefix in ("input", "target")]
        columns = config.get("columns")
        columns = Columns.from_config(columns) if columns is not None else _columns_of_metadata(metadata)
        table = config.get("table")
        table = TableEncoder.from_config(table) if table is not None else None
        held_out = config.get("held_out")
        held_out = HeldOut.from_config(held_out) if held_out is not None else _held_out_of_metadata(metadata)
        # (files of version 6 and older named their data in the free-form metadata)
        trained_on = config["source"] if "source" in config else metadata.get("data")
        return Model(net, preprocessor=scalers[0], classes=config.get("classes"), target_scaler=scalers[1],
                     columns=columns, table=table, held_out=held_out, source=trained_on, metadata=metadata)
    except (ValueError, TypeError, KeyError) as e:
        raise ModelFileError(f"{source}: inconsistent model: {e}") from None


def _held_out_of_metadata(metadata: dict) -> HeldOut | None:
    """The test rows a file of version 5 or older recorded as information (the command line's
    ``test_fraction``, ``seed`` and ``block_rows``): from now on a field of the model."""
    fraction = metadata.get("test_fraction")
    if not fraction:
        return None
    return HeldOut(fraction, metadata.get("seed") or 0, metadata.get("block_rows"))


def _columns_of_metadata(metadata: dict) -> Columns | None:
    """The columns a file of version 3 or older recorded as information only (the command
    line wrote them for CSV data): its input columns, from now on matched by name."""
    names, target = metadata.pop("feature_names", None), metadata.get("target")
    if not (isinstance(names, list) and names and all(isinstance(c, str) and c for c in names)):
        return None
    return Columns(tuple(names), (target,) if isinstance(target, str) and target not in names else ())


def _scaler(tensors: dict, prefix: str, source: str) -> Standardizer | None:
    keys = (f"{prefix}.mean", f"{prefix}.scale")
    present = [k in tensors for k in keys]
    if not any(present):
        return None
    if not all(present):
        raise ModelFileError(f"{source}: has {prefix}.mean or {prefix}.scale without the other")
    if any(tensors[k].ndim != 1 for k in keys):
        raise ModelFileError(f"{source}: {prefix}.mean and {prefix}.scale must be 1-D, one value per column")
    return Standardizer(tensors[keys[0]], tensors[keys[1]])


def _check_sizes_against_tensors(config: dict, tensors: dict, source: str) -> None:
    """Refuse a config whose sizes do not match the tensors present, before anything of
    the size the config claims is allocated (a small file must not make a large network)."""
    sizes = config.get("sizes")
    if not isinstance(sizes, list) or len(sizes) < 2 or not all(type(n) is int and n >= 1 for n in sizes):
        raise ModelFileError(f"{source}: invalid config: sizes must be a list of at least two positive "
                             f"integers, found {str(sizes)[:80]}")
    k = config.get("members", 1)
    if type(k) is not int or k < 1:
        raise ModelFileError(f"{source}: invalid config: members must be a positive integer, found {str(k)[:80]}")
    for l in range(1, len(sizes)):
        t = tensors.get(f"W.{l}")
        expected = (sizes[l - 1] + 1, k * sizes[l])  # (an ensemble's members side by side)
        if t is None:
            raise ModelFileError(f"{source}: W.{l} is missing; sizes {sizes} need W.1..W.{len(sizes) - 1}")
        if t.shape != expected:
            raise ModelFileError(f"{source}: W.{l} has shape {t.shape}, but sizes {sizes} need {expected}")


def _network_from_config(config: dict, source: str) -> Network:
    """Build an (unweighted) network from a config, validating every field."""
    try:
        sizes, acts, lik, dtype = config["sizes"], config["activations"], config["likelihood"], config["dtype"]
    except KeyError as e:
        raise ModelFileError(f"{source}: config lacks the field {e.args[0]!r}") from None
    try:
        if not isinstance(sizes, list) or not isinstance(acts, list) or len(acts) != max(len(sizes) - 2, 0):
            raise ValueError(f"activations: expected {len(sizes) - 2} names, found {acts!r}")
        for a in acts:
            get_activation(a)
        return Network(sizes, activation=acts if acts else "identity", likelihood=get_likelihood(lik),
                       init=config.get("init"), seed=0, dtype=dtype, members=config.get("members", 1))
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{source}: invalid config: {e}") from None


def _load_weights(net: Network, tensors: dict, source: str) -> None:
    """Copy tensors ``W.1``..``W.L`` into ``net`` after checking names, shapes, dtype and values."""
    expected = {f"W.{l}" for l in range(1, net.n_layers + 1)}
    found = {k for k in tensors if k.startswith("W.")}
    if found != expected:
        raise ModelFileError(f"{source}: expected tensors {sorted(expected)}, found {sorted(found)}")
    for l in range(1, net.n_layers + 1):
        t = tensors[f"W.{l}"]  # its shape was checked before the network was built
        if t.dtype != net.dtype:
            raise ModelFileError(f"{source}: W.{l} is {t.dtype}, config says {np.dtype(net.dtype).name}")
        if not np.all(np.isfinite(t)):
            raise ModelFileError(f"{source}: W.{l} contains NaN or inf")
        net.W[l][...] = t
