"""The two passes of backpropagation, on buffers the caller owns.

Layers are indexed as in the lecture, l = 1..L; slot 0 of ``z`` and ``delta`` is
unused and ``h[0]`` is the input. Rows are samples (NOTATION.md):

- forward, eq. (3):  ``z[l] = h[l-1] @ W[l]``,  ``h[l] = [phi(z[l]), 1]``;
- output delta, eqs. (7)-(8): the likelihood writes ``delta[L] = grad_o J (.) o'``
  (``o - y`` for the canonical pairs);
- weight gradient, eq. (9), summed over the batch: ``G[l] = h[l-1].T @ delta[l]``,
  whose last row is the bias gradient of eq. (12);
- hidden layers (part 2 of the lecture, the same chain rule one layer down):
  ``delta[l-1] = phi'(z[l-1]) (.) (delta[l] @ W[l][:-1].T)``.

An ensemble of k networks trained together (``net.members = k``) is one network whose
members lie side by side in the columns of every buffer and every ``W[l]``: member m's
units are columns ``m D_l .. (m+1) D_l``. Layer 1 reads the shared inputs, so its k
products are one product; from layer 2 on, each member reads only its own units, and
the k products are one batched product over strided views (no copies). The output
z[L] of shape (B, k D_L) is read by the likelihood as (B k, D_L): every member's rows
against the same targets, J the mean over the members of their own J.

Sparse inputs (a SciPy CSR matrix of the batch's rows in ``ws.Xs``, TF-IDF features
say) are never densified: layer 1's two products read them with the bias row apart,
``z[1] = Xs @ W[1][:-1] + W[1][-1]`` and ``G[1][:-1] = Xs.T @ delta[1]``.

These functions know nothing of learning rates, optimizers or penalties; they read
the network's ``W[l]`` and write only into the :class:`Workspace` and the
gradient views they are given, and allocate nothing. The element-wise work between
the products is done by the workspace's :class:`~deltaprop.core.kernels.Ops`
(NumPy, or fused Numba kernels). Whoever holds a workspace
(an inference call, lent one by a :class:`WorkspacePool`; an
:class:`~deltaprop.core.objective.Objective`) is the only one using it, which is
what makes inference thread-safe.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Sequence

import numpy as np

from .backend import NUMPY, Backend, namespace
from .kernels import Ops, make_ops

Array = np.ndarray


class Workspace:
    """Every array one forward and backward pass needs, for batches of up to B rows.

    ``h[l]`` has shape (B, D_l + 1) with its last column set to 1 here, once;
    ``a[l]`` is its view without that column, where phi(z[l]) is written. ``z[l]``,
    ``delta[l]`` and ``dphi[l]`` (phi'(z[l])) have shape (B, D_l). ``o``, ``targets`` (the
    batch's encoded targets) and ``work`` have shape (B, D_L); ``nll`` (B, 1) holds each
    row's -log p(y|x) and ``weights`` (B,) its sample weight. Every one of these lives on
    the workspace's ``backend`` (:mod:`deltaprop.core.backend`), which allocates them.

    ``X``, ``T`` and ``w`` are where a batch is loaded, on the host: a data source writes
    them, then :meth:`upload` makes them the passes' inputs. On the NumPy backend they
    are the passes' own buffers (``X = a[0]``, ``T = targets``, ``w = weights``) and
    loading copies nothing. ``n`` is the number of rows of the batch now loaded (0 when
    none is); ``total_weight`` is its number of rows, or the sum of its weights, as
    :func:`output_delta` last found it. ``ops``
    (:class:`~deltaprop.core.kernels.Ops`) does the element-wise work of the passes;
    if None, the first pass sets the default path's for its network. ``Xs``, when not
    None, is the batch's inputs as a sparse CSR matrix of ``n`` rows, read by layer 1
    instead of ``h[0]``: a workspace made for sparse inputs (``sparse=True``) has no
    room for dense ones (``h[0]`` is its column of ones alone). ``Xd``, when not None, is
    the batch's dense inputs where the caller holds them (C-contiguous rows of the
    network's dtype), read by layer 1 with the bias row apart instead of being copied
    into ``h[0]`` first: what inference does. Both are for the NumPy backend.
    """

    def __init__(self, sizes: Sequence[int], B: int, dtype, ops: Ops | None = None, sparse: bool = False,
                 members: int = 1, backend: Backend | None = None):
        L, k = len(sizes) - 1, members
        be = self.backend = backend if backend is not None else (ops.backend if ops is not None else NUMPY)
        if sparse and not be.host:
            raise ValueError(f"backend: sparse inputs are read on the numpy backend only, not on {be.name!r}")
        width = [sizes[0]] + [k * d for d in sizes[1:]]  # an ensemble's members side by side
        self.B, self.ops, self.sparse, self.members = B, ops, sparse, k
        self.h = [be.ones((B, 1 if l == 0 and sparse else width[l] + 1), dtype) for l in range(L)]
        self.a = [self.h[l][:, :-1] for l in range(L)]
        self.z = [None] + [be.empty((B, width[l]), dtype) for l in range(1, L + 1)]
        self.delta = [None] + [be.empty((B, width[l]), dtype) for l in range(1, L + 1)]
        self.dphi = [None] + [be.empty((B, width[l]), dtype) for l in range(1, L)]
        self.o = be.empty((B, width[L]), dtype)
        self.targets = be.empty((B, sizes[L]), dtype)
        self.work = be.empty((B, width[L]), dtype)
        self.nll = be.empty((B * k, 1), dtype)
        # an ensemble's targets, once per member, and the members' mean output
        self.Tk = be.empty((B, width[L]), dtype) if k > 1 else None
        self.mean_o = be.empty((B, sizes[L]), dtype) if k > 1 else None
        self.weights = be.empty(B, dtype)
        # an ensemble's rows may weigh differently for each member (cross-fitting): (B, k)
        self.member_weights = be.empty((B, k), dtype) if k > 1 else None
        if be.host:
            self.X, self.T, self.w, self.mw = self.a[0], self.targets, self.weights, self.member_weights
        else:  # the batch is loaded on the host, then uploaded
            self.X = np.empty((B, sizes[0]), dtype)
            self.T, self.w = np.empty((B, sizes[L]), dtype), np.empty(B, dtype)
            self.mw = np.empty((B, k), dtype) if k > 1 else None
        self.weighted = False
        self.per_member = False
        self.n = 0
        self.total_weight = 0.0
        self.Xs = None
        self.Xd = None
        self.member_views: dict = {}  # an ensemble's batched views, by pass, layer and rows (engine._members)

    def upload(self, b: int, inputs: bool = True, targets: bool = True) -> None:
        """Make the first b loaded rows (``X``, and ``T`` and ``w``) the passes' inputs: a
        copy to the backend's buffers, nothing on the NumPy backend."""
        be = self.backend
        if be.host:
            return
        if inputs:
            be.upload(self.a[0][:b], self.X[:b])
        if targets:
            be.upload(self.targets[:b], self.T[:b])
            if self.per_member:
                be.upload(self.member_weights[:b], self.mw[:b])
            elif self.weighted:
                be.upload(self.weights[:b], self.w[:b])


class WorkspacePool:
    """Workspaces of B rows, each lent to one caller at a time.

    Concurrent callers (threads, or a nested call) never share a buffer; once a
    workspace has been returned, the next caller reuses it instead of allocating.
    At most ``keep`` idle workspaces are kept. ``ops`` is an
    :class:`~deltaprop.core.kernels.Ops`, or a function that makes one, called at the
    first loan (so that building a network compiles or imports nothing). ``backend``: where
    the buffers live (:mod:`deltaprop.core.backend`; NumPy's by default).
    """

    def __init__(self, sizes: Sequence[int], B: int, dtype, ops=None, keep: int = 4, sparse: bool = False,
                 members: int = 1, backend: Backend | None = None):
        self.sizes, self.B, self.dtype, self.keep, self.sparse = list(sizes), B, dtype, keep, sparse
        self.members, self.backend = members, backend
        self._ops = ops
        self._idle: list[Workspace] = []
        self._lock = threading.Lock()

    @contextmanager
    def lend(self):
        with self._lock:
            ws = self._idle.pop() if self._idle else None
        if ws is None:
            if callable(self._ops):
                self._ops = self._ops()
            ws = Workspace(self.sizes, self.B, self.dtype, self._ops, self.sparse, self.members, self.backend)
        try:
            yield ws
        finally:
            with self._lock:
                if len(self._idle) < self.keep:
                    self._idle.append(ws)


def _ops(net, ws: Workspace) -> Ops:
    if ws.ops is None:
        ws.ops = make_ops(net, ws.backend)
    return ws.ops


def forward(net, ws: Workspace, b: int, masks=None) -> None:
    """Eq. (3) on the first b rows of ``ws.h[0]``: fills ``z[l]`` and ``h[l]``.

    With dropout ``masks`` (training only; ``masks[l]`` of shape (B, D_l) holds 0 or
    1/keep), ``h[l] *= mask[l]`` on hidden layers, and ``dphi[l]`` is taken here,
    before masking, with the mask folded in, so that :func:`backward` finds it ready.
    """
    L, phi, xp = net.n_layers, _ops(net, ws).phi, ws.backend.xp
    for l in range(1, L + 1):
        z = ws.z[l][:b]
        if l == 1 and (ws.Xs is not None or ws.Xd is not None):  # inputs read where they are, bias apart
            if ws.Xs is not None:  # sparse: SciPy's product makes its own array
                np.copyto(z, ws.Xs @ net.W[1][:-1])
            else:  # inference: the caller's dense rows
                np.matmul(ws.Xd, net.W[1][:-1], out=z)
            z += net.W[1][-1]
        elif l > 1 and net.members > 1:  # each member's own units: one batched product
            a, W, out = _members(net, ws, ("forward", l, b), net.W[l], ws.a[l - 1][:b], net.W[l][:-1], z)
            xp.matmul(a, W, out=out)
            z += net.W[l][-1]
        else:
            xp.matmul(ws.h[l - 1][:b], net.W[l], out=z)
        if l < L:
            a = ws.a[l][:b]
            phi[l](z, a)
            if masks is not None:
                mask = masks[l][:b]
                dphi = ws.dphi[l][:b]
                net.activations[l].derivative(z, a, dphi, ws.delta[l][:b])
                dphi *= mask
                a *= mask


def output_delta(net, ws: Workspace, b: int, scale: float = 1.0, mean: bool = True, targets=None) -> float:
    """Eqs. (7)-(8) on the first b rows against ``targets`` (``ws.targets`` by default, the
    loaded batch's): writes ``o``, ``nll`` and ``delta[L]``; returns J.

    J is the mean over the rows of -log p(y|x), or with ``ws.weighted`` the weighted
    mean sum_i w_i nll_i / sum_i w_i. ``delta[L]`` is the gradient of ``scale * J``
    with respect to ``z[L]``: each row scaled by 1/b (or w_i / sum w), once, so every
    gradient below inherits it; ``scale`` lets an optimizer ask for a multiple of the
    gradient at the cost of scaling this small array instead of every weight.
    With ``mean=False``, J is the (weighted) sum, eq. (1) itself, and ``delta[L]`` its
    gradient: a part of a batch whose total is only known later (data-parallel training).
    J is a float on the NumPy backend; elsewhere it stays on the device until the step's
    one transfer (:meth:`~deltaprop.core.backend.Backend.scalars`).
    """
    L, ops, k, be = net.n_layers, _ops(net, ws), net.members, ws.backend
    xp = be.xp
    z, o, delta, work, nll = ws.z[L][:b], ws.o[:b], ws.delta[L][:b], ws.work[:b], ws.nll[:b * k]
    T = (ws.targets if targets is None else targets)[:b]
    if k > 1:  # an ensemble: each member's rows against the same targets, J their mean
        K = net.sizes[L]
        Tk = ws.Tk[:b]
        xp.copyto(xp.reshape(Tk, (b, k, K)), T[:, None, :])
        z, T, o, work = (xp.reshape(v, (b * k, K)) for v in (z, Tk, o, work))
    if not ws.weighted:
        ws.total_weight = float(b)
        total = ops.loss_and_delta(z, T, o, xp.reshape(delta, z.shape), work, nll,
                                   scale / (b * k) if mean else scale / k) / k
        return total / b if mean else total
    ops.loss_and_delta(z, T, o, xp.reshape(delta, z.shape), work, nll, 1.0)
    if ws.per_member:
        return _member_weighted(ws, b, k, delta, scale, mean)
    w = ws.weights[:b]
    # the total weight from the loaded weights, on the host: no transfer from the device
    ws.total_weight = total_w = float(np.add.reduce(ws.w[:b]))
    divisor = (total_w if mean else 1.0) * k
    col = ws.work[:b, :1]  # (its first column: the per-member scratch above is done with)
    xp.multiply(w[:, None], scale / divisor, out=col)
    delta *= col
    if k == 1:
        return be.deferred(xp.dot(w, nll[:, 0])) / divisor
    return be.deferred(xp.dot(w, xp.sum(xp.reshape(nll, (b, k)), axis=1))) / divisor


def _member_weighted(ws: Workspace, b: int, k: int, delta: Array, scale: float, mean: bool):
    """:func:`output_delta`'s weighting when each member of an ensemble has weights of its own
    (``ws.member_weights``, (b, k)): J is the mean over the members of each member's weighted
    mean (or with ``mean=False`` of its weighted sum), so member m's rows are scaled by
    w_im / (k sum_i w_im). A member whose rows in the batch all weigh 0 learns nothing from it.
    ``ws.total_weight`` is the members' mean total weight."""
    xp, be = ws.backend.xp, ws.backend
    W = ws.member_weights[:b]
    totals = np.add.reduce(ws.mw[:b], axis=0, dtype=np.float64)  # on the host: no transfer
    ws.total_weight = float(totals.mean())
    divisors = (np.where(totals > 0, totals, 1.0) if mean else np.ones(k)) * k
    factor = xp.reshape(ws.work[:b], (b, k, -1))[:, :, 0]  # (scratch: the loss is done with it)
    # k numbers a batch, made on the host; moved (in NumPy's name of the dtype) only off it
    scales, inverse = (scale / divisors).astype(ws.mw.dtype), (1.0 / divisors).astype(ws.mw.dtype)
    if not be.host:
        scales, inverse = be.from_host(scales), be.from_host(inverse)
    xp.multiply(W, scales, out=factor)
    delta = xp.reshape(delta, (b, k, -1))  # (member m's outputs: columns m K .. (m + 1) K)
    delta *= factor[:, :, None]
    xp.multiply(W, xp.reshape(ws.nll[:b * k], (b, k)), out=factor)
    return be.deferred(xp.dot(xp.add.reduce(factor, axis=0), inverse))  # the members' weighted sums, scaled


def mean_output(net, ws: Workspace, b: int) -> Array:
    """The output o of the first b rows after :func:`output_delta`: an ensemble's members
    averaged (class probabilities, means or rates), a view of the workspace."""
    k, xp = net.members, ws.backend.xp
    if k == 1:
        return ws.o[:b]
    out = ws.mean_o[:b]
    xp.mean(xp.reshape(ws.o[:b], (b, k, -1)), axis=1, out=out)
    return out


def _members(net, ws: Workspace, key: tuple, owner, a: Array, W: Array, out: Array) -> tuple[Array, Array, Array]:
    """(k, rows, D) views of an ensemble's inputs ``a``, weights ``W`` and products ``out``
    (members side by side in their columns), for one batched product over the members.

    Made once per ``key`` (the pass, the layer, the rows) and kept in the workspace: every
    step would otherwise spend more time making them than a small table's products take.
    ``owner`` is the array the views not of the workspace's own buffers come from (a ``W[l]``
    or a gradient's ``G[l]``): other weights (a copied network) make them anew."""
    hit = ws.member_views.get(key)
    if hit is not None and hit[0] is owner:
        return hit[1]
    k, xp = net.members, namespace(a)
    views = tuple(xp.transpose(xp.reshape(v, (v.shape[0], k, -1)), (1, 0, 2)) for v in (a, W, out))
    if len(ws.member_views) >= 64:  # (inference meets any number of rows: a few sizes are kept)
        ws.member_views.clear()
    ws.member_views[key] = (owner, views)
    return views


def backward(net, ws: Workspace, b: int, G: Sequence, dphi_ready: bool = False, after_layer=None) -> None:
    """From ``delta[L]`` down: every ``G[l]`` (eq. (9)) and ``delta[l-1]``.

    ``dphi_ready`` says that :func:`forward` already wrote phi' (under dropout).
    ``after_layer(l)``, if given, is called once ``G[l]`` is complete and ``W[l]`` is
    no longer needed by the pass, so that layer l can be updated while it is still
    in cache.
    """
    backprop, xp = _ops(net, ws).backprop, ws.backend.xp
    for l in range(net.n_layers, 0, -1):
        # eq. (9): grad W = h delta^T, summed over the batch; its last row is eq. (12)
        if l == 1 and ws.Xs is not None:  # sparse inputs: the weight rows, then the bias row
            np.copyto(G[1][:-1], ws.Xs.T @ ws.delta[1][:b])
            np.add.reduce(ws.delta[1][:b], axis=0, out=G[1][-1])
        elif l > 1 and net.members > 1:  # each member's h^T delta, batched; the bias row apart
            a, d, g = _members(net, ws, ("gradient", l, b), G[l], ws.a[l - 1][:b], ws.delta[l][:b], G[l][:-1])
            xp.matmul(xp.transpose(a, (0, 2, 1)), d, out=g)
            xp.add.reduce(ws.delta[l][:b], axis=0, out=G[l][-1])
        else:
            xp.matmul(ws.h[l - 1][:b].T, ws.delta[l][:b], out=G[l])
        if l > 1:
            below = ws.delta[l - 1][:b]
            z, a, dphi = ws.z[l - 1][:b], ws.a[l - 1][:b], ws.dphi[l - 1][:b]
            fused = backprop[l - 1] if not dphi_ready else None
            if fused is None and not dphi_ready:  # (below is free scratch until the product)
                net.activations[l - 1].derivative(z, a, dphi, below)
            # hidden-layer recursion: delta[l-1] = phi'(z[l-1]) * (delta[l] W[l][:-1]^T)
            if net.members > 1:  # each member's delta times its own W^T
                d, W, out = _members(net, ws, ("delta", l, b), net.W[l], ws.delta[l][:b], net.W[l][:-1], below)
                xp.matmul(d, xp.transpose(W, (0, 2, 1)), out=out)
            else:
                xp.matmul(ws.delta[l][:b], net.W[l][:-1].T, out=below)
            if fused is None:
                below *= dphi
            else:
                fused(z, a, below)  # the product by phi' in one pass
        if after_layer is not None:
            after_layer(l)


def views(flat: Array, shapes) -> list:
    """``[None, W[1], ..., W[L]]``: reshaped views of consecutive pieces of ``flat``."""
    out, start, xp = [None], 0, namespace(flat)
    for r, c in shapes:
        out.append(xp.reshape(flat[start:start + r * c], (r, c)))
        start += r * c
    return out
