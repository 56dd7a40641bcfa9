"""``deltaprop train``: from data to a saved model, with its curves, log and report."""

from __future__ import annotations

from pathlib import Path
import sys
import time

import numpy as np

from .. import Blocks, HeldOut, load_data
from .common import (CLIError, EXIT_INTERRUPTED, EXIT_TERMINATED, default_stem, existing_file, guard_outputs,
                     notes_of, show_notices, split_off)


def cmd_train(args) -> int:
    from ..training.parallel import all_ranks_or_none

    # data-parallel (--distributed): an error on one rank ends them all
    with all_ranks_or_none(args.distributed) as comm:
        return _train(args, comm)


def _train(args, comm) -> int:
    from .. import SCHEDULES, TableNotice, TrainingInterrupted, __version__, fit, get_likelihood, get_optimizer
    from ..data.preprocessing import encode_labels
    from ..diagnostics.plotting import WeightSnapshots, plot_decision_regions, plot_learning_curves
    from ..diagnostics.progress import Progress, write_json_log
    from ..training.recipe import TABLE_RECIPE

    # every argument and output location is checked before any file is opened
    stem = default_stem(args.data)
    out = args.out or f"{stem}-model.safetensors"
    plot = f"{stem}-curves.png" if args.plot is None else args.plot
    guard_outputs({"--out": out, "--plot": plot, "--plot (decision regions)": plot and _regions_path(plot),
                   "--log": args.log, "--checkpoint": args.checkpoint, "--report": args.report,
                   "--animate": args.animate},
                  [existing_file(args.data), args.target or "", args.resume if args.resume != args.checkpoint else ""])
    name, settings = args.optimizer or ("adam", {})
    optimizer = get_optimizer(name, **settings, **({"learning_rate": args.lr} if args.lr else {}))
    name, settings = args.schedule
    schedule = SCHEDULES[name](**settings)

    args.quiet = args.quiet or comm.rank != 0  # rank 0 speaks and writes for every rank
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    data = load_data(args.data, args.target, features=args.features, block_rows=args.block_rows, seed=args.seed)
    blocks = data if isinstance(data, Blocks) else None
    # the test rows, as the rule that finds them again (saved in the model: evaluate --held-out)
    held_out = HeldOut(args.test_fraction, args.seed, args.block_rows if blocks is not None else None)
    if blocks is not None:  # read a block at a time, never whole
        for option in ("report", "animate"):
            if getattr(args, option):
                raise CLIError(f"--{option}: needs a data set in memory; {args.data} is read in blocks")
        Xtr, Xte = split_off(held_out, blocks, args.data, "--test-fraction")
        ytr = yte = None
        task = get_likelihood(args.likelihood).task if args.likelihood else None
        standardize = args.standardize is not False
        classification = None  # (known once fit has looked at the targets)
        name = default_stem(args.data)
        say(f"data: {args.data}, {Xtr.n_samples} training and {Xte.n_samples} test samples in blocks, "
            f"{blocks.n_features} features" + ("" if standardize else " (not standardized)"))
    else:
        ds = data
        ds.check(args.dtype)  # the whole file, before it is split: its errors name the file's lines
        show_notices(ds, args.quiet)
        if args.likelihood:  # the likelihood says what the targets are (counts look like labels)
            ds.task = get_likelihood(args.likelihood).task
        task, name = ds.task, ds.name
        classification = ds.task == "classification"
        standardize = args.standardize if args.standardize is not None else ds.standardize_inputs
        if ds.X_test is not None:  # (a data set with a test set of its own holds no rows out)
            held_out = None
        train_ds, test_ds = split_off(held_out, ds, ds.name, "--test-fraction")
        Xtr, Xte, ytr, yte = train_ds.X, test_ds.X, train_ds.y, test_ds.y
        what = f"{len(ds.classes)} classes" if classification and ds.classes else (
            "several labels" if classification else f"{1 if ds.y.ndim == 1 else ds.y.shape[1]} real target(s)")
        say(f"data: {ds.name}, {len(Xtr)} training and {len(Xte)} test samples, {Xtr.shape[1]} features, {what}"
            + ("" if standardize else " (not standardized)"))

    if args.animate and not (classification and Xtr.shape[1] == 2 and ds.y.ndim == 1):
        raise CLIError(f"--animate: needs 2-D data with class labels (xor, moons, circles, spirals or a CSV of "
                       f"two features); {ds.name} has {Xtr.shape[1]} features")
    # a table (a CSV or Parquet file: named columns) trains with the tabular recipe, unless told otherwise
    table = blocks is None and ds.is_table
    recipe = {"epochs": args.epochs or (TABLE_RECIPE["epochs"] if table else 100)}
    if args.batch_size is None:
        args.batch_size = TABLE_RECIPE["batch_size"] if table else 32
    if table and args.optimizer is None and not args.lr:
        optimizer = get_optimizer("adam", learning_rate=TABLE_RECIPE["learning_rate"])
    if not (table and args.validation_fraction is None and args.early_stopping is None):
        recipe.update(validation=0.1 if args.validation_fraction is None else args.validation_fraction or None,
                      early_stopping=10 if args.early_stopping is None else args.early_stopping or None)
    # (else the recipe's: each member of the ensemble holds out a fold of its own where it can)
    recipe.update({k: v for k, v in (("members", args.members), ("bins", args.bins),
                                     ("label_smoothing", args.label_smoothing)) if v is not None})
    progress = Progress(recipe["epochs"], quiet=args.quiet)
    snapshots = WeightSnapshots() if args.animate else None

    class Announce:  # the network exists once fit has chosen its outputs
        def on_train_begin(self, net, state):
            k = net.members
            say(f"network: {'-'.join(map(str, net.sizes))}{f' x {k}' if k > 1 else ''} "
                f"({args.activation}, {net.likelihood.name}), "
                f"{net.n_params:,} parameters, {np.dtype(net.dtype).name}; optimizer {optimizer!r}")

    metadata = {
        "seed": args.seed,
        "target": args.target if blocks is not None else ds.target_name or args.target,
        "optimizer": repr(optimizer), "schedule": repr(schedule), "batch_size": args.batch_size,
        "trained_with": f"deltaprop {__version__}",
    }
    t0 = time.perf_counter()
    try:
        with notes_of(TableNotice, args.quiet):
            model, state = fit(
                Xtr if blocks is not None else train_ds,  # (a data set says its columns and kind of inputs)
                hidden=args.hidden, activation=args.activation, likelihood=args.likelihood, task=task,
                standardize=args.standardize, dtype=args.dtype, seed=args.seed, metadata=metadata,
                optimizer=optimizer, batch_size=args.batch_size or None, **recipe,
                schedule=schedule, l2=args.l2, dropout=args.dropout,
                clip_norm=args.clip_norm, max_norm=args.max_norm, grad_tol=args.grad_tol,
                diagnostics=args.diagnostics or bool(args.report),
                callbacks=[Announce(), progress] + ([snapshots] if snapshots else []),
                checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume,
                distributed=comm, kernels=args.kernels, backend=args.backend)
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
    score = model.score(Xte) if blocks is not None else model.score(Xte, yte)
    metric = "accuracy" if classification else "R^2"
    model.held_out, model.source = held_out, args.data
    model.metadata.update({"kernels": state.kernels, "backend": args.backend or "numpy", "epochs": history.epochs,
                           "stop_reason": history.stop_reason,
                           "weights_of_epoch": history.member_best_epochs or history.best_epoch or history.epochs,
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
        from .. import diagnose

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
        from ..diagnostics.plotting import animate_decision_regions

        epochs_shown, predicts = snapshots.frames(net, model, history)
        animate_decision_regions(predicts, np.r_[Xtr, Xte], encode_labels(np.r_[ytr, yte], model.classes)[0],
                                 args.animate, [f"{ds.name}: epoch {e}" for e in epochs_shown])
        say(f"animation: {args.animate} ({len(predicts)} frames)")
    if args.report:
        from ..diagnostics.report import write_report

        write_report(args.report, model, history, Xte, yte, title=f"deltaprop: {ds.name}",
                     facts={"data": f"{ds.name}: {len(Xtr)} training and {len(Xte)} test samples",
                            "optimizer": repr(optimizer), "schedule": repr(schedule),
                            "batch size": args.batch_size or "full batch", "training time": f"{seconds:.1f} s"})
        say(f"report: {args.report}")
    return 0


def _regions_path(plot: str) -> str:
    """Where the decision regions of 2-D data go, beside the learning curves."""
    return str(Path(plot).with_name(Path(plot).stem + "_regions.png"))
