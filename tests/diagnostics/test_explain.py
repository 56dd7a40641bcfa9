import math
import re

import numpy as np

import deltaprop as dp
from deltaprop.diagnostics.explain import explain_step


def test_explain_shows_the_lecture_step_and_lowers_the_loss():
    net = dp.Network([2, 2, 1], activation="sigmoid", likelihood="bernoulli", dtype="float64")
    net.W[1][...] = [[0.1, 0.3], [0.2, 0.4], [0.5, -0.5]]
    net.W[2][...] = [[0.7], [-0.6], [0.05]]
    text = explain_step(net, [1.0, 2.0], 1, learning_rate=0.5)
    for eq in ("eq. 11", "eq. 3", "eqs. 7-8", "eq. 9", "eq. 12", "eq. 10", "PASSED"):
        assert eq in text
    J = float(re.search(r"J = -log p\(y\|x\) \(eq. 1, one sample\) = ([0-9.]+)", text).group(1))
    assert J == round(-math.log(0.5434767310649931), 6)
    after = float(re.search(r"J after the step = ([0-9.]+)", text).group(1))
    assert after < J
    assert net.W[2][0, 0] == 0.7  # the caller's network is not changed


def test_explain_categorical_and_general_route():
    for lik, y in (("categorical", 2), ("tanh+squared_error", [0.5, -0.2, 0.1])):
        net = dp.Network([3, 4, 3], activation="tanh", likelihood=lik, seed=0)
        text = explain_step(net, np.ones(3), y, learning_rate=0.1)
        assert "PASSED" in text and "lower than" in text
