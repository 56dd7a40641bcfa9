"""The container layer: bounded parsing, checksums, atomic writes."""

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deltaprop as dp
from deltaprop.io.files import ModelFileError, atomic_safetensors, atomic_write, read_safetensors


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "m.safetensors"
    net = dp.Network([3, 4, 3], activation="tanh", seed=0)
    dp.Model(net, classes=["a", "b", "c"], preprocessor=dp.Standardizer(np.zeros(3), np.ones(3)),
             metadata={"note": "x"}).save(path)
    return path.read_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bit=st.integers(min_value=0))
def test_a_flipped_bit_is_an_error_or_changes_nothing(tmp_path, model_bytes, bit):
    """Any single bit flipped: the file loads to the identical model, or ModelFileError."""
    bit %= 8 * len(model_bytes)
    data = bytearray(model_bytes)
    data[bit // 8] ^= 1 << (bit % 8)
    path = tmp_path / "flipped.safetensors"
    path.write_bytes(bytes(data))
    original = tmp_path / "original.safetensors"
    original.write_bytes(model_bytes)
    try:
        model = dp.load(path)
    except ModelFileError:
        return
    reference = dp.load(original)
    assert model.network.theta.tobytes() == reference.network.theta.tobytes()
    assert model.classes.tolist() == reference.classes.tolist() and model.metadata == reference.metadata
    np.testing.assert_array_equal(model.preprocessor.scale, reference.preprocessor.scale)


def test_every_byte_of_the_tensors_is_covered(tmp_path, model_bytes):
    """A flip in the weights' bytes (where a file without checksum would load silently) is refused."""
    n = struct.unpack("<Q", model_bytes[:8])[0]
    for offset in (8 + n, len(model_bytes) - 1, 8 + n + (len(model_bytes) - 8 - n) // 2):
        data = bytearray(model_bytes)
        data[offset] ^= 0x01
        (tmp_path / "f.safetensors").write_bytes(bytes(data))
        with pytest.raises(ModelFileError, match="checksum does not match"):
            dp.load(tmp_path / "f.safetensors")


def test_what_is_not_a_regular_file_is_refused_without_reading_it(tmp_path):
    with pytest.raises(ModelFileError, match="not a regular file"):
        read_safetensors("/dev/zero")  # would never end if read
    with pytest.raises(ModelFileError, match="is a folder"):
        read_safetensors(tmp_path)
    with pytest.raises(ModelFileError, match="does not exist"):
        read_safetensors(tmp_path / "missing")


def _container(layout: dict, body: bytes = b"") -> bytes:
    header = json.dumps(layout).encode()
    return struct.pack("<Q", len(header)) + header + body


def test_hostile_headers_are_refused_before_parsing(tmp_path):
    cases = {
        "bf16": (_container({"W.1": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),
                 "dtype 'BF16'"),
        "short": (_container({"W.1": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),
                   "inconsistent shape or byte range"),
        "beyond": (_container({"W.1": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}, b"\0" * 8),
                   "inconsistent shape or byte range"),
        "negative": (_container({"W.1": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4),
                     "inconsistent shape"),
        "metadata": (_container({"__metadata__": {"format": ["x"]}}), "metadata must map names to strings"),
        "deep": (b"", "not valid JSON"),
    }
    deep = b"{" + b'"a":[' * 100_000 + b"]" * 100_000 + b"}"
    cases["deep"] = (struct.pack("<Q", len(deep)) + deep, "not valid JSON")
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        with pytest.raises(ModelFileError, match=message):
            read_safetensors(path)


def test_checksum_covers_header_and_tensors(tmp_path):
    path = tmp_path / "c.safetensors"
    atomic_safetensors(path, {"a": np.arange(3.0)}, {"k": "v"})
    tensors, header = read_safetensors(path)
    assert header["checksum"].startswith("sha256:") and header["k"] == "v"
    np.testing.assert_array_equal(tensors["a"], np.arange(3.0))
    data = path.read_bytes().replace(b'"k":"v"', b'"k":"w"')
    path.write_bytes(data)
    with pytest.raises(ModelFileError, match="checksum"):
        read_safetensors(path)


def test_atomic_write_names_the_target_not_the_temporary(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError) as info:
        atomic_write(blocker / "model.safetensors", lambda f: f.write(b"x"))
    assert info.value.filename == str(blocker / "model.safetensors") and ".tmp" not in str(info.value)


def test_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".m.safetensors.{dead}.abc123.tmp"
    live = tmp_path / f".m.safetensors.{os.getpid()}.def456.tmp"
    other = tmp_path / f".other.{dead}.x.tmp"
    for f in (stale, live, other):
        f.write_bytes(b"partial")
    atomic_write(tmp_path / "m.safetensors", lambda f: f.write(b"new"))
    assert not stale.exists() and live.exists() and other.exists()
    assert (tmp_path / "m.safetensors").read_bytes() == b"new"
