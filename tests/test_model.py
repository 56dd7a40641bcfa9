import json
import pickle
import struct

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.io.files import ModelFileError, atomic_write, checksum


class Net:
    """A Model around a network, saved with ``net.save(path)`` (what the file tests tamper with)."""

    def __init__(self):
        self.network = dp.Network([4, 6, 5, 3], activation=["tanh", "gelu"], likelihood="categorical", seed=0)
        self.W = self.network.W
        self.model = dp.Model(self.network, classes=["a", "b", "c"], metadata={"trained_on": "test"},
                              preprocessor=dp.Standardizer(np.arange(4.0), np.full(4, 2.0)))

    def save(self, path):
        self.model.save(path)


@pytest.fixture
def net():
    return Net()


def test_round_trip(tmp_path, net):
    path = tmp_path / "m.safetensors"
    net.save(path)
    back = dp.load(path)
    X = np.random.default_rng(0).normal(size=(7, 4))
    assert np.array_equal(back.forward(X), net.model.forward(X))
    assert np.array_equal(back.predict(X), net.model.predict(X)) and back.predict(X).dtype.kind == "U"
    assert back.network.sizes == [4, 6, 5, 3] and back.network.activation_names == ["tanh", "gelu"]
    assert back.classes.tolist() == ["a", "b", "c"] and back.metadata["trained_on"] == "test"
    np.testing.assert_array_equal(back.preprocessor.mean, np.arange(4.0))
    assert back.network.theta.dtype == np.float32
    for lik in ("sigmoid+squared_error", "poisson"):
        n = dp.Network([2, 3, 2], likelihood=lik, seed=1, dtype="float64")
        dp.Model(n).save(tmp_path / "g.safetensors")
        assert np.array_equal(dp.load(tmp_path / "g.safetensors").network.theta, n.theta)
    n0 = dp.Network([3, 2], likelihood="gaussian", seed=1)
    dp.Model(n0, target_scaler=dp.Standardizer([1.0, 2.0], [3.0, 4.0])).save(tmp_path / "lin.safetensors")
    back = dp.load(tmp_path / "lin.safetensors")
    assert back.network.sizes == [3, 2]
    np.testing.assert_allclose(back.predict(np.ones((2, 3))), n0.forward(np.ones((2, 3))) * [3, 4] + [1, 2],
                               rtol=1e-6)


def test_the_held_out_rows_travel_in_the_file_and_older_files_metadata_is_taken_as_them(tmp_path, net):
    path = tmp_path / "m.safetensors"
    net.model.held_out = dp.HeldOut(0.25, 7)
    net.save(path)
    assert dp.load(path).held_out == dp.HeldOut(0.25, 7)
    # a file of version 5 or older: the command line wrote the split as metadata
    data, n, header = header_of(path)
    meta = header["__metadata__"]
    config = json.loads(meta["config"])
    del config["held_out"]
    meta.update({"format_version": "5", "config": json.dumps(config),
                 "metadata": json.dumps({"test_fraction": 0.3, "seed": 4, "block_rows": None})})
    rewrite(tmp_path / "old.safetensors", header, data, n)
    assert dp.load(tmp_path / "old.safetensors").held_out == dp.HeldOut(0.3, 4)
    for bad in ({"fraction": 1.5, "seed": 0, "block_rows": None}, {"fraction": 0.2, "seed": -1},
                {"fraction": 0.2, "rows": [1, 2]}):
        meta.update({"format_version": "6", "config": json.dumps({**config, "held_out": bad})})
        rewrite(tmp_path / "bad.safetensors", header, data, n)
        with pytest.raises(ModelFileError, match="held_out"):
            dp.load(tmp_path / "bad.safetensors")
    with pytest.raises(TypeError, match="held_out: expected a HeldOut"):
        dp.Model(net.network, held_out=0.2)


def test_the_data_trained_on_travels_in_the_file_and_older_files_metadata_is_taken_as_it(tmp_path, net):
    path = tmp_path / "m.safetensors"
    net.model.source = "moons"
    net.save(path)
    assert dp.load(path).source == "moons"
    # a file of version 6 or older: the command line named its data in the metadata
    data, n, header = header_of(path)
    meta = header["__metadata__"]
    config = json.loads(meta["config"])
    del config["source"]
    meta.update({"format_version": "6", "config": json.dumps(config), "metadata": json.dumps({"data": "xor"})})
    rewrite(tmp_path / "old.safetensors", header, data, n)
    assert dp.load(tmp_path / "old.safetensors").source == "xor"
    meta.update({"format_version": "7", "config": json.dumps({**config, "source": 3})})
    rewrite(tmp_path / "bad.safetensors", header, data, n)
    with pytest.raises(ModelFileError, match="source: expected the name or path of a data set"):
        dp.load(tmp_path / "bad.safetensors")


def test_preprocessing_arrays_are_tensors_not_json(tmp_path, net):
    path = tmp_path / "m.safetensors"
    net.save(path)
    _, _, header = header_of(path)
    assert {"input.mean", "input.scale"} <= set(header) and "mean" not in header["__metadata__"]["config"]


def test_version_1_files_load_with_their_standardization(tmp_path):
    """A file written by deltaprop 0.1 (scalers as metadata JSON) predicts as its CLI did."""
    from safetensors.numpy import save_file

    net = dp.Network([2, 3, 2], activation="tanh", seed=0)
    config = {"sizes": [2, 3, 2], "activations": ["tanh"], "likelihood": "categorical", "dtype": "float32",
              "init": None, "classes": ["no", "yes"], "deltaprop_version": "0.1.0",
              "metadata": {"standardize": {"mean": [10.0, -5.0], "std": [2.0, 4.0]}, "seed": 0}}
    path = tmp_path / "v1.safetensors"
    save_file({f"W.{l}": np.ascontiguousarray(net.W[l]) for l in (1, 2)}, str(path),
              metadata={"format": "deltaprop-model", "format_version": "1", "config": json.dumps(config)})
    model = dp.load(path)
    X_raw = np.array([[12.0, -1.0], [8.0, -9.0]])
    expected = np.array(["no", "yes"])[net.predict((X_raw - [10, -5]) / [2, 4])]
    np.testing.assert_array_equal(model.predict(X_raw), expected)
    assert model.metadata == {"seed": 0}


def test_a_version_1_standardizer_without_its_std_is_refused(tmp_path):
    from safetensors.numpy import save_file

    net = dp.Network([2, 3, 2], activation="tanh", seed=0)
    config = {"sizes": [2, 3, 2], "activations": ["tanh"], "likelihood": "categorical", "dtype": "float32",
              "init": None, "classes": ["no", "yes"], "metadata": {"standardize": {"mean": [10.0, -5.0]}}}
    path = tmp_path / "v1.safetensors"
    save_file({f"W.{l}": np.ascontiguousarray(net.W[l]) for l in (1, 2)}, str(path),
              metadata={"format": "deltaprop-model", "format_version": "1", "config": json.dumps(config)})
    with pytest.raises(ModelFileError, match="inconsistent model: 'std'"):
        dp.load(path)
    config["metadata"]["standardize"]["std"] = [2.0]  # one value for two features: not broadcast
    save_file({f"W.{l}": np.ascontiguousarray(net.W[l]) for l in (1, 2)}, str(path),
              metadata={"format": "deltaprop-model", "format_version": "1", "config": json.dumps(config)})
    with pytest.raises(ModelFileError, match="mean has 2 columns, scale 1"):
        dp.load(path)


def test_unknown_format_version_is_refused(tmp_path, net):
    path = tmp_path / "m.safetensors"
    net.save(path)
    data, n, header = header_of(path)
    header["__metadata__"]["format_version"] = "9"
    rewrite(path, header, data, n)
    with pytest.raises(ModelFileError, match="format version '9'"):
        dp.load(path)


def header_of(path):
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return data, n, json.loads(data[8:8 + n])


def rewrite(path, header, data, n, sign=True):
    """Write back a changed header; ``sign`` recomputes the checksum, as a deliberate forger
    would (what is behind the checksum must still be validated)."""
    from safetensors.numpy import load

    from deltaprop.io.files import CHECKSUM_KEY, checksum

    if sign and CHECKSUM_KEY in header.get("__metadata__", {}):
        header["__metadata__"][CHECKSUM_KEY] = checksum(load(data), header["__metadata__"])
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + data[8 + n:])


def test_truncated_file(tmp_path, net):
    path = tmp_path / "m.safetensors"
    net.save(path)
    data = path.read_bytes()
    for cut in (4, 20, len(data) // 2, len(data) - 3):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="not a safetensors file|corrupted"):
            dp.load(path)


def test_flipped_header_bytes(tmp_path, net):
    path = tmp_path / "m.safetensors"
    net.save(path)
    data = bytearray(path.read_bytes())
    data[12] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        dp.load(path)


def tamper_config(path, **changes):
    """Rewrite fields of the config in a model file's header, keeping its tensors."""
    data, n, header = header_of(path)
    config = json.loads(header["__metadata__"]["config"])
    config.update(changes)
    header["__metadata__"]["config"] = json.dumps(config)
    rewrite(path, header, data, n)


@pytest.mark.parametrize("changes, message", [
    ({"classes": ["a", "b"]}, "classes: expected 3 labels"),
    ({"sizes": [4, 7, 5, 3]}, r"W.1 has shape \(5, 6\), but sizes \[4, 7, 5, 3\] need \(5, 7\)"),
    ({"activations": ["tanh", "os.system"]}, "activation: unknown name 'os.system'"),
    ({"sizes": [4, "6", 5, 3]}, "sizes must be a list of at least two positive integers"),
    ({"classes": [{"a": 1}, 2, 3]}, "distinct numbers or strings"),
])
def test_a_config_that_does_not_fit_the_file_is_refused(tmp_path, net, changes, message):
    """Behind a valid checksum (a forger recomputes it), the config is still validated."""
    path = tmp_path / "m.safetensors"
    net.save(path)
    tamper_config(path, **changes)
    with pytest.raises(ModelFileError, match=message):
        dp.load(path)


def test_a_config_nested_too_deep_is_refused(tmp_path, net):
    path = tmp_path / "m.safetensors"
    net.save(path)
    data, n, header = header_of(path)
    header["__metadata__"]["config"] = "[" * 100_000 + "]" * 100_000
    rewrite(path, header, data, n)
    with pytest.raises(ModelFileError, match="config in its header is not valid JSON"):
        dp.load(path)


def test_nan_weights_are_neither_saved_nor_loaded(tmp_path, net):
    path = tmp_path / "m.safetensors"
    net.save(path)
    net.W[2][0, 0] = np.nan
    with pytest.raises(ValueError, match="weights contain NaN"):
        net.save(tmp_path / "nan.safetensors")
    assert not (tmp_path / "nan.safetensors").exists()
    _retensor(path, lambda t: t["W.2"].__setitem__((0, 0), np.nan))  # a forged file: NaN written into W.2
    with pytest.raises(ModelFileError, match="W.2 contains NaN or inf"):
        dp.load(path)


def test_pickle_renamed_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelFileError, match="not a safetensors file"):
        dp.load(path)
    assert not marker.exists()


def test_other_safetensors_and_missing_files(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "other.safetensors"
    save_file({"x": np.zeros(3, dtype=np.float32)}, str(path))
    with pytest.raises(ModelFileError, match="not a deltaprop model"):
        dp.load(path)
    with pytest.raises(ModelFileError, match="does not exist"):
        dp.load(tmp_path / "missing.safetensors")


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temporary left behind


def test_a_small_file_claiming_a_huge_network_is_refused_before_allocating(tmp_path, net):
    import tracemalloc

    path = tmp_path / "m.safetensors"
    net.save(path)
    tamper_config(path, sizes=[8000, 8000, 3], activations=["relu"])
    tracemalloc.start()
    with pytest.raises(ModelFileError, match=r"W.1 has shape \(5, 6\), but sizes \[8000, 8000, 3\] need"):
        dp.load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * 2**20  # the claimed network would take 256 MB


def _retensor(path, change):
    """Rewrite a model file's tensors (checksum recomputed, as a forger would)."""
    from safetensors.numpy import load, save

    data, n, header = header_of(path)
    tensors = load(data)
    change(tensors)
    meta = header["__metadata__"]
    meta["checksum"] = checksum(tensors, meta)
    path.write_bytes(save(tensors, metadata=meta))


def test_unknown_tensors_and_malformed_scalers_are_refused(tmp_path, net):
    path = tmp_path / "m.safetensors"
    net.save(path)
    _retensor(path, lambda t: t.__setitem__("payload", np.zeros(2)))
    with pytest.raises(ModelFileError, match=r"unknown tensors \['payload'\]"):
        dp.load(path)
    net.save(path)
    _retensor(path, lambda t: t.__setitem__("input.mean", t["input.mean"].reshape(2, 2)))
    with pytest.raises(ModelFileError, match="input.mean and input.scale must be 1-D"):
        dp.load(path)
    net.save(path)
    _retensor(path, lambda t: t.__setitem__("input.mean", t["input.mean"][:1]))
    with pytest.raises(ModelFileError, match="mean has 1 columns, scale 4"):
        dp.load(path)
    net.save(path)
    _retensor(path, lambda t: t.__setitem__("input.scale", np.zeros(4)))
    with pytest.raises(ModelFileError, match="positive finite scales"):
        dp.load(path)


def test_save_refuses_what_load_would_refuse(tmp_path, net):
    net.model.classes = np.array(["a", "b"])  # changed after the model was built: 3 outputs, 2 labels
    with pytest.raises(ValueError, match="classes: expected 3 labels"):
        net.save(tmp_path / "m.safetensors")
    net.model.classes = np.array(["a", "b", "a"])
    with pytest.raises(ValueError, match="distinct"):
        net.save(tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()
    with pytest.raises(ValueError, match="distinct numbers or strings"):
        dp.Model(net.network, classes=np.array([{"a": 1}, 2, 3], dtype=object))


def test_a_file_missing_its_checksum_is_refused(tmp_path, net):
    path = tmp_path / "m.safetensors"
    net.save(path)
    data, n, header = header_of(path)
    del header["__metadata__"]["checksum"]
    rewrite(path, header, data, n)
    with pytest.raises(ModelFileError, match="checksum is missing"):
        dp.load(path)


def test_predict_and_score_read_blocks_a_block_at_a_time():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    model, _ = dp.fit(X, y, hidden=[8], epochs=5, seed=0)
    blocks = dp.Blocks.from_arrays(X, y, block_rows=70)
    assert len(blocks) > 1
    np.testing.assert_array_equal(model.predict(blocks), model.predict(X))
    assert model.score(blocks) == model.score(X, y)
    with pytest.raises(TypeError, match="Blocks carry their own targets"):
        model.score(blocks, y)


def test_blocks_with_column_names_are_matched_to_the_model_by_name(tmp_path):
    """A model trained on a named table predicts Blocks whose file holds the same columns
    in another order: by name, as for a table in memory."""
    pd = pytest.importorskip("pandas")
    from conftest import need
    need("pyarrow")
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200), "c": rng.normal(size=200)})
    y = df["a"] - 2 * df["c"]
    model, _ = dp.fit(df, y.to_numpy(), hidden=[8], epochs=5, seed=0, columns=["a", "b", "c"])
    df[["c", "b", "a"]].assign(y=y).to_parquet(tmp_path / "t.parquet", row_group_size=64)
    blocks = dp.open_blocks(tmp_path / "t.parquet", target="y")
    assert blocks.feature_names == ["c", "b", "a"] and len(blocks) > 1
    np.testing.assert_allclose(model.predict(blocks), model.predict(df), rtol=1e-6)
    assert model.score(blocks) == pytest.approx(model.score(df, y))
