"""``deltaprop gradcheck``: the backpropagated gradient against central differences."""

from __future__ import annotations

import numpy as np


# --- gradcheck ----------------------------------------------------------------------
def cmd_gradcheck(args) -> int:
    from .. import Network, gradcheck, load

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
    y = net.likelihood.sample_targets(rng, n, K)
    hidden = ", ".join(sorted(set(net.activation_names))) or "no hidden layer"
    print(f"gradcheck: {'-'.join(map(str, net.sizes))} network ({hidden}, {name}), {n} random samples, float64, "
          "fourth-order central differences")
    result = gradcheck(net, X, y, max_per_layer=max_per_layer, seed=args.seed)
    print(result.report())
    return 0 if result.passed else 1
