"""The ``deltaprop`` command: train, evaluate, predict, gradcheck, info and export.

Every failure the user can cause (a missing file, a malformed CSV, a model file
that fails validation, an unknown option value) prints one line on stderr and
exits with status 2, with no traceback and no partial output file.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import math
import os
import re
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class CLIError(Exception):
    """A problem to report in one line (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line (main adds the "deltaprop: error:" prefix), not usage + message
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            message += _did_you_mean(m.group(1), re.findall(r"'([^']*)'", m.group(2)))
        raise CLIError(f"{message} (see {self.prog} --help)")


def _did_you_mean(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unrecognized(extras: list[str], parser: argparse.ArgumentParser) -> str:
    """'unrecognized arguments: --hiden 3; did you mean '--hidden'?' for options of ``parser``."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    options = [o for action in parser._actions for o in action.option_strings]
    for word in extras:
        if word.startswith("--"):
            hint = _did_you_mean(word.split("=")[0], options)
            if hint:
                return message + hint + f" (see {parser.prog} --help)"
    return message + f" (see {parser.prog} --help)"


def _fmt():
    return lambda prog: argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


# --- train --------------------------------------------------------------------------
_DATA_SUFFIXES = (".pkl.gz", ".csv", ".txt", ".npz", ".npy", ".gz", ".h5", ".hdf5", ".zarr", ".parquet")


def _default_stem(data: str) -> str:
    """What a run's outputs are named after: the data set (``digits``, ``mnist`` for
    ``path/to/mnist.pkl.gz``), so that runs on different data do not overwrite each other."""
    name = Path(data.rstrip("/\\")).name or "deltaprop"
    for suffix in _DATA_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or "deltaprop"
    return name


def _check_outputs(outputs: dict[str, str], inputs: list[str]) -> None:
    """The one guard of every command that writes (see :func:`deltaprop.io.files.check_outputs`),
    called before any data is read."""
    from .io.files import check_outputs

    try:
        check_outputs(outputs, inputs)
    except ValueError as e:
        raise CLIError(str(e)) from None


def cmd_train(args) -> int:
    from .training.loop import all_ranks_or_none

    # data-parallel (--distributed): an error on one rank ends them all
    with all_ranks_or_none(args.distributed) as comm:
        return _train(args, comm)


_BLOCK_SUFFIXES = (".h5", ".hdf5", ".zarr", ".parquet")


def _mixed_parquet(path: Path, target: str | None) -> bool:
    """Whether ``path`` is one Parquet file of mixed columns (text, booleans, gaps): a table
    read whole, whose model learns each column's encoding (blocks take numbers only)."""
    if path.suffix.lower() != ".parquet" or not path.is_file():
        return False
    from .data.table_files import mixed_columns

    try:
        return bool(mixed_columns(path, target))
    except ImportError as e:
        raise CLIError(f"--data {path}: reading it needs {e.name}: pip install 'deltaprop[data]'") from None
    except (OSError, ValueError) as e:
        raise CLIError(f"--data {path}: not a readable Parquet file ({e})") from None


def _dataset(spec: str, target: str | None, seed: int, leave_out=()):
    """A data set in memory: a Parquet file (of mixed columns) read whole, a CSV or .npy file
    of prediction inputs (``target=""``), or anything :func:`load_dataset` reads."""
    from .data.datasets import load_dataset, read_features

    if Path(spec).suffix.lower() == ".parquet" and Path(spec).is_file():
        from .data.table_files import read_parquet

        return read_parquet(Path(spec), target, leave_out)
    return read_features(spec, leave_out) if target == "" else load_dataset(spec, target, seed=seed)


def _block_data(args, block_rows: int | None = None):
    """The data as Blocks when --data names a block store (HDF5, Zarr, Parquet, a folder of
    .npy or .parquet files), else None (a data set read into memory); cut into blocks of
    --block-rows rows, else ``block_rows``, else the store's default."""
    from .data.blocks import open_blocks

    p = Path(args.data)
    if not (p.suffix.lower() in _BLOCK_SUFFIXES or (p.is_dir() and (any(p.glob("X*.npy"))
                                                                    or any(p.glob("*.parquet"))))) \
            or _mixed_parquet(p, args.target):
        for option in ("features", "block_rows"):
            if getattr(args, option):
                raise CLIError(f"--{option.replace('_', '-')}: only for data in blocks (HDF5, Zarr, Parquet, a "
                               "folder of .npy files)")
        return None
    if not p.exists():
        raise CLIError(f"--data {args.data}: no such file or folder")
    try:
        return open_blocks(p, features=args.features, target=args.target, block_rows=args.block_rows or block_rows)
    except ImportError as e:
        raise CLIError(f"--data {args.data}: reading it needs {e.name}: pip install 'deltaprop[data]'") from None


def _predict_blocks(model, blocks):
    """(targets, predictions) of the model on every row of ``blocks``, read a block at a time."""
    y, pred = [], []
    for i in range(len(blocks)):
        Xb, yb, _ = blocks.read(i)
        y.append(yb)
        pred.append(model.predict(_table(model, Xb, blocks.feature_names, "--data")))
    return np.concatenate(y), np.concatenate(pred)


def _score_blocks(model, blocks) -> float:
    """Accuracy or R^2 of the model on every row of ``blocks``."""
    from .metrics import accuracy, r2

    y, pred = _predict_blocks(model, blocks)
    return accuracy(y, pred) if model.task == "classification" else r2(y, pred)


def _test_split(ds, fraction: float, seed: int, option: str):
    """(X_train, X_test, y_train, y_test): ``fraction`` of the rows held out, stratified by
    class for labels (each class keeps its share)."""
    from sklearn.model_selection import train_test_split

    stratify = ds.y if ds.task == "classification" and ds.y.ndim == 1 else None
    if stratify is not None:
        labels, counts = np.unique(stratify, return_counts=True)
        if counts.min() < 2:
            rare = [str(c) for c in labels[counts < 2]]
            raise CLIError(f"{option}: class{'es' if len(rare) > 1 else ''} {', '.join(map(repr, rare[:5]))} "
                           f"of {ds.name} {'have' if len(rare) > 1 else 'has'} a single row; a test split that "
                           "keeps every class needs at least 2 rows of each (remove those rows, or check the "
                           "--target column; integers that count or measure are made a regression by "
                           "--likelihood gaussian or poisson)")
    try:
        return train_test_split(ds.X, ds.y, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError as e:
        raise CLIError(f"{option} {fraction:g}: {e}") from None


@contextlib.contextmanager
def _notes_of(category, quiet: bool):
    """Warnings of ``category`` (what the library decided on its own, such as a column left
    out) said as the reader's notices are, one line on standard error each, when they happen."""
    with warnings.catch_warnings():  # (which restores showwarning on the way out)
        warnings.simplefilter("always", category)
        shown = warnings.showwarning

        def show(message, cat, filename, lineno, file=None, line=None):
            if not issubclass(cat, category):
                shown(message, cat, filename, lineno, file, line)
            elif not quiet:
                print(f"deltaprop: note: {message}", file=sys.stderr)

        warnings.showwarning = show
        yield


def _notices(ds, quiet: bool) -> None:
    """What the data reader decided on its own (a column left out...), on standard error."""
    if not quiet:
        for notice in ds.notices:
            print(f"deltaprop: note: {notice}", file=sys.stderr)


def _test_fraction(model) -> float:
    frac = model.metadata.get("test_fraction")
    if not frac:
        raise CLIError("--held-out: the model does not record a test fraction")
    return frac


def _train(args, comm) -> int:
    from . import __version__
    from .core.likelihoods import get_likelihood
    from .data.preprocessing import encode_labels
    from .diagnostics.plotting import plot_decision_regions, plot_learning_curves
    from .diagnostics.progress import Progress, write_json_log
    from .optim.optimizers import get_optimizer
    from .optim.schedules import SCHEDULES
    from .data.columns import Columns
    from .data.tables import TableNotice
    from .training.fit import fit
    from .training.loop import TrainingInterrupted
    from .training.recipe import TABLE_RECIPE

    # every argument and output location is checked before any file is opened
    stem = _default_stem(args.data)
    out = args.out or f"{stem}-model.safetensors"
    plot = f"{stem}-curves.png" if args.plot is None else args.plot
    _check_outputs({"--out": out, "--plot": plot, "--plot (decision regions)": plot and _regions_path(plot),
                    "--log": args.log, "--checkpoint": args.checkpoint, "--report": args.report,
                    "--animate": args.animate},
                   [_existing(args.data), args.target or "", args.resume if args.resume != args.checkpoint else ""])
    name, settings = args.optimizer or ("adam", {})
    optimizer = get_optimizer(name, **settings, **({"learning_rate": args.lr} if args.lr else {}))
    name, settings = args.schedule
    schedule = SCHEDULES[name](**settings)

    args.quiet = args.quiet or comm.rank != 0  # rank 0 speaks and writes for every rank
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    blocks = _block_data(args)
    if blocks is not None:  # read a block at a time, never whole
        for option in ("report", "animate"):
            if getattr(args, option):
                raise CLIError(f"--{option}: needs a data set in memory; {args.data} is read in blocks")
        Xtr, Xte = blocks.split(args.test_fraction, np.random.default_rng(args.seed), "--test-fraction")
        ytr = yte = None
        task = get_likelihood(args.likelihood).task if args.likelihood else None
        standardize = args.standardize is not False
        classification = None  # (known once fit has looked at the targets)
        name = _default_stem(args.data)
        say(f"data: {args.data}, {Xtr.n_samples} training and {Xte.n_samples} test samples in blocks, "
            f"{blocks.n_features} features" + ("" if standardize else " (not standardized)"))
    else:
        ds = _dataset(args.data, args.target, args.seed)
        ds.check(args.dtype)  # the whole file, before it is split: its errors name the file's lines
        _notices(ds, args.quiet)
        if args.likelihood:  # the likelihood says what the targets are (counts look like labels)
            ds.task = get_likelihood(args.likelihood).task
        task, name = ds.task, ds.name
        classification = ds.task == "classification"
        # images arrive scaled to [0, 1] (the pixel intensities' own scale, which suits
        # them better than per-pixel standardization); other data is standardized
        standardize = args.standardize if args.standardize is not None else not ds.images
        if ds.X_test is not None:
            Xtr, Xte, ytr, yte = ds.X, ds.X_test, ds.y, ds.y_test
        else:
            Xtr, Xte, ytr, yte = _test_split(ds, args.test_fraction, args.seed, "--test-fraction")
        what = f"{len(ds.classes)} classes" if classification and ds.classes else (
            "several labels" if classification else f"{1 if ds.y.ndim == 1 else ds.y.shape[1]} real target(s)")
        say(f"data: {ds.name}, {len(Xtr)} training and {len(Xte)} test samples, {Xtr.shape[1]} features, {what}"
            + ("" if standardize else " (not standardized)"))

    if args.animate and not (classification and Xtr.shape[1] == 2 and ds.y.ndim == 1):
        raise CLIError(f"--animate: needs 2-D data with class labels (xor, moons, circles, spirals or a CSV of "
                       f"two features); {ds.name} has {Xtr.shape[1]} features")
    # a table of mixed columns (text, gaps) trains with the tabular recipe, unless told otherwise
    mixed = blocks is None and Xtr.dtype == object
    recipe = {"epochs": args.epochs or (TABLE_RECIPE["epochs"] if mixed else 100)}
    if args.batch_size is None:
        args.batch_size = TABLE_RECIPE["batch_size"] if mixed else 32
    if mixed and args.optimizer is None and not args.lr:
        optimizer = get_optimizer("adam", learning_rate=TABLE_RECIPE["learning_rate"])
    recipe.update({k: v for k, v in (("members", args.members), ("bins", args.bins),
                                     ("label_smoothing", args.label_smoothing)) if v is not None})
    progress = Progress(recipe["epochs"], quiet=args.quiet)
    snapshots = _Snapshots() if args.animate else None

    class Announce:  # the network exists once fit has chosen its outputs
        def on_train_begin(self, net, state):
            say(f"network: {'-'.join(map(str, net.sizes))}{f' x {net.members}' if net.members > 1 else ''} "
                f"({args.activation}, {net.likelihood.name}), "
                f"{net.n_params:,} parameters, {np.dtype(net.dtype).name}; optimizer {optimizer!r}")

    metadata = {
        "data": args.data, "seed": args.seed,
        "test_fraction": args.test_fraction if blocks is not None or ds.X_test is None else None,
        "target": args.target if blocks is not None else ds.target_name or args.target,
        "optimizer": repr(optimizer), "schedule": repr(schedule), "batch_size": args.batch_size,
        "block_rows": args.block_rows if blocks is not None else None,
        "trained_with": f"deltaprop {__version__}",
    }
    t0 = time.perf_counter()
    try:
        with _notes_of(TableNotice, args.quiet):
            model, state = fit(
                # a table of mixed columns (text, gaps) goes in by name: each column learns its encoding
                dict(zip(ds.feature_names, Xtr.T)) if blocks is None and Xtr.dtype == object else Xtr, ytr,
                hidden=args.hidden, activation=args.activation, likelihood=args.likelihood, task=task,
                standardize=standardize, dtype=args.dtype, seed=args.seed, metadata=metadata,
                columns=None if blocks is not None or not ds.feature_names else
                Columns(tuple(ds.feature_names), (ds.target_name,) if ds.target_name else ()),
                optimizer=optimizer, batch_size=args.batch_size or None, **recipe,
                validation=args.validation_fraction or None, schedule=schedule, l2=args.l2, dropout=args.dropout,
                clip_norm=args.clip_norm, max_norm=args.max_norm, grad_tol=args.grad_tol,
                early_stopping=args.early_stopping or None, diagnostics=args.diagnostics or bool(args.report),
                callbacks=[Announce(), progress] + ([snapshots] if snapshots else []),
                checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume,
                distributed=comm, kernels=args.kernels)
    except TrainingInterrupted as e:
        progress.close()
        if args.log:  # the epochs it did are real: keep their record
            write_json_log(e.history, args.log)
        where = (f"checkpoint saved to {e.checkpoint}; continue with --resume {e.checkpoint}"
                 if e.checkpoint else "nothing saved (use --checkpoint to keep progress)")
        if comm.rank == 0:  # (every rank stopped at the same batch)
            print(f"deltaprop: {e.cause} after {e.history.epochs} epochs; {where}", file=sys.stderr)
        return EXIT_TERMINATED if e.cause == "terminated" else EXIT_INTERRUPTED
    finally:
        progress.close()
    seconds = time.perf_counter() - t0
    if comm.rank != 0:
        return 0
    net, history = model.network, state.history
    classification = model.task == "classification"
    score = _score_blocks(model, Xte) if blocks is not None else model.score(Xte, yte)
    metric = "accuracy" if classification else "R^2"
    model.metadata.update({"kernels": state.kernels, "epochs": history.epochs, "stop_reason": history.stop_reason,
                           "weights_of_epoch": history.best_epoch or history.epochs,
                           f"test_{'accuracy' if classification else 'r2'}": score,
                           "train_seconds": round(seconds, 3)})
    replaced = Path(out).exists()
    model.save(out)
    say(f"stopped: {history.stop_reason}, after {history.epochs} epochs in {seconds:.1f} s")
    if history.best_epoch and history.best_epoch != history.epochs:
        say(f"weights: those of epoch {history.best_epoch}, the lowest validation loss (early stopping "
            "restores them)")
    say(f"test {metric}: {score:.4f} ({Xte.n_samples if blocks is not None else len(Xte)} samples)")
    say(f"model: {out}" + (" (replaced the previous file)" if replaced else ""))
    if args.diagnostics:
        from .diagnostics.health import diagnose

        findings = diagnose(history, net)
        say("diagnostics:" + ("".join("\n  " + f for f in findings) if findings else
                              " nothing looks wrong (gradient and update sizes, dead and saturated units per layer, "
                              "convergence, the fit of the training rows)"))
    if args.log:
        write_json_log(history, args.log)
        say(f"log: {args.log}")
    if plot:
        plot_learning_curves(history, plot, title=f"{name}: {'-'.join(map(str, net.sizes))}")
        say(f"plot: {plot}")
        if blocks is None and Xtr.shape[1] == 2 and Xtr.dtype != object and model.classes is not None:
            regions = _regions_path(plot)
            X_all = np.r_[Xtr, Xte]
            plot_decision_regions(lambda G: net.predict(model.transform(G)), X_all,
                                  encode_labels(np.r_[ytr, yte], model.classes)[0], regions, title=ds.name)
            say(f"decision regions: {regions}")
    if args.animate:
        from .diagnostics.plotting import animate_decision_regions

        epochs_shown, predicts = snapshots.frames(net, model, history)
        animate_decision_regions(predicts, np.r_[Xtr, Xte], encode_labels(np.r_[ytr, yte], model.classes)[0],
                                 args.animate, [f"{ds.name}: epoch {e}" for e in epochs_shown])
        say(f"animation: {args.animate} ({len(predicts)} frames)")
    if args.report:
        from .diagnostics.report import write_report

        write_report(args.report, model, history, Xte, yte, title=f"deltaprop: {ds.name}",
                     facts={"data": f"{ds.name}: {len(Xtr)} training and {len(Xte)} test samples",
                            "optimizer": repr(optimizer), "schedule": repr(schedule),
                            "batch size": args.batch_size or "full batch", "training time": f"{seconds:.1f} s"})
        say(f"report: {args.report}")
    return 0


def _regions_path(plot: str) -> str:
    """Where the decision regions of 2-D data go, beside the learning curves."""
    return str(Path(plot).with_name(Path(plot).stem + "_regions.png"))


def _existing(path: str | None) -> str:
    """``path`` if it names a file or folder (not a built-in data set's name), else ''."""
    return path if path and Path(path).exists() else ""


class _Snapshots:
    """The weights at each epoch's end, for an animation of the decision regions."""

    FRAMES = 40

    def __init__(self):
        self.thetas = []

    def on_epoch_end(self, epoch, history, net):
        self.thetas.append(net.theta.copy())
        return False

    def frames(self, net, model, history):
        """(epochs shown, a predict function per frame): at most FRAMES epochs, evenly spaced,
        and the model's final weights last."""
        n = len(self.thetas)
        chosen = np.unique(np.linspace(0, n - 1, min(n, self.FRAMES - 1)).round().astype(int))
        shown, predicts = [], []
        for k in chosen:
            frame = net.copy()
            np.copyto(frame.theta, self.thetas[k])
            predicts.append(lambda G, f=frame: f.predict(model.transform(G)))
            shown.append(str(k + 1))
        predicts.append(lambda G: net.predict(model.transform(G)))
        shown.append(f"{history.best_epoch or history.epochs} (final weights)")
        return shown, predicts


# --- evaluate -----------------------------------------------------------------------
def cmd_evaluate(args) -> int:
    from sklearn import metrics

    from .diagnostics.plotting import plot_confusion_matrix
    from .model import load

    from .data.preprocessing import infer_task
    from .metrics import accuracy, r2

    _check_outputs({"--plot": args.plot}, [args.model, _existing(args.data)])
    model = load(args.model)
    seed = model.metadata.get("seed", 0) or 0
    # --held-out: cut into the blocks train cut, to find its test rows
    blocks = _block_data(args, model.metadata.get("block_rows") if args.held_out else None)
    if blocks is not None:  # read a block at a time; --held-out: the blocks train held out
        if args.held_out:
            blocks = blocks.split(_test_fraction(model), np.random.default_rng(seed), "--held-out")[1]
        if blocks.n_features != model.n_features:
            raise CLIError(f"--data: the model expects {model.n_features} features, the data has {blocks.n_features}")
        y, pred = _predict_blocks(model, blocks)
        task, name = infer_task(y), args.data
    else:
        ds = _dataset(args.data, args.target or _model_target(model), seed)
        _notices(ds, quiet=False)
        ds.check(model.network.dtype, advice="a model trained with --dtype float64")
        task, name = ds.task, ds.name
        X, y = (ds.X_test, ds.y_test) if ds.X_test is not None else (ds.X, ds.y)
        if ds.X_test is None and args.held_out:
            ds.task = model.task  # (stratified as train split it)
            _, X, _, y = _test_split(ds, _test_fraction(model), seed, "--held-out")
        pred = model.predict(_table(model, X, ds.feature_names, "--data"))
    if model.task == "classification" and task != "classification":
        raise CLIError(f"--data: the model is a classifier, but {name} has real-valued targets")
    if model.task == "classification":
        print(f"accuracy: {accuracy(y, pred):.4f} ({len(y)} samples)")
        if model.classes is None:  # several labels per row
            print(metrics.classification_report(y, pred, digits=4, zero_division=0))
            return 0
        classes = model.classes
        unknown = sorted({str(v) for v in np.unique(y)} - {str(c) for c in classes})
        if unknown:
            raise CLIError(f"--data: labels {', '.join(unknown[:5])} are not among the model's classes "
                           f"{classes.tolist()}")
        labels = [str(c) for c in classes]
        print(metrics.classification_report(y, pred, labels=classes, target_names=labels, digits=4,
                                            zero_division=0))
        cm = metrics.confusion_matrix(y, pred, labels=classes)
        width = max(len(s) for s in labels + [str(cm.max())]) + 1
        print("confusion matrix (rows: true, columns: predicted)")
        print(" " * width + "".join(s.rjust(width) for s in labels))
        for s, row in zip(labels, cm):
            print(s.rjust(width) + "".join(str(v).rjust(width) for v in row))
        if args.plot:
            plot_confusion_matrix(cm, labels, args.plot)
            print(f"plot: {args.plot}")
    else:
        y = np.asarray(y, dtype=np.float64).reshape(pred.shape)
        print(f"R^2: {r2(y, pred):.4f}")
        print(f"RMSE: {math.sqrt(metrics.mean_squared_error(y, pred)):.4f} ({len(y)} samples)")
    return 0


def _check_features(model, X, what: str) -> None:
    if X.ndim != 2 or X.shape[1] != model.n_features:
        raise CLIError(f"{what}: the model expects {model.n_features} features, the data has "
                       f"{X.shape[1] if X.ndim == 2 else X.shape}")


def _table(model, X, names, what: str):
    """The rows to predict: a named table (a dict of columns) when both the data and the
    model know the columns' names, so that the model matches them by name; else the array,
    in order, of the model's width."""
    if names and model.columns is not None:
        return dict(zip(names, X.T))
    _check_features(model, X, what)
    return X


def _model_target(model) -> str | None:
    """The target column the model was trained on, when it knows it."""
    return model.columns.target[0] if model.columns is not None and len(model.columns.target) == 1 else None


# --- predict ------------------------------------------------------------------------
def cmd_predict(args) -> int:
    import csv
    import io

    from .io.files import atomic_write
    from .model import load

    _check_outputs({"--out": args.out}, [args.model, args.input])
    model = load(args.model)
    # a CSV that still holds the training target column: that column is not read
    ds = _dataset(args.input, "", 0, leave_out=model.columns.target if model.columns is not None else
                  [model.metadata.get("target")])
    _notices(ds, quiet=False)
    ds.check(model.network.dtype, advice="a model trained with --dtype float64")  # (naming the file's lines)
    X = _table(model, ds.X, ds.feature_names, "INPUT")
    pred = model.predict(X)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    fmt = (lambda v: f"{v:.8g}") if model.task == "regression" else str
    columns = 1 if pred.ndim == 1 else pred.shape[1]
    header = ["prediction"] if columns == 1 else [f"prediction_{k}" for k in range(columns)]
    rows = pred.reshape(len(pred), columns)
    if args.proba:
        if model.task != "classification":
            raise CLIError("--proba: the model is a regressor; it has no class probabilities")
        proba = model.predict_proba(X)
        names = model.classes.tolist() if model.classes is not None else list(range(proba.shape[1]))
        header += [f"p_{c}" for c in names]
    writer.writerow(header)
    for i, row in enumerate(rows):
        writer.writerow([fmt(v) for v in row] + ([f"{v:.6g}" for v in proba[i]] if args.proba else []))
    if args.out:
        atomic_write(args.out, lambda f: f.write(buf.getvalue().encode()))
        print(f"predictions: {args.out} ({len(rows)} rows)")
    else:
        sys.stdout.write(buf.getvalue())
    return 0


# --- gradcheck ----------------------------------------------------------------------
def cmd_gradcheck(args) -> int:
    from .core.network import Network
    from .diagnostics.gradcheck import gradcheck
    from .model import load

    rng = np.random.default_rng(args.seed)
    if args.model:
        net = load(args.model).network
        max_per_layer = args.max_per_layer or 30
    else:
        net = Network([args.inputs, *args.hidden, args.outputs], activation=args.activation,
                      likelihood=args.likelihood, seed=args.seed, dtype="float64")
        max_per_layer = args.max_per_layer
    n, K = args.samples, net.sizes[-1]
    X = rng.normal(size=(n, net.sizes[0]))
    name = net.likelihood.name
    if name == "categorical":
        y = rng.integers(0, K, n)
    elif name == "bernoulli" or name.endswith("binary_cross_entropy"):
        y = rng.integers(0, 2, (n, K))
    elif name == "poisson":
        y = rng.poisson(1.0, (n, K))
    else:
        y = rng.normal(size=(n, K))
    print(f"gradcheck: {'-'.join(map(str, net.sizes))} network ({', '.join(sorted(set(net.activation_names))) or 'no hidden layer'}, "
          f"{name}), {n} random samples, float64, fourth-order central differences")
    result = gradcheck(net, X, y, max_per_layer=max_per_layer, seed=args.seed)
    print(result.report())
    return 0 if result.passed else 1


# --- explain ------------------------------------------------------------------------
def cmd_explain(args) -> int:
    from .core.network import Network
    from .diagnostics.trace import trace

    if args.out:
        _check_outputs({"--out": args.out}, [args.model or "", _existing(args.data)])
    if args.model:
        model, x, y = _explained_sample(args)
        what = model
        lr = args.lr or 0.01
    else:
        for option in ("data", "target", "sample"):
            if getattr(args, option) is not None:
                raise CLIError(f"--{option}: only with --model (a trained model explained on a real sample)")
        what = Network(args.sizes, activation=args.activation, likelihood=args.likelihood, seed=args.seed,
                       dtype="float64")
        rng = np.random.default_rng(args.seed)
        x = np.array(args.x, dtype=np.float64) if args.x else rng.normal(size=what.sizes[0])
        if len(x) != what.sizes[0]:
            raise CLIError(f"--x: expected {what.sizes[0]} numbers (sizes[0]), found {len(x)}")
        if args.y is not None:
            y = args.y if len(args.y) > 1 else args.y[0]
        elif what.likelihood.name == "categorical":
            y = int(rng.integers(0, what.sizes[-1]))
        else:
            y = rng.integers(0, 2, what.sizes[-1]).astype(float)
        lr = args.lr or 0.5
    text = trace(what, x, y, lr).explain(args.format, units=args.units)
    if args.out:
        from .io.files import atomic_write

        atomic_write(args.out, lambda f: f.write(text.encode()))
        print(f"explanation: {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _explained_sample(args):
    """The model, and row ``--sample`` of its data (the test split when the data has one)."""
    from .data.datasets import load_dataset
    from .model import load

    model = load(args.model)
    data = args.data or model.metadata.get("data")
    if not data:
        raise CLIError("--data: needed with this model (it does not record the data it was trained on)")
    ds = load_dataset(data, args.target or _model_target(model), seed=model.metadata.get("seed", 0) or 0)
    _notices(ds, quiet=False)
    X, y = (ds.X_test, ds.y_test) if ds.X_test is not None else (ds.X, ds.y)
    X = _table(model, X, ds.feature_names, "--data")
    if isinstance(X, dict):  # the columns in the model's order, as the network takes them
        X = model.columns.arrange(X, "--data")
    n = args.sample or 0
    if n >= len(X):
        raise CLIError(f"--sample: expected a row index below {len(X)} ({ds.name} has {len(X)} rows), found {n}")
    return model, np.asarray(X[n], dtype=np.float64), y[n]


# --- info ---------------------------------------------------------------------------
def cmd_info(args) -> int:
    from .model import load

    model = load(args.model)
    net = model.network
    print(f"model: {args.model}")
    print(f"architecture: {'-'.join(map(str, net.sizes))}"
          + (f", an ensemble of {net.members} networks (their mean predicts)" if net.members > 1 else ""))
    print(f"hidden activations: {', '.join(net.activation_names) or '(none)'}")
    print(f"likelihood: {net.likelihood.name}")
    print(f"parameters: {net.n_params:,} ({np.dtype(net.dtype).name})")
    for l in range(1, net.n_layers + 1):
        print(f"  W[{l}]: {net.W[l].shape[0]} x {net.W[l].shape[1]} (bias as the last row)")
    if model.columns is not None:
        print(f"columns: {', '.join(model.columns.features)}")
        if model.columns.target:
            print(f"target: {', '.join(model.columns.target)}")
    if model.classes is not None:
        print(f"classes: {', '.join(map(str, model.classes.tolist()))}")
    if model.preprocessor is not None:
        print("inputs: standardized with the training data's mean and std (part of the model)")
    if model.table is not None:
        print(f"inputs: {model.table.n_outputs} from the table's columns (part of the model):")
        for c in model.table.columns:
            print(f"  {c.name}: {c.describe()}")
    if model.target_scaler is not None:
        print("targets: standardized for training; predictions are mapped back to target units")
    for k, v in model.metadata.items():
        if v is not None and not (k == "target" and model.columns is not None):
            print(f"{k}: {v}")
    return 0


# --- export -------------------------------------------------------------------------
def cmd_export(args) -> int:
    from .model import load

    try:
        from .io.onnx import to_onnx
        import onnx  # noqa: F401
    except ImportError:  # pragma: no cover - onnx is an optional extra
        raise CLIError("export needs the onnx package: pip install 'deltaprop[onnx]'") from None
    _check_outputs({"--onnx": args.onnx}, [args.model])
    model = load(args.model)
    to_onnx(model, args.onnx)
    what = "o: class probabilities, label: the predicted class" if model.task == "classification" \
        else "o: predictions in target units"
    if model.table is None:
        inputs = f"input X: N x {model.n_features} raw features"
    else:
        used = [c for c in model.table.columns if c.kind != "ignored"]
        inputs = "inputs, N x 1 each: " + ", ".join(
            f"{c.name} ({'string' if c.kind == 'category' else 'float'})" for c in used)
    print(f"ONNX model: {args.onnx} ({inputs}; outputs {what})")
    return 0


# --- the parser ---------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .core.activations import ACTIVATIONS
    from .core.kernels import KERNELS
    from .data.datasets import BUILTIN_NAMES
    from .optim.optimizers import OPTIMIZERS
    from .optim.schedules import SCHEDULES
    from .training.recipe import TABLE_RECIPE

    p = _Parser(prog="deltaprop", formatter_class=_fmt(),
                description="Feedforward networks trained by backpropagation, from first principles.",
                epilog="examples:\n  deltaprop train\n  deltaprop train --data moons --hidden 32 32 --plot moons.png\n"
                       "  deltaprop evaluate digits-model.safetensors --data digits\n"
                       "  deltaprop gradcheck --hidden 5 4 --activation tanh")
    p.add_argument("--version", action="version", version=f"deltaprop {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    p.commands = sub.choices  # command name -> its parser (for suggestions on a mistyped option)

    t = sub.add_parser("train", help="train a network (on the digits data set by default)", formatter_class=_fmt(),
                       epilog="examples:\n  deltaprop train\n  deltaprop train --data iris --hidden 16 --epochs 200\n"
                              "  deltaprop train --data data.csv --target label --hidden 128 64 --dropout 0.2\n"
                              "  deltaprop train --data mnist/ --hidden 256 128 --epochs 20 --batch-size 128\n"
                              "  deltaprop train --checkpoint run.ckpt   (Ctrl-C, then add --resume run.ckpt)")
    t.add_argument("--data", default="digits", metavar="SOURCE",
                   help=f"built-in ({', '.join(BUILTIN_NAMES)}), .csv, .npz, .npy, an MNIST IDX folder, "
                        "mnist.pkl.gz, or data read in blocks: a folder of X*.npy/y*.npy or .parquet files, "
                        ".parquet, .h5/.hdf5, .zarr (default: digits)")
    t.add_argument("--target", help="CSV target column (default: the last), the targets' .npy file, or the "
                                    "target array (HDF5, Zarr; default y) or column (Parquet; default y)")
    t.add_argument("--features", help="data in blocks: the input array (HDF5, Zarr; default X) or the "
                                      "comma-separated input columns (Parquet; default: all but the target)")
    t.add_argument("--block-rows", type=_int_at_least(1, "--block-rows"), metavar="ROWS",
                   help="data in blocks: rows per block, cutting Parquet row groups and HDF5/Zarr chunks "
                        "(default: a Parquet row group; about 16 MB of whole chunks, at least 16 blocks, otherwise)")
    t.add_argument("--distributed", choices=["mpi", "torch"],
                   help="data-parallel training, one process per rank: start with mpiexec -n P (mpi) or "
                        "torchrun --nproc-per-node P (torch)")
    t.add_argument("--hidden", type=int, nargs="*", default=[128, 64], metavar="WIDTH",
                   help="hidden layer widths (default: 128 64)")
    t.add_argument("--activation", default="relu", choices=list(ACTIVATIONS), metavar="NAME",
                   help=f"hidden activation: {', '.join(ACTIVATIONS)} (default: relu)")
    t.add_argument("--likelihood", metavar="NAME", type=_likelihood,
                   help="categorical, bernoulli, gaussian, poisson or ACTIVATION+LOSS (default: from the target)")
    t.add_argument("--optimizer", type=_with_settings(OPTIMIZERS, "--optimizer"),
                   metavar="NAME[:K=V,...]",
                   help=f"{', '.join(OPTIMIZERS)}, with settings if wanted, e.g. momentum:momentum=0.95 "
                        "or adamw:weight_decay=0.05 (default: adam; learning rate "
                        f"{TABLE_RECIPE['learning_rate']:g} for a table of mixed columns)")
    t.add_argument("--lr", type=_positive_float("--lr"), help="learning rate mu (default: the optimizer's)")
    t.add_argument("--clip-norm", type=_positive_float("--clip-norm"), metavar="NORM",
                   help="rescale the gradient when its norm exceeds NORM (default: no clipping)")
    t.add_argument("--max-norm", type=_positive_float("--max-norm"), metavar="NORM",
                   help="cap each unit's incoming weight vector at this norm after every step (default: none)")
    t.add_argument("--grad-tol", type=_positive_float("--grad-tol"), metavar="TOL",
                   help="stop when the epoch's gradient norm falls below TOL (default: off)")
    t.add_argument("--batch-size", type=_int_at_least(0, "--batch-size"),
                   help="mini-batch size; 0 for full-batch gradient descent "
                        f"(default: 32; {TABLE_RECIPE['batch_size']} for a table of mixed columns)")
    t.add_argument("--epochs", type=_int_at_least(1, "--epochs"),
                   help=f"maximum epochs (default: 100; {TABLE_RECIPE['epochs']} for a table of mixed columns)")
    t.add_argument("--members", type=_int_at_least(1, "--members"),
                   help="train an ensemble of this many networks together, predicting with their mean "
                        f"(default: 1; {TABLE_RECIPE['members']} for a table of mixed columns)")
    t.add_argument("--bins", type=_int_at_least(0, "--bins"),
                   help="also encode each number column piecewise-linearly over this many quantile bins, for a "
                        f"table with column names (default: 0; {TABLE_RECIPE['bins']} for a table of mixed columns)")
    t.add_argument("--label-smoothing", type=_fraction("--label-smoothing", 0.0, 1.0, closed_low=True),
                   metavar="S", help="train on class targets (1 - S) T + S / K (default: 0; "
                                     f"{TABLE_RECIPE['label_smoothing']} for a table of mixed columns)"),
    t.add_argument("--schedule", default="constant", type=_with_settings(SCHEDULES, "--schedule"),
                   metavar="NAME[:K=V,...]",
                   help=f"learning-rate schedule: {', '.join(SCHEDULES)}, with settings if wanted, e.g. "
                        "step:step_size=20,gamma=0.5 or cosine:warmup=5 (default: constant)")
    t.add_argument("--l2", type=_non_negative_float("--l2"), default=0.0, help="L2 weight decay (default: 0)")
    t.add_argument("--dropout", type=_fraction("--dropout", 0.0, 1.0, closed_low=True), default=0.0,
                   help="dropout rate on the hidden layers, in [0, 1) (default: 0)")
    t.add_argument("--early-stopping", type=_int_at_least(0, "--early-stopping"), default=10, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without validation improvement; 0 turns it off (default: 10)")
    t.add_argument("--validation-fraction", type=_fraction("--validation-fraction", 0.0, 1.0, closed_low=True),
                   default=0.1,
                   help="fraction of the training data held out for validation (default: 0.1)")
    t.add_argument("--test-fraction", type=_fraction("--test-fraction", 0.0, 1.0), default=0.2,
                   help="fraction held out for the final test (default: 0.2; MNIST has its own)")
    t.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                   help="standardize features with the training mean and std (default: on, except for "
                        "images, whose pixels are scaled to [0, 1])")
    t.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="floating-point type of the weights and of the computation (default: float32)")
    t.add_argument("--kernels", choices=list(KERNELS),
                   help="who does the element-wise work: numba (fused kernels, deltaprop[fast]) or numpy "
                        "(the reference) (default: $DELTAPROP_KERNELS, else numba when installed)")
    t.add_argument("--out", help="model file (default: DATA-model.safetensors, named after the data set)")
    t.add_argument("--plot", help="learning-curve PNG (default: DATA-curves.png); '' for none")
    t.add_argument("--checkpoint", help="checkpoint file, written every --checkpoint-every epochs and on Ctrl-C")
    t.add_argument("--checkpoint-every", type=_int_at_least(1, "--checkpoint-every"), default=1, metavar="EPOCHS",
                   help="write the checkpoint every EPOCHS epochs (default: 1)")
    t.add_argument("--resume", help="continue the run of this checkpoint, bit-identically, until it has run --epochs "
                                    "in all; with --checkpoint the same file, the same command starts the run, "
                                    "continues it after a crash, and writes the model of a finished run again")
    t.add_argument("--quiet", action="store_true", help="print nothing but errors")
    t.add_argument("--log", help="write one JSON line per epoch to this file (when the run ends)")
    t.add_argument("--diagnostics", action="store_true",
                   help="measure every layer each epoch (gradient and weight norms, update/weight ratio, dead and "
                        "saturated units): in the log and the plot, and said in words at the end when something "
                        "looks wrong")
    t.add_argument("--report", metavar="FILE",
                   help="write a self-contained HTML report: curves, diagnostics, test results, the network, "
                        "and one step explained (turns --diagnostics on)")
    t.add_argument("--animate", metavar="FILE",
                   help="for 2-D data: a GIF of the decision regions epoch by epoch")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="accuracy, per-class precision/recall and confusion matrix, or R^2/RMSE",
                       formatter_class=_fmt(),
                       epilog="examples:\n  deltaprop evaluate digits-model.safetensors --data digits --held-out\n"
                              "  deltaprop evaluate model.safetensors --data test.csv --target label --plot cm.png")
    e.add_argument("model", help="a model file written by deltaprop train")
    e.add_argument("--data", required=True, metavar="SOURCE",
                   help="the data to evaluate on: a built-in name, .csv, .npz, .npy, MNIST folder or mnist.pkl.gz "
                        "(its test split, when it has one), or data in blocks as for train")
    e.add_argument("--target", help="CSV target column (default: the model's, else the last), or the target "
                                    "array or column of data in blocks")
    e.add_argument("--features", help="data in blocks: the input array or the comma-separated input columns")
    e.add_argument("--block-rows", type=_int_at_least(1, "--block-rows"), metavar="ROWS",
                   help="data in blocks: rows per block, as given to train (--held-out finds the same test rows)")
    e.add_argument("--held-out", action="store_true", help="only the test split recorded at training time")
    e.add_argument("--plot", help="confusion-matrix PNG")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", help="predict from a CSV or .npy of features", formatter_class=_fmt(),
                       epilog="examples:\n  deltaprop predict model.safetensors inputs.csv --out preds.csv --proba")
    r.add_argument("model", help="a model file written by deltaprop train")
    r.add_argument("input", help="CSV (with a header) or .npy of features")
    r.add_argument("--out", help="CSV to write (default: standard output)")
    r.add_argument("--proba", action="store_true", help="add class probabilities")
    r.set_defaults(func=cmd_predict)

    g = sub.add_parser("gradcheck", help="backpropagation against finite differences, layer by layer",
                       formatter_class=_fmt(),
                       epilog="examples:\n  deltaprop gradcheck\n  deltaprop gradcheck --hidden 6 5 --activation gelu "
                              "--likelihood sigmoid+squared_error\n  deltaprop gradcheck --model model.safetensors")
    g.add_argument("--model", help="check a saved model instead of a new one")
    g.add_argument("--inputs", type=_int_at_least(1, "--inputs"), default=4, help="input width D_0 (default: 4)")
    g.add_argument("--hidden", type=int, nargs="*", default=[5, 4], metavar="WIDTH",
                   help="hidden layer widths (default: 5 4)")
    g.add_argument("--outputs", type=_int_at_least(1, "--outputs"), default=3, help="output width D_L (default: 3)")
    g.add_argument("--activation", default="tanh", choices=list(ACTIVATIONS), metavar="NAME",
                   help=f"hidden activation: {', '.join(ACTIVATIONS)} (default: tanh)")
    g.add_argument("--likelihood", default="categorical", type=_likelihood, metavar="NAME",
                   help="categorical, bernoulli, gaussian, poisson or ACTIVATION+LOSS (default: categorical)")
    g.add_argument("--samples", type=_int_at_least(1, "--samples"), default=8,
                   help="random samples in the batch checked (default: 8)")
    g.add_argument("--max-per-layer", type=_int_at_least(1, "--max-per-layer"), metavar="N",
                   help="check N randomly chosen weights per layer (default: all; 30 with --model)")
    g.add_argument("--seed", type=int, default=0, help="random seed of the network and the samples (default: 0)")
    g.set_defaults(func=cmd_gradcheck)

    xp = sub.add_parser("explain", help="one update step, number by number, with the lecture's equations",
                        formatter_class=_fmt(),
                        epilog="examples:\n  deltaprop explain\n  deltaprop explain --sizes 2 2 1 --x 1 2 --y 1 --lr 0.5\n"
                               "  deltaprop explain --sizes 3 4 2 --activation tanh --likelihood categorical --y 1\n"
                               "  deltaprop explain --model digits-model.safetensors --sample 3 --units 0 5\n"
                               "  deltaprop explain --format html --out step.html")
    xp.add_argument("--sizes", type=int, nargs="+", default=[2, 2, 1], help="layer widths (default: 2 2 1)")
    xp.add_argument("--activation", default="sigmoid", choices=list(ACTIVATIONS), metavar="NAME",
                    help=f"hidden activation: {', '.join(ACTIVATIONS)} (default: sigmoid)")
    xp.add_argument("--likelihood", default="bernoulli", type=_likelihood, metavar="NAME",
                    help="categorical, bernoulli, gaussian, poisson or ACTIVATION+LOSS (default: bernoulli)")
    xp.add_argument("--x", type=float, nargs="+", help="the input (default: random)")
    xp.add_argument("--y", type=float, nargs="+", help="the target (default: random)")
    xp.add_argument("--lr", type=_positive_float("--lr"),
                    help="mu of eq. (10) (default: 0.5; 0.01 with --model)")
    xp.add_argument("--seed", type=int, default=0, help="random seed of the weights, x and y (default: 0)")
    xp.add_argument("--model", help="explain a trained model's step instead of a new small network")
    xp.add_argument("--data", metavar="SOURCE", help="with --model: the data to take the sample from "
                    "(default: the model's training data; its test split when it has one)")
    xp.add_argument("--target", help="with --model: CSV target column (default: the model's, else the last)")
    xp.add_argument("--sample", type=_int_at_least(0, "--sample"), metavar="N",
                    help="with --model: the row to explain (default: 0)")
    xp.add_argument("--units", type=_int_at_least(0, "--units"), nargs="+", metavar="J",
                    help="units shown in full in layers too wide to print (default: the 3 with the largest delta)")
    xp.add_argument("--format", default="text", choices=["text", "markdown", "html"],
                    help="text, markdown (LaTeX math) or html (one self-contained page) (default: text)")
    xp.add_argument("--out", help="file to write (default: standard output)")
    xp.set_defaults(func=cmd_explain)

    i = sub.add_parser("info", help="architecture, parameter count and training metadata of a model",
                       formatter_class=_fmt(), epilog="example:\n  deltaprop info digits-model.safetensors")
    i.add_argument("model", help="a model file written by deltaprop train")
    i.set_defaults(func=cmd_info)

    x = sub.add_parser("export", help="export a model to ONNX", formatter_class=_fmt(),
                       epilog="example:\n  deltaprop export digits-model.safetensors --onnx model.onnx")
    x.add_argument("model", help="a model file written by deltaprop train")
    x.add_argument("--onnx", required=True, help="the .onnx file to write")
    x.set_defaults(func=cmd_export)
    return p


def _with_settings(registry, option):
    """NAME or NAME:key=value,... -> (name, {key: number}), checked against the class's arguments."""
    import inspect

    def parse(value):
        name, _, rest = value.partition(":")
        name = name.lower()
        if name not in registry:
            raise argparse.ArgumentTypeError(f"unknown value {name!r}; expected one of {', '.join(registry)}")
        allowed = [p for p in inspect.signature(registry[name]).parameters if p != "self"]
        settings = {}
        for item in filter(None, rest.split(",")):
            key, eq, number = item.partition("=")
            if not eq or key not in allowed:
                raise argparse.ArgumentTypeError(
                    f"{item!r} is not a setting of {name}; it takes {', '.join(allowed) or 'none'}")
            try:
                settings[key] = int(number) if number.lstrip("-").isdigit() else float(number)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{key}: expected a number, found {number!r}") from None
        return name, settings
    return parse


def _likelihood(value):
    """A likelihood name, checked by the registry (which names the valid pairs)."""
    from .core.likelihoods import get_likelihood

    try:
        get_likelihood(value)
    except (ValueError, TypeError) as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("likelihood: ")) from None
    return value.lower()


def _number(option, ok, expected, cast=float):
    def parse(value):
        try:
            v = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, found {value!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {expected}, found {value!r}")
        return v
    return parse


def _positive_float(option):
    return _number(option, lambda v: math.isfinite(v) and v > 0, "a positive number")


def _fraction(option, low, high, closed_low=False):
    expected = f"a fraction in {'[' if closed_low else '('}{low:g}, {high:g})"
    return _number(option, lambda v: (low <= v if closed_low else low < v) and v < high, expected)


def _non_negative_float(option):
    return _number(option, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")


def _int_at_least(minimum, option):
    return _number(option, lambda v: v >= minimum, f"an integer >= {minimum}", int)


def main(argv=None) -> int:
    """Run the command line; return the exit status."""
    from .data.datasets import DataError
    from .io.files import ModelFileError
    from .training.loop import DivergenceError

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        parser = build_parser()
        args, extras = parser.parse_known_args(argv)
        if extras:
            raise CLIError(_unrecognized(extras, parser.commands.get(args.command, parser)))
        return args.func(args)
    except (CLIError, DataError, ModelFileError, DivergenceError, ValueError, TypeError, ImportError) as e:
        print(f"deltaprop: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader went away (e.g. | head): not an error of ours
        sys.stdout = open(os.devnull, "w")
        return 0
    except OSError as e:
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"deltaprop: error:{where} {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print("deltaprop: error: out of memory (a smaller network, batch or data set would fit)", file=sys.stderr)
        return EXIT_USAGE
    except _Terminated:
        print("deltaprop: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("deltaprop: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Terminated(Exception):
    """SIGTERM outside training (which handles it itself, at a batch boundary)."""


def _on_sigterm(signum, frame):
    raise _Terminated


# the library's parameters as the command line spells them, for errors raised by the library
_FLAGS = {"validation": "--validation-fraction", "batch_size": "--batch-size", "early_stopping": "--early-stopping",
          "clip_norm": "--clip-norm", "max_norm": "--max-norm", "grad_tol": "--grad-tol", "l2": "--l2",
          "dropout": "--dropout", "epochs": "--epochs", "learning_rate": "--lr", "hidden": "--hidden",
          "checkpoint_every": "--checkpoint-every", "resume": "--resume", "kernels": "--kernels",
          "members": "--members", "bins": "--bins", "label_smoothing": "--label-smoothing"}


def _one_line(e) -> str:
    """The error in one line, in the command line's terms (``--batch-size``, not ``batch_size``)."""
    text = " ".join(str(e).split())
    text = text.replace("dtype='float64'", "--dtype float64")
    name, colon, rest = text.partition(": ")
    return f"{_FLAGS[name]}: {rest}" if colon and name in _FLAGS else text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
