"""Array sources: rows gathered a batch at a time, never the data set copied."""

import tracemalloc

import numpy as np

import deltaprop as dp

N, D = 80_000, 500  # 40 MB of uint8, 160 MB once converted to float32


def peak_bytes(fn) -> int:
    """The peak of NumPy's and Python's allocations while ``fn`` runs (memmap pages are
    the kernel's, not allocations)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_uint8_memmap_with_a_held_out_fraction_trains_without_a_copy_of_the_data(tmp_path):
    """The issue's two defects: validation=0.1 copied the training rows, and a memmap that
    is not float32 was converted whole."""
    rng = np.random.default_rng(0)
    X = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.uint8, shape=(N, D))
    X[:] = rng.integers(0, 256, (N, D), dtype=np.uint8)
    y = (X[:, 0] > 127).astype(np.int64)
    X.flush()
    X = np.load(tmp_path / "X.npy", mmap_mode="r")
    net = dp.Network([D, 4, 2], seed=0)
    peak = peak_bytes(lambda: dp.train(net, X, y, validation=0.1, epochs=1, batch_size=256, seed=0))
    assert peak < 0.25 * X.nbytes, f"{peak / 1e6:.1f} MB allocated for {X.nbytes / 1e6:.0f} MB of data"
    # the same rows in blocks: two buffers of blocks at most, whatever the data's size
    np.save(tmp_path / "y.npy", y)
    blocks = dp.Blocks.from_npy(tmp_path, block_rows=1000)
    peak = peak_bytes(lambda: dp.train(net, blocks, validation=0.1, epochs=1, batch_size=256, seed=0,
                                       buffer_blocks=2))
    assert peak < 4 * 2 * 1000 * D + 2e6, f"{peak / 1e6:.1f} MB allocated"
