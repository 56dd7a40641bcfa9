"""Export to ONNX: a whole :class:`~deltaprop.model.Model` as a graph of standard operators.

The graph takes raw features ``X`` and gives the model's output ``o`` in the
units of ``Model.predict_proba`` (classifiers) or ``Model.predict`` (regressors),
and for classifiers also ``label``, as ``Model.predict`` (the class names themselves):
input standardization as ``Sub``/``Div``, then per layer one ``Gemm``
(``h @ W[:-1] + b``, the augmented product of eq. (11) split back into weights
and bias) and the activation's own ONNX form, then the likelihood's mean, then
the target scaling undone. Each activation and likelihood knows its ONNX form,
as it knows its derivative.
"""

from __future__ import annotations

import re

import numpy as np

from ..version import __version__
from .files import atomic_write

__all__ = ["to_onnx"]

OPSET = 17
ML_OPSET = 2  # ai.onnx.ml, for LabelEncoder (a table's text categories)


class GraphBuilder:
    """Nodes and constants of an ONNX graph under construction, with unique names."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self._helper, self._numpy_helper = helper, numpy_helper
        self.nodes, self.initializers = [], []
        self._count = 0

    def _name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, value, prefix: str = "c") -> str:
        """A float32 constant; returns its name."""
        name = self._name(prefix)
        self.initializers.append(self._numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        """An operator node with one output; returns the output's name."""
        out = self._name(op.lower())
        self.nodes.append(self._helper.make_node(op, inputs, [out], **attrs))
        return out

    def ints(self, value, prefix: str = "i") -> str:
        """An int64 constant; returns its name."""
        name = self._name(prefix)
        self.initializers.append(self._numpy_helper.from_array(np.asarray(value, dtype=np.int64), name))
        return name

    def labels(self, classes) -> str:
        """A constant of class labels in their own type (:func:`label_array`); returns its name."""
        name = self._name("classes")
        self.initializers.append(self._numpy_helper.from_array(label_array(classes), name))
        return name


def label_array(classes) -> np.ndarray:
    """Class labels as an ONNX tensor holds them: int64 for integers and booleans,
    double for other numbers, UTF-8 strings for the rest."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "iub":
        return classes.astype(np.int64)
    if classes.dtype.kind == "f":
        return classes.astype(np.float64)
    return np.array([str(c).encode("utf-8") for c in classes], dtype=object)


def label_nodes(g, classes, proba: str) -> str:
    """Add the labels of ``Model.predict`` on class probabilities ``proba`` to the graph of
    builder ``g`` (anything with ``const``, ``node`` and ``labels``); return their name.
    ``classes`` None is a multilabel model: one 0/1 decision per label, as int64."""
    from onnx import TensorProto

    if classes is None:
        return g.node("Cast", [g.node("Greater", [proba, g.const(0.5)])], to=TensorProto.INT64)
    if len(classes) == 1:  # fitted on a single class: two probability columns, one answer
        classes = [classes[0], classes[0]]
    return g.node("Gather", [g.labels(classes), g.node("ArgMax", [proba], axis=1, keepdims=0)], axis=0)


def model_nodes(g, model, x: str) -> str:
    """Add ``model``'s computation on raw features ``x`` to the graph of builder ``g``
    (anything with this module's ``const`` and ``node``); return the name of its
    output: class probabilities (as ``predict_proba``) or values in target units
    (as ``predict``, as columns). The scikit-learn converter shares it."""
    net = model.network
    h = x
    if model.preprocessor is not None:
        p = model.preprocessor
        h = g.node("Div", [g.node("Sub", [h, g.const(p.mean, "mean")]), g.const(p.scale, "scale")])
    L, k, K = net.n_layers, net.members, net.sizes[-1]
    for l in range(1, L + 1):
        if l > 1 and k > 1:  # an ensemble, (k, N, D) from layer 1 on: each member's own product
            W = net.W[l]
            d = net.sizes[l]
            weights = W[:-1].reshape(-1, k, d).transpose(1, 0, 2)
            z = g.node("Add", [g.node("MatMul", [h, g.const(weights, f"W{l}")]),
                               g.const(W[-1].reshape(k, 1, d), f"b{l}")])
        else:
            z = g.node("Gemm", [h, g.const(net.W[l][:-1], f"W{l}"), g.const(net.W[l][-1], f"b{l}")])
            if k > 1:  # the members' columns as k matrices
                z = g.node("Transpose", [g.node("Reshape", [z, g.ints([-1, k, net.sizes[1]])])], perm=[1, 0, 2])
        h = net.activations[l].onnx(g, z) if l < L else z
    if k > 1:  # every member's rows through the output, then their mean
        h = g.node("Reshape", [g.node("Transpose", [h], perm=[1, 0, 2]), g.ints([-1, K])])
        o = net.likelihood.onnx(g, h)
        mean = np.tile(np.eye(K), (k, 1)) / k
        o = g.node("MatMul", [g.node("Reshape", [o, g.ints([-1, k * K])]), g.const(mean, "mean")])
    else:
        o = net.likelihood.onnx(g, h)
    if net.binary and model.classes is not None:  # one Bernoulli output: p(0), p(1), as predict_proba
        o = g.node("Concat", [g.node("Sub", [g.const(np.ones((1, 1))), o]), o], axis=1)
    if model.target_scaler is not None:
        t = model.target_scaler
        o = g.node("Add", [g.node("Mul", [o, g.const(t.scale, "target_scale")]), g.const(t.mean, "target_mean")])
    return o


def table_nodes(g, table) -> tuple[list, str]:
    """Add the encoding of a table of mixed columns (:mod:`deltaprop.data.tables`) to the
    graph of builder ``g``: one input per column the model uses, named as the column, of
    shape (N, 1), float for numbers and booleans (NaN for a gap), string for categories
    (``""`` or a text such as ``"NA"`` for a gap; a number in a text column in its
    canonical form, ``"75001"`` or ``"7.5"``, as the model learned it); returns (the inputs' value infos, the
    name of the encoded inputs, N x n_outputs)."""
    from onnx import TensorProto, helper

    from ..data.tables import CLIP, GAP_TEXTS

    inputs, parts = [], []
    for c in table.columns:
        if c.kind == "ignored":
            continue
        if c.name in ("o", "label") or re.fullmatch(r"[a-z]+_\d+", c.name):
            raise ValueError(f"ONNX export: the column name {c.name!r} is one the graph uses for itself; rename it")
        x = c.name
        if c.kind == "category":
            inputs.append(helper.make_tensor_value_info(x, TensorProto.STRING, ["N", 1]))
            other = len(c.vocabulary)
            gap = other + 1 if c.indicator else other
            keys = list(c.vocabulary) + sorted(GAP_TEXTS - set(c.vocabulary))
            values = list(range(other)) + [gap] * (len(keys) - other)
            index = g.node("LabelEncoder", [x], domain="ai.onnx.ml", keys_strings=keys, values_int64s=values,
                           default_int64=other)
            onehot = g.node("OneHot", [index, g.ints([c.width]), g.const([0.0, 1.0])], axis=-1)
            parts.append(g.node("Reshape", [onehot, g.ints([-1, c.width])]))
            continue
        inputs.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 1]))
        gap = g.node("IsNaN", [x])
        filled = g.node("Where", [gap, g.const([[c.fill]]), x])
        z = g.node("Div", [g.node("Sub", [filled, g.const([[c.center]])]), g.const([[c.scale]])])
        if c.kind == "number":  # smooth clipping, z / sqrt(1 + (z/3)^2)
            ratio = g.node("Div", [z, g.const([[CLIP]])])
            z = g.node("Div", [z, g.node("Sqrt", [g.node("Add", [g.const([[1.0]]), g.node("Mul", [ratio, ratio])])])])
        parts.append(z)
        if c.edges:  # piecewise-linear inputs: clip((x - e_{t-1}) / (e_t - e_{t-1}), 0, 1)
            lo, hi = np.asarray(c.edges[:-1]), np.asarray(c.edges[1:])
            through = g.node("Div", [g.node("Sub", [filled, g.const([lo])]), g.const([hi - lo])])
            parts.append(g.node("Clip", [through, g.const(0.0), g.const(1.0)]))
        if c.indicator:
            parts.append(g.node("Cast", [gap], to=TensorProto.FLOAT))
    return inputs, parts[0] if len(parts) == 1 else g.node("Concat", parts, axis=1)


def to_onnx(model, path) -> None:
    """Write ``model`` (a :class:`~deltaprop.model.Model`, in float32) as an ONNX model
    with input ``X`` (raw features, in the model's column order; for a model of a mixed
    table, one input per column instead, as :func:`table_nodes` describes) and output ``o``: class
    probabilities (as ``predict_proba``) or values in target units (as ``predict``, as
    columns). A classifier also outputs ``label``, as ``predict``: one class name per row
    (strings, int64 or double, as the classes are), or for a multilabel model one int64 0/1
    column per label. The model's task, classes and column names (where known) go into the
    file's metadata (``metadata_props``, JSON values)."""
    import json

    import onnx
    from onnx import TensorProto, helper

    net, g = model.network, GraphBuilder()
    if model.table is None:
        inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", net.sizes[0]])]
        o = model_nodes(g, model, "X")
    else:  # the raw columns, one input each
        inputs, encoded = table_nodes(g, model.table)
        o = model_nodes(g, model, encoded)
    K = 2 if net.binary and model.classes is not None else net.sizes[-1]
    g.nodes.append(helper.make_node("Identity", [o], ["o"]))
    outputs = [helper.make_tensor_value_info("o", TensorProto.FLOAT, ["N", K])]
    if model.task == "classification":
        g.nodes.append(helper.make_node("Identity", [label_nodes(g, model.classes, o)], ["label"]))
        if model.classes is None:
            outputs.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["N", K]))
        else:
            names = label_array(model.classes)
            kind = TensorProto.STRING if names.dtype == object else helper.np_dtype_to_tensor_dtype(names.dtype)
            outputs.append(helper.make_tensor_value_info("label", kind, ["N"]))
    graph = helper.make_graph(g.nodes, "deltaprop", inputs, outputs, initializer=g.initializers)
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid("ai.onnx.ml", ML_OPSET)] if model.table else [])
    onnx_model = helper.make_model(graph, opset_imports=opsets, producer_name="deltaprop",
                                   producer_version=__version__)
    onnx_model.ir_version = min(onnx_model.ir_version, 9)
    meta = {"task": model.task}
    if model.classes is not None:
        meta["classes"] = model.classes.tolist()
    if model.columns is not None:
        meta["columns"] = list(model.columns.features)
        if model.columns.target:
            meta["target"] = list(model.columns.target)
    helper.set_model_props(onnx_model, {k: json.dumps(v) for k, v in meta.items()})
    onnx.checker.check_model(onnx_model)
    data = onnx_model.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
