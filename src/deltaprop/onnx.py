"""ONNX: deltaprop's estimators inside skl2onnx's conversions.

``skl2onnx.to_onnx(estimator_or_pipeline, X[:1])`` converts a fitted
:class:`~deltaprop.MLPClassifier` or :class:`~deltaprop.MLPRegressor`, alone or in a
pipeline, once their converters are registered with skl2onnx. That happens by itself
when a program imports skl2onnx after the estimators, or imported it before them;
:func:`register` does it explicitly (for example after a library has replaced skl2onnx's
registry). A saved :class:`~deltaprop.Model` is exported without skl2onnx:
``deltaprop export model.safetensors --onnx model.onnx``.
"""

from __future__ import annotations


def register() -> None:
    """Register the converters of :class:`~deltaprop.MLPClassifier` and
    :class:`~deltaprop.MLPRegressor` with skl2onnx (which this imports).

    Examples
    --------
    >>> import deltaprop.onnx
    >>> deltaprop.onnx.register()  # doctest: +SKIP
    """
    from .estimators.onnx import register as register_converters

    register_converters()
