"""``deltaprop evaluate``: a saved model's score on a data set, or on the rows its training held out."""

from __future__ import annotations

import math

import numpy as np

from .. import Blocks, load, load_data
from .common import CLIError, as_model_input, existing_file, guard_outputs, model_target, show_notices, split_off


# --- evaluate -----------------------------------------------------------------------
def cmd_evaluate(args) -> int:
    from sklearn import metrics

    from ..data.preprocessing import infer_task
    from ..diagnostics.plotting import plot_confusion_matrix
    from ..metrics import accuracy, r2

    guard_outputs({"--plot": args.plot}, [args.model, existing_file(args.data)])
    model = load(args.model)
    held_out = model.held_out
    if args.held_out and held_out is None:
        raise CLIError("--held-out: the model does not record rows held out of its data")
    # --held-out: cut into the blocks train cut, to find its test rows
    data = load_data(args.data, args.target or model_target(model), features=args.features,
                     seed=held_out.seed if held_out is not None else 0,
                     block_rows=args.block_rows or (held_out.block_rows if args.held_out else None))
    blocks = data if isinstance(data, Blocks) else None
    if blocks is not None:  # read a block at a time; --held-out: the blocks train held out
        if args.held_out:
            blocks = split_off(held_out, blocks, args.data, "--held-out")[1]
        if blocks.n_features != model.n_features:
            raise CLIError(f"--data: the model expects {model.n_features} features, the data has {blocks.n_features}")
        y, pred = blocks.targets(), model.predict(blocks)
        task, name = infer_task(y), args.data
    else:
        ds = data
        show_notices(ds, quiet=False)
        ds.check(model.network.dtype, advice="a model trained with --dtype float64")
        task, name = ds.task, ds.name
        if ds.X_test is not None or args.held_out:  # the set's own test rows, or those train held out
            ds.task = model.task  # (stratified as train split it)
            ds = split_off(held_out, ds, ds.name, "--held-out")[1]
        X, y = ds.X, ds.y
        pred = model.predict(as_model_input(model, X, ds.feature_names, "--data"))
    if model.task == "classification" and task != "classification":
        raise CLIError(f"--data: the model is a classifier, but {name} has real-valued targets")
    if model.task == "classification":
        print(f"accuracy: {accuracy(y, pred):.4f} ({len(y)} samples)")
        if model.classes is None:  # several labels per row
            print(metrics.classification_report(y, pred, digits=4, zero_division=0))
            return 0
        classes = model.classes
        try:  # (the library's check of labels against the model's classes)
            model.map_targets(y)
        except (ValueError, TypeError) as e:
            raise CLIError(f"--data: {str(e).removeprefix('y: ')}") from None
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
