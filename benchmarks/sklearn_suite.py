"""scikit-learn's own MLP tests, run against deltaprop's estimators.

The installed scikit-learn ships its tests; this script takes ``neural_network/tests/
test_mlp.py`` from it, changes the one import line (``from sklearn.neural_network import
MLPClassifier, MLPRegressor`` becomes ``from deltaprop import ...``) in a temporary copy,
runs it with pytest, and prints the machine, the versions, the counts and every test that
fails. Nothing of scikit-learn's is kept in this repository.

    python benchmarks/sklearn_suite.py            # (needs the test extra: pytest)
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"


def main() -> int:
    import numpy
    import sklearn

    import deltaprop

    source = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
    if not source.exists():
        print(f"{source}: this scikit-learn was installed without its tests", file=sys.stderr)
        return 2
    text = source.read_text()
    if text.count(IMPORT) != 1:
        print(f"{source}: the import line {IMPORT!r} was not found once; cannot redirect it", file=sys.stderr)
        return 2
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"Python {platform.python_version()}, NumPy {numpy.__version__}, scikit-learn {sklearn.__version__}, "
          f"deltaprop {deltaprop.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        test = Path(tmp) / "test_mlp_on_deltaprop.py"
        test.write_text(text.replace(IMPORT, "from deltaprop import MLPClassifier, MLPRegressor"))
        # the one fixture of scikit-learn's conftest that it uses, at scikit-learn's default seed
        (Path(tmp) / "conftest.py").write_text("import pytest\n\n\n@pytest.fixture\n"
                                               "def global_random_seed():\n    return 42\n")
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider",
                               "-W", "ignore", str(test)], cwd=tmp, capture_output=True, text=True)
    failed = sorted(set(re.findall(r"^FAILED \S+::(\w+)", proc.stdout, flags=re.M)))
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-500:]
    print(f"scikit-learn's test_mlp.py against deltaprop: {summary}")
    for name in failed:
        print(f"  failed: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
