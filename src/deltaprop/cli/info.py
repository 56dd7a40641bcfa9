"""``deltaprop info``: what a model file holds."""

from __future__ import annotations

import numpy as np


# --- info ---------------------------------------------------------------------------
def cmd_info(args) -> int:
    from .. import load

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
    if model.source is not None:
        print(f"data: {model.source}")
    if model.held_out is not None:
        h = model.held_out
        print(f"held out: {h.fraction:.0%} of the rows, drawn with seed {h.seed}"
              + (f" from blocks of {h.block_rows} rows" if h.block_rows else "")
              + " (evaluate --held-out finds them again)")
    for k, v in model.metadata.items():
        if v is not None and not (k == "target" and model.columns is not None):
            print(f"{k}: {v}")
    return 0
