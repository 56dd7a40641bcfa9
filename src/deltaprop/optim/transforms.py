"""What happens to the gradient between backpropagation and the update, and to the weights after it.

A training step is a pipeline (``DESIGN.md``): the gradient of J, with its L2 penalty
(part of J itself, so :class:`~deltaprop.core.objective.Objective` adds it), passes through
an ordered list of **transforms**, then the optimizer takes its step, then the
**constraints** act on the weights:

    grad J  ->  allreduce (data-parallel)  ->  clipping  ->  optimizer  ->  max-norm

Each transform says whether a step with it may be fused (``fusable``): each layer updated
as soon as backpropagation is done with it, before the whole gradient exists. Clipping
may not (it needs the whole gradient's norm first), nor may an allreduce (it needs every
rank's gradient); the objective/optimizer pair fuses the step only when every transform
allows it (:meth:`~deltaprop.core.objective.Objective.step`). A transform marked
``summed`` acts on the batch's summed gradient, before the division by the batch's weight
and the penalty: the allreduce (:class:`~deltaprop.training.parallel.AllReduce`), which
adds the ranks' parts. The others act on the finished gradient, in place.
"""

from __future__ import annotations

import math

import numpy as np

from ..validation import check_float

Array = np.ndarray


class ClipNorm:
    """Gradient-norm clipping: ``grad <- grad * c / ||grad||`` when ``||grad|| > c``.

    Parameters
    ----------
    max_norm : float
        The largest norm a step's gradient keeps (c > 0).
    """

    fusable = False  # the norm is the whole gradient's
    summed = False

    def __init__(self, max_norm: float):
        self.max_norm = check_float("clip_norm", max_norm, 0.0, strict=True)

    def __call__(self, grad: Array, sq_norm: float) -> None:
        """Rescale ``grad`` in place, given its squared norm."""
        if sq_norm > self.max_norm ** 2:
            grad *= self.max_norm / math.sqrt(sq_norm)


class MaxNorm:
    """The max-norm constraint, after every step: each unit's incoming weight vector (a
    column of ``W[l][:-1]``, the bias row excluded) rescaled to a norm of at most ``c``.

    Parameters
    ----------
    net : Network
        Its weights are constrained in place; the column norms have buffers of their own,
        allocated once.
    max_norm : float
        c > 0.
    """

    def __init__(self, net, max_norm: float):
        self.max_norm = check_float("max_norm", max_norm, 0.0, strict=True)
        self.weight_rows = net.weight_rows()
        self.xp = net.backend.xp
        self._norms = [net.backend.empty(W.shape[1], net.dtype) for W in self.weight_rows]

    def __call__(self) -> None:
        xp = self.xp
        for W, norms in zip(self.weight_rows, self._norms):
            xp.einsum("ij,ij->j", W, W, out=norms)
            xp.sqrt(norms, out=norms)
            xp.maximum(norms, self.max_norm, out=norms)
            xp.divide(self.max_norm, norms, out=norms)
            W *= norms
