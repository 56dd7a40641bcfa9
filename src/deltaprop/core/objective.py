"""The training criterion J(theta) and its gradient, as one flat vector.

**The criterion.** For a batch of B rows,

    J = (1/B) sum_i -log p(y_i|x_i)  +  (l2/2 + alpha/(2B)) sum_l ||W[l][:-1]||^2

the lecture's eq. (1) divided by B (so that a learning rate means the same thing
for any batch size), plus an L2 penalty that never touches the bias rows. With
sample weights w_i the first term is the weighted mean sum_i w_i nll_i / sum_i w_i,
and B in the penalty is sum_i w_i. ``l2`` is the penalty per step whatever the
batch; ``alpha`` is scikit-learn's: (alpha/2) ||W||^2 added to eq. (1)'s sum
before the division by B, so its weight shrinks as batches grow.
The value returned, and the training loss that :class:`~deltaprop.History`
records, **include the penalty** (as scikit-learn's ``loss_`` does); validation
losses and :meth:`Network.loss` are the data term alone. This is the only place
where J is defined; the 1/B (or w_i / sum w) is applied once, to ``delta[L]``.

:meth:`Objective.value_and_grad` is the general route: the finished gradient in
one flat array, ready for clipping, an allreduce, L-BFGS or a gradient check.
:meth:`Objective.value_and_step` is the same arithmetic fused with an optimizer:
each layer is updated as soon as backpropagation is done with it (while its
weights and gradient are still in cache), and plain SGD gets ``-mu grad J`` from
the backward pass for the price of scaling ``delta[L]``. Neither allocates for a
batch size it has seen before.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from ..validation import check_fraction, is_sparse
from .engine import Workspace, backward, forward, output_delta, views
from .kernels import make_ops

Array = np.ndarray


class Step(NamedTuple):
    """What one step of :meth:`Objective.step` measured."""

    J: float
    """J at the weights before the step, the penalty included (every rank's batch when an
    allreduce summed them)."""
    sq_norm: float
    """||grad J||^2 before the transforms (NaN when the step was fused and not asked for it)."""
    rows: float
    """The batch's rows (over every rank)."""
    finite: bool
    """False when J or the measured norm is not finite: then nothing was updated, except by a
    fused step whose gradient alone overflowed (the caller restores its weights)."""


class Objective:
    """J(theta) = mean (or weighted mean) NLL + l2/2 ||weights||^2 for one network.

    Parameters
    ----------
    net : Network
        Its ``theta`` is the point where J is evaluated; the objective owns the
        buffers and the gradient, the network owns nothing but its parameters.
    l2 : float
        The L2 penalty lambda (bias rows excluded).
    dropout : float
        Inverted-dropout rate on the hidden layers, applied only when an ``rng`` is
        passed (training); without one, J is the deterministic criterion.
    alpha : float
        The L2 penalty as scikit-learn scales it: ``alpha / B`` added to ``l2`` for a
        batch of B rows (or of total sample weight B).
    carry : int
        Extra slots after the gradient in :attr:`buffer`, for numbers that must travel
        with it (the loss and flags of data-parallel training).
    kernels : {"numpy", "numba"}, optional
        Who does the element-wise work (:mod:`deltaprop.core.kernels`); by default
        Numba's fused kernels when Numba is installed, else NumPy.
    label_smoothing : float
        Train on targets moved this far towards the uniform distribution over the
        classes (:meth:`~deltaprop.core.likelihoods.Likelihood.smooth_targets`): eq. (1)
        with ``(1 - s) T + s / K``. Categorical and Bernoulli outputs only.

    Attributes
    ----------
    grad : ndarray of shape (n_params,)
        The gradient of the last evaluation (overwritten by the next one).
    G : list of ndarray
        ``G[l]``, views of ``grad`` shaped like ``W[l]`` (slot 0 None).
    buffer : ndarray of shape (n_params + carry,)
        ``grad`` followed by the ``carry`` slots.
    ops : Ops
        The element-wise steps of the passes, on the chosen path.
    """

    def __init__(self, net, l2: float = 0.0, dropout: float = 0.0, alpha: float = 0.0, carry: int = 0,
                 kernels: str | None = None, label_smoothing: float = 0.0):
        self.net = net
        self.label_smoothing = check_fraction("label_smoothing", label_smoothing, closed_low=True)
        if self.label_smoothing and net.likelihood.uniform_target(net.sizes[-1]) is None:
            raise ValueError(f"label_smoothing: the {net.likelihood.name} likelihood has no classes to smooth; "
                             "it is for categorical and bernoulli outputs")
        self.backend = be = net.backend
        self.ops = make_ops(net, be, kernels)
        self.l2 = float(l2)
        self.alpha = float(alpha)
        self.dropout = float(dropout)
        # the gradient, then ``carry`` numbers that travel with it (one allreduce for all)
        self.buffer = be.zeros(net.n_params + int(carry), net.dtype)
        self.grad = self.buffer[:net.n_params]
        self.G = views(self.grad, net.shapes)
        self._workspaces: dict[tuple[int, bool], Workspace] = {}
        penalized = self.l2 > 0 or self.alpha > 0
        self._l2_work = [be.xp.empty_like(W) for W in net.weight_rows()] if penalized else None
        self._lam = self.l2  # the penalty of the batch being evaluated

    # -- buffers -----------------------------------------------------------------
    def workspace(self, B: int, sparse: bool = False) -> Workspace:
        """This objective's buffers for batches of up to B rows (allocated once), for
        dense inputs or, with ``sparse``, sparse ones (``ws.Xs``).

        A data source may fill ``ws.X``, ``ws.T`` (and ``ws.w``, ``ws.weighted``), set
        ``ws.n`` and :meth:`~deltaprop.core.engine.Workspace.upload` them; the workspace is
        then a batch for the two methods below.
        """
        ws = self._workspaces.get((B, sparse))
        if ws is None:
            net = self.net
            ws = Workspace(net.sizes, B, net.dtype, self.ops, sparse, net.members, self.backend)
            ws.masks = None
            # label smoothing writes the smoothed targets here, never over the loaded ones (a
            # batch loaded once, the whole set in one batch, is evaluated many times)
            ws.smoothed = self.backend.empty((B, net.sizes[-1]), net.dtype) if self.label_smoothing else None
            if self.dropout > 0 and net.n_layers > 1:
                ws.masks = [None] + [self.backend.xp.empty_like(ws.z[l]) for l in range(1, net.n_layers)]
            while len(self._workspaces) >= 4:  # a few sizes at most (e.g. train, short batch, check)
                self._workspaces.pop(next(iter(self._workspaces)))
            self._workspaces[B, sparse] = ws
        return ws

    def _load(self, batch) -> tuple[Workspace, int]:
        if isinstance(batch, Workspace):  # filled by a data source (which uploaded it)
            return batch, batch.n
        X, T, *w = batch
        b, K = X.shape[0], self.net.sizes[-1]
        if np.shape(T) != (b, K):
            raise ValueError(f"batch: expected targets of shape ({b}, {K}) as Network.encode_targets "
                             f"gives them, found {np.shape(T)}")
        sparse = is_sparse(X)
        ws = self.workspace(b, sparse)
        if sparse:  # read by layer 1 as it is (engine)
            ws.Xs = X
        else:
            ws.Xs = None
            ws.X[:b] = X
        ws.T[:b] = T
        ws.weighted = bool(w) and w[0] is not None
        ws.per_member = ws.weighted and np.ndim(w[0]) == 2  # (an ensemble's weights, a column a member)
        if ws.weighted:
            (ws.mw if ws.per_member else ws.w)[:b] = w[0]
        ws.n = b
        ws.upload(b, inputs=not sparse)
        return ws, b

    def _targets(self, ws: Workspace, b: int) -> Array:
        """The batch's targets for J: the loaded ones, or with label smoothing a smoothed copy
        of them (``ws.smoothed``)."""
        if not self.label_smoothing:
            return ws.targets
        smoothed = ws.smoothed[:b]
        self.backend.xp.copyto(smoothed, ws.targets[:b])
        self.net.likelihood.smooth_targets(smoothed, self.label_smoothing)
        return ws.smoothed

    def _forward(self, ws: Workspace, b: int, rng) -> bool:
        """Eq. (3), with fresh dropout masks when training; True when phi' is ready."""
        masks = ws.masks if rng is not None else None
        if masks is not None:
            keep, be = 1.0 - self.dropout, self.backend
            for mask in masks[1:]:
                m = mask[:b]
                be.random(rng, m)
                be.xp.less(m, keep, out=m)  # inverted dropout: keep with probability 1 - p ...
                m *= 1.0 / keep  # ... and scale, so that prediction needs no rescaling
        forward(self.net, ws, b, masks)
        return masks is not None

    def _set_penalty(self, total_weight: float) -> None:
        """The penalty lambda of this batch: l2, plus alpha over its rows (or weights), as
        :func:`~deltaprop.core.engine.output_delta` counted them."""
        if self.alpha > 0:
            self._lam = self.l2 + self.alpha / total_weight

    def _penalize(self, l: int, scale: float) -> float:
        """Add ``scale * lambda * W[l]`` to the weight rows of ``G[l]``; return lambda/2 ||W[l][:-1]||^2
        (:meth:`~deltaprop.core.backend.Backend.deferred`)."""
        if self._l2_work is None:
            return 0.0
        be = self.backend
        W = self.net.W[l][:-1]
        work = self._l2_work[l - 1]
        be.xp.multiply(W, scale * self._lam, out=work)
        self.G[l][:-1] += work
        return 0.5 * self._lam * self._sq_norm(W)

    def _sq_norm(self, a: Array) -> float:
        """||a||^2, deferred until the step's transfer."""
        xp = self.backend.xp
        flat = xp.reshape(a, (-1,))
        return self.backend.deferred(xp.dot(flat, flat))

    # -- the two routes -------------------------------------------------------------
    def value(self, theta: Array, batch) -> float:
        """J at ``theta`` on one batch (no dropout), without the backward pass."""
        self._set_theta(theta)
        ws, b = self._load(batch)
        forward(self.net, ws, b)
        J = output_delta(self.net, ws, b, targets=self._targets(ws, b))
        self._set_penalty(ws.total_weight)
        if self._l2_work is not None:
            J += sum(0.5 * self._lam * self._sq_norm(W) for W in self.net.weight_rows())
        return self.backend.scalars(J)[0]

    def _set_theta(self, theta: Array) -> None:
        """Evaluate at ``theta``: host values or the backend's own array."""
        if theta is self.net.theta:
            return
        if isinstance(theta, np.ndarray):
            self.backend.upload(self.net.theta, theta)
        else:
            self.backend.xp.copyto(self.net.theta, theta)

    def value_and_grad(self, theta: Array, batch, rng: np.random.Generator | None = None) -> tuple[float, Array]:
        """J and its gradient at ``theta`` on one batch.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            Copied into the network's parameters unless it is ``net.theta`` itself.
        batch : (X, T) or (X, T, w), or a filled :meth:`workspace`
            Inputs (checked, as :meth:`Network.check_X` returns them), encoded targets
            (:meth:`Network.encode_targets`) and optional sample weights: (b,), or for an
            ensemble (b, members), each member's own (:func:`~deltaprop.core.engine.output_delta`).
        rng : numpy Generator, optional
            Draws the dropout masks (training only).

        Returns
        -------
        J : float
            Including the L2 penalty.
        grad : ndarray of shape (n_params,)
            This objective's own buffer: copy it to keep it past the next call.
        """
        J = self._value_and_grad(theta, batch, rng)
        return self.backend.scalars(J)[0], self.grad

    def _value_and_grad(self, theta: Array, batch, rng) -> float:
        """:meth:`value_and_grad`'s J, :meth:`~deltaprop.core.backend.Backend.deferred`."""
        self._set_theta(theta)
        ws, b = self._load(batch)
        dphi_ready = self._forward(ws, b, rng)
        J = output_delta(self.net, ws, b, targets=self._targets(ws, b))
        self._set_penalty(ws.total_weight)
        backward(self.net, ws, b, self.G, dphi_ready)
        for l in range(1, self.net.n_layers + 1):
            J += self._penalize(l, 1.0)
        return J

    def sum_and_grad(self, theta: Array, batch, rng: np.random.Generator | None = None) -> tuple[float, float, Array]:
        """The data term of J summed over one part of a batch (eq. (1), weighted), and its gradient.

        Data-parallel training splits a batch over processes: each evaluates its part
        with this, the parts' sums are added (an allreduce of :attr:`grad`), and
        :meth:`finish` divides by the batch's total weight and adds the penalty. A part
        may be empty (no rows: zero sum, zero gradient).

        Returns
        -------
        loss_sum : float
            sum_i w_i (-log p(y_i|x_i)) over the part's rows (w_i = 1 without weights).
        total_weight : float
            The part's rows, or the sum of its weights.
        grad : ndarray of shape (n_params,)
            This objective's own buffer, holding the gradient of ``loss_sum``.
        """
        self._set_theta(theta)
        ws, b = self._load(batch)
        dphi_ready = self._forward(ws, b, rng)
        loss_sum = output_delta(self.net, ws, b, mean=False, targets=self._targets(ws, b))
        backward(self.net, ws, b, self.G, dphi_ready)
        return self.backend.scalars(loss_sum)[0], ws.total_weight, self.grad

    def finish(self, loss_sum: float, total_weight: float) -> float:
        """Turn the summed gradient in :attr:`grad` into the gradient of J for a batch of
        ``total_weight`` rows (or weight): divide, add the penalty; return J."""
        self.grad *= 1.0 / total_weight
        self._set_penalty(total_weight)
        J = loss_sum / total_weight
        for l in range(1, self.net.n_layers + 1):
            J += self._penalize(l, 1.0)
        return self.backend.scalars(J)[0]

    def value_and_step(self, batch, optimizer, state, rng: np.random.Generator | None = None,
                       norm: bool = False) -> tuple[float, float]:
        """One step of ``optimizer`` on J at the network's ``theta``, fused with backpropagation.

        The same update as ``optimizer.step(theta, value_and_grad(theta, batch)[1], state)``,
        layer by layer. Nothing is updated when J is not finite: the caller sees J and
        can stop with the weights as they were.

        Returns
        -------
        J : float
            Including the L2 penalty, at the weights before the step.
        grad_norm_sq : float
            ||grad J||^2 when ``norm`` (one more pass over the gradient), else NaN.

        Off the host, J's data term comes to the host before the update (whether to take
        the step depends on it), and the penalty and norm after it, in one more transfer
        when there are any.
        """
        net, be = self.net, self.backend
        ws, b = self._load(batch)
        dphi_ready = self._forward(ws, b, rng)
        scale = optimizer.prescale(state)
        J = be.scalars(output_delta(net, ws, b, scale, targets=self._targets(ws, b)))[0]
        if not math.isfinite(J):
            return J, math.nan
        optimizer.begin_step(state)
        self._set_penalty(ws.total_weight)
        self._step = (optimizer, state, scale, norm)
        self._penalty = self._g2 = 0.0
        backward(net, ws, b, self.G, dphi_ready, self._update_layer)
        if self._l2_work is not None or norm:
            penalty, g2 = be.scalars(self._penalty, self._g2)
            return J + penalty, (g2 / (scale * scale) if norm else math.nan)
        return J, math.nan

    def step(self, batch, optimizer, state, transforms: Sequence = (), rng: np.random.Generator | None = None,
             norm: bool = False) -> Step:
        """One step of ``optimizer`` on J at the network's ``theta``, through ``transforms``.

        The step is fused (:meth:`value_and_step`, each layer updated during backpropagation)
        when every transform allows it; otherwise the whole gradient is finished first
        (:meth:`value_and_grad`, or :meth:`sum_and_grad` and :meth:`finish` around the
        ``summed`` transforms, the allreduce), its squared norm is measured, and the
        transforms act on it in order (:mod:`deltaprop.optim.transforms`) before the
        update. Nothing is updated when J or the norm is not finite.

        Parameters
        ----------
        batch : (X, T) or (X, T, w), or a filled :meth:`workspace`
            As for :meth:`value_and_grad`.
        optimizer : Optimizer
            Takes the step.
        state : OptimizerState
            The optimizer's state, updated in place.
        transforms : sequence
            The gradient's transforms, in order (each with ``fusable`` and ``summed``).
        rng : numpy Generator, optional
            Draws the dropout masks.
        norm : bool
            Measure the gradient's norm in a fused step too (an unfused one always does).

        Returns
        -------
        Step
            J, the squared gradient norm, the batch's rows and whether all was finite.
        """
        ws, b = self._load(batch)
        if all(t.fusable for t in transforms):
            J, g2 = self.value_and_step(ws, optimizer, state, rng, norm)
            return Step(J, g2, float(b), math.isfinite(J) and (math.isfinite(g2) or not norm))
        theta, rows = self.net.theta, float(b)
        summed = [t for t in transforms if t.summed]
        if summed:
            loss_sum, weight, _ = self.sum_and_grad(theta, ws, rng)
            for t in summed:
                loss_sum, weight, rows = t(self.buffer, loss_sum, weight, rows)
            if not math.isfinite(loss_sum):
                return Step(loss_sum, math.nan, rows, False)
            J, g2 = self.finish(loss_sum, weight), self._sq_norm(self.grad)
        else:  # J and ||grad J||^2 come to the host together
            J, g2 = self.backend.scalars(self._value_and_grad(theta, ws, rng), self._sq_norm(self.grad))
        if not (math.isfinite(J) and math.isfinite(g2)):
            return Step(J, g2, rows, False)
        for t in transforms:
            if not t.summed:
                t(self.grad, g2)
        optimizer.step(theta, self.grad, state)
        return Step(J, g2, rows, True)

    def _update_layer(self, l: int) -> None:
        optimizer, state, scale, norm = self._step
        if self._l2_work is not None:
            self._penalty += self._penalize(l, scale)
        if norm:
            self._g2 += self._sq_norm(self.G[l])
        optimizer.update_layer(self.net.theta, self.grad, state, l - 1, scale)
