"""The layout rules of DESIGN.md, checked on the source: no import cycles, and no private
name imported from another module (in the package, the tests or the benchmarks)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "deltaprop"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path):
    """(imported module, names) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text())
    here = module_name(path) if PACKAGE in path.parents else ""
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


def test_no_import_cycles():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for target, names in imports(path):
            for candidate in [target] + [f"{target}.{n}" for n in names]:
                if candidate in modules and candidate != name:
                    deps.add(candidate)
        graph[name] = deps
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in graph[node]:
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert not cycles, f"import cycles: {cycles}"


# Another project's private module, where that project offers no public one: scikit-learn's
# InvalidParameterError and constraint objects live only there, and its check_param_validation,
# which a drop-in must pass, expects exactly that class (scikit-learn>=1.6 in pyproject.toml).
THIRD_PARTY_PRIVATE = {"sklearn.utils._param_validation"}


def test_no_private_names_imported_across_modules():
    files = list(PACKAGE.rglob("*.py")) + list((ROOT / "tests").rglob("*.py")) + \
        list((ROOT / "benchmarks").rglob("*.py"))
    found = []
    for path in files:
        for target, names in imports(path):
            for n in names:
                if n.startswith("_") and not (n.startswith("__") and n.endswith("__")):
                    found.append(f"{path.relative_to(ROOT)}: from {target} import {n}")
            if target not in THIRD_PARTY_PRIVATE and \
                    any(part.startswith("_") and not part.startswith("__") for part in target.split(".")):
                found.append(f"{path.relative_to(ROOT)}: import {target}")
    assert not found, found


def test_no_source_file_is_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long


def test_the_trainer_takes_its_settings_in_one_object():
    """The Trainer runs the loop: its constructor takes the data, the callbacks, where the run
    starts and one settings object, not every option of a run."""
    import inspect

    from deltaprop import Trainer

    params = [p for p in inspect.signature(Trainer.__init__).parameters if p != "self"]
    assert len(params) <= 10, params
    assert "settings" in params


def public_modules() -> set[str]:
    """The public modules the README lists (between its two markers)."""
    text = (ROOT / "README.md").read_text()
    listed = text.split("<!-- public modules")[1].split("<!-- end of public modules")[0]
    return set(re.findall(r"^- `(deltaprop(?:\.\w+)+)`", listed, flags=re.M))


def test_the_command_line_imports_only_the_public_api():
    import importlib

    import deltaprop

    public = public_modules()
    assert {"deltaprop.io.files", "deltaprop.diagnostics.plotting"} <= public
    found = []
    for path in (PACKAGE / "cli").glob("*.py"):
        for target, names in imports(path):
            if not target.startswith("deltaprop") or target.startswith("deltaprop.cli"):
                continue
            if target == "deltaprop":
                allowed = set(deltaprop.__all__)
            elif target in public:
                allowed = set(importlib.import_module(target).__all__)
            else:
                found.append(f"{path.name}: from {target} (not a public module)")
                continue
            found += [f"{path.name}: {target}.{n} (not in its __all__)" for n in names if n not in allowed]
    assert not found, found
    for name in public:  # each listed module says what in it is public, and has it
        module = importlib.import_module(name)
        assert all(hasattr(module, n) for n in module.__all__), name
