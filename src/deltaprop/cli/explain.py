"""``deltaprop explain``: one training step told in the lecture's order."""

from __future__ import annotations

import sys

import numpy as np

from .common import CLIError, as_model_input, existing_file, guard_outputs, model_target, show_notices


# --- explain ------------------------------------------------------------------------
def cmd_explain(args) -> int:
    from .. import Network, trace

    if args.out:
        guard_outputs({"--out": args.out}, [args.model or "", existing_file(args.data)])
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
        else:  # one target of the kind the likelihood models (a class, 0/1 labels, a count, reals)
            y = what.likelihood.sample_targets(rng, 1, what.sizes[-1])[0]
        lr = args.lr or 0.5
    text = trace(what, x, y, lr).explain(args.format, units=args.units)
    if args.out:
        from ..io.files import atomic_write

        atomic_write(args.out, lambda f: f.write(text.encode()))
        print(f"explanation: {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _explained_sample(args):
    """The model, and row ``--sample`` of its data (the test split when the data has one)."""
    from .. import load
    from ..data.datasets import load_dataset

    model = load(args.model)
    data = args.data or model.source
    if not data:
        raise CLIError("--data: needed with this model (it does not record the data it was trained on)")
    seed = model.held_out.seed if model.held_out is not None else 0  # (a generated set: drawn as train drew it)
    ds = load_dataset(data, args.target or model_target(model), seed=seed)
    show_notices(ds, quiet=False)
    X, y = (ds.X_test, ds.y_test) if ds.X_test is not None else (ds.X, ds.y)
    X = as_model_input(model, X, ds.feature_names, "--data")
    if isinstance(X, dict):  # the columns in the model's order, as the network takes them
        X = model.columns.arrange(X, "--data")
    n = args.sample or 0
    if n >= len(X):
        raise CLIError(f"--sample: expected a row index below {len(X)} ({ds.name} has {len(X)} rows), found {n}")
    return model, np.asarray(X[n], dtype=np.float64), y[n]
