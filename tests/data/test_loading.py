"""load_data: one entry for every kind of data, in memory or in blocks."""

import numpy as np
import pytest

from conftest import need
from deltaprop import Blocks
from deltaprop.data.datasets import Dataset
from deltaprop.data.loading import is_block_store, load_data


def test_files_in_memory_and_stores_in_blocks(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 3)), rng.integers(0, 2, 60)
    np.savetxt(tmp_path / "d.csv", np.c_[X, y], delimiter=",", header="a,b,c,y", comments="")
    ds = load_data(tmp_path / "d.csv", "y")
    assert isinstance(ds, Dataset) and ds.X.shape == (60, 3) and ds.task == "classification"
    store = tmp_path / "store"
    store.mkdir()
    np.save(store / "X0.npy", X)
    np.save(store / "y0.npy", y)
    blocks = load_data(store, block_rows=20)
    assert isinstance(blocks, Blocks) and len(blocks) == 3 and blocks.n_samples == 60
    assert is_block_store(store) and not is_block_store(tmp_path / "d.csv")
    assert isinstance(load_data("iris"), Dataset)
    with pytest.raises(ValueError, match="block_rows: only for data in blocks"):
        load_data(tmp_path / "d.csv", "y", block_rows=10)
    with pytest.raises(ValueError, match="features: only for data in blocks"):
        load_data("iris", features="a,b")


def test_a_parquet_file_of_numbers_is_blocks_of_mixed_columns_a_table_and_inputs_stay_in_memory(tmp_path):
    pd = pytest.importorskip("pandas")
    need("pyarrow")
    numbers = pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50.0) ** 2, "y": np.arange(50) % 2})
    numbers.to_parquet(tmp_path / "numbers.parquet")
    mixed = numbers.assign(city=["paris", None] * 25)
    mixed.to_parquet(tmp_path / "mixed.parquet")
    assert isinstance(load_data(tmp_path / "numbers.parquet"), Blocks)
    table = load_data(tmp_path / "mixed.parquet", "y")
    assert isinstance(table, Dataset) and table.X.dtype == object and "city" in table.feature_names
    inputs = load_data(tmp_path / "numbers.parquet", "", leave_out=["y"])  # prediction inputs: read whole
    assert isinstance(inputs, Dataset) and inputs.y is None and inputs.feature_names == ["a", "b"]
