"""The command line and the user's files: no command overwrites one of its inputs.

These run ``deltaprop.cli.main`` in this process (the subprocess tests of the command line
are in test_cli.py): a refused command must print one line, exit 2 and leave every file as
it was.
"""

import os

import numpy as np
import pytest
from sklearn.datasets import load_iris

import deltaprop as dp
from deltaprop.cli import main

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = np.array(["setosa", "versicolor", "virginica"])


def run(capsys, *args):
    """(status, stdout, stderr) of ``deltaprop ARGS``."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def refused(capsys, *args, says=""):
    status, out, err = run(capsys, *args)
    assert status == 2, out + err
    assert len(err.strip().splitlines()) == 1 and err.startswith("deltaprop: error:"), err
    assert says in err, err
    return err


@pytest.fixture(scope="module")
def iris_files(tmp_path_factory):
    """A folder with iris as a CSV (named columns, string labels) and a model trained on it."""
    d = tmp_path_factory.mktemp("iris")
    X, y = load_iris(return_X_y=True)
    rows = "".join(",".join(f"{v:g}" for v in x) + f",{SPECIES[t]}\n" for x, t in zip(X, y))
    (d / "iris.csv").write_text(",".join(NAMES) + ",species\n" + rows)
    (d / "inputs.csv").write_text(",".join(NAMES) + "\n" + "".join(
        ",".join(f"{v:g}" for v in x) + "\n" for x in X[::10]))
    assert main(["train", "--data", str(d / "iris.csv"), "--target", "species", "--hidden", "8", "--epochs", "30",
                 "--out", str(d / "model.safetensors"), "--plot", "", "--quiet"]) == 0
    return d


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("args,says", [
    (["predict", "model.safetensors", "inputs.csv", "--out", "inputs.csv"], "--out inputs.csv: is an input"),
    (["predict", "model.safetensors", "inputs.csv", "--out", "model.safetensors"],
     "--out model.safetensors: is an input"),
    (["predict", "model.safetensors", "inputs.csv", "--out", "./sub/../inputs.csv"], "is an input"),
    (["export", "model.safetensors", "--onnx", "model.safetensors"], "--onnx model.safetensors: is an input"),
    (["evaluate", "model.safetensors", "--data", "iris.csv", "--plot", "iris.csv"], "--plot iris.csv: is an input"),
    (["evaluate", "model.safetensors", "--data", "iris.csv", "--plot", "model.safetensors"], "is an input"),
    (["explain", "--model", "model.safetensors", "--data", "iris.csv", "--out", "iris.csv"], "is an input"),
    (["train", "--data", "iris.csv", "--target", "species", "--out", "iris.csv"], "is an input"),
    (["train", "--data", "iris.csv", "--target", "species", "--plot", "iris.csv"], "is an input"),
    (["train", "--data", "iris.csv", "--target", "species", "--report", "iris.csv"], "is an input"),
    (["train", "--data", "iris.csv", "--target", "species", "--log", "iris.csv"], "is an input"),
    (["train", "--data", "iris.csv", "--target", "species", "--checkpoint", "iris.csv"], "is an input"),
    (["train", "--data", "iris.csv", "--target", "species", "--animate", "iris.csv"], "is an input"),
    (["train", "--data", "iris.csv", "--target", "species", "--plot", "iris.png",
      "--out", "iris_regions.png"], "iris_regions.png: is also given as --out"),
])
def test_no_command_overwrites_one_of_its_inputs(iris_files, capsys, monkeypatch, args, says):
    monkeypatch.chdir(iris_files)
    (iris_files / "sub").mkdir(exist_ok=True)
    before = snapshot(iris_files)
    refused(capsys, *args, says=says)
    assert snapshot(iris_files) == before  # nothing replaced, nothing added


def test_an_input_reached_by_another_name_is_still_an_input(iris_files, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    os.link(iris_files / "inputs.csv", tmp_path / "hard.csv")  # a hard link: another path, the same file
    os.symlink(iris_files / "model.safetensors", tmp_path / "soft.safetensors")
    before = (iris_files / "inputs.csv").read_bytes()
    refused(capsys, "predict", iris_files / "model.safetensors", iris_files / "inputs.csv", "--out", "hard.csv",
            says="--out hard.csv: is an input")
    refused(capsys, "export", iris_files / "model.safetensors", "--onnx", "soft.safetensors", says="is an input")
    assert (iris_files / "inputs.csv").read_bytes() == before


def test_a_file_inside_an_input_folder_is_an_input(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocks").mkdir()
    rng = np.random.default_rng(0)
    np.save(tmp_path / "blocks" / "X.npy", rng.normal(size=(64, 3)))
    np.save(tmp_path / "blocks" / "y.npy", rng.integers(0, 2, 64))
    before = snapshot(tmp_path / "blocks")
    refused(capsys, "train", "--data", "blocks", "--out", "blocks/y.npy", says="--out blocks/y.npy: is an input")
    assert snapshot(tmp_path / "blocks") == before


def test_writing_elsewhere_still_works(iris_files, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    status, out, _ = run(capsys, "predict", iris_files / "model.safetensors", iris_files / "inputs.csv",
                         "--out", "p.csv")
    assert status == 0 and (tmp_path / "p.csv").read_text().startswith("prediction\n")
