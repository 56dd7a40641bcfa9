"""deltaprop: feedforward networks trained by backpropagation, from first principles on NumPy.

The pieces, each with one job (see the README's layout section):

- :class:`Network` (``core``): architecture and the flat parameters ``theta``;
  the passes of eqs. (3)-(12) are in ``core.engine``, the criterion J and its
  gradient in :class:`Objective`; the array library they run on is a
  :class:`Backend` (NumPy, CuPy on a GPU: :data:`BACKENDS`).
- optimizers and schedules (``optim``): settings, with state kept apart.
- :func:`train` / :class:`Trainer` (``training``): the loop (its settings a
  :class:`TrainSettings`), returning a
  :class:`TrainState` to continue from; :func:`fit` goes from raw data to a
  :class:`Model`, the saved predictor (preprocessing + network + output mapping).
- :func:`gradcheck`, :func:`trace` (one step, every quantity of the lecture) and
  :func:`explain_step` (``diagnostics``).
- :class:`Blocks` (``data``): data larger than memory, read block by block from
  ``.npy``, HDF5, Zarr or Parquet; :func:`load_data` reads any path as a data set in
  memory or as Blocks; :func:`get_communicator` (``training``): the
  allreduce of data-parallel training, over MPI or ``torch.distributed``.
- :class:`MLPClassifier` and :class:`MLPRegressor` (``estimators``): scikit-learn's
  estimators on this engine; :class:`TabularClassifier` and :class:`TabularRegressor`:
  the tabular recipe (:mod:`deltaprop.training.recipe`) for real tables as they are;
  and :func:`from_sklearn` (a fitted pipeline as a Model),
  imported on first use (they need scikit-learn; the rest of the package needs only NumPy).
"""

from .core.activations import ACTIVATIONS, Activation, get_activation
from .core.backend import BACKENDS, Backend, get_backend
from .core.kernels import KERNELS
from .core.likelihoods import LIKELIHOODS, GeneralOutput, Likelihood, get_likelihood
from .core.network import Network
from .core.objective import Objective
from .data.blocks import Blocks, open_blocks
from .data.columns import Columns
from .data.preprocessing import Standardizer
from .data.splits import HeldOut
from .data.tables import TableNotice
from .diagnostics.gradcheck import GradcheckResult, gradcheck
from .diagnostics.health import Diagnostics, diagnose
from .diagnostics.trace import LayerTrace, StepTrace, explain_step, trace
from .io.files import ModelFileError
from .model import Model, load
from .optim.optimizers import (OPTIMIZERS, SGD, AdaGrad, Adam, AdamW, Momentum, Nesterov, Optimizer,
                               OptimizerState, RMSProp, get_optimizer)
from .optim.schedules import SCHEDULES, Constant, Cosine, Exponential, InverseTime, ReduceOnPlateau, StepDecay
from .training.callbacks import Callback, EarlyStopping, History
from .training.checkpoints import load_checkpoint
from .training.communicators import Communicator, get_communicator
from .training.fit import fit
from .training.errors import DivergenceError, TrainingInterrupted
from .training.loop import Trainer
from .training.settings import TrainSettings
from .training.train import train
from .training.state import TrainState
from .version import __version__


__all__ = [
    "ACTIVATIONS", "Activation", "AdaGrad", "Adam", "AdamW", "BACKENDS", "Backend", "Blocks", "Callback", "Columns", "Communicator",
    "Constant", "Cosine", "DataError", "Diagnostics", "DivergenceError", "EarlyStopping", "Exponential",
    "GeneralOutput", "GradcheckResult", "HeldOut", "History", "InverseTime", "KERNELS", "LIKELIHOODS", "LayerTrace",
    "Likelihood", "MLPClassifier", "MLPRegressor", "Model", "ModelFileError", "Momentum", "Nesterov",
    "Network", "OPTIMIZERS", "Objective", "Optimizer", "OptimizerState", "RMSProp", "ReduceOnPlateau",
    "SCHEDULES", "SGD", "Standardizer", "StepDecay", "StepTrace", "TableNotice", "TabularClassifier",
    "TabularRegressor", "TrainSettings", "TrainState", "Trainer", "TrainingInterrupted", "__version__",
    "diagnose", "explain_step", "fit", "from_sklearn", "get_activation", "get_backend", "get_communicator", "get_likelihood",
    "get_optimizer", "gradcheck", "load", "load_checkpoint", "load_data", "open_blocks", "trace", "train",
]


_LAZY = {"load_data": "data.loading", "DataError": "data.datasets", "MLPClassifier": "estimators",
         "MLPRegressor": "estimators", "TabularClassifier": "estimators", "TabularRegressor": "estimators",
         "from_sklearn": "estimators"}


def __getattr__(name: str):
    # the estimators import scikit-learn, and load_data every file reader: they load when first
    # asked for, not with the package
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
