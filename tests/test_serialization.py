import json
import pickle
import struct

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.serialization import ModelFileError, atomic_write


@pytest.fixture
def net():
    n = dp.Network([4, 6, 5, 3], activation=["tanh", "gelu"], likelihood="categorical", seed=0)
    n.classes = ["a", "b", "c"]
    n.metadata = {"trained_on": "test"}
    return n


def test_round_trip(tmp_path, net):
    path = tmp_path / "m.safetensors"
    net.save(path)
    back = dp.load(path)
    X = np.random.default_rng(0).normal(size=(7, 4))
    assert np.array_equal(back.forward(X), net.forward(X))
    assert back.sizes == net.sizes and back.activation_names == ["tanh", "gelu"]
    assert back.classes == ["a", "b", "c"] and back.metadata["trained_on"] == "test"
    assert back.theta.dtype == np.float32
    for lik in ("sigmoid+squared_error", "poisson"):
        n = dp.Network([2, 3, 2], likelihood=lik, seed=1, dtype="float64")
        n.save(tmp_path / "g.safetensors")
        assert np.array_equal(dp.load(tmp_path / "g.safetensors").theta, n.theta)
    n0 = dp.Network([3, 2], likelihood="gaussian", seed=1)
    n0.save(tmp_path / "lin.safetensors")
    assert dp.load(tmp_path / "lin.safetensors").sizes == [3, 2]


def header_of(path):
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return data, n, json.loads(data[8:8 + n])


def rewrite(path, header, data, n):
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


def test_header_claiming_wrong_shapes(tmp_path, net):
    path = tmp_path / "m.safetensors"
    net.save(path)
    tamper_config(path, sizes=[4, 7, 5, 3])
    with pytest.raises(ModelFileError, match=r"W.1 has shape \(5, 6\), but sizes \[4, 7, 5, 3\] need \(5, 7\)"):
        dp.load(path)


def test_unknown_names_in_header(tmp_path, net):
    path = tmp_path / "m.safetensors"
    net.save(path)
    tamper_config(path, activations=["tanh", "os.system"])
    with pytest.raises(ModelFileError, match="activation: unknown name 'os.system'"):
        dp.load(path)


def test_nan_weights(tmp_path, net):
    net.W[2][0, 0] = np.nan
    path = tmp_path / "m.safetensors"
    net.save(path)
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
