"""Elementwise activations phi of the hidden layers (and of the output in eq. (8)).

Each activation writes into preallocated arrays so that a training step
allocates nothing. ``forward(z, out)`` computes phi(z); ``derivative(z, h, out,
work)`` writes phi'(z) into ``out``, given ``h = phi(z)`` from the forward pass
(cheaper than recomputing for sigmoid, tanh, relu and softplus). ``work`` is a
scratch array of the same shape that the derivative may overwrite; ``out`` may
be a strided view (the column of ones of ``h[l]`` is excluded by slicing).

Every formula is written so that |z| = 1000 overflows nowhere, in float32 or
float64: exponentials only ever see non-positive arguments, or go through
``logaddexp``/``tanh``, which saturate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..registry import lookup
from .backend import namespace

Array = np.ndarray

_LEAKY_SLOPE = 0.01
_GELU_C = float(np.sqrt(2.0 / np.pi))  # tanh approximation of GELU (Hendrycks & Gimpel)
_GELU_A = 0.044715


@dataclass(frozen=True)
class Activation:
    """A hidden activation phi with its derivative.

    Attributes
    ----------
    name : str
        Registry name, as used by the CLI and written to model files.
    forward : callable
        ``forward(z, out)`` writes phi(z) into ``out``.
    derivative : callable
        ``derivative(z, h, out, work)`` writes phi'(z) into ``out``.
    init : str
        The default weight initialization for layers followed by this activation.
    onnx : callable
        ``onnx(g, x)`` adds phi(x) to an ONNX graph under construction and returns
        the name of its output (``g`` is :class:`deltaprop.io.onnx.GraphBuilder`).
    """

    name: str
    forward: Callable[[Array, Array], None]
    derivative: Callable[[Array, Array, Array, Array], None]
    init: str
    onnx: Callable = None

    def __call__(self, z: Array) -> Array:
        """phi(z) as a new array (for explanations and tests, not the training loop)."""
        out = namespace(z).empty_like(z)
        self.forward(z, out)
        return out

    def __reduce__(self):
        # a registered activation pickles as its name (its functions may be lambdas)
        if ACTIVATIONS.get(self.name) is self:
            return get_activation, (self.name,)
        return super().__reduce__()

    def prime(self, z: Array) -> Array:
        """phi'(z) as a new array (for explanations and tests)."""
        xp = namespace(z)
        h, out, work = self(z), xp.empty_like(z), xp.empty_like(z)
        self.derivative(z, h, out, work)
        return out


# --- identity ---------------------------------------------------------------
def _identity(z, out):
    xp = namespace(z)
    xp.copyto(out, z)


def _identity_d(z, h, out, work):
    xp = namespace(z)
    xp.copyto(out, 1)


# --- sigmoid: 1/(1+e^-z) = (1 + tanh(z/2)) / 2, which never overflows ---------
def _sigmoid(z, out):
    xp = namespace(z)
    xp.multiply(z, 0.5, out=out)
    xp.tanh(out, out=out)
    out += 1
    out *= 0.5


def _sigmoid_d(z, h, out, work):
    # sigma' = sigma (1 - sigma), from the stored output
    xp = namespace(z)
    xp.subtract(1, h, out=out)
    out *= h


# --- tanh -------------------------------------------------------------------
def _tanh(z, out):
    xp = namespace(z)
    xp.tanh(z, out=out)


def _tanh_d(z, h, out, work):
    xp = namespace(z)
    xp.multiply(h, h, out=out)
    xp.subtract(1, out, out=out)


# --- relu -------------------------------------------------------------------
def _relu(z, out):
    xp = namespace(z)
    xp.maximum(z, 0, out=out)


def _relu_d(z, h, out, work):
    # the derivative at the kink z = 0 is taken as 0
    xp = namespace(z)
    xp.greater(z, 0, out=out)


# --- leaky relu: max(z, a z) for 0 < a < 1 ------------------------------------
def _leaky_relu(z, out):
    xp = namespace(z)
    xp.multiply(z, _LEAKY_SLOPE, out=out)
    xp.maximum(out, z, out=out)


def _leaky_relu_d(z, h, out, work):
    xp = namespace(z)
    xp.greater(z, 0, out=out)
    out *= 1 - _LEAKY_SLOPE
    out += _LEAKY_SLOPE


# --- elu (alpha = 1): z for z > 0, e^z - 1 otherwise --------------------------
def _elu(z, out):
    xp = namespace(z)
    xp.minimum(z, 0, out=out)  # e^z only ever sees z <= 0
    xp.expm1(out, out=out)
    xp.maximum(out, z, out=out)  # e^z - 1 >= z for all z, with equality at 0


def _elu_d(z, h, out, work):
    # 1 for z > 0, e^z = h + 1 otherwise
    xp = namespace(z)
    xp.minimum(h, 0, out=out)
    out += 1


# --- softplus: log(1 + e^z) ---------------------------------------------------
def _softplus(z, out):
    xp = namespace(z)
    xp.logaddexp(0, z, out=out)


def _softplus_d(z, h, out, work):
    # softplus' = sigma(z) = 1 - e^{-h}, accurate at both ends through expm1
    xp = namespace(z)
    xp.negative(h, out=out)
    xp.expm1(out, out=out)
    xp.negative(out, out=out)


# --- gelu, tanh approximation: z/2 (1 + tanh(c (z + a z^3))) -----------------
def _gelu_tanh_arg(z, out):
    xp = namespace(z)
    xp.multiply(z, z, out=out)
    out *= _GELU_A
    out += 1
    out *= z
    out *= _GELU_C


def _gelu_w(z, out):
    # w = z/2 c (1 + 3 a z^2), the z-dependent factor of the derivative
    xp = namespace(z)
    xp.multiply(z, z, out=out)
    out *= 3 * _GELU_A
    out += 1
    out *= z
    out *= 0.5 * _GELU_C


def _gelu(z, out):
    xp = namespace(z)
    _gelu_tanh_arg(z, out)
    xp.tanh(out, out=out)
    out += 1
    out *= z
    out *= 0.5


def _gelu_d(z, h, out, work):
    # phi' = (1 + t) (w (1 - t) + 1/2),  t = tanh(c (z + a z^3)),
    # w = z/2 c (1 + 3 a z^2); expanded as a polynomial in t so that two buffers suffice:
    # phi' = (1/2 + w) + t (1/2 - w t)
    xp = namespace(z)
    _gelu_tanh_arg(z, out)
    xp.tanh(out, out=out)  # out = t
    _gelu_w(z, work)
    xp.multiply(work, out, out=work)  # work = w t  (w is recomputed below)
    xp.subtract(0.5, work, out=work)  # work = 1/2 - w t
    out *= work  # out = t (1/2 - w t)
    out += 0.5
    _gelu_w(z, work)
    out += work


def _gelu_onnx(g, x):
    # z/2 (1 + tanh(c (z + a z^3))), from primitives (ONNX's Gelu needs opset 20)
    cube = g.node("Mul", [g.node("Mul", [x, x]), x])
    inner = g.node("Add", [x, g.node("Mul", [cube, g.const(_GELU_A)])])
    t = g.node("Tanh", [g.node("Mul", [inner, g.const(_GELU_C)])])
    return g.node("Mul", [g.node("Mul", [x, g.const(0.5)]), g.node("Add", [t, g.const(1.0)])])


def _op(name, **attrs):
    return lambda g, x: g.node(name, [x], **attrs)


# leaky relu, elu and softplus from primitives: onnxruntime has no float64 kernels for
# LeakyRelu, Elu and Softplus, and a scikit-learn pipeline on float64 input exports in float64
def _leaky_relu_onnx(g, x):
    return g.node("Max", [x, g.node("Mul", [x, g.const(_LEAKY_SLOPE)])])


def _elu_onnx(g, x):
    return g.node("Max", [x, g.node("Sub", [g.node("Exp", [g.node("Min", [x, g.const(0.0)])]), g.const(1.0)])])


def _softplus_onnx(g, x):
    # max(z, 0) + log(1 + e^-|z|): the exponential never overflows
    tail = g.node("Log", [g.node("Add", [g.const(1.0), g.node("Exp", [g.node("Neg", [g.node("Abs", [x])])])])])
    return g.node("Add", [g.node("Relu", [x]), tail])


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("identity", _identity, _identity_d, "glorot_uniform", _op("Identity")),
        Activation("sigmoid", _sigmoid, _sigmoid_d, "glorot_uniform", _op("Sigmoid")),
        Activation("tanh", _tanh, _tanh_d, "glorot_uniform", _op("Tanh")),
        Activation("relu", _relu, _relu_d, "he_uniform", _op("Relu")),
        Activation("leaky_relu", _leaky_relu, _leaky_relu_d, "he_uniform", _leaky_relu_onnx),
        Activation("elu", _elu, _elu_d, "he_uniform", _elu_onnx),
        Activation("softplus", _softplus, _softplus_d, "glorot_uniform", _softplus_onnx),
        Activation("gelu", _gelu, _gelu_d, "he_uniform", _gelu_onnx),
    )
}
"""Every activation by name: the one list shared by the API, the CLI and model files."""

_ALIASES = {"logistic": "sigmoid", "linear": "identity"}


def get_activation(name: str | Activation) -> Activation:
    """Look up an activation by name (``logistic`` and ``linear`` are accepted aliases).

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.
    """
    if isinstance(name, Activation):
        return name
    return ACTIVATIONS[lookup("activation", ACTIVATIONS, name, _ALIASES)]
