import math

import pytest

import deltaprop as dp
from deltaprop.optim.schedules import get_schedule


def test_formulas():
    assert dp.Constant()(0.1, 7, 10) == 0.1
    assert dp.StepDecay(step_size=3, gamma=0.5)(0.1, 7, 10) == pytest.approx(0.1 * 0.25)
    assert dp.Exponential(gamma=0.9)(0.1, 3, 10) == pytest.approx(0.1 * 0.9**3)
    assert dp.InverseTime(decay=0.5)(0.1, 4, 10) == pytest.approx(0.1 / 3)
    cos = dp.Cosine(warmup=2, min_lr=0.01)
    assert cos(0.1, 0, 12) == pytest.approx(0.05)
    assert cos(0.1, 1, 12) == pytest.approx(0.1)
    assert cos(0.1, 2, 12) == pytest.approx(0.1)
    assert cos(0.1, 7, 12) == pytest.approx(0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert cos(0.1, 12, 12) == pytest.approx(0.01)


def test_reduce_on_plateau():
    s = dp.ReduceOnPlateau(factor=0.5, patience=2, min_delta=0.0)
    for loss in [1.0, 0.9, 0.95, 0.95]:
        s.observe(loss)
    assert s(0.1, 4, 10) == pytest.approx(0.1)
    s.observe(0.95)  # third epoch without improvement
    assert s(0.1, 5, 10) == pytest.approx(0.05)
    t = dp.ReduceOnPlateau()
    t.load_state_dict(s.state_dict())
    assert t(0.1, 5, 10) == pytest.approx(0.05)


def test_names():
    assert isinstance(get_schedule("cosine"), dp.Cosine)
    assert isinstance(get_schedule(None), dp.Constant)
    with pytest.raises(ValueError, match="schedule: unknown name 'linear'.*cosine"):
        get_schedule("linear")


@pytest.mark.parametrize("make, message", [
    (lambda: dp.StepDecay(step_size=math.inf), "step_size: expected an integer >= 1"),
    (lambda: dp.StepDecay(step_size=2.5), "step_size: expected an integer >= 1"),
    (lambda: dp.StepDecay(gamma=1.5), "gamma: expected a number in \\(0, 1\\]"),
    (lambda: dp.Exponential(gamma=math.nan), "gamma"),
    (lambda: dp.InverseTime(decay=math.nan), "decay: expected a non-negative number"),
    (lambda: dp.Cosine(min_lr=math.nan), "min_lr: expected a non-negative number"),
    (lambda: dp.Cosine(warmup=1.5), "warmup: expected an integer"),
    (lambda: dp.ReduceOnPlateau(min_lr=math.inf), "min_lr: expected a non-negative number"),
    (lambda: dp.ReduceOnPlateau(factor=1.0), "factor"),
    (lambda: dp.ReduceOnPlateau(min_delta=-1), "min_delta"),
])
def test_settings_are_validated_when_made(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_schedule_state_of_another_schedule_is_refused():
    state = dp.ReduceOnPlateau().state_dict()
    with pytest.raises(ValueError, match="cosine schedule: expected a state"):
        dp.Cosine().load_state_dict(state)
    assert repr(get_schedule(None)) == "Constant()" and repr(dp.Cosine(warmup=2)) == "Cosine(warmup=2, min_lr=0.0)"
