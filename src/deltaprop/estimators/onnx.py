"""ONNX converters for the estimators, registered with skl2onnx.

With them, ``skl2onnx.to_onnx(make_pipeline(StandardScaler(), MLPClassifier()), X[:1])``
converts a whole pipeline. The network's part of the graph is the one
:func:`deltaprop.io.onnx.model_nodes` writes for ``deltaprop export`` (each
activation and likelihood knows its own ONNX form); what is added here is
skl2onnx's interface: its variable names, its input cast, and a classifier's two
outputs, the labels (in the type of ``classes_``) and the probabilities.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import warnings

import numpy as np

from ..io.onnx import label_array, label_nodes, model_nodes
from .classifier import MLPClassifier
from .regressor import MLPRegressor


class ContainerBuilder:
    """The ``const``/``node`` interface of :class:`deltaprop.io.onnx.GraphBuilder`,
    writing into skl2onnx's scope and container."""

    def __init__(self, scope, container, proto_dtype: int):
        from onnx import helper

        self.scope, self.container, self.proto_dtype = scope, container, proto_dtype
        self.np_dtype = helper.tensor_dtype_to_np_dtype(proto_dtype)

    def const(self, value, prefix: str = "c") -> str:
        value = np.asarray(value, dtype=self.np_dtype)
        name = self.scope.get_unique_variable_name(prefix)
        self.container.add_initializer(name, self.proto_dtype, list(value.shape), value.ravel())
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.scope.get_unique_variable_name(op.lower())
        self.container.add_node(op, inputs, out, name=self.scope.get_unique_operator_name(op), **attrs)
        return out

    def labels(self, classes) -> str:
        from onnx import TensorProto, helper

        values, name = label_array(classes), self.scope.get_unique_variable_name("classes")
        kind = TensorProto.STRING if values.dtype == object else helper.np_dtype_to_tensor_dtype(values.dtype)
        self.container.add_initializer(name, kind, [len(values)], values.tolist())
        return name

    def output(self, name: str, target: str) -> None:
        self.container.add_node("Identity", [name], [target], name=self.scope.get_unique_operator_name("Identity"))


def _network_output(scope, operator, container) -> tuple[ContainerBuilder, str]:
    """The estimator's model on the operator's input: (builder, name of o)."""
    from onnx import TensorProto
    from skl2onnx.common.data_types import guess_proto_type

    proto = guess_proto_type(operator.inputs[0].type)
    proto = proto if proto == TensorProto.DOUBLE else TensorProto.FLOAT
    g = ContainerBuilder(scope, container, proto)
    x = g.node("Cast", [operator.inputs[0].full_name], to=proto)
    return g, model_nodes(g, operator.raw_operator.model_, x)


def convert_classifier(scope, operator, container) -> None:
    """Labels (output 0) and class probabilities (output 1) of an :class:`MLPClassifier`."""
    est = operator.raw_operator
    g, proba = _network_output(scope, operator, container)
    g.output(proba, operator.outputs[1].full_name)
    if est.model_.classes is not None and container.get_options(est, dict(nocl=False))["nocl"]:
        labels = g.node("ArgMax", [proba], axis=1, keepdims=0)  # skl2onnx's option: class indices
    else:
        labels = label_nodes(g, est.model_.classes, proba)
    g.output(labels, operator.outputs[0].full_name)


def convert_regressor(scope, operator, container) -> None:
    """The predictions of an :class:`MLPRegressor`, one column per output."""
    g, o = _network_output(scope, operator, container)
    g.output(o, operator.outputs[0].full_name)


def classifier_shapes(operator) -> None:
    """skl2onnx's shapes of a linear classifier's outputs; labels of a multilabel model
    are a matrix (one column per label)."""
    from skl2onnx.common.data_types import Int64TensorType
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    calculate_linear_classifier_output_shapes(operator)
    est = operator.raw_operator
    if est.model_.classes is None:
        operator.outputs[0].type = Int64TensorType([None, len(est.classes_)])


def register() -> None:
    """Register both converters with skl2onnx (imports it). :func:`register_on_import`
    does it when skl2onnx is first imported; :func:`deltaprop.onnx.register` calls this."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_regressor_output_shapes

    update_registered_converter(MLPClassifier, "DeltapropMLPClassifier", classifier_shapes,
                                convert_classifier, options={"zipmap": [True, False, "columns"], "nocl": [False, True]})
    update_registered_converter(MLPRegressor, "DeltapropMLPRegressor", calculate_linear_regressor_output_shapes,
                                convert_regressor)


def register_on_import() -> None:
    """Register the converters now if skl2onnx is already imported, else as soon as it is.

    Importing skl2onnx takes about a second (it imports onnx and ml_dtypes): the
    estimators do not pay it unless the program converts something. An import hook
    waits for ``import skl2onnx`` and registers the converters right after it runs, so
    ``skl2onnx.to_onnx(estimator, ...)`` works in either import order.
    """
    if "skl2onnx" in sys.modules:
        register()
    elif not any(isinstance(f, RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, RegisterAfterImport())


class RegisterAfterImport(importlib.abc.MetaPathFinder):
    """The import hook of :func:`register_on_import`: it finds nothing itself; on the import
    of skl2onnx it steps aside, takes the spec that the other finders give, and has the
    module's loader register the converters once the module has run."""

    def find_spec(self, name, path=None, target=None):
        if name != "skl2onnx":
            return None
        sys.meta_path.remove(self)  # (once: the import below must not come back here)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = ThenRegister(spec.loader)
        return spec


class ThenRegister(importlib.abc.Loader):
    """A module loader that runs ``loader``, then :func:`register`."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # (its resources are the real loader's)
        self.loader.exec_module(module)
        try:
            register()
        except Exception as e:  # a broken skl2onnx must not break the program that imports it
            warnings.warn(f"deltaprop: the estimators' ONNX converters were not registered with skl2onnx: {e}",
                          RuntimeWarning, stacklevel=2)
