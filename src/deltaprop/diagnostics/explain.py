"""One update step, number by number, with the lecture's equation beside each quantity."""

from __future__ import annotations

import numpy as np

from ..core.engine import Workspace, backward, forward, output_delta, views
from ..core.network import Network
from .gradcheck import gradcheck


def _fmt(a) -> str:
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    return "\n".join("    [" + "  ".join(f"{v: .6f}" for v in row) + "]" for row in a)


def explain_step(net: Network, x, y, learning_rate: float) -> str:
    """The forward pass, the deltas, the gradients and the update of eq. (10) for one sample.

    Parameters
    ----------
    net : Network
        Works on a float64 copy; ``net`` itself is not changed.
    x : array-like of shape (D_0,)
    y : the sample's target, as the likelihood expects it
    learning_rate : float
        mu of eq. (10).

    Returns
    -------
    str
        A report to print.
    """
    net = net.copy(dtype=np.float64)
    X = net.check_X(np.asarray(x, dtype=np.float64).reshape(1, -1))
    T = net.encode_targets(np.asarray(y).reshape(1, -1) if np.ndim(y) else [y], 1)
    L, out = net.n_layers, []
    say = out.append
    ws = Workspace(net.sizes, 1, np.float64)
    ws.X[...] = X
    grad = np.zeros_like(net.theta)
    G = views(grad, net.shapes)
    say(f"network {'-'.join(map(str, net.sizes))}, hidden activation "
        f"{', '.join(net.activation_names) or '(none)'}, likelihood {net.likelihood.name}, mu = {learning_rate}")
    for l in range(1, L + 1):
        say(f"W[{l}] (eq. 11: weights of unit j in column j, bias as the last row):\n{_fmt(net.W[l])}")
    say("\nforward pass (eq. 3)")
    say(f"h[0] = [x, 1] =\n{_fmt(ws.h[0])}")
    forward(net, ws, 1)
    for l in range(1, L + 1):
        say(f"z[{l}] = W[{l}]^T h[{l - 1}] =\n{_fmt(ws.z[l])}")
        if l < L:
            say(f"h[{l}] = [{net.activations[l].name}(z[{l}]), 1] =\n{_fmt(ws.h[l])}")
    J = output_delta(net, ws, 1, T)
    say(f"o = output of the {net.likelihood.name} likelihood =\n{_fmt(ws.o)}")
    say(f"y =\n{_fmt(T)}")
    say(f"J = -log p(y|x) (eq. 1, one sample) = {J:.6f}")
    say("\nbackward pass")
    rule = "o - y" if "+" not in net.likelihood.name else "grad_o J (.) o'(z)"
    say(f"delta[{L}] = {rule} (eqs. 7-8) =\n{_fmt(ws.delta[L])}")
    backward(net, ws, 1, G)
    for l in range(L, 0, -1):
        say(f"grad W[{l}] = h[{l - 1}] delta[{l}]^T (eq. 9; its last row is the bias gradient, "
            f"eq. 12, = delta[{l}]) =\n{_fmt(G[l])}")
        if l > 1:
            say(f"delta[{l - 1}] = phi'(z[{l - 1}]) (.) (W[{l}] without its bias row) delta[{l}] =\n"
                f"{_fmt(ws.delta[l - 1])}")
    check = gradcheck(net, X, T if net.likelihood.name != "categorical" else T.argmax(axis=1))
    say(f"\ngradient check against finite differences: max relative error {check.max_error:.2e} "
        f"({'PASSED' if check.passed else 'FAILED'})")
    say(f"\nupdate (eq. 10): W <- W - mu grad W, with mu = {learning_rate}")
    net.theta -= learning_rate * grad
    for l in range(1, L + 1):
        say(f"W[{l}] =\n{_fmt(net.W[l])}")
    forward(net, ws, 1)
    J_after = output_delta(net, ws, 1, T)
    say(f"J after the step = {J_after:.6f} ({'lower' if J_after < J else 'not lower'} than {J:.6f})")
    return "\n".join(out)
