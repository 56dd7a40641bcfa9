"""``deltaprop export``: a model file as ONNX."""

from __future__ import annotations

from .common import CLIError, guard_outputs


# --- export -------------------------------------------------------------------------
def cmd_export(args) -> int:
    from .. import load

    try:
        from ..io.onnx import to_onnx
        import onnx  # noqa: F401
    except ImportError:  # pragma: no cover - onnx is an optional extra
        raise CLIError("export needs the onnx package: pip install 'deltaprop[onnx]'") from None
    guard_outputs({"--onnx": args.onnx}, [args.model])
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
