"""deltaprop: feedforward networks trained by backpropagation, from first principles on NumPy."""

from .activations import ACTIVATIONS, Activation, get_activation
from .gradcheck import GradcheckResult, gradcheck
from .likelihoods import LIKELIHOODS, GeneralOutput, Likelihood, get_likelihood
from .network import Network
from .optimizers import OPTIMIZERS, SGD, AdaGrad, Adam, AdamW, Momentum, Nesterov, Optimizer, RMSProp
from .schedules import SCHEDULES, Constant, Cosine, Exponential, InverseTime, ReduceOnPlateau, StepDecay
from .serialization import ModelFileError, load
from .callbacks import Callback, EarlyStopping, History
from .training import DivergenceError, TrainingInterrupted, train

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "AdaGrad",
    "Adam",
    "AdamW",
    "Callback",
    "Constant",
    "Cosine",
    "DivergenceError",
    "EarlyStopping",
    "Exponential",
    "History",
    "InverseTime",
    "ModelFileError",
    "Momentum",
    "Nesterov",
    "OPTIMIZERS",
    "Optimizer",
    "RMSProp",
    "ReduceOnPlateau",
    "SCHEDULES",
    "SGD",
    "StepDecay",
    "TrainingInterrupted",
    "load",
    "train",
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
