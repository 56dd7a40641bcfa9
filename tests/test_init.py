"""The package surface: what `import deltaprop` needs and exports."""

import subprocess
import sys

import deltaprop as dp


def test_import_needs_only_numpy():
    code = ("import sys, deltaprop; "
            "print(sorted(m for m in ('sklearn', 'matplotlib', 'safetensors', 'tqdm', 'scipy', 'onnx', "
            "'threadpoolctl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_api_is_listed():
    for name in dp.__all__:
        assert hasattr(dp, name), name
    for name in ("Network", "train", "gradcheck", "load", "Adam", "SGD", "EarlyStopping", "ACTIVATIONS"):
        assert name in dp.__all__
