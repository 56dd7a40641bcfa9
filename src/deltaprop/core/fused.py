"""Fused element-wise kernels, compiled by Numba: the ``numba`` path of :mod:`deltaprop.core.kernels`.

Each kernel does in one pass over memory what the NumPy reference does in several:
an activation with its derivative applied to delta, a likelihood's loss and delta
with the batch's scale folded in, an optimizer's whole update (and the flush of
subnormal state values). The arithmetic is the reference's, in the same order, so
the two paths agree to float32 rounding; they are tested against each other.

Importing this module imports Numba; the kernels compile on first use for the
dtypes and memory layouts they meet, and are cached on disk (``cache=True``,
next to this file or in ``NUMBA_CACHE_DIR``), so a second process pays no
compilation. Kernels run on the calling thread (no ``parallel=True``: Numba's
threads would fight the BLAS library's for the same cores) and release the GIL.

Fast-math flags allow reassociation and contraction (FMA), not ``nnan``/``ninf``:
NaN and inf must reach the loss so that divergence is caught. NumPy's functions
(``np.sqrt``, ``np.tanh``...) keep float32 in float32, where ``math``'s would widen
it to float64, and constants are made in the arrays' dtype for the same reason:
so that the loops vectorize.

Every kernel is written out in full: Numba's on-disk cache cannot tell apart
kernels made by one factory from different element functions.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
# error_model="numpy": a division by zero gives inf or NaN, as in NumPy, without a test per element
kernel = numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, error_model="numpy")
scalar = numba.njit(inline="always", fastmath=_FASTMATH, error_model="numpy")

_LEAKY_SLOPE = 0.01
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


# --- activations: phi(z) into out -----------------------------------------------------
# ``x if not x < 0`` (not ``x > 0``) lets NaN through, as np.maximum does
@kernel
def identity_forward(z, out):
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            out[i, j] = z[i, j]


@kernel
def sigmoid_forward(z, out):
    half, one = z.dtype.type(0.5), z.dtype.type(1)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            out[i, j] = half * (np.tanh(half * z[i, j]) + one)  # (1 + tanh(z/2)) / 2 never overflows


@kernel
def tanh_forward(z, out):
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            out[i, j] = np.tanh(z[i, j])


@kernel
def relu_forward(z, out):
    zero = z.dtype.type(0)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            x = z[i, j]
            out[i, j] = zero if x < zero else x


@kernel
def leaky_relu_forward(z, out):
    slope = z.dtype.type(_LEAKY_SLOPE)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            x = z[i, j]
            out[i, j] = slope * x if x < 0 else x


@kernel
def elu_forward(z, out):
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            x = z[i, j]
            out[i, j] = np.expm1(x) if x < 0 else x


@scalar
def _softplus(x, zero):
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): the exponential never overflows
    return max(x, zero) + np.log1p(np.exp(-abs(x)))


@kernel
def softplus_forward(z, out):
    zero = z.dtype.type(0)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            out[i, j] = _softplus(z[i, j], zero)


@kernel
def gelu_forward(z, out):
    half, one, c, a = z.dtype.type(0.5), z.dtype.type(1), z.dtype.type(_GELU_C), z.dtype.type(_GELU_A)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            x = z[i, j]
            out[i, j] = half * x * (one + np.tanh(c * x * (one + a * x * x)))


# --- backpropagation through an activation: delta *= phi'(z), given h = phi(z) ------------
@kernel
def sigmoid_backprop(z, h, delta):
    one = h.dtype.type(1)
    for i in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            delta[i, j] *= h[i, j] * (one - h[i, j])


@kernel
def tanh_backprop(z, h, delta):
    one = h.dtype.type(1)
    for i in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            delta[i, j] *= one - h[i, j] * h[i, j]


@kernel
def relu_backprop(z, h, delta):
    zero = delta.dtype.type(0)
    for i in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            # phi'(0) = 0, as in the reference; 0 * delta keeps a NaN a NaN
            delta[i, j] = delta[i, j] if z[i, j] > 0 else zero * delta[i, j]


@kernel
def leaky_relu_backprop(z, h, delta):
    slope, one = delta.dtype.type(_LEAKY_SLOPE), delta.dtype.type(1)
    for i in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            delta[i, j] *= one if z[i, j] > 0 else slope


@kernel
def elu_backprop(z, h, delta):
    one = delta.dtype.type(1)
    for i in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            delta[i, j] *= one if z[i, j] > 0 else h[i, j] + one  # e^z = h + 1


@kernel
def softplus_backprop(z, h, delta):
    for i in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            delta[i, j] *= -np.expm1(-h[i, j])  # sigma(z) = 1 - e^-h


@kernel
def gelu_backprop(z, h, delta):
    # phi' = (1/2 + w) + t (1/2 - w t), t = tanh(c (z + a z^3)), w = z/2 c (1 + 3 a z^2)
    half, one, three = delta.dtype.type(0.5), delta.dtype.type(1), delta.dtype.type(3)
    c, a = delta.dtype.type(_GELU_C), delta.dtype.type(_GELU_A)
    for i in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            x = z[i, j]
            t = np.tanh(c * x * (one + a * x * x))
            w = half * c * x * (one + three * a * x * x)
            delta[i, j] *= (half + w) + t * (half - w * t)


FORWARD = {"identity": identity_forward, "sigmoid": sigmoid_forward, "tanh": tanh_forward,
           "relu": relu_forward, "leaky_relu": leaky_relu_forward, "elu": elu_forward,
           "softplus": softplus_forward, "gelu": gelu_forward}
# identity's derivative is 1: nothing to do
BACKPROP = {"sigmoid": sigmoid_backprop, "tanh": tanh_backprop, "relu": relu_backprop,
            "leaky_relu": leaky_relu_backprop, "elu": elu_backprop, "softplus": softplus_backprop,
            "gelu": gelu_backprop}


# --- likelihoods: o, each row's -log p into nll, delta = s (o - y); returns sum nll ----------
@kernel
def categorical_loss_and_delta(z, T, o, delta, nll, s):
    total = 0.0
    K = z.shape[1]
    for i in range(z.shape[0]):
        m = z[i, 0]
        for k in range(1, K):
            m = max(m, z[i, k])
        e, tz = 0.0, 0.0
        for k in range(K):
            o[i, k] = np.exp(z[i, k] - m)
            e += o[i, k]
            tz += T[i, k] * z[i, k]
        for k in range(K):
            o[i, k] /= e
            delta[i, k] = (o[i, k] - T[i, k]) * s
        # (m - T.z) + log sum e^(z - m): see the reference for why in this order
        nll[i, 0] = (m - tz) + np.log(e)
        total += nll[i, 0]
    return total


@kernel
def bernoulli_loss_and_delta(z, T, o, delta, nll, s):
    total, zero = 0.0, z.dtype.type(0)
    for i in range(z.shape[0]):
        row = 0.0
        for k in range(z.shape[1]):
            x = z[i, k]
            sp = _softplus(x, zero)
            o[i, k] = np.exp(x - sp)
            row += sp - T[i, k] * x  # softplus(z) - y z
            delta[i, k] = (o[i, k] - T[i, k]) * s
        nll[i, 0] = row
        total += row
    return total


@kernel
def gaussian_loss_and_delta(z, T, o, delta, nll, s):
    total = 0.0
    for i in range(z.shape[0]):
        row = 0.0
        for k in range(z.shape[1]):
            o[i, k] = z[i, k]
            r = z[i, k] - T[i, k]
            row += r * r
            delta[i, k] = r * s
        nll[i, 0] = 0.5 * row
        total += nll[i, 0]
    return total


@kernel
def poisson_loss_and_delta(z, T, o, delta, nll, s):
    total = 0.0
    for i in range(z.shape[0]):
        row = 0.0
        for k in range(z.shape[1]):
            o[i, k] = np.exp(z[i, k])  # an overflowing rate is caught as divergence
            row += o[i, k] - T[i, k] * z[i, k]
            delta[i, k] = (o[i, k] - T[i, k]) * s
        nll[i, 0] = row
        total += row
    return total


LOSS_AND_DELTA = {"categorical": categorical_loss_and_delta, "bernoulli": bernoulli_loss_and_delta,
                  "gaussian": gaussian_loss_and_delta, "poisson": poisson_loss_and_delta}


# --- data: rows gathered into a batch buffer --------------------------------------------------
@kernel
def gather_rows(X, idx, h):
    # h[i, :D] = X[idx[i]] in one pass, converting the stored dtype (e.g. uint8) on the way.
    # h is the whole C-contiguous h[0] (its last column, the ones, is not touched): a
    # contiguous layout lets the row copy vectorize, where the strided view of X's columns
    # would not. The indices are the source's own permutation.
    D = X.shape[1]
    for i in range(idx.shape[0]):
        r = idx[i]
        for j in range(D):
            h[i, j] = X[r, j]


# --- optimizers: one layer of theta, its gradient and state, updated in one pass -------------
# The constants arrive in theta's dtype. ``flush`` zeroes subnormal state values, |x| < tiny,
# as the reference does every ``flush_every`` steps (a NaN stays a NaN).
@kernel
def momentum_update(theta, g, v, lr, beta, flush, tiny):
    zero = theta.dtype.type(0)
    for i in range(theta.shape[0]):
        vi = v[i] * beta - g[i] * lr
        theta[i] += vi
        v[i] = zero if flush and abs(vi) < tiny else vi


@kernel
def nesterov_update(theta, g, v, lr, beta, flush, tiny):
    zero = theta.dtype.type(0)
    for i in range(theta.shape[0]):
        step = g[i] * lr
        vi = v[i] * beta - step
        theta[i] = (theta[i] - step) + vi * beta
        v[i] = zero if flush and abs(vi) < tiny else vi


@kernel
def rmsprop_update(theta, g, s, lr, eps, rho, one_minus_rho, flush, tiny):
    # s <- rho s + (1 - rho) g^2; AdaGrad is rho = 1 - rho = 1 (multiplying by 1 is exact)
    zero = theta.dtype.type(0)
    for i in range(theta.shape[0]):
        si = s[i] * rho + g[i] * g[i] * one_minus_rho
        theta[i] -= g[i] / (np.sqrt(si) + eps) * lr
        s[i] = zero if flush and si < tiny else si


@kernel
def adam_update(theta, g, M, V, b1, b2, e, inv_c, decay, n_weights, flush, tiny):
    # M = m / (1 - b1), V = v / (1 - b2); theta -= M / ((sqrt(V) + e) / c); see optim.Adam.
    # The first n_weights entries are first multiplied by ``decay`` (AdamW; none for Adam)
    zero = theta.dtype.type(0)
    for i in range(n_weights):
        theta[i] *= decay
    for i in range(theta.shape[0]):
        mi = M[i] * b1 + g[i]
        vi = V[i] * b2 + g[i] * g[i]
        theta[i] -= mi / ((np.sqrt(vi) + e) * inv_c)
        M[i] = zero if flush and abs(mi) < tiny else mi
        V[i] = zero if flush and vi < tiny else vi


UPDATE = {"momentum": momentum_update, "nesterov": nesterov_update, "adagrad": rmsprop_update,
          "rmsprop": rmsprop_update, "adam": adam_update, "adamw": adam_update}
