"""Data-parallel training's own steps, beside the :class:`~deltaprop.training.communicators.Communicator`.

Each rank computes its part of every batch; one in-place allreduce of the gradient
buffer (:class:`AllReduce`, a transform of the gradient) adds the parts and carries with them what every rank must agree on (the
loss, the weights, the rows, a non-finite loss, a signal), so that every rank takes
the same step or stops at the same batch. :func:`all_ranks_or_none` ends every rank
when one fails alone.
"""

from __future__ import annotations

import hashlib
import math
from contextlib import contextmanager

import numpy as np

from .communicators import get_communicator
from .errors import DivergenceError, TrainingInterrupted

__all__ = ["AllReduce", "all_ranks_or_none", "check_same_theta"]

# what travels with the gradient in the allreduce (after the gradient itself)
CARRIED = ("loss_sum", "total_weight", "rows", "nonfinite", "interrupted", "terminated")


class AllReduce:
    """The data-parallel gradient transform (:mod:`deltaprop.optim.transforms`): this rank's
    part of the batch, summed over every rank by one in-place allreduce of the objective's
    buffer (the summed gradient, then :data:`CARRIED`), so that every rank gets the same
    gradient, loss, rows and verdict.

    Set :attr:`signal` to the signal this rank received ("interrupted", "terminated" or "")
    before each step; after it, :attr:`agreed` is the one any rank received, so that every
    rank stops at the same batch.
    """

    fusable = False  # every rank's gradient is needed before any update
    summed = True  # the parts are sums: the batch's total weight is known only after adding them

    def __init__(self, comm):
        self.comm = comm
        self.signal = self.agreed = ""

    def __call__(self, buffer, loss_sum: float, weight: float, rows: float) -> tuple[float, float, float]:
        """Add every rank's ``buffer`` (whose last slots carry the numbers) in place; return the
        batch's (loss sum, total weight, rows), the loss sum inf when any rank's was not finite."""
        carried = buffer[len(buffer) - len(CARRIED):]
        carried[:] = (loss_sum if math.isfinite(loss_sum) else 0.0, weight, rows, not math.isfinite(loss_sum),
                      self.signal == "interrupted", self.signal == "terminated")
        self.comm.allreduce(buffer)
        loss_sum, weight, rows, nonfinite, interrupted, terminated = (float(v) for v in carried)
        self.agreed = "terminated" if terminated else "interrupted" if interrupted else ""
        return (math.inf if nonfinite else loss_sum), weight, rows


def check_same_theta(comm, theta: np.ndarray, epoch: int) -> None:
    """Every rank took the same steps: their weights must agree bit for bit."""
    digests = comm.allgather_object(hashlib.sha256(theta.tobytes()).hexdigest())
    if len(set(digests)) > 1:
        raise RuntimeError(f"distributed: the ranks' weights differ after epoch {epoch} "
                           f"(digests {digests}); their steps were not the same")


@contextmanager
def all_ranks_or_none(distributed):
    """The communicator for ``distributed``, in a context that ends every rank when one
    fails alone (the others would wait for it forever in the next collective).

    Errors that every rank raises together (divergence and interruption, decided from
    the numbers of the allreduce) are raised as usual, on every rank.
    """
    comm = get_communicator(distributed)
    try:
        yield comm
    except (DivergenceError, TrainingInterrupted):
        raise
    except BaseException as e:
        if comm.size > 1:
            comm.abort(f"deltaprop: error on rank {comm.rank} of {comm.size}: {type(e).__name__}: {e}")
        raise
