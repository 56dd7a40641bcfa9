"""The scores deltaprop reports agree with scikit-learn's, weighted or not."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, r2_score

from deltaprop.metrics import accuracy, r2


@pytest.mark.parametrize("weighted", [False, True])
def test_accuracy_and_r2_are_sklearns(weighted):
    rng = np.random.default_rng(0)
    w = rng.uniform(0.1, 2, 50) if weighted else None
    a, b = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    assert accuracy(a, b, w) == pytest.approx(accuracy_score(a, b, sample_weight=w))
    A, B = rng.integers(0, 2, (50, 3)), rng.integers(0, 2, (50, 3))  # multilabel: subset accuracy
    assert accuracy(A, B, w) == pytest.approx(accuracy_score(A, B, sample_weight=w))
    y, p = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    assert r2(y, p, w) == pytest.approx(r2_score(y, p, sample_weight=w))
