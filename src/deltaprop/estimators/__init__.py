"""scikit-learn estimators on deltaprop's engine: :class:`MLPClassifier` and :class:`MLPRegressor`.

Change one import line (``from deltaprop import MLPClassifier``) and keep the rest:
scikit-learn's parameters, defaults, fitted attributes, stopping rules, warnings
and errors, inside pipelines, searches and cross-validation. Importing this
package needs scikit-learn and SciPy (``import deltaprop`` alone needs only NumPy);
the estimators' ONNX converters are registered with skl2onnx when a program imports it
(:mod:`deltaprop.onnx`), so that importing the estimators does not import it.
"""

from .classifier import MLPClassifier
from .convert import from_sklearn
from .onnx import register_on_import
from .params import InvalidParameterError
from .regressor import MLPRegressor
from .tabular import TabularClassifier, TabularRegressor

register_on_import()

__all__ = ["InvalidParameterError", "MLPClassifier", "MLPRegressor", "TabularClassifier", "TabularRegressor",
           "from_sklearn"]
