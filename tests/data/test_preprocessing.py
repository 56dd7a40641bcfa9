import numpy as np
import pytest

from deltaprop.data.preprocessing import Standardizer, choose_output, encode_labels, infer_task


def test_integer_counts_with_a_tail_of_single_rows_are_a_regression():
    # visits per person: 0..60 with the large values seen once each (a count, not 61 classes)
    visits = np.concatenate([np.repeat(np.arange(20), 30), np.arange(20, 61)])
    assert infer_task(visits) == "regression"
    # twelve classes coded as integers, each on several rows: still classes
    assert infer_task(np.repeat(np.arange(12), 5)) == "classification"
    # ten classes, one on a single row: the tail rule needs more than COUNT_VALUES values
    assert infer_task(np.concatenate([np.repeat(np.arange(9), 6), [9]])) == "classification"


def test_infer_task_and_labels():
    assert infer_task(np.array(["a", "b"] * 10)) == "classification"
    assert infer_task(np.arange(100) % 3) == "classification"
    assert infer_task(np.linspace(0, 1, 100)) == "regression"
    assert infer_task(np.array([[0, 1], [1, 1], [0, 0]])) == "classification"  # multilabel
    y, classes = encode_labels(np.array(["b", "a", "b"]))
    assert classes.tolist() == ["a", "b"] and y.tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="labels c are not among the classes"):
        encode_labels(np.array(["c"]), ["a", "b"])


@pytest.mark.parametrize("y,likelihood,expected", [
    (np.array(["no", "yes", "no"]), None, ("bernoulli", 1, ["no", "yes"])),  # two classes: one sigmoid output
    (np.array([3, 1, 2, 3] * 10), None, ("categorical", 3, [1, 2, 3])),
    (np.array(["a", "b"]), "categorical", ("categorical", 2, ["a", "b"])),
    (np.array([[0, 1], [1, 1]]), None, ("bernoulli", 2, None)),  # multilabel
    (np.array([0.5, 1.5, 2.25]), None, ("gaussian", 1, None)),
    (np.array([[0.5, 1.0], [1.5, 2.0]]), None, ("gaussian", 2, None)),
    (np.array([0, 3, 1, 2]), "poisson", ("poisson", 1, None)),
])
def test_choose_output(y, likelihood, expected):
    out = choose_output(y, likelihood)
    assert (out.likelihood, out.n_outputs, None if out.classes is None else out.classes.tolist()) == expected


def test_choose_output_refuses_one_class_and_many_classes_for_bernoulli():
    with pytest.raises(ValueError, match="at least 2 classes"):
        choose_output(np.array(["a", "a"]))
    with pytest.raises(ValueError, match="bernoulli takes two classes"):
        choose_output(np.array([0, 1, 2]), "bernoulli")


def test_standardizer_round_trip():
    X = np.random.default_rng(0).normal(3, 2, size=(50, 3))
    X[:, 2] = 1.0  # a constant feature is left unscaled, not divided by zero
    s = Standardizer.fit(X)
    Z = s.transform(X)
    np.testing.assert_allclose(Z[:, :2].mean(0), 0, atol=1e-12)
    assert np.all(np.isfinite(Z))
    np.testing.assert_allclose(s.inverse_transform(Z), X)
    with pytest.raises(ValueError, match="positive finite scales"):
        Standardizer([0.0], [0.0])
