import numpy as np

import deltaprop as dp
from deltaprop.diagnostics.plotting import plot_confusion_matrix, plot_decision_regions, plot_learning_curves

PNG = b"\x89PNG\r\n\x1a\n"


def test_learning_curves_confusion_and_regions(tmp_path):
    X = np.random.default_rng(0).normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(int)
    net = dp.Network([2, 8, 2], seed=0)
    h = dp.train(net, X, y, epochs=5, validation=0.2, early_stopping=2, seed=0).history
    plot_learning_curves(h, tmp_path / "c.png", title="t")
    plot_confusion_matrix(np.array([[5, 1], [2, 7]]), ["a", "b"], tmp_path / "cm.png")
    plot_decision_regions(net.predict, X, y, tmp_path / "r.png")
    for name in ("c.png", "cm.png", "r.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG and len(data) > 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "cm.png", "r.png"]  # no temporaries
