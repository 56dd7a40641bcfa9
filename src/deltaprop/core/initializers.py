"""Weight initialization: Glorot/Xavier, He and LeCun, uniform or normal, with bias rows
zero; and scikit-learn's MLP scheme, which draws the biases too.

Weights are drawn in float64 from a :class:`numpy.random.Generator` and then cast,
so a float32 and a float64 network built from the same seed start from the same
numbers (up to rounding), and the same seed always gives bit-identical weights.
"""

from __future__ import annotations

import math

import numpy as np

from ..registry import lookup

Array = np.ndarray


def _uniform(limit_sq):
    return lambda rng, fan_in, fan_out: rng.uniform(
        -math.sqrt(limit_sq(fan_in, fan_out)), math.sqrt(limit_sq(fan_in, fan_out)),
        size=(fan_in, fan_out),
    )


def _normal(var):
    return lambda rng, fan_in, fan_out: rng.normal(
        0.0, math.sqrt(var(fan_in, fan_out)), size=(fan_in, fan_out)
    )


def _uniform_with_bias(factor):
    # scikit-learn's MLP: weights and biases alike uniform on +-sqrt(factor / (fan_in + fan_out))
    return lambda rng, fan_in, fan_out: rng.uniform(
        -math.sqrt(factor / (fan_in + fan_out)), math.sqrt(factor / (fan_in + fan_out)),
        size=(fan_in + 1, fan_out),
    )


# uniform on [-a, a] has variance a^2 / 3, so each pair below has the same variance
INITIALIZERS = {
    "glorot_uniform": _uniform(lambda i, o: 6.0 / (i + o)),
    "glorot_normal": _normal(lambda i, o: 2.0 / (i + o)),
    "he_uniform": _uniform(lambda i, o: 6.0 / i),
    "he_normal": _normal(lambda i, o: 2.0 / i),
    "lecun_uniform": _uniform(lambda i, o: 3.0 / i),
    "lecun_normal": _normal(lambda i, o: 1.0 / i),
    "sklearn": _uniform_with_bias(6.0),
    "sklearn_logistic": _uniform_with_bias(2.0),
}
"""Initializers by name; each maps ``(rng, fan_in, fan_out)`` to a float64 weight matrix
(``fan_in + 1`` rows for the schemes that draw the bias row too: ``sklearn``, and
``sklearn_logistic``, which scikit-learn uses when the activation is logistic)."""

_ALIASES = {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal",
            "glorot": "glorot_uniform", "xavier": "glorot_uniform", "he": "he_uniform",
            "lecun": "lecun_normal"}


def check_init(name: str) -> str:
    """Return the canonical initializer name, or raise a ValueError listing the valid ones."""
    return lookup("init", INITIALIZERS, name, _ALIASES)


def init_weights(W: Array, name: str, rng) -> None:
    """Fill an augmented weight matrix in place (eq. (11)): weights drawn, bias row zero
    (or drawn, for the schemes that draw it). ``rng`` is a Generator, or a RandomState
    (scikit-learn's stream: one draw of ``fan_in + 1`` rows takes its weights, then its
    biases, as scikit-learn's two draws do)."""
    fan_in, fan_out = W.shape[0] - 1, W.shape[1]
    drawn = INITIALIZERS[check_init(name)](rng, fan_in, fan_out)
    if drawn.shape[0] == fan_in + 1:
        W[...] = drawn
        return
    W[:-1] = drawn
    W[-1] = 0
