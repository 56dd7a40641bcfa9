import struct

import numpy as np
import pytest

from deltaprop.data.datasets import BUILTIN_NAMES, DataError, load_dataset, read_csv


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_builtins(name):
    ds = load_dataset(name)
    assert ds.X.ndim == 2 and len(ds.X) == len(ds.y) > 50
    if ds.task == "classification":
        assert ds.classes == np.unique(ds.y).tolist() and len(ds.classes) >= 2
    assert ds.task == ("regression" if name in ("diabetes", "sine") else "classification")


def test_generated_sets_follow_the_seed():
    a, b, c = load_dataset("spirals", seed=1), load_dataset("spirals", seed=1), load_dataset("spirals", seed=2)
    assert np.array_equal(a.X, b.X) and not np.array_equal(a.X, c.X)


def test_csv_labels_keep_their_type(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("x1,label\n1,red\n2,blue\n3,red\n")
    assert load_dataset(str(p)).y.tolist() == ["red", "blue", "red"]
    p.write_text("x1,label\n1,3\n2,7\n3,3\n")
    y = load_dataset(str(p)).y
    assert y.dtype.kind == "i" and y.tolist() == [3, 7, 3]


def test_csv_errors_name_row_and_column(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("x1,x2,label\n1,2,a\n3,oops,b\n")
    with pytest.raises(DataError, match=r"row 3, column 'x2': expected a number, found 'oops'"):
        read_csv(p, "label")
    p.write_text("x1,x2,label\n1,2,a\n3,4\n")
    with pytest.raises(DataError, match="row 3 has 2 fields, the header has 3"):
        read_csv(p, None)
    p.write_text("x1,x2\n")
    with pytest.raises(DataError, match="at least one data row"):
        read_csv(p, None)


def test_idx_errors(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    with pytest.raises(DataError, match="no train-images-idx3-ubyte"):
        load_dataset(str(folder))
    (folder / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 10, 2, 2) + b"\x00" * 7)
    (folder / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x00" * 10)
    for f in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / f).write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match="truncated"):
        load_dataset(str(folder))


def test_npz_needs_X_and_y(tmp_path):
    np.savez(tmp_path / "a.npz", features=np.zeros((3, 2)))
    with pytest.raises(DataError, match="expected arrays named 'X' and 'y'"):
        load_dataset(str(tmp_path / "a.npz"))
