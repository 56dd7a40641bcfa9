"""The command line, run as a subprocess the way a person runs it."""

import csv
import gzip
import importlib.util
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import deltaprop as dp
from conftest import need

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def cli(*args, cwd, check=None, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "deltaprop", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


def assert_clean_error(proc, *fragments):
    """Exit status 2, one line on stderr, no traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("deltaprop: error:") and "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`deltaprop train` with no arguments, once for the module."""
    d = tmp_path_factory.mktemp("default")
    proc = cli("train", "--log", "history.jsonl", cwd=d, check=0)
    return d, proc


def test_default_train(trained):
    d, proc = trained
    assert (d / "digits-model.safetensors").exists() and (d / "digits-curves.png").exists()
    acc = float(proc.stdout.split("test accuracy: ")[1].split()[0])
    assert acc >= 0.95
    assert "stopped:" in proc.stdout and "epochs in" in proc.stdout
    assert "epoch 1/100" in proc.stderr  # plain progress lines when not on a terminal
    lines = (d / "history.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["epoch"] == 1 and "val_accuracy" in json.loads(lines[0])
    assert (d / "digits-curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = dp.load(d / "digits-model.safetensors")
    assert model.metadata["test_accuracy"] == pytest.approx(acc, abs=1e-4)


def test_info_and_evaluate(trained):
    d, _ = trained
    info = cli("info", "digits-model.safetensors", cwd=d, check=0).stdout
    assert "architecture: 64-128-64-10" in info and "parameters: 17,226" in info
    assert "held out: 20% of the rows, drawn with seed 0 (evaluate --held-out finds them again)" in info
    assert "\ndata: digits\n" in info  # (the model's source)
    ev = cli("evaluate", "digits-model.safetensors", "--data", "digits", "--held-out", "--plot", "cm.png",
             cwd=d, check=0).stdout
    assert "accuracy:" in ev and "precision" in ev and "confusion matrix" in ev
    assert float(ev.split("accuracy: ")[1].split()[0]) >= 0.95
    assert (d / "cm.png").exists()


def test_predict_csv_and_npy(trained):
    d, _ = trained
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    np.save(d / "x.npy", X[:20])
    with open(d / "x.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"p{i}" for i in range(64)])
        w.writerows(X[:20])
    cli("predict", "digits-model.safetensors", "x.csv", "--out", "p.csv", "--proba", cwd=d, check=0)
    rows = list(csv.reader(open(d / "p.csv")))
    assert rows[0][:2] == ["prediction", "p_0"] and len(rows) == 21 and len(rows[0]) == 11
    assert np.mean([int(r[0]) for r in rows[1:]] == y[:20]) >= 0.9
    out = cli("predict", "digits-model.safetensors", "x.npy", cwd=d, check=0).stdout.split()
    assert out[0] == "prediction" and out[1:] == [r[0] for r in rows[1:]]


def read_predictions(path_or_text):
    text = path_or_text.read_text() if hasattr(path_or_text, "read_text") else path_or_text
    return list(csv.reader(text.splitlines()))


def make_kind(kind, rng):
    """Raw data for each kind of model the CLI writes: (X, y) with y as the user has it."""
    X = rng.normal(size=(240, 4)) * [1, 10, 100, 0.1] + [0, 50, -300, 2]  # scales that need standardizing
    Z = (X - [0, 50, -300, 2]) / [1, 10, 100, 0.1]
    if kind == "strings":
        y = np.array(["cat", "dog", "emu"])[(Z[:, 0] > 0).astype(int) + (Z[:, 1] > 0.5)]
    elif kind == "binary":
        y = np.where(Z[:, 0] + Z[:, 2] > 0, "spam", "ham")
    elif kind == "multilabel":
        y = np.c_[Z[:, 0] > 0, Z[:, 1] > 0, Z[:, 3] > 0].astype(int)
    elif kind == "gaussian":
        y = 1000 + 300 * Z[:, 0] - 50 * Z[:, 1] ** 2
    else:  # poisson
        y = rng.poisson(np.exp(1 + 0.5 * Z[:, 0]))
    return X, y


@pytest.mark.parametrize("kind,options", [
    ("strings", []), ("binary", []), ("multilabel", []), ("gaussian", []),
    ("poisson", ["--likelihood", "poisson"])])
def test_load_predict_cli_and_onnx_agree_on_raw_rows(tmp_path, kind, options):
    """A model trained by the CLI answers the same in Python, in `deltaprop predict` and in ONNX."""
    ort = pytest.importorskip("onnxruntime")
    X, y = make_kind(kind, np.random.default_rng(1))
    np.savez(tmp_path / "d.npz", X=X, y=y)
    cli("train", "--data", "d.npz", "--hidden", "16", "--epochs", "60", "--lr", "0.01", "--plot", "", *options,
        cwd=tmp_path, check=0)
    model = dp.load(tmp_path / "d-model.safetensors")
    pred = model.predict(X)
    # the Python answer is right in the data's own terms, not just self-consistent
    if kind in ("strings", "binary", "multilabel"):
        assert model.score(X, y) > 0.8
        if kind != "multilabel":
            assert pred.dtype.kind == "U" and set(pred) <= set(y)
    elif kind == "gaussian":
        assert model.score(X, y) > 0.8 and abs(pred.mean() - y.mean()) < 0.2 * y.std()
    else:
        assert model.network.likelihood.name == "poisson" and np.all(pred > 0)
    np.save(tmp_path / "x.npy", X)
    args = ["--proba"] if kind in ("strings", "binary", "multilabel") else []
    rows = read_predictions(cli("predict", "d-model.safetensors", "x.npy", *args, cwd=tmp_path,
                                check=0).stdout)
    n_pred = 1 if pred.ndim == 1 else pred.shape[1]
    cli_pred = np.array([r[:n_pred] for r in rows[1:]])
    if kind in ("gaussian", "poisson"):
        np.testing.assert_allclose(cli_pred[:, 0].astype(float), pred, rtol=1e-6)
    else:
        np.testing.assert_array_equal(cli_pred.reshape(pred.shape).astype(pred.dtype), pred)
    cli("export", "d-model.safetensors", "--onnx", "m.onnx", cwd=tmp_path, check=0)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    outputs = session.run(None, {"X": X.astype(np.float32)})
    onnx_out = outputs[0]
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    assert meta["task"] == model.task
    if model.task == "classification":
        proba = model.predict_proba(X)
        np.testing.assert_allclose(onnx_out, proba, atol=1e-5)
        if args:
            assert len(rows) == len(X) + 1  # one row per input (multilabel once wrote 3 per input)
            np.testing.assert_allclose(np.array([r[n_pred:] for r in rows[1:]], dtype=float), proba, atol=2e-6)
        # the labels themselves, as predict gives them, and the class names in the file
        assert [o.name for o in session.get_outputs()] == ["o", "label"]
        labels = outputs[1].astype(str) if model.classes is not None else outputs[1]
        np.testing.assert_array_equal(labels, pred)
        if model.classes is not None:
            assert meta["classes"] == model.classes.tolist() and labels.dtype.kind == "U"
        else:
            assert "classes" not in meta and outputs[1].dtype == np.int64
    else:
        np.testing.assert_allclose(onnx_out[:, 0], pred, rtol=1e-4, atol=1e-3 * np.abs(pred).max())


def test_regression_model_predicts_and_exports_in_target_units(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(300, 2))
    np.savez(tmp_path / "r.npz", X=X, y=100 + 50 * X[:, 0] - 20 * X[:, 1] ** 2)
    cli("train", "--data", "r.npz", "--hidden", "16", "--epochs", "100", "--plot", "", cwd=tmp_path, check=0)
    np.save(tmp_path / "x.npy", X[:10])
    out = cli("predict", "r-model.safetensors", "x.npy", cwd=tmp_path, check=0).stdout.split()
    pred = np.array(out[1:], dtype=float)
    assert np.abs(pred - (100 + 50 * X[:10, 0] - 20 * X[:10, 1] ** 2)).mean() < 15
    cli("export", "r-model.safetensors", "--onnx", "r.onnx", cwd=tmp_path, check=0)
    got = ort.InferenceSession(str(tmp_path / "r.onnx")).run(None, {"X": X[:10].astype(np.float32)})[0]
    np.testing.assert_allclose(got[:, 0], pred, rtol=1e-4, atol=1e-3)


def test_explain_command(tmp_path):
    out = cli("explain", "--sizes", "2", "2", "1", "--x", "1", "2", "--y", "1", "--lr", "0.5",
              cwd=tmp_path, check=0).stdout
    assert re.search(r"delta\[2\] = o - y = \[-?[0-9.]+\]", out) and "J after the step" in out and "PASSED" in out
    assert_clean_error(cli("explain", "--sizes", "3", "2", "--x", "1", cwd=tmp_path), "--x: expected 3 numbers")
    assert_clean_error(cli("explain", "--sample", "3", cwd=tmp_path), "--sample: only with --model")
    wide = cli("explain", "--sizes", "3", "12", "2", "--likelihood", "categorical", "--units", "5", cwd=tmp_path,
               check=0).stdout
    assert "z[1] = W[1]^T h[0]: shape (12,)" in wide and "    unit 5: " in wide


def test_explain_draws_targets_of_the_likelihoods_kind(tmp_path):
    """Without --y, the made-up target is one the likelihood models: reals for a Gaussian
    output and counts for a Poisson one (it used to be 0/1 labels for any of them)."""
    for likelihood, ok in (("gaussian", lambda v: v not in (0.0, 1.0)), ("poisson", lambda v: v == round(v) >= 0)):
        values = []
        for seed in range(4):
            out = cli("explain", "--sizes", "2", "2", "1", "--likelihood", likelihood, "--seed", seed,
                      cwd=tmp_path, check=0).stdout
            values.append(float(re.search(r"y \(encoded\) = \[(-?[0-9.e+-]+)\]", out).group(1)))
        assert all(ok(v) for v in values), (likelihood, values)
    assert any(v > 1 for v in values)  # (Poisson counts, not labels)


def test_explain_a_trained_model_on_a_real_sample(trained, tmp_path):
    d, _ = trained
    model = d / "digits-model.safetensors"
    assert dp.load(model).source == "digits" and "data" not in dp.load(model).metadata  # (a typed field)
    out = cli("explain", "--model", model, "--sample", "7", "--units", "0", "5", cwd=tmp_path, check=0).stdout
    assert out.startswith("One step of backpropagation: network 64-128-64-10")
    assert "W[1]: shape (65, 128)" in out and "unit 5: bias" in out and "(eq. 12)" in out
    assert "J after the step" in out and "PASSED" in out  # a sample of each layer's entries, checked
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    t = dp.trace(dp.load(model), X[7], y[7], learning_rate=0.01)
    assert f"J = {t.J:.6g}" in out and f"J after the step = {t.J_after:.6g}" in out
    cli("explain", "--model", model, "--sample", "7", "--format", "html", "--out", "step.html", cwd=tmp_path, check=0)
    page = (tmp_path / "step.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "(eq. 8)" in page
    md = cli("explain", "--format", "markdown", cwd=tmp_path, check=0).stdout
    assert "$$" in md and r"\tag{9}" in md
    assert_clean_error(cli("explain", "--model", model, "--sample", "5000", cwd=tmp_path), "--sample", "1797 rows")
    assert_clean_error(cli("explain", "--model", model, "--data", "iris", cwd=tmp_path),
                       "--data", "64 features")
    assert_clean_error(cli("explain", "--format", "pdf", cwd=tmp_path), "--format")


def test_gradcheck_command(tmp_path):
    out = cli("gradcheck", "--hidden", "5", "4", "--activation", "gelu", "--likelihood", "sigmoid+squared_error",
              cwd=tmp_path, check=0).stdout
    assert "layer 3: max relative error" in out and "PASSED" in out


# --- data sources --------------------------------------------------------------------
def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if str(path).endswith(".gz") else open)(path, "wb").write(data)


def make_idx_folder(folder, gz):
    rng = np.random.default_rng(0)
    folder.mkdir()
    suffix = ".gz" if gz else ""
    for split, n in (("train", 300), ("t10k", 100)):
        labels = rng.integers(0, 3, n)
        images = rng.integers(0, 30, (n, 6, 6))
        for k in range(3):  # a class-dependent bright block, so it can be learned
            images[labels == k, 2 * k:2 * k + 2, :] += 200
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder(tmp_path, gz):
    make_idx_folder(tmp_path / "mnist", gz)
    out = cli("train", "--data", "mnist", "--hidden", "16", "--epochs", "20", "--quiet", "--plot", "",
              cwd=tmp_path, check=0)
    model = dp.load(tmp_path / "mnist-model.safetensors")
    assert model.network.sizes == [36, 16, 3] and model.metadata["test_accuracy"] > 0.9
    assert out.stdout == ""


def test_mnist_pkl_gz(tmp_path):
    import pickle

    rng = np.random.default_rng(0)
    parts = []
    for n in (200, 50, 80):
        y = rng.integers(0, 2, n)
        X = rng.random((n, 16)).astype(np.float32) * 0.2
        X[y == 1, :8] += 0.8
        parts.append((X, y.astype(np.int64)))
    with gzip.open(tmp_path / "mnist.pkl.gz", "wb") as f:
        pickle.dump(tuple(parts), f)
    cli("train", "--data", "mnist.pkl.gz", "--hidden", "8", "--epochs", "40", "--plot", "", cwd=tmp_path, check=0)
    model = dp.load(tmp_path / "mnist-model.safetensors")
    assert model.metadata["test_accuracy"] > 0.9 and model.network.likelihood.name == "bernoulli"
    assert model.preprocessor is None  # pixels in [0, 1] are not standardized by default


def test_mnist_pkl_gz_refuses_code(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with gzip.open(tmp_path / "evil.pkl.gz", "wb") as f:
        pickle.dump(Evil(), f)
    proc = cli("train", "--data", "evil.pkl.gz", cwd=tmp_path)
    assert_clean_error(proc, "refuses to load")
    assert not marker.exists()


def test_csv_with_string_labels_npz_and_npy(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 3))
    names = np.array(["setosa", "versicolor", "virginica"])[(X[:, 0] > -0.4).astype(int) + (X[:, 0] > 0.4)]
    with open(tmp_path / "d.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "species", "b", "c"])
        for x, n in zip(X, names):
            w.writerow([x[0], n, x[1], x[2]])
    cli("train", "--data", "d.csv", "--target", "species", "--hidden", "16", "--epochs", "60", "--plot", "",
        cwd=tmp_path, check=0)
    model = dp.load(tmp_path / "d-model.safetensors")
    assert model.classes.tolist() == ["setosa", "versicolor", "virginica"]
    pred = cli("predict", "d-model.safetensors", "d.csv", cwd=tmp_path, check=0).stdout.split()[1:]
    assert np.mean(np.array(pred) == names) > 0.85
    np.savez(tmp_path / "r.npz", X=X, y=X[:, 0] * 2 + 1)
    cli("train", "--data", "r.npz", "--hidden", "8", "--epochs", "200", "--lr", "0.01", "--plot", "",
        "--out", "r.safetensors", cwd=tmp_path, check=0)
    assert dp.load(tmp_path / "r.safetensors").network.likelihood.name == "gaussian"
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", (X[:, 1] > 0).astype(int))
    cli("train", "--data", "X.npy", "--target", "y.npy", "--hidden", "4", "--epochs", "5", "--plot", "",
        "--out", "n.safetensors", cwd=tmp_path, check=0)
    ev = cli("evaluate", "r.safetensors", "--data", "r.npz", cwd=tmp_path, check=0).stdout
    assert "R^2:" in ev and "RMSE:" in ev
    assert float(ev.split("R^2: ")[1].split()[0]) > 0.9  # targets standardized, predictions mapped back


def test_optimizer_and_schedule_settings(tmp_path):
    cli("train", "--optimizer", "nesterov:momentum=0.8", "--lr", "0.02", "--schedule", "cosine:warmup=2,min_lr=0.001",
        "--epochs", "5", "--plot", "", "--quiet", cwd=tmp_path, check=0)
    meta = dp.load(tmp_path / "digits-model.safetensors").metadata
    assert meta["optimizer"] == "Nesterov(learning_rate=0.02, momentum=0.8)"
    assert meta["schedule"] == "Cosine(warmup=2, min_lr=0.001)"


def test_generated_2d_sets_plot_decision_regions(tmp_path):
    out = cli("train", "--data", "moons", "--hidden", "16", "16", "--epochs", "30", "--plot", "moons.png",
              cwd=tmp_path, check=0).stdout
    assert (tmp_path / "moons_regions.png").exists() and "decision regions" in out


# --- errors: one line, exit 2, no traceback, nothing left behind ----------------------
def test_error_cases(tmp_path, trained):
    d, _ = trained
    (tmp_path / "ragged.csv").write_text("a,b,y\n1,2,0\n3,4\n")
    (tmp_path / "text.csv").write_text("a,b,y\n1,2,0\n3,x,1\n5,-inf,1\n")  # (text: a table of mixed columns)
    (tmp_path / "bad.safetensors").write_bytes(b"\x80\x04not a model at all")
    model = str(d / "digits-model.safetensors")
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5)))
    cases = [
        (["train", "--data", "missing.csv"], ["no such file"]),
        (["train", "--data", "ragged.csv"], ["line 3 has 2 fields"]),
        (["train", "--data", "text.csv"], ["line 4, column 'b'", "found '-inf'"]),
        (["train", "--data", "text.csv", "--target", "label"], ["no column named 'label'"]),
        (["train", "--optimizer", "lbfgs"], ["--optimizer", "lbfgs"]),
        (["train", "--likelihood", "cauchy"], ["--likelihood", "cauchy"]),
        (["train", "--lr", "-1"], ["--lr", "positive"]),
        (["train", "--schedule", "step:size=3"], ["not a setting of step", "step_size, gamma"]),
        (["train", "--optimizer", "adam:beta1=x"], ["beta1: expected a number"]),
        (["train", "--schedule", "cosine:warmup=-1"], ["warmup: expected an integer >= 0"]),
        (["predict", model, "wrong.npy"], ["expects 64 features", "has 5"]),
        (["info", "bad.safetensors"], ["not a safetensors file"]),
        (["evaluate", "missing.safetensors", "--data", "digits"], ["does not exist"]),
        (["frobnicate"], ["invalid choice"]),
        (["gradcheck", "--samples", "100000000000"], ["out of memory"]),
    ]
    for args, fragments in cases:
        before = set(os.listdir(tmp_path))
        proc = cli(*args, "--out", "o.file", cwd=tmp_path) if args[0] == "train" else cli(*args, cwd=tmp_path)
        assert_clean_error(proc, *fragments)
        assert set(os.listdir(tmp_path)) == before, f"{args} left files behind"


def test_help_everywhere(tmp_path):
    for cmd in ([], ["train"], ["evaluate"], ["predict"], ["gradcheck"], ["explain"], ["info"], ["export"]):
        out = cli(*cmd, "--help", cwd=tmp_path, check=0).stdout
        assert "example" in out


# --- interruption, resume and the terminal -------------------------------------------
@pytest.mark.parametrize("sig, status, said", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_resume_finishes(tmp_path, sig, status, said):
    args = ["train", "--data", "digits", "--epochs", "80", "--early-stopping", "0", "--batch-size", "8",
            "--plot", "", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "deltaprop", *args, "--checkpoint", "run.ckpt",
                             "--out", "resumed.safetensors", "--log", "run.jsonl"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (tmp_path / "run.ckpt").exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)  # handled at the next batch boundary
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert err.startswith(f"deltaprop: {said} after ") and "checkpoint saved to run.ckpt" in err
    assert "Traceback" not in err and not (tmp_path / "resumed.safetensors").exists()  # no model from it
    done = int(err.split(" after ")[1].split()[0])
    assert len((tmp_path / "run.jsonl").read_text().splitlines()) == done  # the epochs it did are logged
    cli(*args, "--resume", "run.ckpt", "--out", "resumed.safetensors", cwd=tmp_path, check=0)
    cli(*args, "--out", "straight.safetensors", cwd=tmp_path, check=0)
    resumed, straight = dp.load(tmp_path / "resumed.safetensors"), dp.load(tmp_path / "straight.safetensors")
    assert resumed.metadata["epochs"] == 80
    assert resumed.network.theta.tobytes() == straight.network.theta.tobytes()  # bit-identical to an uninterrupted run


def test_progress_bar_on_a_terminal(tmp_path):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["-m", "deltaprop", "train", "--epochs", "15", "--plot", ""],
                          cwd=str(tmp_path), env=ENV, encoding="utf-8", timeout=120, dimensions=(24, 160))
    child.expect(r"epoch \d+/15:")
    child.expect(r"\[\d\d:\d\d<\d\d:\d\d, [\d.]+k?sample/s")  # tqdm's elapsed<ETA and the throughput
    child.expect("test accuracy")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_outputs_are_checked_before_anything_is_read_or_trained(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(30)))
    before = data.read_bytes()
    cases = [
        (["--log", "d.csv", "--dropout", "1.0"], "--dropout: expected a fraction in [0, 1)"),
        (["--log", "d.csv"], "--log d.csv: is an input of this run (d.csv)"),
        (["--plot", "nodir/p.png"], "--plot nodir/p.png: the folder 'nodir' does not exist"),
        (["--out", "d.csv/m.safetensors"], "the folder 'd.csv' does not exist"),
        (["--out", "."], "--out .: is a folder"),
        (["--out", "same.png", "--plot", "same.png"], "--plot same.png: is also given as --out"),
    ]
    for args, message in cases:
        proc = cli("train", "--data", "d.csv", "--epochs", "2", *args, cwd=tmp_path)
        assert_clean_error(proc, message)
        assert data.read_bytes() == before  # an input is never truncated
        assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]  # nothing written, nothing left


def test_outputs_are_named_after_the_data_and_replacing_one_is_said(tmp_path):
    args = ["train", "--data", "iris", "--epochs", "3", "--hidden", "4", "--log", "h.jsonl"]
    first = cli(*args, cwd=tmp_path, check=0).stdout
    assert (tmp_path / "iris-model.safetensors").exists() and (tmp_path / "iris-curves.png").exists()
    assert "model: iris-model.safetensors\n" in first and len((tmp_path / "h.jsonl").read_text().splitlines()) == 3
    assert "model: iris-model.safetensors (replaced the previous file)" in cli(*args, cwd=tmp_path, check=0).stdout


def test_which_epochs_weights_were_kept_is_said_and_a_finished_run_is_not_trained_further(tmp_path):
    args = ["train", "--data", "iris", "--epochs", "200", "--early-stopping", "3", "--lr", "0.05", "--plot", "",
            "--checkpoint", "run.ckpt"]
    out = cli(*args, cwd=tmp_path, check=0).stdout
    model = dp.load(tmp_path / "iris-model.safetensors")
    kept, epochs = model.metadata["weights_of_epoch"], model.metadata["epochs"]
    assert kept < epochs and f"weights: those of epoch {kept}, the lowest validation loss" in out
    # the same command again (a crash after the checkpoint, before the model): the same model, no more epochs
    (tmp_path / "iris-model.safetensors").unlink()
    again = cli(*args, "--resume", "run.ckpt", cwd=tmp_path, check=0).stdout
    assert f"weights: those of epoch {kept}" in again
    same = dp.load(tmp_path / "iris-model.safetensors")
    assert same.metadata["epochs"] == epochs and same.network.theta.tobytes() == model.network.theta.tobytes()


def test_mistyped_commands_options_and_values_get_a_suggestion(tmp_path):
    for args, message in ((["trian"], "did you mean 'train'?"), (["train", "--hiden", "3"], "did you mean '--hidden'?"),
                          (["train", "--activation", "relo"], "did you mean 'relu'?"),
                          (["train", "--likelihood", "relu+binary_cross_entropy"],
                           "valid pairs: sigmoid+binary_cross_entropy")):
        proc = cli(*args, cwd=tmp_path)
        assert_clean_error(proc, message)
        assert "error: deltaprop" not in proc.stderr  # the prefix once


def _limited(megabytes):
    def limit():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (megabytes * 2**20, megabytes * 2**20))
    return limit


def test_hostile_files_under_a_memory_limit(tmp_path):
    """Files built to exhaust memory or crash the reader end in one line and exit 2."""
    from safetensors.numpy import load, save

    from deltaprop.io.files import checksum

    model = dp.Model(dp.Network([4, 3, 3], seed=0), classes=["a", "b", "c"])
    model.save(tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    meta = json.loads(data[8:8 + n])["__metadata__"]
    config = json.loads(meta["config"])
    config["sizes"] = [10**7, 10**7, 3]  # 400 TB of parameters claimed by a file of 1 kB
    meta["config"] = json.dumps(config)
    tensors = load(data)
    meta["checksum"] = checksum(tensors, meta)
    (tmp_path / "huge.safetensors").write_bytes(save(tensors, metadata=meta))
    deep = b"{" + b'"a":[' * 50_000 + b"]" * 50_000 + b"}"
    (tmp_path / "deep.safetensors").write_bytes(struct.pack("<Q", len(deep)) + deep)
    crafted = (
        b"\x80\x02(cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R(K\x01K\x05\x85"
        b"cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87R(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ"
        b"\xff\xff\xff\xffK?tb\x89]q\x00(K\x01K\x02etb)t.")
    with gzip.open(tmp_path / "mnist.pkl.gz", "wb") as f:
        f.write(crafted)
    cases = [(["info", "huge.safetensors"], "W.1 has shape"), (["predict", "huge.safetensors", "x.npy"], "W.1"),
             (["info", "/dev/zero"], "not a regular file"), (["info", "deep.safetensors"], "not valid JSON"),
             (["train", "--data", "mnist.pkl.gz"], "refuses dtype 'O8'"),
             (["train", "--hidden", "10000000", "10000000"], "would need 400 TB of memory")]
    np.save(tmp_path / "x.npy", np.zeros((2, 4)))
    for args, message in cases:
        proc = subprocess.run([sys.executable, "-m", "deltaprop", *args], cwd=tmp_path, env=ENV, capture_output=True,
                              text=True, timeout=60, preexec_fn=_limited(2048))
        assert_clean_error(proc, message)


def test_a_value_beyond_float32_is_an_input_error_naming_the_cell(tmp_path):
    cli("train", "--data", "iris", "--epochs", "2", "--hidden", "4", "--plot", "", "--quiet", cwd=tmp_path, check=0)
    (tmp_path / "x.csv").write_text("a,b,c,d\n1,2,3,4\n5,1e300,7,8\n")
    proc = cli("predict", "iris-model.safetensors", "x.csv", cwd=tmp_path)
    assert_clean_error(proc, "x.csv: 1e+300 at line 3, column 'b' is beyond the range of float32",
                       "a model trained with --dtype float64")
    np.save(tmp_path / "c.npy", np.ones((2, 4), dtype=complex))
    assert_clean_error(cli("predict", "iris-model.safetensors", "c.npy", cwd=tmp_path), "expected real numbers")


def test_training_options_reach_training(tmp_path):
    args = ["train", "--data", "iris", "--hidden", "8", "--plot", "", "--quiet"]
    cli(*args, "--epochs", "50", "--grad-tol", "1e9", "--out", "tol.safetensors", cwd=tmp_path, check=0)
    assert dp.load(tmp_path / "tol.safetensors").metadata["stop_reason"].startswith("gradient norm")
    cli(*args, "--epochs", "20", "--max-norm", "0.5", "--clip-norm", "1", "--lr", "0.05", "--out", "mn.safetensors",
        cwd=tmp_path, check=0)
    for W in dp.load(tmp_path / "mn.safetensors").network.W[1:]:
        assert np.all(np.linalg.norm(W[:-1], axis=0) <= 0.5 + 1e-5)  # each unit's incoming weights, capped


def test_every_option_of_every_command_has_a_description(tmp_path):
    for command in ("train", "evaluate", "predict", "gradcheck", "explain", "info", "export"):
        text = cli(command, "--help", cwd=tmp_path, check=0).stdout
        lines = text.split("options:")[0].split("positional arguments:")[-1].splitlines() \
            + re.split(r"\nexamples?:", text.split("options:")[1])[0].splitlines()
        for i, line in enumerate(lines):
            if line.startswith("  ") and not line.startswith("   ") and line.strip():
                described = "  " in line.strip() or (i + 1 < len(lines) and lines[i + 1].startswith(" " * 8))
                assert described, f"{command}: {line.strip()} has no description"


def test_diagnostics_report_and_animation(tmp_path):
    proc = cli("train", "--data", "xor", "--hidden", "8", "--epochs", "6", "--early-stopping", "0", "--diagnostics",
               "--report", "xor.html", "--animate", "xor.gif", "--log", "log.jsonl", cwd=tmp_path, check=0)
    # six epochs of xor: the run is judged as a whole, not epoch by epoch
    assert "diagnostics:\n  not converged: the validation loss was still falling" in proc.stdout
    assert "\n  underfitting: the network gets" in proc.stdout
    assert "report: xor.html" in proc.stdout and "animation: xor.gif (7 frames)" in proc.stdout
    record = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert len(record["layers"]["grad_norm"]) == 2 and record["layers"]["dead"][1] is None
    page = (tmp_path / "xor.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "One step explained" in page and "confusion matrix" in page.lower()
    from PIL import Image

    gif = Image.open(tmp_path / "xor.gif")
    assert gif.format == "GIF" and gif.n_frames == 7
    # with diagnostics, the plot gains a row of per-layer panels
    plain = cli("train", "--data", "xor", "--hidden", "8", "--epochs", "2", "--plot", "plain.png", cwd=tmp_path, check=0)
    assert plain.returncode == 0
    assert Image.open(tmp_path / "xor-curves.png").height > 1.5 * Image.open(tmp_path / "plain.png").height


def test_diagnostics_name_the_problem(tmp_path):
    proc = cli("train", "--data", "iris", "--hidden", "8", "--epochs", "3", "--lr", "1e-7", "--diagnostics",
               "--plot", "", cwd=tmp_path, check=0)
    assert "update/weight ratio" in proc.stdout and "the learning rate is too small" in proc.stdout


def test_animation_needs_two_dimensional_classes(tmp_path):
    assert_clean_error(cli("train", "--data", "iris", "--animate", "a.gif", cwd=tmp_path), "--animate", "4 features")
    assert_clean_error(cli("train", "--data", "sine", "--animate", "a.gif", cwd=tmp_path), "--animate")
    assert not (tmp_path / "a.gif").exists()


# --- data in blocks, and data-parallel training ---------------------------------------------


def test_train_reads_a_folder_of_npy_blocks_and_an_hdf5_file(tmp_path):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    (tmp_path / "parts").mkdir()
    for i in range(3):  # uint8 on disk, as images are
        np.save(tmp_path / "parts" / f"X_{i}.npy", X[i::3].astype(np.uint8))
        np.save(tmp_path / "parts" / f"y_{i}.npy", y[i::3])
    proc = cli("train", "--data", "parts", "--epochs", "8", "--plot", "", cwd=tmp_path, check=0)
    assert "data: parts, " in proc.stdout and "samples in blocks, 64 features" in proc.stdout
    accuracy = float(re.search(r"test accuracy: ([\d.]+)", proc.stdout).group(1))
    assert accuracy > 0.85
    model = dp.load(tmp_path / "parts-model.safetensors")
    assert model.score(X, y) > 0.85  # the saved model standardizes raw rows as training did
    # evaluate reads the same blocks, and --held-out finds the test blocks train held out
    held_out = cli("evaluate", "parts-model.safetensors", "--data", "parts", "--held-out", cwd=tmp_path, check=0)
    assert f"accuracy: {accuracy:.4f}" in held_out.stdout and "confusion matrix" in held_out.stdout
    whole = cli("evaluate", "parts-model.safetensors", "--data", "parts", cwd=tmp_path, check=0)
    assert f"accuracy: {model.score(X, y):.4f} ({len(X)} samples)" in whole.stdout

    h5py = need("h5py")
    with h5py.File(tmp_path / "digits.h5", "w") as f:
        f.create_dataset("images", data=X.astype(np.uint8), chunks=(64, 64))
        f.create_dataset("labels", data=y)
    proc = cli("train", "--data", "digits.h5", "--features", "images", "--target", "labels", "--epochs", "8",
               cwd=tmp_path, check=0)
    assert float(re.search(r"test accuracy: ([\d.]+)", proc.stdout).group(1)) > 0.85
    assert (tmp_path / "digits-model.safetensors").exists() and (tmp_path / "digits-curves.png").exists()
    assert_clean_error(cli("train", "--data", "digits.h5", cwd=tmp_path),
                       "digits.h5 has no 'X'; it holds images, labels")
    (tmp_path / "real").mkdir()
    np.save(tmp_path / "real" / "X.npy", X)
    np.save(tmp_path / "real" / "y.npy", X[:, 20] + 0.5)
    assert_clean_error(cli("evaluate", "parts-model.safetensors", "--data", "real", cwd=tmp_path),
                       "the model is a classifier, but real has real-valued targets")
    assert_clean_error(cli("train", "--data", "parts", "--report", "r.html", cwd=tmp_path),
                       "--report: needs a data set in memory")
    assert_clean_error(cli("train", "--data", "iris", "--features", "a", cwd=tmp_path),
                       "--features: only for data in blocks")


def test_train_under_mpiexec_gives_the_model_of_one_process(tmp_path):
    need("mpi4py")
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    args = ["train", "--epochs", "3", "--plot", "", "--seed", "2"]
    proc = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "deltaprop", *args, "--distributed", "mpi",
                           "--out", "two.safetensors"], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("test accuracy") == 1  # rank 0 alone speaks
    one = cli(*args, "--out", "one.safetensors", cwd=tmp_path, check=0)
    assert re.search(r"test accuracy: .*", proc.stdout).group(0) == re.search(r"test accuracy: .*", one.stdout).group(0)
    a, b = dp.load(tmp_path / "two.safetensors"), dp.load(tmp_path / "one.safetensors")
    np.testing.assert_allclose(a.network.theta, b.network.theta, rtol=1e-4, atol=1e-6)


def test_train_on_each_kernel_path(tmp_path):
    """--kernels numpy and numba train the same network to the same weights (float32 rounding);
    an unknown path, or numba without Numba, is a one-line error."""
    thetas = {}
    for kernels in ("numpy", "numba"):
        if kernels == "numba" and os.environ.get("DELTAPROP_HIDE_NUMBA"):
            continue
        cli("train", "--epochs", "2", "--early-stopping", "0", "--kernels", kernels, "--out", f"{kernels}.safetensors",
            "--plot", "", cwd=tmp_path, check=0)
        model = dp.load(tmp_path / f"{kernels}.safetensors")
        assert model.metadata["kernels"] == kernels  # the path the run took, recorded with the model
        thetas[kernels] = model.network.theta
    if len(thetas) == 2:
        np.testing.assert_allclose(thetas["numba"], thetas["numpy"], rtol=1e-3, atol=1e-4)
        # ... and not the same bits: each run took the path it was asked for (FMA, float64 sums)
        assert thetas["numba"].tobytes() != thetas["numpy"].tobytes()
    assert_clean_error(cli("train", "--kernels", "fortran", cwd=tmp_path), "--kernels", "fortran")
    hidden = str(Path(__file__).resolve().parent / "hide_numba")
    proc = subprocess.run([sys.executable, "-m", "deltaprop", "train", "--epochs", "1", "--kernels", "numba"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**ENV, "PYTHONPATH": os.pathsep.join([hidden, ENV.get("PYTHONPATH", "")])})
    assert_clean_error(proc, "kernels: 'numba' needs Numba", "deltaprop[fast]")


def test_train_on_another_array_backend(tmp_path):
    """--backend torch (PyTorch's CPU tensors, which prove the backend seam) trains the network
    --kernels numpy trains, to float32 rounding, and says so in the model; an unknown backend,
    or one whose library is missing, is a one-line error that says what to do."""
    need("torch"), need("array_api_compat")
    thetas = {}
    for args in (["--kernels", "numpy"], ["--backend", "torch"]):
        cli("train", "--epochs", "2", "--early-stopping", "0", *args, "--out", f"{args[1]}.safetensors",
            "--plot", "", cwd=tmp_path, check=0)
        model = dp.load(tmp_path / f"{args[1]}.safetensors")
        assert model.metadata["backend"] == ("torch" if args[1] == "torch" else "numpy")
        thetas[args[1]] = model.network.theta
    np.testing.assert_allclose(thetas["torch"], thetas["numpy"], rtol=1e-3, atol=1e-4)
    assert_clean_error(cli("train", "--backend", "jax", cwd=tmp_path), "--backend", "jax")
    if importlib.util.find_spec("cupy") is None:
        assert_clean_error(cli("train", "--epochs", "1", "--backend", "cupy", cwd=tmp_path),
                           "backend: 'cupy' needs cupy", "deltaprop[gpu]")


def test_option_values_follow_the_librarys_rules_for_names_and_numbers():
    """Registry names and numbers are checked by the library's own rules (registry.lookup,
    validation.py), so the command line accepts and refuses what the API does, in its words."""
    from deltaprop.cli.common import CLIError
    from deltaprop.cli.parser import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "--optimizer", "NESTEROV:momentum=0.8", "--schedule", "Cosine",
                              "--dropout", "0", "--test-fraction", "0.3"])
    assert args.optimizer == ("nesterov", {"momentum": 0.8}) and args.schedule == ("cosine", {})
    assert (args.dropout, args.test_fraction) == (0.0, 0.3)
    for argv, api in [(["--optimizer", "lbfgs"], lambda: dp.get_optimizer("lbfgs")),
                      (["--dropout", "1"], lambda: dp.TrainSettings(dropout=1)),
                      (["--test-fraction", "0"], lambda: dp.HeldOut(0))]:
        with pytest.raises(ValueError) as said:
            api()
        with pytest.raises(CLIError) as refused:
            parser.parse_args(["train", *argv])
        assert str(said.value).split(": ", 1)[1].split(" found")[0] in str(refused.value), (argv, refused.value)


def test_evaluate_held_out_draws_a_generated_set_again_with_the_models_held_out_seed(tmp_path):
    """A generated set (moons) is drawn from the seed train was given; evaluate --held-out draws
    it again from the model's typed HeldOut (not from free-form metadata) and finds the same rows."""
    train = cli("train", "--data", "moons", "--seed", "3", "--epochs", "5", "--plot", "", cwd=tmp_path, check=0)
    accuracy = train.stdout.split("test accuracy: ")[1].split()[0]
    model = dp.load(tmp_path / "moons-model.safetensors")
    assert model.held_out.seed == 3
    del model.metadata["seed"]  # (so that only the typed field can say it)
    model.save(tmp_path / "moons-model.safetensors")
    ev = cli("evaluate", "moons-model.safetensors", "--data", "moons", "--held-out", "--plot", "", cwd=tmp_path,
             check=0).stdout
    assert ev.split("accuracy: ")[1].split()[0] == accuracy
