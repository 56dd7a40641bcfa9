"""Data sets: built-in names, CSV, NumPy files, MNIST (IDX and mnist.pkl.gz).

Every loader validates what it reads and names the problem (file, row, column)
in a :class:`DataError`. Nothing is ever downloaded: the built-in sets ship with
scikit-learn or are generated.
"""

from __future__ import annotations

import csv
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..validation import check_values
from .preprocessing import check_targets, infer_task
from .readers import DataError, read_idx_folder, read_mnist_pkl
from .tables import numbers_or_cells

__all__ = ["BUILTIN_NAMES", "DataError", "Dataset", "load_dataset"]

Array = np.ndarray


@dataclass
class Dataset:
    """Features, targets and what is known about them.

    ``y`` holds the targets as the source has them (class labels keep their type);
    ``X_test``/``y_test`` are set when the source has its own test split (MNIST).
    ``classes`` lists the distinct labels of a classification set; ``images`` says
    the features are pixel intensities scaled to [0, 1] (which need no standardizing).
    """

    name: str
    X: Array
    y: Array
    task: str  # "classification" or "regression"
    classes: list | None = None
    feature_names: list | None = None
    target_name: str | None = None
    X_test: Array | None = None
    y_test: Array | None = None
    images: bool = False  # pixel intensities already scaled to [0, 1] (MNIST formats)
    lines: Array | None = None  # for a file of text: the line of each row (its errors name lines)
    notices: list = field(default_factory=list)  # what the reader decided, to tell the user

    @property
    def standardize_inputs(self) -> bool:
        """Whether :func:`deltaprop.fit` standardizes these inputs unless told: not pixel
        intensities already scaled to [0, 1], whose own scale suits them better than
        per-pixel standardization (which inflates the near-constant border pixels); every
        other data set."""
        return not self.images

    @property
    def is_table(self) -> bool:
        """Whether this is a table (a CSV or Parquet file's named columns, not images):
        :func:`deltaprop.fit` takes it by its columns, with the tabular recipe."""
        return bool(self.feature_names) and not self.images

    def split(self, held_out, advice: str | None = None) -> tuple["Dataset", "Dataset"]:
        """The training part and the test part of the data set.

        Parameters
        ----------
        held_out : HeldOut or None
            The rows to hold out (stratified by class), unless the set has a test split of
            its own (MNIST), which is taken instead.
        advice : str, optional
            As for :meth:`HeldOut.split`.

        Returns
        -------
        (Dataset, Dataset)
            The training rows and the test rows, with the set's names and kind of inputs.
        """
        if self.X_test is not None:
            return (replace(self, X_test=None, y_test=None),
                    replace(self, X=self.X_test, y=self.y_test, X_test=None, y_test=None, lines=None, notices=[]))
        if held_out is None:
            raise ValueError(f"held_out: {self.name} has no test split of its own; give the rows to hold out "
                             "(a HeldOut)")
        rows = np.arange(len(self.X))
        train, test = held_out.split(rows, self.y, stratify=self.task == "classification", name=self.name,
                                     advice=advice)[:2]
        return tuple(replace(self, X=self.X[r], y=self.y[r], lines=None if self.lines is None else self.lines[r],
                             notices=self.notices if r is train else []) for r in (train, test))

    def check(self, dtype, advice: str = "--dtype float64") -> None:
        """Refuse features beyond the range of the network's float type ``dtype``, naming
        the rows (the file's lines) and the column, before anything is split or trained."""
        if self.X.dtype == object:  # a table of mixed columns: checked column by column as it is encoded
            return
        unit = "row" if self.lines is None else "line"
        _checked(lambda: check_values(self.X, self.name, dtype, self.feature_names, unit, self.lines, advice))


# --- built-in sets ------------------------------------------------------------------
def _sklearn(loader):
    def load(seed):
        X, y = loader(return_X_y=True)
        return X.astype(np.float64), y
    return load


def _xor(seed, n=400):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n, 2))
    return X, ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(np.int64)


def _moons(seed, n=500):
    from sklearn.datasets import make_moons
    return make_moons(n_samples=n, noise=0.2, random_state=seed)


def _circles(seed, n=500):
    from sklearn.datasets import make_circles
    return make_circles(n_samples=n, noise=0.08, factor=0.5, random_state=seed)


def _spirals(seed, n=600, turns=1.5):
    """Two interleaved spirals, the classic hard case for a small network."""
    rng = np.random.default_rng(seed)
    k = n // 2
    t = np.sqrt(rng.uniform(0, 1, k)) * turns * 2 * np.pi
    arm = np.c_[t * np.cos(t), t * np.sin(t)] / (turns * 2 * np.pi)
    X = np.r_[arm, -arm] + rng.normal(scale=0.02, size=(2 * k, 2))
    return X, np.r_[np.zeros(k, np.int64), np.ones(k, np.int64)]


def _sine(seed, n=500):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-np.pi, np.pi, size=(n, 1))
    return X, np.sin(X[:, 0]) + 0.1 * rng.normal(size=n)


def _builtins():
    from sklearn import datasets as sk

    return {
        "digits": (_sklearn(sk.load_digits), "classification"),
        "iris": (_sklearn(sk.load_iris), "classification"),
        "wine": (_sklearn(sk.load_wine), "classification"),
        "breast-cancer": (_sklearn(sk.load_breast_cancer), "classification"),
        "diabetes": (_sklearn(sk.load_diabetes), "regression"),
        "xor": (_xor, "classification"),
        "moons": (_moons, "classification"),
        "circles": (_circles, "classification"),
        "spirals": (_spirals, "classification"),
        "sine": (_sine, "regression"),
    }


BUILTIN_NAMES = ["digits", "iris", "wine", "breast-cancer", "diabetes",
                 "xor", "moons", "circles", "spirals", "sine"]


def _labels_from_strings(values: list[str]) -> Array:
    """Integers when every value is one, else numbers when every value is numeric, else
    the strings themselves."""
    try:
        numbers = np.array([float(v) for v in values])
    except ValueError:
        return np.array(values)
    return numbers.astype(np.int64) if np.all(numbers == np.round(numbers)) else numbers


# --- files --------------------------------------------------------------------------
# what pandas writes as the header of its row index (df.to_csv()): nothing, or this once read back
_INDEX_HEADERS = ("", "Unnamed: 0")


def read_csv(path: Path, target: str | None, leave_out=()) -> Dataset:
    """A CSV with a header row: features, and the ``target`` column (default: the last).

    Features are float64 when every cell is a number; a file with text, empty or NaN
    cells gives its cells as an object array, a table of mixed columns. With
    ``target=""`` every column is a feature (prediction inputs) and ``y`` is None;
    the columns named in ``leave_out`` are not read (a target column in prediction inputs).
    A first column with no name is the row index pandas writes (``df.to_csv()``): it is
    left out, with a notice. Errors name the file's lines: a row of the wrong length,
    infinite values, an empty target.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows, lines = [], []
            for row in reader:
                if row:
                    rows.append(row)
                    lines.append(reader.line_num)  # the file's line (of the row's end, for quoted newlines)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text CSV file") from None
    except csv.Error as e:  # e.g. a field longer than the csv module's limit (128 kB)
        raise DataError(f"{path}: not a readable CSV file ({e})") from None
    if len(rows) < 2:
        raise DataError(f"{path}: expected a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    lines = np.array(lines[1:], dtype=np.int64)
    notices = []
    skip = {c for c, h in enumerate(header) if h and h in leave_out}
    if len(header) > 1 and header[0] in _INDEX_HEADERS:
        skip.add(0)
        notices.append(f"{path}: the first column has no name: taken as the row index pandas writes "
                       "(df.to_csv()) and left out; write with df.to_csv(index=False) to have no such column")
    unnamed = [c + 1 for c, h in enumerate(header) if not h and c not in skip]
    if unnamed:
        raise DataError(f"{path}: column {unnamed[0]} has no name in the header; every column needs one")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DataError(f"{path}: the header names columns {', '.join(map(repr, repeated))} more than once")
    named = [c for c in range(len(header)) if c not in skip]
    if target == "":
        t = None
    elif target is None:
        t = len(header) - 1
    elif target in header and header.index(target) not in skip:
        t = header.index(target)
    else:
        raise DataError(f"{path}: no column named {target!r}; the columns are "
                        f"{', '.join(header[c] for c in named)}")
    features = [c for c in named if c != t]
    for i, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise DataError(f"{path}: line {lines[i]} has {len(row)} fields, the header has {len(header)}")
    labels = [row[t].strip() for row in rows[1:]] if t is not None else []
    X = numbers_or_cells(rows[1:], features)
    feature_names = [header[c] for c in features]
    if X.dtype == object:  # a mixed table: an infinite number is still an error that names its line
        for (i, j), cell in np.ndenumerate(X):
            if cell[-3:].lower() == "inf" and cell.lstrip("+-").lower() in ("inf", "infinity"):
                raise DataError(f"{path}: line {lines[i]}, column {feature_names[j]!r}: expected a finite number "
                                f"or an empty cell, found {cell!r}")
    y = None
    if t is not None:
        what = f"{path}: column {header[t]!r} (the target)"
        _checked(lambda: check_targets(np.array(labels), what, "line", lines))  # empty cells
        y = _labels_from_strings(labels)
        _checked(lambda: check_targets(y, what, "line", lines))  # "nan" or "inf" among numbers
    if X.dtype != object:  # (a table of mixed columns is checked column by column as it is encoded)
        _checked(lambda: check_values(X, str(path), columns=feature_names, unit="line", index=lines))
    return Dataset(path.name, X, y, infer_task(y) if y is not None else None, feature_names=feature_names,
                   target_name=None if t is None else header[t], lines=lines, notices=notices)


def _checked(check):
    """Run a check of :mod:`deltaprop.validation`, its ValueError as a DataError."""
    try:
        return check()
    except ValueError as e:
        raise DataError(str(e)) from None


def read_features(path: str | Path, leave_out=()) -> Dataset:
    """Inputs for prediction: a CSV of features (with a header; the columns ``leave_out``
    are not read) or a .npy array."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.suffix == ".npy":
        return Dataset(path.name, _load_npy(path), None, None)
    return read_csv(path, "", leave_out)


def _load_npy(path: Path) -> Array:
    try:  # mapped first: a header claiming more than the file holds is refused before any allocation
        a = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy array ({e})") from None
    if not isinstance(a, np.ndarray):  # an .npz renamed to .npy
        raise DataError(f"{path}: not a .npy array (a zip archive? use the .npz extension)")
    if a.dtype.kind not in "biuf":
        raise DataError(f"{path}: expected real numbers, found dtype {a.dtype}")
    return np.array(a)


def load_dataset(spec: str = "digits", target: str | None = None, seed: int = 0) -> Dataset:
    """Load a data set by built-in name or path.

    Parameters
    ----------
    spec : str
        A built-in name (``digits``, ``iris``, ``wine``, ``breast-cancer``, ``diabetes``,
        ``xor``, ``moons``, ``circles``, ``spirals``, ``sine``), a ``.csv`` file, a
        ``.npz`` file with arrays ``X`` and ``y``, a ``.npy`` file of features (with
        ``target`` naming the ``.npy`` file of targets), a folder of MNIST IDX files,
        or an ``mnist.pkl.gz`` file.
    target : str, optional
        The CSV target column (default: the last), or the targets' ``.npy`` file.
    seed : int
        For the generated sets.
    """
    builtins = _builtins()
    if spec in builtins:
        loader, task = builtins[spec]
        X, y = loader(seed)
        return _finish(Dataset(spec, np.asarray(X, dtype=np.float64), np.asarray(y), task))
    path = Path(spec)
    if not path.exists():
        raise DataError(
            f"--data {spec!r}: no such file or folder, and not a built-in name ({', '.join(BUILTIN_NAMES)})")
    if path.is_dir():
        X, y, Xt, yt = read_idx_folder(path)
        return _finish(Dataset(path.name, X, y, "classification", X_test=Xt, y_test=yt, images=True))
    name = path.name.lower()
    if name.endswith(".pkl.gz"):
        X, y, Xt, yt = read_mnist_pkl(path)
        return _finish(Dataset(path.name, X, y, "classification", X_test=Xt, y_test=yt, images=True))
    if name.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as z:
                if "X" not in z or "y" not in z:
                    raise DataError(f"{path}: expected arrays named 'X' and 'y', found {', '.join(z.files)}")
                X, y = z["X"], z["y"]
        except DataError:
            raise
        except (ValueError, OSError, EOFError, KeyError, MemoryError, zipfile.BadZipFile, zlib.error) as e:
            raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
        return _finish(Dataset(path.name, X, y, _task_of(y, path)))
    if name.endswith(".npy"):
        if target is None or not target.endswith(".npy"):
            raise DataError(f"{path}: a .npy feature file needs --target pointing to the targets' .npy file")
        if not Path(target).exists():
            raise DataError(f"--target {target!r}: no such file")
        X, y = _load_npy(path), _load_npy(Path(target))
        return _finish(Dataset(path.name, X, y, _task_of(y, path)))
    if name.endswith(".csv") or name.endswith(".txt"):
        return _finish(read_csv(path, target))
    raise DataError(f"--data {spec!r}: unknown format; expected a .csv, .npz, .npy, mnist.pkl.gz or an IDX folder")


def _task_of(y: Array, path: Path) -> str:
    if y.ndim not in (1, 2):
        raise DataError(f"{path}: expected targets of shape (n_samples,) or (n_samples, n_outputs), found {y.shape}")
    return infer_task(y)


def _finish(ds: Dataset) -> Dataset:
    """Check shapes and values; list the classes of a classification set."""
    X, y = np.asarray(ds.X), np.asarray(ds.y)
    if X.ndim != 2 or X.shape[0] == 0:
        raise DataError(f"{ds.name}: expected features of shape (n_samples, n_features), found {X.shape}")
    if X.dtype.kind not in "biuf" and not (X.dtype == object and ds.feature_names):  # (or a CSV's mixed table)
        raise DataError(f"{ds.name}: expected real numbers as features, found {X.dtype}")
    if y.shape[0] != X.shape[0]:
        raise DataError(f"{ds.name}: {X.shape[0]} rows of features but {y.shape[0]} targets")
    ds.check(None)  # finite features
    _checked(lambda: check_targets(y, f"{ds.name}: the targets"))
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    ds.X, ds.y = X, y
    if ds.task == "classification":
        ds.classes = np.unique(y).tolist() if y.ndim == 1 else None
    elif y.dtype.kind not in "biuf":
        raise DataError(f"{ds.name}: regression targets must be numbers, found {y.dtype}")
    return ds
