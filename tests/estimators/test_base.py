"""What both estimators share (estimators/base.py): here, partial_fit on data in blocks."""

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits

import deltaprop as dp
def test_partial_fit_reads_blocks_as_it_reads_arrays():
    """Data larger than memory: one epoch over Blocks per call, the same steps as arrays
    (in storage order, with blocks as long as the batches)."""
    X, y = load_digits(return_X_y=True)
    y = 2 * y + 1  # labels that are not their own indices
    on_arrays = dp.MLPClassifier(hidden_layer_sizes=(16,), random_state=0, shuffle=False, batch_size=100)
    on_blocks = dp.MLPClassifier(hidden_layer_sizes=(16,), random_state=0, shuffle=False, batch_size=100)
    blocks = dp.Blocks.from_arrays(X, y, block_rows=100)
    for _ in range(3):
        on_arrays.partial_fit(X, y, classes=2 * np.arange(10) + 1)
        on_blocks.partial_fit(blocks, classes=2 * np.arange(10) + 1)
    np.testing.assert_array_equal(on_blocks.predict_proba(X), on_arrays.predict_proba(X))
    np.testing.assert_array_equal(on_blocks.predict(X), on_arrays.predict(X))
    assert on_blocks.n_features_in_ == 64 and on_blocks.t_ == on_arrays.t_ == 3 * len(X)
    Xr, yr = load_diabetes(return_X_y=True)
    reg = dp.MLPRegressor(hidden_layer_sizes=(8,), random_state=0, shuffle=True)
    reg.partial_fit(dp.Blocks.from_arrays(Xr, yr, block_rows=40))
    assert np.isfinite(reg.loss_) and reg.n_iter_ == 1
    on_blocks.set_params(hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match="hidden_layer_sizes: the fitted network has hidden layers"):
        on_blocks.partial_fit(blocks)
    on_blocks.set_params(hidden_layer_sizes=(16,))
    with pytest.raises(TypeError, match="Blocks carry their own targets"):
        on_blocks.partial_fit(blocks, y)
    with pytest.raises(TypeError, match="Blocks are for partial_fit"):
        dp.MLPClassifier().fit(blocks, None)
    with pytest.raises(ValueError, match="X has 10 features, but MLPClassifier is expecting 64"):
        on_blocks.partial_fit(dp.Blocks.from_arrays(Xr, y[:len(Xr)], block_rows=40))
