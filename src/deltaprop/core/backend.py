"""The array backend: the one seam between the passes and the array library they run on.

The engine, the objective, the likelihoods, the activations and the optimizers do their
arithmetic through a NumPy-shaped namespace ``xp``: ``xp.multiply(a, b, out=c)``,
``xp.add.reduce(a, axis=1, keepdims=True, out=c)``, ``xp.matmul(a, b, out=c)``, writing
into buffers allocated once. That namespace is NumPy itself by default; CuPy on a GPU
(the same functions, on device arrays); or, for any library of the Python array API
standard (PyTorch's tensors through ``array-api-compat``, which the tests use to prove
the seam on a CPU), an adapter that computes each result and writes it into ``out``.

A :class:`Backend` adds what a namespace does not say:

- where arrays live: allocation (:meth:`Backend.empty`), :meth:`~Backend.from_host`,
  :meth:`~Backend.to_host`;
- the uniform random numbers of dropout masks (:meth:`~Backend.random`);
- :meth:`~Backend.scalars`: a step's few numbers (J, ||grad J||^2) brought to the host in
  one transfer, the only synchronisation a step needs; until then they stay
  :meth:`~Backend.deferred` on the device;
- whether Numba's fused element-wise kernels can run on its arrays (``fused_kernels``:
  the NumPy backend's alone; :func:`~deltaprop.core.kernels.make_ops` chooses them).

A :class:`~deltaprop.core.engine.Workspace` owns its backend. Code that is handed arrays
finds their namespace with :func:`namespace` (a lookup by the array's type, as
array-API code does), so that an activation or an optimizer's rule is written once.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import lru_cache

import numpy as np

from ..registry import lookup

BACKENDS = {"numpy": "NumPy arrays in host memory: the reference, with Numba's fused kernels when installed",
            "cupy": "CuPy arrays on an NVIDIA GPU (pip install 'deltaprop[gpu]')",
            "torch": "PyTorch CPU tensors through array-api-compat: a second library that proves the seam "
                     "(pip install torch array-api-compat)"}
"""The array backends by name: the one list shared by the API, the CLI and the tests."""

_NEEDS = {"cupy": ("cupy",), "torch": ("torch", "array_api_compat")}


class Backend:
    """NumPy arrays in host memory: the reference backend.

    Attributes
    ----------
    name : str
        Its name in :data:`BACKENDS`.
    xp : module
        The NumPy-shaped namespace the passes call.
    host : bool
        Whether its arrays are NumPy arrays in host memory (data sources then write a
        batch straight into the buffers the passes read).
    fused_kernels : bool
        Whether Numba's fused kernels (:mod:`deltaprop.core.fused`) work on its arrays.
    """

    name = "numpy"
    host = True
    fused_kernels = True
    xp = np

    def dtype(self, dtype):
        """The backend's own dtype for a NumPy dtype."""
        return np.dtype(dtype)

    def empty(self, shape, dtype):
        """An uninitialized array of a NumPy ``dtype``, on this backend."""
        return self.xp.empty(shape, dtype=self.dtype(dtype))

    def zeros(self, shape, dtype):
        """An array of zeros of a NumPy ``dtype``, on this backend."""
        return self.xp.zeros(shape, dtype=self.dtype(dtype))

    def ones(self, shape, dtype):
        """An array of ones of a NumPy ``dtype``, on this backend."""
        return self.xp.ones(shape, dtype=self.dtype(dtype))

    def from_host(self, a, dtype=None):
        """A copy of host data on this backend (C-contiguous, in ``dtype`` if given)."""
        return np.array(a, dtype=dtype, order="C")

    def to_host(self, a) -> np.ndarray:
        """A NumPy array holding ``a`` (``a`` itself on the host)."""
        return np.asarray(a)

    def upload(self, out, a) -> None:
        """Write host data ``a`` into this backend's array ``out``."""
        np.copyto(out, a)

    def deferred(self, x):
        """A step's scalar (J's parts, a squared norm) as it is kept until :meth:`scalars`:
        on the host, a float at once."""
        return float(x)

    def scalars(self, *values) -> tuple[float, ...]:
        """``values`` (floats, or :meth:`deferred` scalars) as floats, in one transfer."""
        return tuple(float(v) for v in values)

    def random(self, rng: np.random.Generator, out) -> None:
        """Fill ``out`` with uniform numbers in [0, 1) drawn from ``rng``."""
        rng.random(out=out, dtype=out.dtype)

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"


class _Device(Backend):
    """A backend whose arrays are not NumPy's: its element-wise work is the reference's."""

    host = False
    fused_kernels = False

    def deferred(self, x):
        return x  # (a 0-d array on the device, or a float where the host computed it)


class ArrayAPIBackend(_Device):
    """Any library of the Python array API standard, through a NumPy-shaped adapter.

    Each NumPy-style call with ``out=`` computes its result and writes it into ``out``
    (a temporary per operation: this backend is for proving the seam, not for speed).
    Dropout masks are drawn on the host from the same generator as NumPy's, so a seed gives
    the same masks on either backend.
    """

    def __init__(self, name: str, namespace):
        self.name, self.array_api = name, namespace
        self.xp = NumPyShaped(namespace)

    def dtype(self, dtype):
        return getattr(self.array_api, np.dtype(dtype).name)

    def from_host(self, a, dtype=None):
        return self.array_api.asarray(np.array(a, dtype=dtype, order="C"), copy=True)

    def to_host(self, a) -> np.ndarray:
        return np.from_dlpack(a).copy()

    def upload(self, out, a) -> None:
        out[...] = self.array_api.asarray(np.ascontiguousarray(a))

    def scalars(self, *values):
        xp = self.array_api
        both = xp.stack([xp.asarray(v, dtype=xp.float64) for v in values])
        return tuple(float(v) for v in np.from_dlpack(both))

    def random(self, rng, out) -> None:
        out[...] = self.array_api.asarray(rng.random(tuple(out.shape), dtype=np.dtype(str(out.dtype).split(".")[-1])))


class CuPyBackend(_Device):
    """CuPy arrays on an NVIDIA GPU: NumPy's functions, ``out=`` included, on the device.

    Dropout masks come from a device generator seeded once from the run's generator, so
    a seed gives the same run every time, but not NumPy's masks.
    """

    name = "cupy"

    def __init__(self):
        import cupy

        # CuPy is NumPy's API; the few calls it may not take with out= go through the adapter's way
        self.xp = _Module(cupy, add=_Reduce(cupy.add, cupy.sum), maximum=_Reduce(cupy.maximum, cupy.max),
                          einsum=lambda spec, *operands, out=None: _into(out, cupy.einsum(spec, *operands)))
        self._streams = {}

    def from_host(self, a, dtype=None):
        return self.xp.array(np.asarray(a, dtype=dtype), order="C")

    def to_host(self, a) -> np.ndarray:
        return self.xp.asnumpy(a)

    def upload(self, out, a) -> None:
        out[...] = self.xp.asarray(np.ascontiguousarray(a, dtype=out.dtype))  # (out may be a strided view)

    def scalars(self, *values):
        xp = self.xp
        both = xp.stack([xp.asarray(v, dtype=xp.float64) for v in values])
        return tuple(float(v) for v in xp.asnumpy(both))

    def random(self, rng, out) -> None:
        key = id(rng)
        if key not in self._streams:  # (the generator kept beside it, so its id stays its own)
            while len(self._streams) >= 8:  # the last few runs' (a Generator takes no weak reference)
                self._streams.pop(next(iter(self._streams)))
            self._streams[key] = (rng, self.xp.random.default_rng(int(rng.integers(2**63))))
        self._streams[key][1].random(out=out, dtype=out.dtype)


class _Module:
    """A module with a few of its functions replaced."""

    def __init__(self, module, **replaced):
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(self._module, name)


class _Reduce:
    """A NumPy ufunc's call and ``reduce`` (``xp.add.reduce``) over an array-API function."""

    def __init__(self, call, reduce):
        self._call, self._reduce = call, reduce

    def __call__(self, a, b, out=None):
        return self._call(a, b, out=out)

    def reduce(self, a, axis=0, keepdims=False, out=None):
        return _into(out, self._reduce(a, axis=axis, keepdims=keepdims))


def _into(out, result):
    """``result`` written into ``out`` (converted to its dtype), or returned when there is none."""
    if out is None:
        return result
    if result.dtype != out.dtype:
        result = _namespace_of(out).astype(result, out.dtype)
    out[...] = result
    return out


class NumPyShaped:
    """The functions of NumPy that the passes use, with ``out=``, over an array-API namespace."""

    def __init__(self, xp):
        self.xp = xp
        for name in ("exp", "expm1", "log", "log1p", "tanh", "negative", "sqrt", "abs", "isfinite"):
            setattr(self, name, self._unary(getattr(xp, name)))
        for name in ("multiply", "subtract", "divide", "minimum", "greater", "less", "greater_equal",
                     "logaddexp", "matmul"):
            setattr(self, name, self._binary(getattr(xp, name)))
        self.add = _Reduce(self._binary(xp.add), xp.sum)
        self.maximum = _Reduce(self._binary(xp.maximum), xp.max)
        for name in ("reshape", "all", "any", "stack", "concat", "asarray", "vecdot", "astype", "max", "sum"):
            setattr(self, name, getattr(xp, name))

    @staticmethod
    def _unary(f):
        return lambda a, out=None: _into(out, f(a))

    def _binary(self, f):
        def apply(a, b, out=None):
            return _into(out, f(*self._arrays(a, b)))
        return apply

    def _arrays(self, a, b):
        # a Python number beside an array takes the array's dtype and device
        if isinstance(a, (int, float)):
            a = self.xp.asarray(a, dtype=b.dtype, device=b.device)
        elif isinstance(b, (int, float)):
            b = self.xp.asarray(b, dtype=a.dtype, device=a.device)
        return a, b

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        return self.xp.zeros(shape, dtype=dtype)

    def ones(self, shape, dtype):
        return self.xp.ones(shape, dtype=dtype)

    def empty_like(self, a):
        return self.xp.empty_like(a)

    def zeros_like(self, a):
        return self.xp.zeros_like(a)

    def copy(self, a):
        return self.xp.asarray(a, copy=True)

    def copyto(self, dst, src) -> None:
        dst[...] = src

    def transpose(self, a, axes):
        return self.xp.permute_dims(a, axes)

    def einsum(self, spec, *operands, out=None):
        return _into(out, self.xp.einsum(spec, *operands))  # (where the library has one: PyTorch's)

    def dot(self, a, b):
        return self.xp.vecdot(a, b) if a.ndim == 1 else self.xp.matmul(a, b)

    def vdot(self, a, b):
        return self.xp.vecdot(self.xp.reshape(a, (-1,)), self.xp.reshape(b, (-1,)))

    def mean(self, a, axis=None, out=None):
        return _into(out, self.xp.mean(a, axis=axis))

    def argmax(self, a, axis=None, out=None):
        return _into(out, self.xp.argmax(a, axis=axis))

    def finfo(self, dtype):
        return self.xp.finfo(dtype)


def _namespace_of(a):
    """The array-API namespace of a non-NumPy array (for the adapter's conversions)."""
    from array_api_compat import array_namespace

    return array_namespace(a)


@lru_cache(maxsize=None)
def _backend_for_type(module: str) -> Backend:
    return get_backend({"cupy": "cupy", "torch": "torch"}.get(module, "numpy"))


def backend_of(a) -> Backend:
    """The backend whose arrays ``a`` is one of (NumPy's for NumPy arrays and scalars)."""
    if isinstance(a, np.ndarray):
        return NUMPY
    return _backend_for_type(type(a).__module__.partition(".")[0])


def namespace(a):
    """The NumPy-shaped namespace for arrays like ``a``: NumPy itself for NumPy arrays."""
    return np if isinstance(a, np.ndarray) else backend_of(a).xp


def backend_available(name: str) -> bool:
    """Whether the packages the named backend needs are installed."""
    return all(importlib.util.find_spec(m) is not None for m in _NEEDS.get(name, ()))


@lru_cache(maxsize=None)
def _make(name: str) -> Backend:
    if not backend_available(name):
        extra = {"cupy": "pip install 'deltaprop[gpu]'", "torch": "pip install torch array-api-compat"}[name]
        raise ImportError(f"backend: {name!r} needs {' and '.join(_NEEDS[name])}, which is not installed; {extra}")
    if name == "cupy":
        return CuPyBackend()
    if name == "torch":
        return ArrayAPIBackend("torch", importlib.import_module("array_api_compat.torch"))
    return NUMPY


def get_backend(name: str | Backend | None = None) -> Backend:
    """A backend by name (:data:`BACKENDS`; None is ``numpy``), made once per process.

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.
    ImportError
        If the backend's library is not installed.
    """
    if isinstance(name, Backend):
        return name
    return _make(lookup("backend", BACKENDS, "numpy" if name is None else name))


NUMPY = Backend()
"""The NumPy backend (the default everywhere)."""
