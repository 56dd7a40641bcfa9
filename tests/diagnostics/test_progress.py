import io
import json

import numpy as np

import deltaprop as dp
from deltaprop.diagnostics.progress import Progress, write_json_log


def test_plain_lines_quiet_and_json_log(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int)
    stream, silent = io.StringIO(), io.StringIO()
    h = dp.train(dp.Network([2, 4, 2], seed=0), X, y, epochs=3, seed=0,
                 callbacks=[Progress(3, stream=stream), Progress(3, quiet=True, stream=silent)]).history
    write_json_log(h, tmp_path / "h.jsonl")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3  loss ") and lines[-1].endswith(" ms")
    assert silent.getvalue() == ""
    records = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[0]["val_loss"] is None  # no validation data: null, not NaN (which is not JSON)
    assert records[2]["loss"] == h.loss[2]


def test_long_epochs_say_where_they_are_and_quiet_says_nothing():
    X = np.random.default_rng(0).normal(size=(100, 2))
    y = (X[:, 0] > 0).astype(int)
    stream, silent = io.StringIO(), io.StringIO()
    dp.train(dp.Network([2, 4, 2], seed=0), X, y, epochs=2, batch_size=10, seed=0,
             callbacks=[Progress(2, stream=stream, interval=0.0), Progress(2, stream=silent, quiet=True, interval=0.0)])
    lines = stream.getvalue().splitlines()
    inside = [line for line in lines if ": batch " in line]
    assert len(inside) == 20 and inside[0].startswith("epoch 1/2: batch 1/10, ")
    assert inside[-1].startswith("epoch 2/2: batch 10/10, ") and "samples/s, epoch ETA" in inside[-1]
    assert silent.getvalue() == ""
