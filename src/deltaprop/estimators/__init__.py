"""scikit-learn estimators on deltaprop's engine: :class:`MLPClassifier` and :class:`MLPRegressor`.

Change one import line (``from deltaprop import MLPClassifier``) and keep the rest:
scikit-learn's parameters, defaults, fitted attributes, stopping rules, warnings
and errors, inside pipelines, searches and cross-validation. Importing this
package needs scikit-learn and SciPy (``import deltaprop`` alone needs only NumPy);
when skl2onnx is installed, the estimators' ONNX converters are registered with it.
"""

from importlib.util import find_spec

from .classifier import MLPClassifier
from .convert import from_sklearn
from .params import InvalidParameterError
from .regressor import MLPRegressor
from .tabular import TabularClassifier, TabularRegressor

if find_spec("skl2onnx") is not None:
    from .onnx import register

    register()

__all__ = ["InvalidParameterError", "MLPClassifier", "MLPRegressor", "TabularClassifier", "TabularRegressor",
           "from_sklearn"]
