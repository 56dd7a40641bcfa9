"""Blocks and the block source: data read a buffer of blocks at a time, from .npy, HDF5,
Zarr and Parquet stores."""

import importlib
import os
import signal

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.core.engine import Workspace
from deltaprop.data.sources import BlockSource
from conftest import need

N, D, K = 437, 6, 3




def data(dtype=np.float32):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, D)).astype(dtype) if dtype != np.uint8 else rng.integers(0, 256, (N, D), np.uint8)
    X[:, 0] = np.arange(N) % 256 if dtype == np.uint8 else np.arange(N)  # each row's id
    y = rng.integers(0, K, N)
    return X, y


def epoch_rows(blocks, batch, rank=0, size=1, seed=1, buffer_blocks=3):
    """Row ids (column 0) in the order one rank's batches bring them in one epoch."""
    source = BlockSource(blocks, batch, np.float64, lambda y, n: np.zeros((n, K)), buffer_blocks=buffer_blocks)
    source.shard(rank, size)
    order = source.order(None if seed is None else np.random.default_rng(seed))
    ws = Workspace([D, K], batch, np.float64)
    rows = []
    for k in range(source.steps(order)):
        b = source.fill(ws, order, k)
        assert b <= batch
        rows.append(ws.X[:b, 0].astype(int))
    source.close()
    return rows


@pytest.mark.parametrize("block_rows, batch, buffer_blocks", [(50, 32, 3), (64, 64, 1), (437, 100, 4), (7, 5, 2)])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_every_row_is_seen_once_per_epoch_over_all_ranks(block_rows, batch, buffer_blocks, size):
    X, y = data()
    blocks = dp.Blocks.from_arrays(X, y, block_rows=block_rows)
    per_rank = [epoch_rows(blocks, batch, r, size, buffer_blocks=buffer_blocks) for r in range(size)]
    assert len({len(rows) for rows in per_rank}) == 1  # the same number of steps on every rank
    seen = np.concatenate([np.concatenate(rows) for rows in per_rank])
    np.testing.assert_array_equal(np.sort(seen), np.arange(N))


def test_the_order_depends_only_on_the_seed_and_reads_stay_within_buffers():
    X, y = data()
    blocks = dp.Blocks.from_arrays(X, y, block_rows=40)
    first = np.concatenate(epoch_rows(blocks, 32, seed=1))
    np.testing.assert_array_equal(first, np.concatenate(epoch_rows(blocks, 32, seed=1)))
    assert not np.array_equal(first, np.concatenate(epoch_rows(blocks, 32, seed=2)))
    # rows are shuffled, but only among the blocks of one buffer (3 blocks of 40 rows)
    assert not np.array_equal(first, np.sort(first))
    assert all(len(set(first[i:i + 32] // 40)) > 1 for i in (0, 128, 256))  # a batch mixes blocks
    buffers = [set(first[i:i + 120] // 40) for i in range(0, 440, 120)]
    assert all(len(b) <= 3 for b in buffers)
    # without shuffling: the rows in storage order
    np.testing.assert_array_equal(np.concatenate(epoch_rows(blocks, 32, seed=None)), np.arange(N))


def write_stores(tmp_path, X, y, block_rows):
    """The same rows in each format, with the same block boundaries."""
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    stores = {"npy": dp.open_blocks(tmp_path, block_rows=block_rows)}
    h5py = need("h5py")
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("inputs", data=X, chunks=(block_rows, D))
        f.create_dataset("labels", data=y)
    stores["hdf5"] = dp.open_blocks(tmp_path / "d.h5", features="inputs", target="labels", block_rows=block_rows)
    zarr = need("zarr")
    group = zarr.open_group(str(tmp_path / "d.zarr"), mode="w")
    group.create_array("X", data=X, chunks=(block_rows, D))
    group.create_array("y", data=y, chunks=(block_rows,))
    stores["zarr"] = dp.open_blocks(tmp_path / "d.zarr", block_rows=block_rows)
    pa, pq = need("pyarrow"), importlib.import_module("pyarrow.parquet")
    table = pa.table({**{f"x{j}": X[:, j] for j in range(D)}, "label": y})
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=block_rows)
    stores["parquet"] = dp.open_blocks(tmp_path / "d.parquet", target="label")
    return stores


def test_npy_hdf5_zarr_and_parquet_give_identical_training(tmp_path):
    X, y = data()
    stores = write_stores(tmp_path, X, y, block_rows=64)
    thetas = {}
    for name, blocks in stores.items():
        assert (blocks.n_samples, blocks.n_features, len(blocks)) == (N, D, 7), name
        net = dp.Network([D, 8, K], seed=0)
        state = dp.train(net, blocks, epochs=2, batch_size=32, seed=4, validation=0.2)
        thetas[name] = net.theta
        assert np.isfinite(state.history.val_loss).all()
    for name, theta in thetas.items():
        np.testing.assert_array_equal(theta, thetas["npy"], err_msg=name)
    # and the same rows as arrays in memory, in one block, train like the arrays themselves
    net_a, net_b = dp.Network([D, 8, K], seed=0), dp.Network([D, 8, K], seed=0)
    dp.train(net_a, dp.Blocks.from_arrays(X, y, block_rows=N), epochs=1, batch_size=N, shuffle=False)
    dp.train(net_b, X, y, epochs=1, batch_size=None)
    np.testing.assert_allclose(net_a.theta, net_b.theta, rtol=1e-5)


def test_uint8_rows_stay_uint8_and_train_as_their_float_values(tmp_path):
    X, y = data(np.uint8)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    on_disk = dp.open_blocks(tmp_path, block_rows=50)
    assert on_disk.read(0)[0].dtype == np.uint8
    as_float = dp.Blocks.from_arrays(X.astype(np.float32), y, block_rows=50)
    nets = []
    for blocks in (on_disk, as_float):
        nets.append(dp.Network([D, 8, K], seed=0))
        dp.train(nets[-1], blocks, epochs=2, batch_size=16, seed=0)
    np.testing.assert_array_equal(nets[0].theta, nets[1].theta)
    # a uint8 memmap given as an array is not converted whole either, and trains the same
    memmap = np.load(tmp_path / "X.npy", mmap_mode="r")
    nets = [dp.Network([D, 8, K], seed=0) for _ in range(2)]
    dp.train(nets[0], memmap, y, epochs=2, batch_size=16, seed=0, validation=0.25)
    dp.train(nets[1], X.astype(np.float32), y, epochs=2, batch_size=16, seed=0, validation=0.25)
    np.testing.assert_array_equal(nets[0].theta, nets[1].theta)


def test_validation_blocks_are_held_out_whole_and_never_trained_on():
    X, y = data()
    blocks = dp.Blocks.from_arrays(X, y, block_rows=50)
    trainer = dp.Trainer(dp.Network([D, 8, K], seed=0), blocks, validation=0.25, settings=dp.TrainSettings(seed=0))
    train_blocks, held_out = trainer.source.blocks, trainer.validation.blocks
    assert train_blocks.n_samples + held_out.n_samples == N
    assert 0.15 * N < held_out.n_samples < 0.35 * N
    ids = lambda b: {p.lo for p in b.parts}  # noqa: E731
    assert not ids(train_blocks) & ids(held_out)
    history = trainer.run(2).history
    assert len(history.val_loss) == 2 and np.isfinite(history.val_metric).all()
    # a separate validation source
    net = dp.Network([D, 8, K], seed=0)
    h = dp.train(net, blocks.subset(range(6)), validation=blocks.subset([6, 7, 8]), epochs=1, seed=0).history
    assert h.val_loss[-1] == pytest.approx(net.loss(X[300:437], y[300:437]), rel=1e-5)


def test_a_block_source_resumes_mid_epoch_bit_for_bit(tmp_path):
    X, y = data()
    blocks = dp.Blocks.from_arrays(X, y, block_rows=30)

    class StopAt:
        def on_batch_end(self, k, J, net, state):
            if state.epoch == 1 and k == 5:
                os.kill(os.getpid(), signal.SIGINT)  # handled between two batches

    whole = dp.Network([D, 8, K], seed=0)
    dp.train(whole, blocks, epochs=3, batch_size=16, seed=2, dropout=0.1)
    net = dp.Network([D, 8, K], seed=0)
    with pytest.raises(dp.TrainingInterrupted) as stopped:
        dp.train(net, blocks, epochs=3, batch_size=16, seed=2, dropout=0.1, checkpoint=str(tmp_path / "c.ckpt"),
                 callbacks=[StopAt()])
    assert (stopped.value.state.epoch, stopped.value.state.batch) == (1, 6)
    net = dp.Network([D, 8, K], seed=0)
    dp.train(net, blocks, epochs=3, batch_size=16, seed=2, dropout=0.1, resume=str(tmp_path / "c.ckpt"))
    np.testing.assert_array_equal(net.theta, whole.theta)


def test_blocks_say_what_is_wrong(tmp_path):
    X, y = data()
    with pytest.raises(ValueError, match=r"y: expected 437 targets \(one per row of X\), found 10"):
        dp.Blocks.from_arrays(X, y[:10])
    with pytest.raises(ValueError, match="holds no X.npy"):
        dp.open_blocks(tmp_path)
    with pytest.raises(ValueError, match="expected a folder of .npy or .parquet files"):
        dp.open_blocks(tmp_path / "data.csv")
    h5py = need("h5py")
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("X", data=X)
    with pytest.raises(ValueError, match=r"d.h5 has no 'y'; it holds X"):
        dp.open_blocks(tmp_path / "d.h5")
    blocks = dp.Blocks.from_arrays(X, y, block_rows=100)
    with pytest.raises(TypeError, match="Blocks carry their own targets"):
        dp.train(dp.Network([D, 4, K]), blocks, y)
    with pytest.raises(ValueError, match=r"X: expected 7 features \(sizes\[0\]\), found 6"):
        dp.train(dp.Network([D + 1, 4, K]), blocks, epochs=1)
    X[100, 2] = np.nan
    with pytest.raises(ValueError, match="rows 100..200 of arrays: expected finite values, found nan at row 0, "
                                         "column 2"):
        dp.train(dp.Network([D, 4, K]), dp.Blocks.from_arrays(X, y, block_rows=100), epochs=1)
    X = X.astype(np.float64)
    X[100, 2], X[250, 1] = 0.0, 1e300  # fine for float64 storage, not for a float32 network
    with pytest.raises(ValueError, match="rows 200..300 of arrays: 1e.300 at row 50, column 1 is beyond the range"):
        dp.fit(dp.Blocks.from_arrays(X, y, block_rows=100), epochs=1)
    X, y = data()
    with pytest.raises(ValueError, match="validation: a fraction of 0.001 of 437 rows leaves an empty set"):
        dp.train(dp.Network([D, 4, K]), dp.Blocks.from_arrays(X, y, block_rows=N), validation=0.001)


def test_diagnostics_measure_rows_of_the_first_block_as_training_sees_them():
    X, y = data(np.uint8)
    blocks = dp.Blocks.from_arrays(X, y, block_rows=50).with_preprocessing(lambda batch: batch.__imul__(1 / 255))
    net = dp.Network([D, 8, K], seed=0)
    history = dp.train(net, blocks, epochs=2, seed=0, diagnostics=True).history
    assert len(history.layers["weight_norm"][0]) == 2
    # no per-layer finding (measured on raw bytes, not the scaled rows, there would be); two epochs underfit
    findings = dp.diagnose(history, net)
    assert [f.split(":")[0] for f in findings] == ["underfitting"], findings


def test_weights_and_parquet_folders_with_chosen_columns(tmp_path):
    X, y = data()
    w = np.random.default_rng(1).uniform(0.1, 3.0, N)
    # weighted blocks, read in storage order, make the steps of the weighted arrays
    net_a, net_b = dp.Network([D, 8, K], seed=0), dp.Network([D, 8, K], seed=0)
    dp.train(net_a, dp.Blocks.from_arrays(X, y, sample_weight=w, block_rows=100), epochs=2, batch_size=50,
             shuffle=False, buffer_blocks=1)
    dp.train(net_b, X, y, sample_weight=w, epochs=2, batch_size=50, shuffle=False)
    np.testing.assert_allclose(net_a.theta, net_b.theta, rtol=1e-5, atol=1e-7)
    # a folder of Parquet files, some columns left out, weights from a column
    pa, pq = need("pyarrow"), importlib.import_module("pyarrow.parquet")
    (tmp_path / "p").mkdir()
    for i, rows in enumerate((slice(0, 200), slice(200, N))):
        table = pa.table({**{f"x{j}": X[rows, j] for j in range(D)}, "note": np.zeros(len(X[rows])),
                          "label": y[rows], "weight": w[rows]})
        pq.write_table(table, tmp_path / "p" / f"part{i}.parquet", row_group_size=64)
    blocks = dp.Blocks.from_parquet(tmp_path / "p", features=[f"x{j}" for j in range(D)], target="label",
                                    weights="weight")
    assert (blocks.n_samples, blocks.n_features, len(blocks), blocks.weighted) == (N, D, 4 + 4, True)
    Xb, yb, wb = blocks.read(4)
    np.testing.assert_array_equal(Xb, X[200:264])
    np.testing.assert_array_equal(yb, y[200:264])
    np.testing.assert_array_equal(wb, w[200:264])
    np.testing.assert_array_equal(blocks.targets(), y)
    with pytest.raises(ValueError, match="has no 'score'"):
        dp.Blocks.from_parquet(tmp_path / "p", target="score")


def test_default_blocks_hold_about_16_mb_and_small_data_sets_get_16():
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(1_000_000, 100), strides=(0, 0))
    blocks = dp.Blocks.from_arrays(big, np.zeros(1_000_000))
    assert blocks.sizes.max() * 100 * 4 <= 16 * 2**20 < 2 * blocks.sizes.max() * 100 * 4
    X, y = data()
    assert len(dp.Blocks.from_arrays(X, y)) == 16  # 437 rows: 16 blocks of 28 (the last shorter)


def row_ids(blocks):
    return np.concatenate([blocks.read(i)[0][:, 0] for i in range(len(blocks))]).astype(int)


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.05])
def test_few_blocks_hold_out_the_rows_asked_for(tmp_path, fraction):
    """A Zarr store with its default chunks (two blocks here) held out half of the rows for
    validation=0.2: now the share asked, in rows, whatever the blocks."""
    X, y = data()
    zarr = need("zarr")
    group = zarr.open_group(str(tmp_path / "d.zarr"), mode="w")
    group.create_array("X", data=X, chunks=(256, D))
    group.create_array("y", data=y, chunks=(256,))
    for blocks in (dp.open_blocks(tmp_path / "d.zarr"), dp.Blocks.from_arrays(X, y, block_rows=N),
                   dp.Blocks.from_arrays(X, y, block_rows=50)):
        train, held = blocks.split(fraction, np.random.default_rng(0))
        assert held.n_samples == round(fraction * N) and train.n_samples == N - held.n_samples
        np.testing.assert_array_equal(np.sort(np.r_[row_ids(train), row_ids(held)]), np.arange(N))
        trainer = dp.Trainer(dp.Network([D, 4, K], seed=0), blocks, validation=fraction,
                             settings=dp.TrainSettings(seed=0))
        assert trainer.validation.n_samples == round(fraction * N)
        assert trainer.source.n_samples == N - round(fraction * N)
    assert len(dp.open_blocks(tmp_path / "d.zarr")) == 2


def test_block_rows_cut_parquet_row_groups(tmp_path):
    """pandas writes one row group: --block-rows (block_rows=) cuts it into blocks, read once."""
    X, y = data()
    pd = need("pandas")
    need("pyarrow")
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(D)]).assign(y=y)
    frame.to_parquet(tmp_path / "d.parquet")
    whole = dp.open_blocks(tmp_path / "d.parquet")
    assert len(whole) == 1 and whole.feature_names == [f"x{j}" for j in range(D)] and whole.target_names == ["y"]
    cut = dp.open_blocks(tmp_path / "d.parquet", block_rows=100)
    assert list(cut.sizes) == [100, 100, 100, 100, 37] and cut.feature_names == whole.feature_names
    np.testing.assert_array_equal(row_ids(cut), np.arange(N))
    np.testing.assert_array_equal(np.concatenate([cut.read(i)[1] for i in range(len(cut))]), y)
    np.testing.assert_array_equal(cut.targets(), y)
    state = dp.train(dp.Network([D, 4, K], seed=0), cut, epochs=1, validation=0.2, seed=0)
    assert np.isfinite(state.history.val_loss).all()


def test_moments_are_per_column_over_every_row():
    """The mean and standard deviation of each column, pooled over blocks of unequal sizes,
    not over columns."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(N, 4)) * [1, 10, 100, 1000] + [5, -50, 0, 2000]
    mean, std = dp.Blocks.from_arrays(X, np.zeros(N), block_rows=100).moments()
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(std, X.std(axis=0), rtol=1e-10)
