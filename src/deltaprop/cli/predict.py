"""``deltaprop predict``: a saved model's predictions for the rows of a file."""

from __future__ import annotations

import sys

from .. import load, load_data
from .common import CLIError, as_model_input, guard_outputs, show_notices


# --- predict ------------------------------------------------------------------------
def cmd_predict(args) -> int:
    import csv
    import io

    from ..io.files import atomic_write

    guard_outputs({"--out": args.out}, [args.model, args.input])
    model = load(args.model)
    # a CSV that still holds the training target column: that column is not read
    ds = load_data(args.input, "", leave_out=model.columns.target if model.columns is not None else
                   [model.metadata.get("target")])
    show_notices(ds, quiet=False)
    ds.check(model.network.dtype, advice="a model trained with --dtype float64")  # (naming the file's lines)
    X = as_model_input(model, ds.X, ds.feature_names, "INPUT")
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
