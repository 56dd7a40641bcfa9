"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_python_block(i, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[i], f"README block {i}", "exec"), {})
    assert "FAILED" not in capsys.readouterr().out


def test_there_are_examples():
    assert len(BLOCKS) >= 2


def test_layout_section_names_every_module():
    package = Path(__file__).resolve().parents[1] / "src" / "deltaprop"
    layout = README[README.index("## Layout"):]
    for path in package.rglob("*.py"):
        if path.name not in ("__init__.py", "__main__.py"):
            assert f"`{path.stem}`" in layout or f"`{path.name}`" in layout, path.relative_to(package)
    for folder in (p for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"):
        assert f"`{folder.name}/`" in layout, folder.name


def _cli(*args, cwd):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "deltaprop", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=True).stdout


def test_readme_explain_output_is_what_the_command_prints(tmp_path):
    shown = README[README.index("$ deltaprop explain\n") + len("$ deltaprop explain\n"):]
    shown = shown[: shown.index("```")]
    assert shown == _cli("explain", cwd=tmp_path)


def test_readme_diagnostics_summary_is_what_the_command_prints(tmp_path):
    command = "$ deltaprop train --optimizer sgd --lr 2 --diagnostics --epochs 10\n...\n"
    shown = README[README.index(command) + len(command):]
    shown = shown[: shown.index("```")]
    out = _cli(*command.split("\n")[0].split()[2:], "--plot", "", cwd=tmp_path)
    assert shown == out[out.index("diagnostics:"):]


def _command(prefix: str) -> list[str]:
    """The arguments of the README's command that starts with ``deltaprop PREFIX``."""
    line = next(line for line in README.splitlines() if line.startswith(f"deltaprop {prefix}"))
    return line.split("#")[0].split()[1:]


def test_readme_spirals_animation_solves_the_spirals(tmp_path, monkeypatch, capsys):
    from deltaprop.cli import main

    monkeypatch.chdir(tmp_path)
    args = _command("train --data spirals")
    assert main(args) == 0 and (tmp_path / "spirals.gif").exists()
    accuracy = float(capsys.readouterr().out.split("test accuracy: ")[1].split()[0])
    assert accuracy >= 0.95


def test_readme_sigmoid_stack_reports_vanishing_gradients_at_its_100_epochs(tmp_path, monkeypatch, capsys):
    from deltaprop.cli import main

    monkeypatch.chdir(tmp_path)
    words = README[README.index("a\nstack of five sigmoid layers"):]
    args = words[words.index("`deltaprop train") + 1:words.index("`)")].split()[1:]
    assert main([*args, "--plot", ""]) == 0
    out = capsys.readouterr().out
    assert "reached the maximum of 100 epochs" in out
    assert "gradients vanish across depth in epochs 1-" in out and "not converged" in out
