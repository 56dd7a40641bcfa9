"""deltaprop: feedforward networks trained by backpropagation, from first principles on NumPy."""

from .activations import ACTIVATIONS, Activation, get_activation
from .gradcheck import GradcheckResult, gradcheck
from .likelihoods import LIKELIHOODS, GeneralOutput, Likelihood, get_likelihood
from .network import Network

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "GeneralOutput",
    "GradcheckResult",
    "LIKELIHOODS",
    "Likelihood",
    "Network",
    "__version__",
    "get_activation",
    "get_likelihood",
    "gradcheck",
]
