"""How a run ends early: divergence, or a signal between two batches."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .state import TrainState


class DivergenceError(RuntimeError):
    """The loss or the gradient stopped being finite; the network keeps the last finite weights."""

    def __init__(self, message: str, epoch: int, batch: int, state: "TrainState"):
        super().__init__(message)
        self.epoch, self.batch, self.state, self.history = epoch, batch, state, state.history


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during :func:`train`: raised between two batches, after the
    checkpoint (if any). ``cause`` says which (``"interrupted"``, ``"terminated"``)."""

    def __init__(self, state: "TrainState", checkpoint: str | None, cause: str = "interrupted"):
        super().__init__(f"training {cause}")
        self.state, self.history, self.checkpoint, self.cause = state, state.history, checkpoint, cause
