"""Data-parallel training's own steps, beside the :class:`~deltaprop.training.communicators.Communicator`.

Each rank computes its part of every batch; one in-place allreduce of the gradient
buffer adds the parts and carries with them what every rank must agree on (the
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

# what travels with the gradient in the allreduce (after the gradient itself)
CARRIED = ("loss_sum", "total_weight", "rows", "nonfinite", "interrupted", "terminated")


def reduced_gradient(objective, n_params: int, ws, rng, comm, signalled: str) -> tuple[float, float, float, str]:
    """This rank's part of the batch, summed over every rank by one in-place allreduce
    of ``objective.buffer`` (the gradient, then :data:`CARRIED`): (J, squared gradient
    norm, rows, the signal any rank received or ""). Every rank gets the same numbers.
    J is inf and the norm NaN when any rank's loss was not finite."""
    loss_sum, weight, _ = objective.sum_and_grad(objective.net.theta, ws, rng)
    carried = objective.buffer[n_params:]
    carried[:] = (loss_sum if math.isfinite(loss_sum) else 0.0, weight, ws.n, not math.isfinite(loss_sum),
                  signalled == "interrupted", signalled == "terminated")
    comm.allreduce(objective.buffer)
    loss_sum, weight, rows, nonfinite, interrupted, terminated = (float(v) for v in carried)
    cause = "terminated" if terminated else "interrupted" if interrupted else ""
    if nonfinite:
        return math.inf, math.nan, rows, cause
    J = objective.finish(loss_sum, weight)
    grad = objective.grad
    return J, float(np.dot(grad, grad)), rows, cause


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
