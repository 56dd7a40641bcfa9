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

from ..core.engine import mean_output
from ..core.objective import Objective
from ..data.sources import block_check
from ..metrics import score_outputs
from ..validation import is_sparse

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
STILL_FALLING = 0.01  # the relative fall of the validation (else training) loss over the last epochs of a run cut short
UNDERFIT = {"accuracy": 0.9, "r2": 0.5}  # a poor fit of the training rows (probe), by metric


def probe_batch(net, X, T, train_rows, source):
    """The rows diagnostics measure, as (inputs, targets): evenly spaced training rows of
    X (``train_rows``: the rows that train, when some are held out), or for data in
    blocks (X None) the first rows of the first block, read through ``source``."""
    if X is None:
        blocks = source.blocks
        Xb, yb, _ = blocks.read(0, block_check(net))
        n = min(len(Xb), len(probe_rows(blocks.n_samples)))
        Xp = np.array(Xb[:n], dtype=net.dtype)
        if blocks.transform is not None:
            blocks.transform(Xp)
        return Xp, source.encode(yb[:n], n)
    rows = probe_rows(len(train_rows) if train_rows is not None else X.shape[0])
    rows = rows if train_rows is None else train_rows[rows]
    return net.check_X(X[rows]), T[rows]


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
        b = self.X.shape[0]
        ws = obj.workspace(b, is_sparse(self.X))
        row = {q: [] for q in QUANTITIES}
        for l, (block, _) in enumerate(net.layer_slices(), start=1):
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
        # (an ensemble's members averaged, as it predicts)
        history.train_metric.append(score_outputs(net.likelihood, mean_output(net, ws, b), ws.T[:b]))
        return False


def diagnose(history, net) -> list[str]:
    """Plain-words findings from a history recorded with diagnostics (none for a healthy run).

    The run is judged as a whole, not by its last epoch alone: dead and saturated units
    and the size of the updates where the run ended; gradients that vanished or exploded
    across depth in any epoch (said even when they recovered); a loss still falling at
    the last epoch ("not converged"); and, when nothing else explains it, a poor fit of
    the training rows ("underfitting").

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
        findings += _across_depth(layers["grad_norm"], net)
    findings += _fit_of_the_run(history, explained=bool(findings))
    return findings


def _across_depth(grad_norms: list, net) -> list[str]:
    """Gradients that vanished or exploded across depth in any epoch: layer 1's RMS gradient
    against the last layer's, epoch by epoch."""
    sizes = [np.prod(s) for s in net.shapes]
    L = net.n_layers
    ratios = []
    for g in grad_norms:
        first, top = g[0] / math.sqrt(sizes[0]), g[-1] / math.sqrt(sizes[-1])
        ratios.append(first / top if top > 0 else (math.inf if first > 0 else 1.0))
    findings = []
    for bad, word, extreme, fix in (
            ([r < VANISHING for r in ratios], "vanish", min, "use relu, a better initialization or fewer layers"),
            ([r > EXPLODING for r in ratios], "explode", max,
             "lower the learning rate, clip gradients (--clip-norm) or initialize smaller")):
        epochs = [e for e, b in enumerate(bad) if b]
        if not epochs:
            continue
        when = "" if len(epochs) == len(ratios) else f" in epoch{_span(epochs)}"
        worst = extreme(ratios[e] for e in epochs)
        recovered = not bad[-1]
        findings.append(f"gradients {word} across depth{when}: layer 1's RMS gradient {'was' if recovered else 'is'} "
                        f"{'down to ' if word == 'vanish' else 'up to '}{worst:.1g} {'of' if word == 'vanish' else 'times'} "
                        f"layer {L}'s{', and recovered later' if recovered else ''} — {fix}")
    return findings


def _fit_of_the_run(history, explained: bool) -> list[str]:
    """Not converged (the loss still falling at the end of a run the epoch budget ended: the
    validation loss where there is one, since a training loss falling while it rises is
    overfitting, not a reason to train longer) and, unless another finding explains it,
    underfitting (a poor fit of the training rows)."""
    findings = []
    n = history.epochs
    watched = history.val_loss if n and math.isfinite(history.val_loss[-1]) else history.loss
    which = "validation" if watched is history.val_loss else "training"
    k = max(2, min(10, n // 5))
    if not history.stopped and n > k and math.isfinite(watched[-k - 1]) and watched[-k - 1] != 0:
        drop = (watched[-k - 1] - watched[-1]) / abs(watched[-k - 1])
        if drop > STILL_FALLING:
            findings.append(f"not converged: the {which} loss was still falling at the last epoch ({drop:.1%} "
                            f"over the last {k} epochs) — train longer (more epochs)")
    kept = (history.best_epoch or n) - 1
    if not explained and history.train_metric:
        fit = history.train_metric[kept]
        poor = UNDERFIT[history.metric]
        if fit < poor:
            what = f"gets {fit:.0%} of its training rows right" if history.metric == "accuracy" else \
                f"explains R^2 = {fit:.2f} of its training targets"
            findings.append(f"underfitting: the network {what} (on the probe rows; below {poor:g}) — a larger "
                            "network, more epochs or a higher learning rate")
    return findings


def _span(epochs: list) -> str:
    """' 3' or 's 1-12' (1-based), for the epochs where something held."""
    first, last = epochs[0] + 1, epochs[-1] + 1
    return f" {first}" if first == last else f"s {first}-{last}"


def _since(values: list, threshold: float) -> int:
    """The 1-based epoch from which ``values`` stayed at or above ``threshold``."""
    e = len(values)
    while e > 0 and values[e - 1] >= threshold:
        e -= 1
    return e + 1
