import re
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


def test_csv_errors_name_line_and_column(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("x1,x2,label\n1,2,a\n\n3,oops,b\n4,,c\n")  # text and an empty cell: a table of mixed columns
    ds = read_csv(p, "label")
    assert ds.X.dtype == object and ds.X.tolist() == [["1", "2"], ["3", "oops"], ["4", ""]]
    p.write_text("x1,x2,label\n1,2,a\n\n3,inf,b\n")  # (a blank line counts: line 4 is the file's)
    with pytest.raises(DataError, match=r"expected finite values, found inf at line 4, column 'x2'"):
        read_csv(p, "label")
    p.write_text("x1,x2,label\n1,2,a\n3,4\n")
    with pytest.raises(DataError, match="line 3 has 2 fields, the header has 3"):
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


class _Crafted:
    """Pickles as an array built by NumPy's own reconstructor from the given state."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return (np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), self.state)


def _mnist_pkl(path, parts):
    import gzip
    import pickle

    with gzip.open(path, "wb") as f:
        pickle.dump(parts, f, protocol=2)


GOOD = (np.zeros((4, 3), np.float32), np.arange(4))


@pytest.mark.parametrize("name, parts, message", [
    ("object array shorter than its shape", (((_Crafted((1, (5,), np.dtype(object), False, [1, 2])), GOOD[1]),)
                                             + (GOOD,) * 2), "refuses dtype"),
    ("structured dtype", ((np.zeros(3, dtype=[("a", "f4"), ("b", "f4")]), GOOD[1]), GOOD, GOOD), "refuses"),
    ("bytes fewer than the shape", ((_Crafted((1, (4, 3), np.dtype("f8"), False, b"\0" * 8)), GOOD[1]), GOOD, GOOD),
     "holds 8 bytes, not 96"),
    ("a tuple where an array belongs", ((GOOD[0], (1, 2, 3, 4)), GOOD, GOOD), "training labels is a tuple"),
    ("two parts", (GOOD, GOOD), "three \\(images, labels\\) pairs"),
    ("labels that do not match", ((GOOD[0], np.arange(3)), GOOD, GOOD), "training part must be"),
    ("strings", ((np.array([["a"]]), np.arange(1)), GOOD, GOOD), "refuses dtype"),
])
def test_mnist_pkl_gz_builds_only_plain_numeric_arrays(tmp_path, name, parts, message):
    """Only NumPy arrays of numbers come out, and only after their shape and bytes agree:
    the first case segfaulted a reader that let NumPy rebuild the pickled array."""
    import subprocess
    import sys

    _mnist_pkl(tmp_path / "mnist.pkl.gz", parts)
    code = ("import sys; from deltaprop.data.datasets import load_dataset, DataError\n"
            "try: load_dataset(sys.argv[1])\nexcept DataError as e: print(e)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "mnist.pkl.gz")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr  # no crash (a segfault is -11)
    assert re.search(message, proc.stdout), proc.stdout


def test_mnist_pkl_gz_of_every_protocol_and_byte_order(tmp_path):
    rng = np.random.default_rng(0)
    for protocol in (2, 4, 5):
        parts = tuple((rng.random((3, 2)).astype(">f8"), np.arange(3, dtype=">i4")) for _ in range(3))
        import gzip
        import pickle

        with gzip.open(tmp_path / "m.pkl.gz", "wb") as f:
            pickle.dump(parts, f, protocol=protocol)
        ds = load_dataset(str(tmp_path / "m.pkl.gz"))
        np.testing.assert_allclose(ds.X[:3], parts[0][0], rtol=1e-6)
        assert ds.y.tolist() == [0, 1, 2, 0, 1, 2] and ds.images


@pytest.mark.parametrize("content, message", [
    ("a,a,y\n1,2,0\n3,4,1\n", "names columns 'a' more than once"),
    ("a,y\n" + "1" * 200_000 + ",0\n", "not a readable CSV"),
    (b"\xff\xfe,\x00y\n".decode("latin1"), "not a UTF-8"),
])
def test_csv_problems_are_data_errors(tmp_path, content, message):
    p = tmp_path / "d.csv"
    p.write_bytes(content.encode("latin1") if "\xff" in content else content.encode())
    with pytest.raises(DataError, match=message):
        load_dataset(str(p))


def test_csv_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes("\ufeffa,b\n1,0\n2,1\n3,0\n".encode("utf-8"))
    ds = load_dataset(str(p), target="a")
    assert ds.feature_names == ["b"] and ds.target_name == "a"


def test_broken_binary_files_are_data_errors(tmp_path):
    import gzip

    np.savez(tmp_path / "ok.npz", X=np.zeros((4, 2)), y=np.arange(4))
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    np.savez(tmp_path / "scalar.npz", X=np.zeros((4, 2)), y=np.array(3))
    (tmp_path / "bad.pkl.gz").write_bytes(gzip.compress(b"x" * 100)[:-12] + b"\0" * 12)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00\x00")  # header cut short
    np.save(tmp_path / "c.npy", np.ones((3, 2), dtype=complex))
    np.save(tmp_path / "y.npy", np.arange(3))
    for spec, message in (("cut.npz", "not a readable .npz"), ("scalar.npz", "targets of shape"),
                          ("bad.pkl.gz", "not a valid mnist.pkl.gz"), ("m", "truncated IDX header"),
                          ("c.npy", "expected real numbers, found dtype complex")):
        with pytest.raises(DataError, match=message):
            load_dataset(str(tmp_path / spec), target=str(tmp_path / "y.npy"))


def test_features_name_the_first_non_finite_value(tmp_path):
    X = np.zeros((4, 3))
    X[2, 1] = np.inf
    np.savez(tmp_path / "d.npz", X=X, y=np.arange(4))
    with pytest.raises(DataError, match="inf at row 2, column 1"):
        load_dataset(str(tmp_path / "d.npz"))


def test_a_decompression_bomb_is_refused_before_it_fills_memory(tmp_path):
    import gzip

    from deltaprop.data.readers import read_bounded

    path = tmp_path / "bomb.pkl.gz"
    with gzip.open(path, "wb") as f:
        for _ in range(8):
            f.write(bytes(1 << 23))  # 64 MB of zeros, 64 kB on disk
    with pytest.raises(DataError, match="holds more than 33.6 MB \\(decompressed\\)"):
        read_bounded(path, limit=2**25)
    assert len(read_bounded(path, limit=2**27)) == 2**26


def test_a_npy_header_claiming_more_than_the_file_holds_is_refused(tmp_path):
    import io

    import numpy.lib.format as fmt

    buf = io.BytesIO()
    fmt.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (2 * 10**11, 3)})
    (tmp_path / "huge.npy").write_bytes(buf.getvalue() + bytes(48))  # 4.4 TiB claimed, 48 bytes held
    np.save(tmp_path / "y.npy", np.arange(2))
    with pytest.raises(DataError, match="not a readable .npy array"):
        load_dataset(str(tmp_path / "huge.npy"), target=str(tmp_path / "y.npy"))
