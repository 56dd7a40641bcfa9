"""One entry for every kind of data: :func:`load_data` gives a data set in memory or Blocks.

The command line and a Python user read data the same way: a path (or a built-in
name) is either a block store, read a block at a time and never whole
(:class:`~deltaprop.data.blocks.Blocks`: HDF5, Zarr, a Parquet file of numbers, a
folder of ``X*.npy`` or ``.parquet`` files), or a data set read into memory
(:class:`~deltaprop.data.datasets.Dataset`: the built-in sets, CSV, ``.npz``,
``.npy``, MNIST, and a Parquet file of mixed columns, a table whose model learns
each column's encoding from all of its rows).
"""

from __future__ import annotations

from pathlib import Path

from .blocks import Blocks, open_blocks
from .datasets import DataError, Dataset, load_dataset, read_features

BLOCK_SUFFIXES = (".h5", ".hdf5", ".zarr", ".parquet")
"""The files that hold data in blocks (a Parquet file of mixed columns excepted)."""


def is_block_store(path, target: str | None = None) -> bool:
    """Whether ``path`` holds data read in blocks: an HDF5 file, a Zarr store, a Parquet
    file of numbers without gaps (``target`` names its target column), or a folder of
    ``X*.npy`` or ``.parquet`` files."""
    p = Path(path)
    if p.suffix.lower() == ".parquet" and p.is_file():
        return not mixed_parquet(p, target)
    return p.suffix.lower() in BLOCK_SUFFIXES or (p.is_dir() and (any(p.glob("X*.npy")) or any(p.glob("*.parquet"))))


def mixed_parquet(path: Path, target: str | None) -> bool:
    """Whether ``path`` is one Parquet file whose feature columns are not all numbers
    without gaps (text, booleans, gaps): a table read whole, not in blocks."""
    from .table_files import mixed_columns

    try:
        return bool(mixed_columns(path, target))
    except ImportError as e:
        raise ImportError(f"--data {path}: reading it needs {e.name}: pip install 'deltaprop[data]'") from None
    except (OSError, ValueError) as e:
        raise DataError(f"--data {path}: not a readable Parquet file ({e})") from None


def load_data(source, target: str | None = None, *, features=None, block_rows: int | None = None,
              seed: int = 0, leave_out=()) -> Dataset | Blocks:
    """The data at ``source``: :class:`Blocks` for a block store, else a :class:`Dataset` in memory.

    Parameters
    ----------
    source : str or path
        A built-in name, a file or a folder (see the module's description).
    target : str, optional
        The target column (CSV, Parquet) or array (HDF5, Zarr), or the targets' ``.npy``
        file; default the last column (or ``y``). ``""``: the file holds inputs only
        (prediction inputs; CSV, ``.npy`` or Parquet, read into memory).
    features : str or list of str, optional
        Data in blocks: the input array (HDF5, Zarr) or columns (Parquet; a comma-separated
        string or a list).
    block_rows : int, optional
        Data in blocks: rows per block (default: the store's own: a Parquet row group,
        whole chunks of about 16 MB otherwise).
    seed : int
        For the generated built-in sets.
    leave_out : sequence of str
        Columns of a table not to read (the training target, in a file of prediction inputs).

    Raises
    ------
    DataError
        For a file that cannot be read, naming the file, the line or the column.
    ValueError
        For ``features`` or ``block_rows`` given with data read into memory.
    ImportError
        When reading the store needs a package that is not installed (``deltaprop[data]``).
    """
    path = Path(str(source))
    if target == "" or not is_block_store(path, target):
        for name, value in (("features", features), ("block_rows", block_rows)):
            if value:
                raise ValueError(f"{name}: only for data in blocks (HDF5, Zarr, Parquet, a folder of .npy files)")
        if path.suffix.lower() == ".parquet" and path.is_file():
            from .table_files import read_parquet

            return read_parquet(path, target, leave_out)
        return read_features(str(source), leave_out) if target == "" else load_dataset(str(source), target, seed=seed)
    if not path.exists():
        raise DataError(f"--data {source}: no such file or folder")
    try:
        return open_blocks(path, features=features, target=target, block_rows=block_rows)
    except ImportError as e:
        raise ImportError(f"--data {source}: reading it needs {e.name}: pip install 'deltaprop[data]'") from None
