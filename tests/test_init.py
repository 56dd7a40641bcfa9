"""The package surface: what `import deltaprop` needs and exports."""

import subprocess
import sys

import pytest

import deltaprop as dp


def test_import_needs_only_numpy():
    code = ("import sys, deltaprop; "
            "print(sorted(m for m in ('sklearn', 'matplotlib', 'safetensors', 'tqdm', 'scipy', 'onnx', "
            "'threadpoolctl', 'pandas', 'numba', 'skl2onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_the_estimators_import_only_what_they_use():
    """Not skl2onnx (onnx, ml_dtypes: a second), Numba or plotting; pandas and SciPy's
    stats only if scikit-learn's own base class imports them (1.9 does, when pandas is
    installed)."""
    heavy = ("onnx", "skl2onnx", "ml_dtypes", "numba", "matplotlib", "tqdm", "pandas", "scipy.stats")
    out = python("import sys, sklearn.base; before = set(sys.modules); import deltaprop.estimators; "
                 f"print(sorted(m for m in {heavy!r} if m in sys.modules and m not in before))")
    assert out == "[]"
    out = python("import sys, deltaprop.estimators; "
                 "print(sorted(m for m in ('onnx', 'skl2onnx', 'numba') if m in sys.modules))")
    assert out == "[]"


@pytest.mark.parametrize("order", ["estimators first", "skl2onnx first"])
def test_onnx_converters_are_registered_in_either_import_order(order):
    pytest.importorskip("skl2onnx")
    imports = ("import deltaprop.estimators, skl2onnx" if order == "estimators first"
               else "import skl2onnx, deltaprop.estimators")
    out = python(f"""{imports}
import warnings, numpy as np
from sklearn.datasets import load_iris
X, y = load_iris(return_X_y=True)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    est = deltaprop.estimators.MLPRegressor(max_iter=2).fit(X, X[:, 0])
graph = skl2onnx.to_onnx(est, X[:1].astype(np.float32))
import deltaprop.onnx
deltaprop.onnx.register()  # explicitly, again: harmless
print(sorted({{n.op_type for n in graph.graph.node}} & {{'MatMul', 'Gemm'}}))""")
    assert out in ("['MatMul']", "['Gemm']", "['Gemm', 'MatMul']")


def test_public_api_is_listed():
    for name in dp.__all__:
        assert hasattr(dp, name), name
    for name in ("Network", "train", "gradcheck", "load", "Adam", "SGD", "EarlyStopping", "ACTIVATIONS"):
        assert name in dp.__all__


def test_a_failing_registration_warns_and_leaves_the_imported_module_working(tmp_path, monkeypatch):
    """The import hook runs skl2onnx's own loader, then registers: a registration that fails
    (a broken skl2onnx) is a warning, never an error in the program's import."""
    import importlib.util

    onnx_hooks = pytest.importorskip("deltaprop.estimators.onnx")
    (tmp_path / "fake_skl2onnx.py").write_text("VALUE = 42\n")
    spec = importlib.util.spec_from_file_location("fake_skl2onnx", tmp_path / "fake_skl2onnx.py")
    real_loader = spec.loader
    spec.loader = onnx_hooks.ThenRegister(real_loader)
    module = importlib.util.module_from_spec(spec)

    def broken():
        raise RuntimeError("no converters today")

    monkeypatch.setattr(onnx_hooks, "register", broken)
    with pytest.warns(RuntimeWarning, match="not registered with skl2onnx: no converters today"):
        spec.loader.exec_module(module)
    assert module.VALUE == 42 and module.__loader__ is real_loader
