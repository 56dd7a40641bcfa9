"""Learning-rate schedules: the mu of eq. (10) as a function of the epoch.

A schedule maps ``(base_learning_rate, epoch, total_epochs)`` to the learning
rate of that epoch (epochs count from 0). :class:`ReduceOnPlateau` also watches
the monitored loss through :meth:`Schedule.observe`; its state goes into
checkpoints through ``state_dict``.
"""

from __future__ import annotations

import inspect
import math

from ..registry import lookup
from ..validation import check_float, check_int


class Schedule:
    """Base class: a constant learning rate."""

    name = "constant"

    def settings(self) -> dict:
        """The constructor's arguments (a schedule's state is the rest of its attributes)."""
        return {p: getattr(self, p) for p in inspect.signature(type(self)).parameters}

    def __call__(self, base: float, epoch: int, total_epochs: int) -> float:
        return base

    def observe(self, loss: float) -> None:
        """Called after each epoch with the monitored loss (validation loss when there is one)."""

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (the same attributes, numbers only)."""
        if not isinstance(state, dict) or set(state) != set(vars(self)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in state.values()):
            raise ValueError(f"{self.name} schedule: expected a state with the numbers {sorted(vars(self))}, "
                             f"found {state!r}")
        vars(self).update(state)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """The learning rate as given, every epoch."""


class StepDecay(Schedule):
    """mu_e = mu gamma^floor(e / step_size)."""

    name = "step"

    def __init__(self, step_size: int = 10, gamma: float = 0.5):
        self.step_size = check_int("step schedule: step_size", step_size, 1)
        self.gamma = _gamma("step schedule", gamma)

    def __call__(self, base, epoch, total_epochs):
        return base * self.gamma ** (epoch // self.step_size)


class Exponential(Schedule):
    """mu_e = mu gamma^e."""

    name = "exponential"

    def __init__(self, gamma: float = 0.95):
        self.gamma = _gamma("exponential schedule", gamma)

    def __call__(self, base, epoch, total_epochs):
        return base * self.gamma ** epoch


class InverseTime(Schedule):
    """mu_e = mu / (1 + decay e)."""

    name = "inverse_time"

    def __init__(self, decay: float = 0.1):
        self.decay = check_float("inverse_time schedule: decay", decay, 0.0)

    def __call__(self, base, epoch, total_epochs):
        return base / (1 + self.decay * epoch)


class Cosine(Schedule):
    """Linear warm-up over ``warmup`` epochs, then cosine annealing to ``min_lr``.

    mu_e = mu (e + 1) / warmup during warm-up; afterwards
    mu_e = min_lr + (mu - min_lr) (1 + cos(pi p)) / 2 with p = (e - warmup) / (E - warmup).
    """

    name = "cosine"

    def __init__(self, warmup: int = 0, min_lr: float = 0.0):
        self.warmup = check_int("cosine schedule: warmup", warmup, 0)
        self.min_lr = check_float("cosine schedule: min_lr", min_lr, 0.0)

    def __call__(self, base, epoch, total_epochs):
        if epoch < self.warmup:
            return base * (epoch + 1) / self.warmup
        span = max(total_epochs - self.warmup, 1)
        p = min((epoch - self.warmup) / span, 1.0)
        return self.min_lr + (base - self.min_lr) * 0.5 * (1 + math.cos(math.pi * p))


class ReduceOnPlateau(Schedule):
    """Multiply the learning rate by ``factor`` when the monitored loss has not improved
    by more than ``min_delta`` for ``patience`` epochs; never below ``min_lr``."""

    name = "plateau"

    def __init__(self, factor: float = 0.5, patience: int = 5, min_delta: float = 1e-4,
                 min_lr: float = 0.0):
        self.factor = check_float("plateau schedule: factor", factor, 0.0, strict=True, below=1.0)
        self.patience = check_int("plateau schedule: patience", patience, 0)
        self.min_delta = check_float("plateau schedule: min_delta", min_delta, 0.0)
        self.min_lr = check_float("plateau schedule: min_lr", min_lr, 0.0)
        self.scale, self.best, self.bad_epochs = 1.0, math.inf, 0

    def __call__(self, base, epoch, total_epochs):
        return max(base * self.scale, self.min_lr)

    def observe(self, loss):
        if loss < self.best - self.min_delta:
            self.best, self.bad_epochs = float(loss), 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.scale *= self.factor
            self.bad_epochs = 0


def _gamma(where: str, gamma) -> float:
    gamma = check_float(f"{where}: gamma", gamma, 0.0, strict=True)
    if gamma > 1:
        raise ValueError(f"{where}: gamma: expected a number in (0, 1], found {gamma!r}")
    return gamma


SCHEDULES: dict[str, type[Schedule]] = {
    c.name: c for c in (Constant, StepDecay, Exponential, InverseTime, Cosine, ReduceOnPlateau)
}
"""Every schedule by name, shared by the API, the CLI and checkpoints."""


def get_schedule(spec) -> Schedule:
    """A schedule from an instance, None (constant) or a name (default settings)."""
    if spec is None:
        return Constant()
    if isinstance(spec, Schedule):
        return spec
    return SCHEDULES[lookup("schedule", SCHEDULES, spec)]()
