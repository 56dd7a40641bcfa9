"""Why is my network not learning? Per-layer measurements during training, and a verdict in words.

:class:`Diagnostics` is a callback (``train(..., diagnostics=True)``, ``deltaprop train
--diagnostics``): at the end of every epoch it measures each layer on a fixed probe
batch of training rows and records, in ``History.layers``:

- ``grad_norm``: ||G[l]||, the gradient of the data term on the probe batch (eq. (9));
- ``weight_norm``: ||W[l]||, bias row included;
- ``update_ratio``: ||W[l] after - W[l] before|| / ||W[l]|| over the epoch's last step,
  the size of one step of eq. (10) relative to the weights (about 1e-3 is the usual
  rule of thumb; 1e-6 is a learning rate too small to move anything);
- ``dead``: for the relu family, the fraction of units with z <= 0 on every probe row
  (their phi' is 0, or nearly, so no gradient flows through them);
- ``saturated``: for sigmoid and tanh, the fraction of units whose phi'(z) is below
  5% of its peak (|z| > 4.4 for the sigmoid, > 2.2 for tanh), over the probe rows.

(NaN where a quantity does not apply.) :func:`diagnose` turns a history into plain
findings, such as "layer 2: 87% of units dead since epoch 3 - lower the learning rate
or use leaky_relu"; a healthy run gives none. The probe pass costs one forward and
backward pass over at most 256 rows per epoch.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.objective import Objective

Array = np.ndarray

QUANTITIES = ("grad_norm", "weight_norm", "update_ratio", "dead", "saturated")
PROBE_ROWS = 256
_RELU_FAMILY = ("relu", "leaky_relu", "elu", "gelu")
_SATURATING = {"sigmoid": 0.25, "tanh": 1.0}  # phi'(0), the peak of phi'

# the verdicts' thresholds
DEAD = 0.5  # a layer with half its units dead
SATURATED = 0.35
TINY_UPDATE = 1e-5  # update/weight ratio of one step
HUGE_UPDATE = 0.3
VANISHING = 1e-2  # the first layer's RMS gradient against the last one's (healthy runs: 0.1 to 1)
EXPLODING = 1e2


def probe_rows(n: int, k: int = PROBE_ROWS) -> Array:
    """Up to ``k`` evenly spaced row indices of ``n``: a fixed probe that needs no random state."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(np.intp))


class Diagnostics:
    """A training callback measuring every layer on a fixed probe batch (see the module).

    Parameters
    ----------
    X, T : ndarray
        The probe batch: inputs as the network takes them and encoded targets
        (:meth:`Network.encode_targets`).
    """

    def __init__(self, X: Array, T: Array):
        self.X, self.T = X, T
        self._objective = self._before = None
        self._last_batch = -1

    def on_train_begin(self, net, state):
        self._objective = Objective(net)
        self._before = np.empty_like(net.theta)
        n, _, _, batch_size = state.data_shape
        self._last_batch = -(-n // batch_size) - 1
        layers = state.history.layers
        for q in QUANTITIES:
            layers.setdefault(q, [])

    def on_batch_begin(self, batch, net, state):
        if batch == self._last_batch:  # the step whose size is recorded
            np.copyto(self._before, net.theta)

    def on_epoch_end(self, epoch, history, net):
        obj = self._objective
        # the data term's gradient on the probe (the training network's theta, no dropout, no penalty)
        obj.value_and_grad(net.theta, (self.X, self.T))
        ws, b = obj.workspace(len(self.X)), len(self.X)
        row = {q: [] for q in QUANTITIES}
        for l, (block, _) in enumerate(net.blocks(), start=1):
            W = net.theta[block]
            w_norm = float(np.linalg.norm(W))
            row["grad_norm"].append(float(np.linalg.norm(obj.G[l])))
            row["weight_norm"].append(w_norm)
            step = float(np.linalg.norm(W - self._before[block]))
            row["update_ratio"].append(step / w_norm if w_norm > 0 else math.nan)
            dead = saturated = math.nan
            if l < net.n_layers:
                name, z = net.activations[l].name, ws.z[l][:b]
                if name in _RELU_FAMILY:
                    dead = float(np.mean(np.all(z <= 0, axis=0)))
                if name in _SATURATING:  # phi'(z) near 0 (a new array, once an epoch, on the probe rows)
                    saturated = float(np.mean(net.activations[l].prime(z) < 0.05 * _SATURATING[name]))
            row["dead"].append(dead)
            row["saturated"].append(saturated)
        for q in QUANTITIES:
            history.layers[q].append(row[q])
        return False


def diagnose(history, net) -> list[str]:
    """Plain-words findings from a history recorded with diagnostics (none for a healthy run).

    Parameters
    ----------
    history : History
        With ``history.layers`` filled by :class:`Diagnostics`.
    net : Network
        The network trained (for its activations' names).

    Returns
    -------
    list of str
        One finding per problem, each with what to try.
    """
    layers = history.layers
    if not layers or not layers.get("grad_norm"):
        return []
    findings, last, dead_layers = [], history.epochs - 1, set()
    L = net.n_layers
    for l in range(1, L):
        name = net.activations[l].name
        dead = [e[l - 1] for e in layers["dead"]]
        if dead[last] >= DEAD:
            fix = "lower the learning rate or use leaky_relu" if name == "relu" else \
                "lower the learning rate or initialize the biases at 0"
            dead_layers.add(l)
            findings.append(f"layer {l}: {dead[last]:.0%} of units dead since epoch {_since(dead, DEAD)} "
                            f"(z <= 0 on every probe row, so no gradient reaches them) — {fix}")
        sat = [e[l - 1] for e in layers["saturated"]]
        if sat[last] >= SATURATED:
            findings.append(f"layer {l}: {sat[last]:.0%} of {name} units saturated since epoch "
                            f"{_since(sat, SATURATED)} (phi' near 0) — standardize the inputs, use the default "
                            "initialization (smaller weights), or relu")
    if dead_layers:
        # dead units pass no gradient down and feed constants up: with the cause said, its
        # consequences (updates of zero, a vanishing gradient) would only mislead
        return findings
    for l in range(1, L + 1):
        ratio = layers["update_ratio"][last][l - 1]
        if ratio < TINY_UPDATE:
            findings.append(f"layer {l}: update/weight ratio {ratio:.1g} — the learning rate is too small")
        elif ratio > HUGE_UPDATE:
            findings.append(f"layer {l}: update/weight ratio {ratio:.2g} — the learning rate is too large")
    if L > 1:
        sizes = [np.prod(s) for s in net.shapes]
        g = layers["grad_norm"][last]
        first, top = g[0] / math.sqrt(sizes[0]), g[-1] / math.sqrt(sizes[-1])
        if top > 0 and first / top < VANISHING:
            findings.append(f"gradients vanish across depth: layer 1's RMS gradient is {first / top:.1g} of layer "
                            f"{L}'s — use relu, a better initialization or fewer layers")
        elif first > 0 and first / max(top, 1e-300) > EXPLODING:
            findings.append(f"gradients explode across depth: layer 1's RMS gradient is {first / top:.1g} times "
                            f"layer {L}'s — lower the learning rate, clip gradients (--clip-norm) or initialize smaller")
    return findings


def _since(values: list, threshold: float) -> int:
    """The 1-based epoch from which ``values`` stayed at or above ``threshold``."""
    e = len(values)
    while e > 0 and values[e - 1] >= threshold:
        e -= 1
    return e + 1
