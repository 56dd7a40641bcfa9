"""The feedforward network of the lecture: its architecture and its parameters.

A :class:`Network` owns the layer sizes, the hidden activations, the likelihood
and one flat parameter vector ``theta``; every ``W[l]`` (the augmented matrix of
eq. (11), the bias as its last row) is a view into it, so optimizers and gradient
checks work on 1-D arrays. It shares no buffers between callers: each inference
call is lent a :class:`~deltaprop.core.engine.Workspace` of its own by a small pool
(so several threads can predict with one network, and after the first call one
allocates only its output), and training works on the buffers of an
:class:`~deltaprop.core.objective.Objective`. The passes themselves are in
:mod:`deltaprop.core.engine`; the criterion J in :mod:`deltaprop.core.objective`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..validation import bad_entries, check_int, check_memory, check_values, check_weights, is_sparse
from .activations import Activation, get_activation
from .backend import NUMPY, Backend, get_backend
from .engine import WorkspacePool, forward, mean_output, output_delta, views
from .initializers import check_init, init_weights
from .kernels import make_ops
from .likelihoods import Likelihood, get_likelihood
from .objective import Objective

Array = np.ndarray

_DTYPES = {"float32": np.float32, "float64": np.float64}
_CHUNK = 2048  # rows per inference pass: buffers stay in cache-friendly sizes for any n
# UNDERFLOW: NumPy's error settings are global, and some libraries change them on import
# (emlearn sets "raise" for everything). A value too small for the dtype rounding to 0 is
# never an error here (exp(-z) in a saturated sigmoid, a tiny gradient), so every pass over
# the data ignores underflow whatever the caller's settings.


def check_dtype(dtype) -> type:
    """Return np.float32 or np.float64, or raise a ValueError naming the argument."""
    try:
        key = np.dtype(dtype).name
    except TypeError:
        key = str(dtype)
    if key not in _DTYPES:
        raise ValueError(f"dtype: expected float32 or float64, found {dtype!r}")
    return _DTYPES[key]


def _by_name(obj, get):
    """A registered activation or likelihood as its name (``get(name)`` gives it back), else itself."""
    try:
        same = get(obj.name)
    except (ValueError, TypeError):
        return obj
    return obj.name if type(same) is type(obj) and same.name == obj.name else obj


def as_rng(seed) -> np.random.Generator:
    """Turn ``seed`` (None, an int or a Generator) into a Generator; never the global state."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(f"seed: expected an int, a numpy Generator or None, found {type(seed).__name__}")


def root_seed(seed) -> int:
    """One int from ``seed``, the root of every random stream of a run: an int as given,
    else drawn from a Generator, from a legacy ``RandomState`` (scikit-learn's
    ``random_state``), or from fresh entropy for None; never NumPy's global state."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return int(seed)
    if isinstance(seed, np.random.RandomState):
        return int(seed.randint(np.iinfo(np.int32).max))
    return int(as_rng(seed).integers(2**63))


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
    members : int, default 1
        k > 1 makes an ensemble of k networks of these sizes, trained together: one
        product per layer for all of them (:mod:`deltaprop.core.engine`), J the mean
        of the members' J, and the output the mean of their outputs (class
        probabilities averaged). Each member starts from its own draw of weights.

    Attributes
    ----------
    W : list of ndarray
        ``W[l]`` of shape ``(D_{l-1} + 1, D_l)`` for l = 1..L, the bias as the last
        row (eq. (11)); views into ``theta``. ``W[0]`` is None. An ensemble's
        ``W[l]`` holds its members side by side, ``(D_{l-1} + 1, k D_l)``: member m's
        are columns ``m D_l`` to ``(m + 1) D_l`` (from layer 2 on, it reads only its
        own units of the layer below).
    theta : ndarray of shape (n_params,)
        All parameters, flat.
    backend : Backend
        Where ``theta`` and every buffer of the passes live (:mod:`deltaprop.core.backend`):
        NumPy's, unless :meth:`to` moved the network.

    Examples
    --------
    >>> import numpy as np, deltaprop
    >>> net = deltaprop.Network([4, 8, 3], activation="tanh", seed=0)
    >>> X = np.random.default_rng(0).normal(size=(5, 4))
    >>> net.forward(X).shape
    (5, 3)
    """

    backend: Backend = NUMPY  # (a class default: networks saved before backends existed load onto NumPy)

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str | Sequence[str] = "relu",
        likelihood: str | Likelihood = "categorical",
        init: str | None = None,
        seed: int | np.random.Generator | None = None,
        dtype="float32",
        members: int = 1,
    ):
        self.sizes = _check_sizes(sizes)
        self.members = k = check_int("members", members, 1)
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

        self.shapes = [(self.sizes[l - 1] + 1, k * self.sizes[l]) for l in range(1, L + 1)]
        self.n_params = sum(r * c for r, c in self.shapes)
        check_memory("sizes", self.n_params * np.dtype(self.dtype).itemsize,
                     f"the parameters of a {'-'.join(map(str, self.sizes))} network")
        self.theta = np.zeros(self.n_params, dtype=self.dtype)
        self.W = views(self.theta, self.shapes)
        self._pool, self._sparse_pool = self._inference_pool(), None

        rng = as_rng(seed)
        for l in range(1, L + 1):
            name = self.init or (acts[l - 1].init if l < L else "glorot_uniform")
            d = self.sizes[l]
            for m in range(k):  # each member its own draw, with its own fan-out
                init_weights(self.W[l][:, m * d:(m + 1) * d], name, rng)

    # -- description ---------------------------------------------------------------
    @property
    def activation_names(self) -> list[str]:
        """The hidden activations' names, one per hidden layer."""
        return [a.name for a in self.activations[1:]]

    @property
    def task(self) -> str:
        """``"classification"`` or ``"regression"``, as the likelihood says."""
        return self.likelihood.task

    @property
    def binary(self) -> bool:
        """One output of a two-class likelihood (Bernoulli-type) standing for two classes:
        o is p(1), and p(0) = 1 - o (the one place this rule is written)."""
        return self.sizes[-1] == 1 and self.task == "classification" and self.likelihood.name != "categorical"

    def __repr__(self) -> str:
        acts = sorted(set(self.activation_names)) or ["identity"]
        return (
            f"Network(sizes={self.sizes}, activation={acts[0] if len(acts) == 1 else self.activation_names!r}, "
            f"likelihood={self.likelihood.name!r}, dtype={np.dtype(self.dtype).name!r}"
            + (f", members={self.members})" if self.members > 1 else ")")
        )

    def config(self) -> dict:
        """Everything but the weights that is needed to rebuild the network (JSON-ready)."""
        config = {"sizes": self.sizes, "activations": self.activation_names, "likelihood": self.likelihood.name,
                  "dtype": np.dtype(self.dtype).name, "init": self.init}
        if self.members > 1:  # (a single network's config is as it always was)
            config["members"] = self.members
        return config

    def weight_rows(self) -> list[Array]:
        """Views of every ``W[l]`` without its bias row (what weight decay acts on)."""
        return [self.W[l][:-1] for l in range(1, self.n_layers + 1)]

    def layer_slices(self) -> list[tuple[slice, int]]:
        """Where each layer lies in ``theta``: ``(slice, n_weights)`` for l = 1..L, the
        first ``n_weights`` entries being weights and the last row the bias."""
        out, start = [], 0
        for rows, cols in self.shapes:
            out.append((slice(start, start + rows * cols), (rows - 1) * cols))
            start += rows * cols
        return out

    def member_positions(self) -> Array:
        """Where each member's parameters lie in this ensemble's ``theta``: row m holds, for
        each entry of one member's own flat ``theta``, its index here (member m's ``W[l]`` is
        columns ``m D_l`` to ``(m + 1) D_l`` of every ``W[l]``); shape (members, n_params / members)."""
        index = views(np.arange(self.n_params), self.shapes)
        return np.stack([np.concatenate([index[l][:, m * d:(m + 1) * d].ravel() for l, d in
                                         enumerate(self.sizes[1:], start=1)]) for m in range(self.members)])

    def stack_members(self, vectors: Sequence[Array]) -> Array:
        """Flat vectors laid out as ``theta`` of one member (its weights, or an optimizer's
        moments), one per member, as one vector laid out as this ensemble's ``theta``
        (:meth:`member_positions`)."""
        if len(vectors) != self.members:
            raise ValueError(f"vectors: expected one per member ({self.members}), found {len(vectors)}")
        out = np.empty(self.n_params, dtype=np.result_type(*vectors))
        out[self.member_positions()] = np.stack(vectors)
        return out

    def copy(self, dtype=None, backend: str | Backend | None = None) -> "Network":
        """A deep copy, optionally in another dtype and on another array backend (gradcheck
        checks a float64 copy on the host)."""
        new = Network.__new__(Network)
        new.__dict__.update(self.__dict__)
        new.dtype = check_dtype(dtype if dtype is not None else self.dtype)
        be = self.backend
        new.backend = to = be if backend is None else get_backend(backend)
        new.theta = (self.theta.astype(new.dtype, copy=True) if be.host and to.host
                     else to.from_host(be.to_host(self.theta), new.dtype))
        new.W = views(new.theta, self.shapes)
        new._pool, new._sparse_pool = new._inference_pool(), None
        return new

    def to(self, backend: str | Backend) -> "Network":
        """Move the parameters to another array backend (:data:`deltaprop.BACKENDS`), in
        place; every later pass runs there. Returns the network.

        Examples
        --------
        >>> net = deltaprop.Network([4, 8, 3], seed=0).to("numpy")  # doctest: +SKIP
        """
        be = get_backend(backend)
        if be is not self.backend:
            theta = be.from_host(self.backend.to_host(self.theta), self.dtype)
            self.backend, self.theta = be, theta
            self.W = views(self.theta, self.shapes)
            self._pool, self._sparse_pool = self._inference_pool(), None
        return self

    def __deepcopy__(self, memo) -> "Network":
        return self.copy()  # a plain deep copy would turn the W[l] views into separate arrays

    def __getstate__(self) -> dict:
        # plain data for any serializer (pickle, skops, deepcopy): theta and the architecture,
        # registered activations and likelihoods by name; the W[l] views and the buffer pool
        # (with its lock and compiled kernels) are rebuilt
        state = {k: v for k, v in self.__dict__.items() if k not in ("W", "_pool", "_sparse_pool", "backend")}
        state["theta"] = self.backend.to_host(self.theta)  # (a network comes back on NumPy)
        state["activations"] = [None] + [_by_name(a, get_activation) for a in self.activations[1:]]
        state["likelihood"] = _by_name(self.likelihood, get_likelihood)
        state["dtype"] = np.dtype(self.dtype).name
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({"members": 1, **state})  # (saved before ensembles existed)
        self.activations = [None] + [get_activation(a) for a in state["activations"][1:]]
        self.likelihood = get_likelihood(state["likelihood"])
        self.dtype = check_dtype(state["dtype"])
        self.W = views(self.theta, self.shapes)
        self._pool, self._sparse_pool = self._inference_pool(), None

    # -- validation at the boundary ------------------------------------------------
    def check_X(self, X, name: str = "X", convert: bool = True) -> Array:
        """Validate inputs and return them as a C-contiguous array of the network's dtype
        (or as they are, with ``convert=False``, to spare a copy of a large data set).

        A SciPy sparse matrix stays sparse: it comes back as CSR (rows are what batches
        take), its stored values checked and, with ``convert``, in the network's dtype.
        """
        if is_sparse(X):
            return self._check_sparse(X, name, convert)
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
        check_values(X, name, self.dtype)  # finite, and within the network's dtype
        return np.ascontiguousarray(X, dtype=self.dtype) if convert else X

    def _check_sparse(self, X, name: str, convert: bool):
        if len(X.shape) != 2 or X.shape[1] != self.sizes[0] or X.shape[0] == 0:
            raise ValueError(f"{name}: expected a sparse matrix of shape (n_samples >= 1, {self.sizes[0]}), "
                             f"found shape {X.shape}")
        X = X.tocsr()
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected numeric values, found dtype {X.dtype}")
        bad = np.flatnonzero(bad_entries(X.data, float(np.finfo(self.dtype).max))) if X.dtype.kind == "f" else []
        if len(bad):  # the first bad stored value as a column of its own: the error names its row of X
            k = int(bad[0])
            row = int(np.searchsorted(X.indptr, k, side="right")) - 1
            column = np.zeros((row + 1, 1), X.dtype)
            column[row, 0] = X.data[k]
            check_values(column, f"{name} (column {int(X.indices[k])})", self.dtype)
        return X.astype(self.dtype, copy=False) if convert else X

    def encode_targets(self, y, n_samples: int | None = None) -> Array:
        """Validate y for this network's likelihood and return the target matrix T
        (one-hot rows for categorical), in the network's dtype."""
        T = self.likelihood.encode_targets(y, self.sizes[-1], self.dtype)
        if n_samples is not None and T.shape[0] != n_samples:
            raise ValueError(f"y: expected {n_samples} targets (one per row of X), found {T.shape[0]}")
        return T

    # -- inference: each call on buffers of its own ---------------------------------
    def _inference_pool(self, sparse: bool = False) -> WorkspacePool:
        # the kernels are chosen (and Numba imported, for a network large enough to gain from
        # them) at the first inference, not here; by the network's size alone, so that its
        # predictions do not depend on the calls before them
        return WorkspacePool(self.sizes, _CHUNK, self.dtype,
                             lambda: make_ops(self, self.backend, work=float(_CHUNK) * self.n_params),
                             sparse=sparse, members=self.members, backend=self.backend)

    def _chunks(self, X: Array):
        """Yield (workspace, start, b) after eq. (3) on rows start..start+b of checked X.

        The workspace is lent to this call alone, so concurrent calls never share one.
        """
        n, sparse = X.shape[0], is_sparse(X)
        # rows of the network's dtype are read where they are; others are converted chunk by chunk
        direct = not sparse and X.dtype == self.dtype and X.flags.c_contiguous and self.backend.host
        if sparse and self._sparse_pool is None:  # (buffers without room for dense inputs)
            self._sparse_pool = self._inference_pool(sparse=True)
        with (self._sparse_pool if sparse else self._pool).lend() as ws:
            try:
                for start in range(0, n, ws.B):
                    b = min(ws.B, n - start)
                    if sparse:
                        ws.Xs = X[start:start + b]
                    elif direct:
                        ws.Xd = X[start:start + b]
                    else:
                        ws.X[:b] = X[start:start + b]
                        ws.upload(b, targets=False)
                    forward(self, ws, b)
                    yield ws, start, b
            finally:
                ws.Xs = ws.Xd = None

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
        k, K, be = self.members, self.sizes[-1], self.backend
        xp = be.xp
        o = np.empty((X.shape[0], K), dtype=self.dtype)
        with np.errstate(under="ignore"):  # (see UNDERFLOW)
            for ws, start, b in self._chunks(X):
                z = ws.z[self.n_layers][:b]
                if k == 1:  # (on the host, straight into the result)
                    out = o[start:start + b] if be.host else ws.o[:b]
                    self.likelihood.output(z, out)
                else:  # each member's output, then their mean
                    members = xp.reshape(ws.o[:b], (b * k, K))
                    self.likelihood.output(xp.reshape(z, (b * k, K)), members)
                    out = o[start:start + b] if be.host else ws.mean_o[:b]
                    xp.mean(xp.reshape(members, (b, k, K)), axis=1, out=out)
                if not be.host:
                    o[start:start + b] = be.to_host(out)
        return o

    def predict_proba(self, X) -> Array:
        """Probabilities: the softmax rows (categorical), or for Bernoulli outputs
        p(y=1) per label; a single Bernoulli output gives two columns, p(0) and p(1),
        as scikit-learn does. Only for classifiers."""
        if self.task != "classification":
            raise TypeError(f"predict_proba: a {self.likelihood.name} network is not a classifier")
        o = self.forward(X)
        return np.hstack([1 - o, o]) if self.binary else o

    def predict(self, X) -> Array:
        """Point predictions: class indices 0..K-1 (categorical), 0/1 (bernoulli; one
        column per label when there are several), the mean o otherwise.

        A :class:`deltaprop.Model` maps these to the original labels or target units.
        """
        if self.likelihood.name != "categorical" or self.members > 1:  # (an ensemble: its mean probabilities)
            return self.likelihood.predict(self.forward(X))
        # softmax is monotone: the most probable class is the largest logit
        X = self.check_X(X)
        labels = np.empty(X.shape[0], dtype=np.intp)
        with np.errstate(under="ignore"):  # (see UNDERFLOW)
            for ws, start, b in self._chunks(X):
                z, be = ws.z[self.n_layers][:b], self.backend
                if be.host:
                    np.argmax(z, axis=1, out=labels[start:start + b])
                else:
                    labels[start:start + b] = be.to_host(be.xp.argmax(z, axis=1))
        return labels

    def loss(self, X, y, sample_weight=None) -> float:
        """J: the mean over the rows of -log p(y|x), eq. (1) divided by n_samples (or the
        weighted mean with ``sample_weight``); no penalty term."""
        X = self.check_X(X)
        return self.loss_and_outputs(X, self.encode_targets(y, X.shape[0]), sample_weight)[0]

    def loss_and_outputs(self, X: Array, T: Array, sample_weight=None) -> tuple[float, Array]:
        """J and the outputs o on inputs already checked (:meth:`check_X`) and targets
        already encoded (:meth:`encode_targets`), in chunks."""
        total, weights = 0.0, 0.0
        o = np.empty_like(T)
        w = None if sample_weight is None else check_weights(sample_weight, X.shape[0]).astype(self.dtype)
        with np.errstate(under="ignore"):  # (see UNDERFLOW)
            for ws, start, b in self._chunks(X):
                ws.weighted = w is not None
                ws.T[:b] = T[start:start + b]
                if ws.weighted:
                    ws.w[:b] = w[start:start + b]
                ws.upload(b, inputs=False)
                mean = self.backend.scalars(output_delta(self, ws, b))[0]
                part = b if w is None else float(ws.w[:b].sum())
                total, weights = total + mean * part, weights + part
                o[start:start + b] = self.backend.to_host(mean_output(self, ws, b))
        return total / weights, o

    def gradients(self, X, y, sample_weight=None) -> list:
        """The gradient of J with respect to each ``W[l]``: a list indexed like ``W``
        (slot 0 None), each entry a new array of shape ``W[l].shape``. An ensemble's
        ``sample_weight`` may hold a column for each member (shape (n_samples, members))."""
        X = self.check_X(X)
        T = self.encode_targets(y, X.shape[0])
        batch = (X, T) if sample_weight is None else (X, T, check_weights(sample_weight, X.shape[0], members=self.members))
        _, grad = Objective(self).value_and_grad(self.theta, batch)
        return views(np.array(self.backend.to_host(grad)), self.shapes)


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
