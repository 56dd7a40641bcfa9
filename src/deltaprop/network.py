"""The feedforward network of the lecture, with backpropagation in mini-batch form.

Layers are indexed as in the lecture, l = 1..L; slot 0 of ``W``, ``z`` and
``delta`` is unused and ``h[0]`` is the input. Rows are samples (NOTATION.md):

- forward, eq. (3):  ``z[l] = h[l-1] @ W[l]``,  ``h[l] = [phi(z[l]), 1]``;
- output delta, eqs. (7)-(8): the likelihood writes ``delta[L] = grad_o J (.) o'``
  (``o - y`` for the canonical pairs);
- weight gradient, eq. (9), summed over the batch: ``G[l] = h[l-1].T @ delta[l]``,
  whose last row is the bias gradient of eq. (12);
- hidden layers (part 2 of the lecture, the same chain rule one layer down):
  ``delta[l-1] = phi'(z[l-1]) (.) (delta[l] @ W[l][:-1].T)``.

**The criterion.** ``J`` is the *mean* over the batch of ``-log p(y|x)``: eq. (1)
divided by the number of samples B, so that a learning rate means the same thing
for any batch size. The 1/B is applied once, to ``delta[L]``; every gradient
below it inherits it. This is the only place where J is defined.

Every ``W[l]`` is a view into one flat parameter vector ``theta`` and every
``G[l]`` a view into one flat ``grad``, so optimizers and gradient checks work on
1-D arrays. The input of each layer carries a trailing column of ones written
once when its buffer is allocated, so the bias of eq. (11) costs no operation.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np

from .activations import Activation, get_activation
from .initializers import check_init, init_weights
from .likelihoods import Likelihood, get_likelihood

Array = np.ndarray

_DTYPES = {"float32": np.float32, "float64": np.float64}


def check_dtype(dtype) -> type:
    """Return np.float32 or np.float64, or raise a ValueError naming the argument."""
    try:
        key = np.dtype(dtype).name
    except TypeError:
        key = str(dtype)
    if key not in _DTYPES:
        raise ValueError(f"dtype: expected float32 or float64, found {dtype!r}")
    return _DTYPES[key]


def as_rng(seed) -> np.random.Generator:
    """Turn ``seed`` (None, an int or a Generator) into a Generator; never the global state."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(f"seed: expected an int, a numpy Generator or None, found {type(seed).__name__}")


class Workspace:
    """Every array one forward and backward pass needs, for batches of up to B rows.

    ``h[l]`` has shape (B, D_l + 1) with its last column set to 1 here, once;
    ``a[l]`` is its view without that column, where phi(z[l]) is written.
    ``z[l]``, ``delta[l]`` and ``dphi[l]`` (phi'(z[l])) have shape (B, D_l).
    ``o``, ``T`` (the batch's targets) and ``work`` have shape (B, D_L).
    """

    def __init__(self, sizes: Sequence[int], B: int, dtype):
        L = len(sizes) - 1
        self.B = B
        self.h = [np.ones((B, sizes[l] + 1), dtype=dtype) for l in range(L)]
        self.a = [None] + [self.h[l][:, :-1] for l in range(1, L)]
        self.z = [None] + [np.empty((B, sizes[l]), dtype=dtype) for l in range(1, L + 1)]
        self.delta = [None] + [np.empty((B, sizes[l]), dtype=dtype) for l in range(1, L + 1)]
        self.dphi = [None] + [np.empty((B, sizes[l]), dtype=dtype) for l in range(1, L)]
        self.o = np.empty((B, sizes[L]), dtype=dtype)
        self.T = np.empty((B, sizes[L]), dtype=dtype)
        self.work = np.empty((B, sizes[L]), dtype=dtype)


class Network:
    """A feedforward network trained by backpropagation.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[D_0, D_1, ..., D_L]``: D_0 inputs, D_L outputs.
    activation : str or sequence of str, default "relu"
        The hidden activation phi, one name for every hidden layer or one per
        hidden layer. Valid names: :data:`deltaprop.ACTIVATIONS`.
    likelihood : str, default "categorical"
        The output family: ``"categorical"``, ``"bernoulli"``, ``"gaussian"``,
        ``"poisson"``, or ``"<activation>+<loss>"`` for eq. (8) in general
        (e.g. ``"sigmoid+squared_error"``).
    init : str or None
        Weight initialization (``glorot_uniform``, ``glorot_normal``, ``he_uniform``,
        ``he_normal``, ``lecun_uniform``, ``lecun_normal``). By default He for
        layers followed by a relu-family activation, Glorot otherwise.
    seed : int, numpy.random.Generator or None
        Source of the initial weights; the same int gives bit-identical ``theta``.
    dtype : {"float32", "float64"}, default float32
        The dtype of every array of the network.

    Attributes
    ----------
    W : list of ndarray
        ``W[l]`` of shape ``(D_{l-1} + 1, D_l)`` for l = 1..L, the bias as the last
        row (eq. (11)); views into ``theta``. ``W[0]`` is None.
    theta : ndarray of shape (n_params,)
        All parameters, flat.
    classes : list or None
        Class labels for the outputs of a classifier, saved with the model.
    metadata : dict
        Free-form information saved with the model (for example how it was trained).

    Examples
    --------
    >>> import numpy as np, deltaprop
    >>> net = deltaprop.Network([4, 8, 3], activation="tanh", seed=0)
    >>> X = np.random.default_rng(0).normal(size=(5, 4))
    >>> net.forward(X).shape
    (5, 3)
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str | Sequence[str] = "relu",
        likelihood: str | Likelihood = "categorical",
        init: str | None = None,
        seed: int | np.random.Generator | None = None,
        dtype="float32",
    ):
        self.sizes = _check_sizes(sizes)
        self.n_layers = L = len(self.sizes) - 1
        self.dtype = check_dtype(dtype)
        if isinstance(activation, (str, Activation)):
            acts = [get_activation(activation)] * (L - 1)
        else:
            acts = [get_activation(a) for a in activation]
            if len(acts) != L - 1:
                raise ValueError(
                    f"activation: expected one name or {L - 1} names (one per hidden layer), "
                    f"found {len(acts)}"
                )
        self.activations: list[Activation | None] = [None] + acts
        self.likelihood = get_likelihood(likelihood)
        self.init = None if init is None else check_init(init)
        self.classes: list | None = None
        self.metadata: dict = {}

        shapes = [(self.sizes[l - 1] + 1, self.sizes[l]) for l in range(1, L + 1)]
        self.n_params = sum(r * c for r, c in shapes)
        self.theta = np.zeros(self.n_params, dtype=self.dtype)
        self.grad = np.zeros(self.n_params, dtype=self.dtype)
        self.W = [None] + _views(self.theta, shapes)
        self.G = [None] + _views(self.grad, shapes)
        self._workspaces: OrderedDict[int, Workspace] = OrderedDict()

        rng = as_rng(seed)
        for l in range(1, L + 1):
            name = self.init or (acts[l - 1].init if l < L else "glorot_uniform")
            init_weights(self.W[l], name, rng)

    # -- description ---------------------------------------------------------------
    @property
    def activation_names(self) -> list[str]:
        """The hidden activations' names, one per hidden layer."""
        return [a.name for a in self.activations[1:]]

    def __repr__(self) -> str:
        acts = sorted(set(self.activation_names))
        return (
            f"Network(sizes={self.sizes}, activation={acts[0] if len(acts) == 1 else self.activation_names!r}, "
            f"likelihood={self.likelihood.name!r}, dtype={np.dtype(self.dtype).name!r})"
        )

    def weight_rows(self) -> list[Array]:
        """Views of every ``W[l]`` without its bias row (what weight decay acts on)."""
        return [self.W[l][:-1] for l in range(1, self.n_layers + 1)]

    def blocks(self) -> list[tuple[slice, int]]:
        """Where each layer lies in ``theta``: ``(slice, n_weights)`` for l = 1..L, the
        first ``n_weights`` entries being weights and the last row the bias."""
        out, start = [], 0
        for W in self.W[1:]:
            out.append((slice(start, start + W.size), W.size - W.shape[1]))
            start += W.size
        return out

    def copy(self, dtype=None) -> "Network":
        """A deep copy, optionally in another dtype (gradcheck uses a float64 copy)."""
        new = Network.__new__(Network)
        new.__dict__.update(self.__dict__)
        new.dtype = check_dtype(dtype if dtype is not None else self.dtype)
        new.theta = self.theta.astype(new.dtype, copy=True)
        new.grad = np.zeros_like(new.theta)
        shapes = [w.shape for w in self.W[1:]]
        new.W = [None] + _views(new.theta, shapes)
        new.G = [None] + _views(new.grad, shapes)
        new.classes = None if self.classes is None else list(self.classes)
        new.metadata = dict(self.metadata)
        new._workspaces = OrderedDict()
        return new

    # -- buffers -------------------------------------------------------------------
    def workspace(self, B: int) -> Workspace:
        """The buffers for batches of up to B rows, allocated once and reused."""
        ws = self._workspaces.get(B)
        if ws is None:
            ws = Workspace(self.sizes, B, self.dtype)
            self._workspaces[B] = ws
            while len(self._workspaces) > 3:  # training, validation and one more
                self._workspaces.popitem(last=False)
        return ws

    # -- the two passes on a workspace (no allocation) -----------------------------
    def forward_pass(self, ws: Workspace, b: int, dropout_masks=None) -> None:
        """Eq. (3) on the first b rows of ``ws.h[0]``: fills ``z[l]`` and ``h[l]``.

        With ``dropout_masks`` (training only), ``h[l] *= mask[l]`` on hidden layers
        and ``dphi[l]`` is taken here, before masking, with the mask folded in.
        """
        L = self.n_layers
        for l in range(1, L + 1):
            z = ws.z[l][:b]
            np.matmul(ws.h[l - 1][:b], self.W[l], out=z)
            if l < L:
                a = ws.a[l][:b]
                self.activations[l].forward(z, a)
                if dropout_masks is not None and dropout_masks[l] is not None:
                    mask = dropout_masks[l][:b]
                    dphi = ws.dphi[l][:b]
                    self.activations[l].derivative(z, a, dphi, ws.delta[l][:b])
                    dphi *= mask
                    a *= mask

    def output_delta(self, ws: Workspace, b: int, scale: float = 1.0) -> float:
        """Eqs. (7)-(8) on the first b rows: writes ``delta[L]`` and returns J, the mean
        of -log p(y|x) over the rows (targets in ``ws.T``).

        ``delta[L]`` is scaled by ``scale / b``: 1/b because J is the mean over the
        batch (see the module docstring), and ``scale`` so that plain SGD can ask for
        ``-learning_rate`` times the gradient at the cost of scaling this small array
        instead of every weight.
        """
        L = self.n_layers
        delta = ws.delta[L][:b]
        total = self.likelihood.loss_and_delta(ws.z[L][:b], ws.T[:b], ws.o[:b], delta, ws.work[:b])
        delta *= scale / b
        return total / b

    def backpropagate(self, ws: Workspace, b: int, dphi_ready: bool = False, after_layer=None) -> None:
        """From ``delta[L]`` down: every ``G[l]`` (eq. (9)) and ``delta[l-1]``.

        ``after_layer(l)``, if given, is called once ``W[l]`` is no longer needed by
        the pass, so an optimizer may update layer l while it is still in cache.
        """
        for l in range(self.n_layers, 0, -1):
            # eq. (9): grad W = h delta^T, summed over the batch; its last row is eq. (12)
            np.matmul(ws.h[l - 1][:b].T, ws.delta[l][:b], out=self.G[l])
            if l > 1:
                below = ws.delta[l - 1][:b]
                dphi = ws.dphi[l - 1][:b]
                if not dphi_ready:
                    self.activations[l - 1].derivative(ws.z[l - 1][:b], ws.a[l - 1][:b], dphi, below)
                # hidden-layer recursion: delta[l-1] = phi'(z[l-1]) * (delta[l] W[l][:-1]^T)
                np.matmul(ws.delta[l][:b], self.W[l][:-1].T, out=below)
                below *= dphi
            if after_layer is not None:
                after_layer(l)

    def backward_pass(self, ws: Workspace, b: int, dphi_ready: bool = False, scale: float = 1.0) -> float:
        """Backpropagation on the first b rows (after :meth:`forward_pass`): writes
        ``scale`` times the mean gradient into ``grad`` and returns the loss J."""
        J = self.output_delta(ws, b, scale)
        self.backpropagate(ws, b, dphi_ready)
        return J

    # -- the public API on plain arrays --------------------------------------------
    def check_X(self, X, name: str = "X", convert: bool = True) -> Array:
        """Validate inputs and return them as a C-contiguous array of the network's dtype
        (or as they are, with ``convert=False``, to spare a copy of a large data set)."""
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected numeric values, found dtype {X.dtype}")
        if X.ndim == 1 and self.sizes[0] == X.shape[0]:
            raise ValueError(
                f"{name}: expected a 2-D array (n_samples, {self.sizes[0]}), found a 1-D array; "
                "use X.reshape(1, -1) for a single sample"
            )
        if X.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D array (n_samples, {self.sizes[0]}), found shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{name}: expected at least one sample, found an empty array")
        if X.shape[1] != self.sizes[0]:
            raise ValueError(
                f"{name}: expected {self.sizes[0]} features (sizes[0]), found {X.shape[1]}"
            )
        # a float64 sum is finite exactly when every entry is (short of absurd magnitudes),
        # and it needs no array of the data's size
        if X.dtype.kind == "f" and not np.isfinite(np.sum(X, dtype=np.float64)):
            bad = np.argwhere(~np.isfinite(X))[0]
            raise ValueError(f"{name}: expected finite values, found {X[tuple(bad)]} at row {bad[0]}, column {bad[1]}")
        return np.ascontiguousarray(X, dtype=self.dtype) if convert else X

    def encode_targets(self, y, n_samples: int | None = None) -> Array:
        """Validate y for this network's likelihood and return the target matrix T."""
        T = self.likelihood.encode_targets(y, self.sizes[-1], self.dtype)
        if n_samples is not None and T.shape[0] != n_samples:
            raise ValueError(f"y: expected {n_samples} targets (one per row of X), found {T.shape[0]}")
        return T

    def _batches(self, X: Array, chunk: int = 2048):
        """Yield (workspace, start, b) with the rows of X copied into ``h[0]``."""
        n = X.shape[0]
        ws = self.workspace(min(n, chunk))
        for start in range(0, n, ws.B):
            b = min(ws.B, n - start)
            ws.h[0][:b, :-1] = X[start:start + b]
            yield ws, start, b

    def forward(self, X) -> Array:
        """The output o for each row of X: the mean of p(y|x) (class probabilities,
        Bernoulli probabilities, the Gaussian mean, the Poisson rate).

        Parameters
        ----------
        X : array-like of shape (n_samples, D_0)

        Returns
        -------
        o : ndarray of shape (n_samples, D_L)
        """
        X = self.check_X(X)
        o = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        for ws, start, b in self._batches(X):
            self.forward_pass(ws, b)
            self.likelihood.output(ws.z[self.n_layers][:b], o[start:start + b])
        return o

    predict = forward

    def predict_labels(self, X) -> Array:
        """Point predictions: class indices (categorical), 0/1 (bernoulli), else o."""
        if self.likelihood.name != "categorical":
            return self.likelihood.predict_labels(self.forward(X))
        # softmax is monotone: the most probable class is the largest logit
        X = self.check_X(X)
        labels = np.empty(X.shape[0], dtype=np.intp)
        for ws, start, b in self._batches(X):
            self.forward_pass(ws, b)
            np.argmax(ws.z[self.n_layers][:b], axis=1, out=labels[start:start + b])
        return labels

    def loss(self, X, y) -> float:
        """J: the mean over the rows of -log p(y|x), eq. (1) divided by n_samples."""
        X = self.check_X(X)
        return self.loss_and_outputs(X, self.encode_targets(y, X.shape[0]))[0]

    def loss_and_outputs(self, X: Array, T: Array) -> tuple[float, Array]:
        """J and the outputs o on inputs already checked (:meth:`check_X`) and targets
        already encoded (:meth:`encode_targets`), in chunks."""
        L, total = self.n_layers, 0.0
        o = np.empty_like(T)
        for ws, start, b in self._batches(X):
            self.forward_pass(ws, b)
            ws.T[:b] = T[start:start + b]
            total += self.likelihood.loss_and_delta(ws.z[L][:b], ws.T[:b], o[start:start + b],
                                                    ws.delta[L][:b], ws.work[:b])
        return total / X.shape[0], o

    def loss_and_gradients(self, X, y) -> tuple[float, list]:
        """J and its gradient with respect to every W[l] (copies), on the whole of X."""
        X = self.check_X(X)
        T = self.encode_targets(y, X.shape[0])
        ws = Workspace(self.sizes, X.shape[0], self.dtype)
        ws.h[0][:, :-1] = X
        ws.T[...] = T
        self.forward_pass(ws, X.shape[0])
        J = self.backward_pass(ws, X.shape[0])
        return J, [None] + [g.copy() for g in self.G[1:]]

    def gradients(self, X, y) -> list:
        """The gradient of J with respect to each ``W[l]``: a list indexed like ``W``
        (slot 0 None), each entry a new array of shape ``W[l].shape``."""
        return self.loss_and_gradients(X, y)[1]

    def save(self, path, metadata: dict | None = None) -> None:
        """Write the model to a safetensors file (see :func:`deltaprop.load`)."""
        from .serialization import save_network

        save_network(self, path, metadata)


def _check_sizes(sizes) -> list[int]:
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError(f"sizes: expected a list of layer widths, found {type(sizes).__name__}") from None
    if len(sizes) < 2:
        raise ValueError(
            f"sizes: expected at least 2 entries [D_0, ..., D_L] (inputs and outputs), found {sizes}"
        )
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"sizes: expected positive integer widths, found {sizes}")
    return [int(s) for s in sizes]


def _views(flat: Array, shapes) -> list[Array]:
    views, start = [], 0
    for r, c in shapes:
        views.append(flat[start:start + r * c].reshape(r, c))
        start += r * c
    return views
