"""Which code does the element-wise work of training: NumPy (the reference) or fused Numba kernels.

The matrix products of eqs. (3) and (9) always go to the BLAS library. What lies
between them (the activation phi, delta times phi', the likelihood's loss and
delta, the optimizer's update) is element-wise and bound by memory traffic; NumPy
does it one operation, one pass at a time. The ``numba`` path does each in one
fused pass (:mod:`deltaprop.core.fused`), with the same arithmetic: the two
agree to float32 rounding, and a given path and seed give the same bits every time.

``kernels`` is chosen by name wherever a run is set up (``train(kernels=)``,
``Objective(kernels=)``, ``deltaprop train --kernels``); ``None`` means the
environment variable ``DELTAPROP_KERNELS`` if set, else ``numba`` when Numba is
installed (``pip install 'deltaprop[fast]'``) and the run is large enough to gain from
it (:data:`NUMBA_MIN_WORK`), else ``numpy``. Anything without a
fused kernel (a custom activation, a general output likelihood, a custom
optimizer) takes the NumPy route on either path. The fused kernels take NumPy arrays: on
another array backend (:mod:`deltaprop.core.backend`) the reference's arithmetic runs, in
the backend's namespace (:func:`make_ops`).
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache

from ..registry import lookup
from .activations import ACTIVATIONS
from .backend import NUMPY
from .likelihoods import LIKELIHOODS

KERNELS = {"numpy": "NumPy operations, one pass each: the reference",
           "numba": "fused Numba kernels, one pass per step (pip install 'deltaprop[fast]')"}
"""The kernel paths by name: the one list shared by the API, the CLI and the benchmarks."""


@lru_cache(maxsize=1)
def numba_available() -> bool:
    """Whether Numba is installed and imports (checked once; a broken install counts as absent)."""
    if importlib.util.find_spec("numba") is None:
        return False
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


NUMBA_MIN_WORK = 1e8
"""Rows times parameters per epoch below which a run takes the NumPy path by default.

Loading the fused kernels costs about 0.45 s in a fresh process (importing Numba, then
each kernel from its cache), and they save about a fifth of an epoch's time: below this
size, winning the load back takes hundreds of epochs (digits, 1.3e7: about 250), above
it tens (1.2e9: about 30). ``python benchmarks/kernel_threshold.py`` measures both
(``benchmarks/results/kernel-threshold.txt``)."""


def resolve_kernels(kernels: str | None = None, work: float | None = None, backend=None) -> str:
    """The path a run takes: ``kernels`` if given, else ``$DELTAPROP_KERNELS``, else
    ``numba`` when it is installed and the problem is large enough to gain from it, else
    ``numpy``. On an array ``backend`` whose arrays the fused kernels cannot take
    (:mod:`deltaprop.core.backend`), ``numpy``: the reference's arithmetic there.

    Parameters
    ----------
    kernels : {"numpy", "numba"}, optional
    work : float, optional
        The problem's size, rows times parameters per epoch: below
        :data:`NUMBA_MIN_WORK` the default is ``numpy`` (the same size gives the same
        path, so a given seed still gives the same bits). None: unknown, no limit.
    backend : Backend, optional
        Where the run's arrays live (NumPy's by default).

    Raises
    ------
    ValueError
        If the name is unknown, or ``numba`` is asked for on a backend that cannot run it.
    ImportError
        If ``numba`` is asked for and Numba is not installed.
    """
    if backend is not None and not backend.fused_kernels:
        if kernels is not None and lookup("kernels", KERNELS, kernels) == "numba":
            raise ValueError(f"kernels: 'numba' runs on the numpy backend only, not on {backend.name!r}")
        return "numpy"
    if kernels is None:
        kernels = os.environ.get("DELTAPROP_KERNELS")
    if kernels is None:  # (the size first: a small problem never imports Numba)
        small = work is not None and work < NUMBA_MIN_WORK
        kernels = "numpy" if small or not numba_available() else "numba"
    key = lookup("kernels", KERNELS, kernels)
    if key == "numba" and not numba_available():
        raise ImportError("kernels: 'numba' needs Numba, which is not installed; "
                          "pip install 'deltaprop[fast]', or use kernels='numpy'")
    return key


def make_ops(net, backend=None, kernels: str | None = None, work: float | None = None) -> "Ops":
    """The element-wise steps of ``net``'s passes on an array ``backend`` (NumPy's by
    default), on the path :func:`resolve_kernels` chooses for it."""
    backend = NUMPY if backend is None else backend
    return Ops(net, resolve_kernels(kernels, work, backend), backend)


def _fused():
    from . import fused

    return fused


def _registered(obj, registry) -> bool:
    """Whether ``obj`` is the registry's own entry for its name (a fused kernel stands for
    exactly that one, not for a custom object that reuses the name)."""
    entry = registry.get(getattr(obj, "name", None))
    return entry is obj or entry is type(obj)


class Ops:
    """The element-wise steps of one network's passes, on one path.

    Attributes
    ----------
    kernels : str
        ``"numpy"`` or ``"numba"``.
    backend : Backend
        The array backend the passes run on (:mod:`deltaprop.core.backend`; the fused
        kernels are the NumPy backend's alone: :func:`make_ops`).
    phi : list
        ``phi[l](z, out)`` writes phi(z[l]) (slot 0 unused).
    backprop : list
        ``backprop[l](z, h, delta)`` multiplies ``delta`` by phi'(z[l]) in one pass, or
        None: then phi' is written to a buffer first and multiplied after (the reference).
    gather : callable or None
        ``gather(X, idx, h)``: ``h[i, :D] = X[idx[i]]`` in one pass into the input buffer ``h[0]``
        (its column of ones untouched), or None (the reference: ``np.take`` into a contiguous
        stage, then a copy).
    """

    def __init__(self, net, kernels: str | None = None, backend=None):
        self.kernels = resolve_kernels(kernels)
        self.backend = NUMPY if backend is None else backend
        fused = _fused() if self.kernels == "numba" else None
        acts = net.activations[1:]
        self.phi = [None] + [fused.FORWARD[a.name] if fused and _registered(a, ACTIVATIONS) else a.forward
                             for a in acts]
        self.backprop = [None] + [fused.BACKPROP.get(a.name, _no_op) if fused and _registered(a, ACTIVATIONS)
                                  else None for a in acts]
        self.gather = fused.gather_rows if fused else None
        lik = net.likelihood
        self._loss_and_delta = lik.loss_and_delta
        self._fused_loss = fused.LOSS_AND_DELTA[lik.name] if fused and _registered(lik, LIKELIHOODS) else None

    def loss_and_delta(self, z, T, o, delta, work, nll, s: float) -> float:
        """The likelihood's o, rows' -log p (``nll``) and ``delta`` = s d(-log p)/dz; returns
        the sum of ``nll`` (kept on the device until the step's one transfer:
        :meth:`~deltaprop.core.backend.Backend.deferred`)."""
        if self._fused_loss is not None:
            return float(self._fused_loss(z, T, o, delta, nll, s))
        self._loss_and_delta(z, T, o, delta, work, nll)
        if s != 1.0:
            delta *= s
        return self.backend.deferred(self.backend.xp.add.reduce(nll, axis=None))

    def __repr__(self) -> str:
        return f"Ops(kernels={self.kernels!r}, backend={self.backend.name!r})"


def _no_op(z, h, delta):
    """phi' = 1 (identity): delta is already delta * phi'."""


def update_kernel(name: str, kernels: str | None = None, backend=None):
    """The fused update of the optimizer registered as ``name`` on the given path and
    backend, or None (the NumPy reference)."""
    if resolve_kernels(kernels, backend=backend) != "numba":
        return None
    return _fused().UPDATE.get(name)
