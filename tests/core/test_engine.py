import tracemalloc

import numpy as np

import deltaprop as dp
from deltaprop.core.engine import Workspace, backward, forward, output_delta, views


def test_forward_backward_allocates_nothing():
    """No array is allocated per pass: what tracemalloc sees is NumPy's fixed-size ufunc
    iteration buffer (8192 elements per operand, used on the strided view h[l][:, :-1]),
    far below the size of any buffer of a large batch."""
    B = 4096
    net = dp.Network([50, 64, 32, 10], activation="gelu", seed=0)
    ws = Workspace(net.sizes, B, net.dtype)
    G = views(np.empty_like(net.theta), net.shapes)
    rng = np.random.default_rng(0)
    ws.X[...] = rng.normal(size=(B, 50))
    ws.T[...] = np.eye(10)[rng.integers(0, 10, B)]
    buffers = [id(a) for a in ws.h + ws.z[1:] + ws.delta[1:]]
    forward(net, ws, B)
    output_delta(net, ws, B)
    backward(net, ws, B, G)
    tracemalloc.start()
    for b in (B, B - 1):  # a full batch and a short last batch
        forward(net, ws, b)
        output_delta(net, ws, b)
        backward(net, ws, b, G)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    smallest_hidden = B * 32 * 4
    assert peak < smallest_hidden / 4, f"a forward+backward pass allocated {peak} bytes"
    assert buffers == [id(a) for a in ws.h + ws.z[1:] + ws.delta[1:]]
    assert np.all(ws.h[1][:, -1] == 1)  # the column of ones survives


def test_the_passes_read_only_the_weights():
    net = dp.Network([3, 4, 2], seed=0)
    before = net.theta.copy()
    ws = Workspace(net.sizes, 5, net.dtype)
    ws.X[...] = 1.0
    ws.T[...] = [1, 0]
    forward(net, ws, 5)
    output_delta(net, ws, 5)
    backward(net, ws, 5, views(np.empty_like(net.theta), net.shapes))
    assert net.theta.tobytes() == before.tobytes()
