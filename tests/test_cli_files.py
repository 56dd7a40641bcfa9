"""The command line and the user's files: no command overwrites one of its inputs, a
model matches a file's columns by name, and a file's errors name its lines.

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
    assert main(["train", "--data", str(d / "iris.csv"), "--target", "species", "--hidden", "8",
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


def write_csv(path, header, rows, bom=False):
    text = ",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())


def predictions(capsys, *args):
    status, out, err = run(capsys, "predict", *args)
    assert status == 0, err
    return [line.split(",")[0] for line in out.splitlines()[1:]]


def test_predict_matches_a_csvs_columns_by_name(iris_files, capsys, monkeypatch):
    monkeypatch.chdir(iris_files)
    X, _ = load_iris(return_X_y=True)
    rows = X[::10]
    expected = predictions(capsys, "model.safetensors", "inputs.csv")
    assert expected[0] == "setosa"
    write_csv(iris_files / "reversed.csv", NAMES[::-1], [r[::-1] for r in rows])
    assert predictions(capsys, "model.safetensors", "reversed.csv") == expected
    # the target column, left in a file of inputs, is not read
    write_csv(iris_files / "labelled.csv", ["species"] + NAMES, [["?", *r] for r in rows])
    assert predictions(capsys, "model.safetensors", "labelled.csv") == expected
    write_csv(iris_files / "renamed.csv", NAMES[:3] + ["width"], rows)
    refused(capsys, "predict", "model.safetensors", "renamed.csv",
            says="missing the model's column 'petal_width'; column 'width' is not among the model's (renamed?)")
    status, out, _ = run(capsys, "info", "model.safetensors")
    assert f"columns: {', '.join(NAMES)}" in out and "target: species" in out


def test_a_pandas_index_column_is_left_out_with_a_notice(iris_files, capsys, monkeypatch):
    monkeypatch.chdir(iris_files)
    X, y = load_iris(return_X_y=True)
    write_csv(iris_files / "indexed.csv", ["", *NAMES], [[i, *r] for i, r in enumerate(X[::10])])
    status, out, err = run(capsys, "predict", "model.safetensors", "indexed.csv")
    assert status == 0 and "note: indexed.csv: the first column has no name" in err
    assert out.splitlines()[1:] == run(capsys, "predict", "model.safetensors", "inputs.csv")[1].splitlines()[1:]
    write_csv(iris_files / "train-indexed.csv", ["", *NAMES, "species"],
              [[i, *r, SPECIES[t]] for i, (r, t) in enumerate(zip(X, y))])
    status, out, err = run(capsys, "train", "--data", "train-indexed.csv", "--epochs", "2", "--plot", "",
                           "--out", "indexed.safetensors")
    assert status == 0 and "row index pandas writes" in err
    assert dp.load(iris_files / "indexed.safetensors").columns.features == tuple(NAMES)


def test_evaluate_uses_the_models_target_column(iris_files, capsys, monkeypatch):
    monkeypatch.chdir(iris_files)
    X, y = load_iris(return_X_y=True)
    # the target first, the features in another order: neither the last column nor the training order
    write_csv(iris_files / "test.csv", ["species", *NAMES[::-1]], [[SPECIES[t], *r[::-1]] for r, t in zip(X, y)])
    status, out, err = run(capsys, "evaluate", "model.safetensors", "--data", "test.csv")
    assert status == 0, err
    assert float(out.split("accuracy: ")[1].split()[0]) > 0.8
    # labels the model never learned are said, as the library says them
    write_csv(iris_files / "other.csv", ["species", *NAMES], [["rosa", *r] for r in X[:5]] + [[SPECIES[0], *X[0]]])
    refused(capsys, "evaluate", "model.safetensors", "--data", "other.csv",
            says="--data: labels rosa are not among the classes ['setosa', 'versicolor', 'virginica']")


def test_the_models_held_out_rows_are_found_again_in_python(iris_files):
    """The test rows the command line held out are a field of the model, not metadata to
    reinterpret: HeldOut.split of the same file gives them, and the model scores on them what
    train printed."""
    import pandas as pd

    model = dp.load(iris_files / "model.safetensors")
    assert model.held_out == dp.HeldOut(0.2, 0) and "test_fraction" not in model.metadata
    table = pd.read_csv(iris_files / "iris.csv")
    _, X_test, _, y_test = model.held_out.split(table[NAMES], table["species"], stratify=True)
    assert len(X_test) == 30 and sorted(pd.Series(y_test).value_counts()) == [10, 10, 10]
    assert model.score(X_test, y_test) == model.metadata["test_accuracy"]


def test_a_utf8_bom_does_not_hide_the_first_column(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = load_iris(return_X_y=True)
    write_csv(tmp_path / "bom.csv", ["species", *NAMES], [[SPECIES[t], *r] for r, t in zip(X, y)], bom=True)
    assert run(capsys, "train", "--data", "bom.csv", "--target", "species", "--epochs", "3", "--plot", "",
               "--out", "m.safetensors")[0] == 0
    assert dp.load(tmp_path / "m.safetensors").columns.features == tuple(NAMES)
    assert run(capsys, "evaluate", "m.safetensors", "--data", "bom.csv")[0] == 0
    assert len(predictions(capsys, "m.safetensors", "bom.csv")) == 150


MISSING = [({3: ""}, "column 'y' (the target): missing targets (empty, None or NaN) at line 6;"),
           ({3: "", 8: " "}, "missing targets (empty, None or NaN) at lines 6 and 11")]
NOT_FINITE = [({6: "nan"}, "column 'y' (the target): expected finite values, found nan at line 9"),
              ({6: "inf"}, "column 'y' (the target): expected finite values, found inf at line 9")]


# ('nan' among words is a word: a class label)
@pytest.mark.parametrize("kind,cells,message", [("labels", *c) for c in MISSING] +
                         [("numbers", *c) for c in MISSING + NOT_FINITE])
def test_bad_target_cells_name_the_column_and_the_files_lines(tmp_path, capsys, monkeypatch, kind, cells,
                                                              message):
    """Nothing is trained and no file is left behind; line 1 is the header, and a blank line counts."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    values = [f"{v:.3f}" for v in rng.normal(size=40) * 100 + 1000] if kind == "numbers" else \
        [("cat", "dog")[i % 2] for i in range(40)]
    for i, cell in cells.items():
        values[i] = cell
    lines = ["a,b,y", *(f"{rng.normal():.3f},{rng.normal():.3f},{v}" for v in values)]
    lines.insert(2, "")  # a blank line 3: data row 3 (values[3]) is on line 6
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    refused(capsys, "train", "--data", "d.csv", "--epochs", "2", says=message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


def test_values_beyond_the_dtype_name_the_line_and_speak_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [[i, i % 3, i % 2] for i in range(30)]
    rows[11][1] = "2e39"
    write_csv(tmp_path / "d.csv", ["a", "b", "y"], rows)
    err = refused(capsys, "train", "--data", "d.csv", "--epochs", "2",
                  says="d.csv: 2e+39 at line 13, column 'b' is beyond the range of float32")
    assert "use --dtype float64" in err and "dtype=" not in err
    assert run(capsys, "train", "--data", "d.csv", "--epochs", "2", "--dtype", "float64", "--plot", "")[0] == 0


def test_a_class_with_a_single_row_is_said_in_the_users_terms(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "d.csv", ["a", "y"], [[i, "ab"[i % 2]] for i in range(20)] + [[3, "c"]])
    refused(capsys, "train", "--data", "d.csv", says="--test-fraction: class 'c' of d.csv has a single row")
    # few integers, one seen once: taken for classes, and the way out is said
    write_csv(tmp_path / "few.csv", ["a", "grade"], [[i, i % 5] for i in range(40)] + [[1, 9]])
    refused(capsys, "train", "--data", "few.csv", says="made a regression by --likelihood gaussian or poisson")
    assert run(capsys, "train", "--data", "few.csv", "--likelihood", "poisson", "--epochs", "2",
               "--plot", "")[0] == 0
    # many integers with a tail seen once (visits): counts, a regression without being told
    write_csv(tmp_path / "counts.csv", ["a", "visits"], [[i, i % 60 + (i == 7) * 200] for i in range(500)])
    assert run(capsys, "train", "--data", "counts.csv", "--epochs", "2", "--plot", "")[0] == 0
    import deltaprop as dp
    assert dp.load(tmp_path / "counts-model.safetensors").task == "regression"


def test_errors_from_the_library_speak_in_flags(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "d.csv", ["a", "y"], [[i, "ab"[i % 2]] for i in range(10)])
    err = refused(capsys, "train", "--data", "d.csv", "--plot", "", says="--validation-fraction: a fraction of 0.1")
    assert "validation:" not in err


def test_a_pandas_written_parquet_file_trains_and_its_held_out_rows_are_found_again(tmp_path, capsys,
                                                                                    monkeypatch):
    """One row group, as pandas writes it: held-out rows are cut from it; --block-rows cuts it
    into blocks, and evaluate --held-out cuts it as train did."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    monkeypatch.chdir(tmp_path)
    X, y = load_iris(return_X_y=True)
    pd.DataFrame(X, columns=NAMES).assign(species=SPECIES[y]).to_parquet(tmp_path / "iris.parquet")
    for extra in ([], ["--block-rows", "20"]):
        status, out, err = run(capsys, "train", "--data", "iris.parquet", "--target", "species", "--epochs", "3",
                               "--plot", "", "--out", "m.safetensors", *extra)
        assert status == 0, err
        assert "120 training and 30 test samples in blocks" in out
        model = dp.load(tmp_path / "m.safetensors")
        assert model.columns.features == tuple(NAMES)
        status, out, err = run(capsys, "evaluate", "m.safetensors", "--data", "iris.parquet", "--target", "species",
                               "--held-out")
        assert status == 0 and "(30 samples)" in out, err
        assert float(out.split("accuracy: ")[1].split()[0]) == pytest.approx(model.metadata["test_accuracy"], abs=1e-4)


def test_a_pipelines_scaler_travels_in_the_model_file(tmp_path, capsys, monkeypatch):
    """The README's grid search: the saved model answers the CLI on raw rows as the pipeline does."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    monkeypatch.chdir(tmp_path)
    X, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), dp.MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs",
                                                            max_iter=50, random_state=0)).fit(X, y)
    dp.from_sklearn(pipe).save(tmp_path / "cancer.safetensors")
    status, out, _ = run(capsys, "evaluate", "cancer.safetensors", "--data", "breast-cancer")
    assert status == 0 and float(out.split("accuracy: ")[1].split()[0]) == pytest.approx(pipe.score(X, y), abs=1e-4)
    with pytest.raises(TypeError, match="step 'minmaxscaler' is a MinMaxScaler"):
        from sklearn.preprocessing import MinMaxScaler

        dp.from_sklearn(make_pipeline(MinMaxScaler(), dp.MLPClassifier(max_iter=5)).fit(X, y))
