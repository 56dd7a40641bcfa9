"""Export to ONNX: the forward pass of eq. (3) as a graph of standard operators.

Each layer is one ``Gemm`` (``h @ W[:-1] + b``, the augmented product of eq. (11)
split back into weights and bias), followed by its activation; the output node
is the likelihood's mean (softmax, sigmoid, identity, exp). Optional input
standardization becomes ``Sub``/``Div`` nodes, so the graph takes raw features.
"""

from __future__ import annotations

import numpy as np

from .network import Network
from .serialization import atomic_write

OPSET = 17
_GELU_C = float(np.sqrt(2.0 / np.pi))


def to_onnx(net: Network, path, mean=None, std=None, out_mean=None, out_std=None) -> None:
    """Write ``net`` (in float32) as an ONNX model with input ``X`` and output ``o``.

    Parameters
    ----------
    net : Network
    path : str or Path
    mean, std : array-like, optional
        Per-feature standardization applied to ``X`` before the first layer.
    out_mean, out_std : array-like, optional
        For a model of standardized targets: ``o * out_std + out_mean`` at the end.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(value, prefix="c"):
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), n))
        return n

    def node(op, inputs, **attrs):
        out = name(op.lower())
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def activation(act_name, x):
        simple = {"identity": "Identity", "sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu",
                  "softplus": "Softplus"}
        if act_name in simple:
            return node(simple[act_name], [x])
        if act_name == "leaky_relu":
            return node("LeakyRelu", [x], alpha=0.01)
        if act_name == "elu":
            return node("Elu", [x], alpha=1.0)
        if act_name == "gelu":  # z/2 (1 + tanh(c (z + a z^3))), from primitives
            cube = node("Mul", [node("Mul", [x, x]), x])
            inner = node("Add", [x, node("Mul", [cube, const(0.044715)])])
            t = node("Tanh", [node("Mul", [inner, const(_GELU_C)])])
            return node("Mul", [node("Mul", [x, const(0.5)]), node("Add", [t, const(1.0)])])
        raise ValueError(f"export: no ONNX form for the activation {act_name!r}")

    h = "X"
    if mean is not None:
        h = node("Div", [node("Sub", [h, const(mean, "mean")]), const(std, "std")])
    L = net.n_layers
    for l in range(1, L + 1):
        z = node("Gemm", [h, const(net.W[l][:-1], f"W{l}"), const(net.W[l][-1], f"b{l}")])
        h = activation(net.activations[l].name, z) if l < L else z
    lik = net.likelihood.name
    if lik == "categorical":
        out = node("Softmax", [h], axis=1)
    elif lik == "bernoulli":
        out = node("Sigmoid", [h])
    elif lik == "poisson":
        out = node("Exp", [h])
    elif lik == "gaussian":
        out = node("Identity", [h])
    else:
        out = activation(net.likelihood.activation.name, h)
    if out_mean is not None:
        out = node("Add", [node("Mul", [out, const(out_std, "out_std")]), const(out_mean, "out_mean")])
    nodes.append(helper.make_node("Identity", [out], ["o"]))

    graph = helper.make_graph(
        nodes, "deltaprop",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", net.sizes[0]])],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, ["N", net.sizes[-1]])],
        initializer=inits,
    )
    from . import __version__

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="deltaprop", producer_version=__version__)
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
