"""Cross-fitting: each member of an ensemble holds out a fold of its own (training/crossfit.py)."""

import numpy as np
import pandas as pd
import pytest

import deltaprop as dp
from deltaprop.data.splits import fold_rows
from deltaprop.training.crossfit import CROSS_FIT, FoldStopping, cross_fits, folds_rng, train_cross_fit


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 1)  # three classes, the last one rare
    return X, y


def test_folds_are_disjoint_cover_every_row_and_keep_each_class_share():
    _, y = _data(203)
    T = np.eye(3)[y]
    folds = fold_rows(T, 4, np.random.default_rng(1), stratify=True)
    rows = np.concatenate(folds)
    assert sorted(rows.tolist()) == list(range(203))  # every row once
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    for c in range(3):  # each class dealt evenly: within one row of its share in every fold
        counts = [int(np.sum(y[f] == c)) for f in folds]
        assert max(counts) - min(counts) <= 1, (c, counts)
    again = fold_rows(T, 4, np.random.default_rng(1), stratify=True)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again))
    with pytest.raises(ValueError, match="3 samples cannot make 4 folds"):
        fold_rows(T[:3], 4, np.random.default_rng(0), stratify=False)


def test_stacked_members_predict_as_the_mean_of_the_single_networks():
    X, _ = _data(50)
    singles = [dp.Network([3, 8, 5, 3], seed=s, dtype="float64") for s in range(3)]
    ensemble = dp.Network([3, 8, 5, 3], members=3, seed=9, dtype="float64")
    ensemble.theta[...] = ensemble.stack_members([net.theta for net in singles])
    for l, d in ((1, 8), (2, 5), (3, 3)):  # member m in its own columns of every W[l]
        for m, net in enumerate(singles):
            np.testing.assert_array_equal(ensemble.W[l][:, m * d:(m + 1) * d], net.W[l])
    mean = np.mean([net.predict_proba(X) for net in singles], axis=0)
    np.testing.assert_allclose(ensemble.predict_proba(X), mean, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="one per member"):
        ensemble.stack_members([net.theta for net in singles[:2]])


def _members_of(ens):
    """Each member of an ensemble as a network of its own, with the same weights."""
    out = []
    for m in range(ens.members):
        net = dp.Network(ens.sizes, likelihood=ens.likelihood.name, dtype=ens.dtype)
        for l in range(1, ens.n_layers + 1):
            d = ens.sizes[l]
            net.W[l][...] = ens.W[l][:, m * d:(m + 1) * d]
        out.append(net)
    return out


@pytest.mark.parametrize("weighted", [False, True])
def test_each_member_trains_as_a_single_network_that_never_sees_its_fold_and_stops_on_it(weighted):
    """The members train together, in one run; member m's steps are those of one network
    trained with weight 0 on fold m, validated on fold m, with its own early stopping."""
    X, y = _data()
    w = np.random.default_rng(5).uniform(0.2, 3.0, len(y)) if weighted else None
    net = dp.Network([3, 16, 3], members=3, dtype="float64", seed=0)
    singles = _members_of(net)
    # Adam's step does not depend on the gradient's scale (each member gets 1/k of its own) but for eps
    options = dict(epochs=40, batch_size=16, early_stopping=3, optimizer=dp.Adam(3e-2, eps=1e-300))
    state = train_cross_fit(net, X, y, seed=7, sample_weight=w, **options)
    # the same folds and the same shuffles, drawn as train_cross_fit draws them
    folds = fold_rows(np.eye(3)[y], 3, folds_rng(7), stratify=True)
    seed = 7
    histories = []
    for m, (single, held) in enumerate(zip(singles, folds)):
        mine = np.ones(len(y)) if w is None else w.copy()
        mine[held] = 0  # never trained on its fold, but validated on it (each row keeping its weight)
        validation = (X[held], y[held]) + (() if w is None else (w[held],))
        histories.append(dp.train(single, X, y, sample_weight=mine, validation=validation, seed=seed,
                                  **options).history)
    np.testing.assert_allclose(net.theta, net.stack_members([s.theta for s in singles]), rtol=1e-7, atol=1e-9)
    assert state.history.member_best_epochs == [h.best_epoch for h in histories]
    assert len(set(state.history.member_best_epochs)) > 1  # (each stopped on its own)
    assert state.history.epochs == max(h.epochs for h in histories)
    np.testing.assert_allclose(state.history.val_loss[0], np.mean([h.val_loss[0] for h in histories]))
    assert state.history.stop_reason.startswith("cross-fit: 3 members, each on its own fold: no validation")
    assert state.history.best_epoch is None
    assert dp.History.from_dict(state.history.to_dict()) == state.history  # (as a checkpoint keeps it)
    # the state continues the whole ensemble, on all rows
    more = dp.train(net, X, y, epochs=2, batch_size=16, optimizer=dp.Adam(1e-2), state=state)
    assert more.history.epochs == state.history.epochs + 2


@pytest.mark.parametrize("weighted", [False, True])
def test_each_member_is_scored_on_its_own_fold_and_the_metric_on_the_out_of_fold_predictions(weighted):
    X, y = _data(2500)  # (more rows than one validation batch)
    w = np.random.default_rng(3).uniform(0.2, 3.0, len(y)) if weighted else None
    net = dp.Network([3, 16, 3], members=3, dtype="float64", seed=1)
    fold = np.random.default_rng(4).integers(0, 3, len(y))
    stopping = FoldStopping(X, np.eye(3)[y], fold, w)
    stopping.on_train_begin(net, None)
    losses, metric = stopping.fold_scores(net)
    oof = np.empty(len(y), dtype=int)
    for m, single in enumerate(_members_of(net)):
        held = fold == m
        assert losses[m] == pytest.approx(single.loss(X[held], y[held], None if w is None else w[held]), rel=1e-12)
        oof[held] = single.predict(X[held])
    assert metric == pytest.approx(np.average(oof == y, weights=w), rel=1e-12)


def test_a_run_that_reaches_its_epochs_keeps_each_members_best_and_says_so():
    X, y = _data()
    net = dp.Network([3, 16, 3], members=3, seed=1)
    state = train_cross_fit(net, X, y, seed=2, epochs=3, batch_size=16)  # (no patience: every epoch, best kept)
    assert len(state.history.member_best_epochs) == 3 and all(1 <= e <= 3 for e in state.history.member_best_epochs)
    assert state.history.stop_reason.startswith("cross-fit: 3 members, each on its own fold: reached the maximum")


def test_cross_fitting_is_refused_where_it_cannot_be(tmp_path):
    X, y = _data()
    with pytest.raises(ValueError, match="one fold per member"):
        train_cross_fit(dp.Network([3, 4, 3]), X, y)

    class Ranks:  # (a communicator of two processes)
        size = 2
    with pytest.raises(ValueError, match="distributed: not with validation='cross-fit'"):
        train_cross_fit(dp.Network([3, 4, 3], members=2), X, y, distributed=Ranks())
    with pytest.raises(ValueError, match="expected 240 targets"):
        train_cross_fit(dp.Network([3, 4, 3], members=2), np.r_[X, X], y)
    with pytest.raises(ValueError, match="expected a fraction, rows or 'cross-fit', found 'folds'"):
        dp.fit(X, y, members=2, validation="folds")


def test_the_recipe_cross_fits_with_two_members_a_fold_of_five_rows_and_one_process():
    assert cross_fits(4, 20, {}) and not cross_fits(4, 19, {}) and not cross_fits(1, 500, {})
    for option in ("state", "checkpoint", "resume"):  # (one run: its members' stopping is saved with it)
        assert cross_fits(4, 500, {option: "given"})

    class Ranks:
        def __init__(self, size):
            self.size = size
    assert cross_fits(4, 500, {"distributed": Ranks(1)}) and not cross_fits(4, 500, {"distributed": Ranks(2)})


def test_the_recipe_cross_fits_a_table_with_rows_enough_and_otherwise_holds_out_a_share(tmp_path):
    X, y = _data(200)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    _, state = dp.fit(df, y, seed=0, epochs=5)
    assert state.history.stop_reason.startswith("cross-fit: 4 members")
    model, state = dp.fit(df.head(16), y[:16], seed=0, epochs=5)  # 4 rows a fold: too few
    assert model.network.members == 4 and not state.history.stop_reason.startswith("cross-fit")
    _, state = dp.fit(df, y, seed=0, epochs=5, checkpoint=str(tmp_path / "ck"))  # checkpointed too
    assert state.history.stop_reason.startswith("cross-fit: 4 members") and not np.isnan(state.history.val_loss).any()
    _, state = dp.fit(df, y, seed=0, epochs=5, members=1)
    assert not state.history.stop_reason.startswith("cross-fit")
    a, _ = dp.fit(df, y, seed=3, epochs=5)
    b, _ = dp.fit(df, y, seed=3, epochs=5)
    np.testing.assert_array_equal(a.network.theta, b.network.theta)  # the same seed, the same bits


def test_a_cross_fitted_run_resumes_from_its_checkpoint_bit_for_bit(tmp_path):
    """Each member's early stopping is saved with the run: k epochs, then resume=ck for n in
    all, is one run of n; with no seed given, the folds are the checkpointed run's own."""
    X, y = _data()
    call = dict(batch_size=16, early_stopping=2, optimizer=dp.Adam(3e-2))

    def run(epochs, seed=4, **more):
        net = dp.Network([3, 16, 3], members=3, seed=0)
        return net, train_cross_fit(net, X, y, epochs=epochs, seed=seed, **call, **more)

    straight, expected = run(60)
    assert expected.history.stopped and len(set(expected.history.member_best_epochs)) > 1
    ck = str(tmp_path / "cf.ckpt")
    _, part = run(3, checkpoint=ck)
    assert not part.history.stopped
    net, state = run(60, seed=None, resume=ck)
    assert net.theta.tobytes() == straight.theta.tobytes()
    assert state.history.loss == expected.history.loss
    assert state.history.member_best_epochs == expected.history.member_best_epochs
    again = dp.Network([3, 16, 3], members=3, seed=0)  # a state continued in memory, likewise
    first = train_cross_fit(again, X, y, epochs=3, seed=4, **call)
    train_cross_fit(again, X, y, epochs=57, state=first, **call)
    assert again.theta.tobytes() == straight.theta.tobytes()


def test_the_tabular_estimators_cross_fit_unless_told_not_to():
    X, y = _data(200)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    crossed = dp.TabularClassifier(max_epochs=6, random_state=0).fit(df, y)
    shared = dp.TabularClassifier(max_epochs=6, random_state=0, cross_fit=False).fit(df, y)
    assert crossed.get_params()["cross_fit"] is True
    assert not np.array_equal(crossed.model_.network.theta, shared.model_.network.theta)
    assert len(crossed.validation_loss_curve_) == crossed.n_iter_
    reg = dp.TabularRegressor(max_epochs=6, random_state=0).fit(df, X[:, 0] * 3)
    assert reg.score(df, X[:, 0] * 3) > 0.5


def test_fit_refuses_cross_fitting_blocks():
    X, y = _data(60)
    blocks = dp.Blocks.from_arrays(X, y, block_rows=20)
    with pytest.raises(ValueError, match="needs rows in memory"):
        dp.fit(blocks, members=2, validation=CROSS_FIT, epochs=1)


def test_a_small_table_is_cross_fitted_where_a_held_out_tenth_would_be_too_few_rows():
    """30 rows: a tenth is 3 rows, too few to choose an epoch by, but four folds hold 7 or 8 each."""
    X, y = _data(30)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    crossed = dp.TabularClassifier(max_epochs=5, random_state=0).fit(df, y)
    assert crossed.validation_loss_curve_ is not None
    assert crossed.model_.network.members == 4
    shared = dp.TabularClassifier(max_epochs=5, random_state=0, cross_fit=False).fit(df, y)
    assert shared.validation_loss_curve_ is None and shared.n_iter_ == 5  # (every row trains, every epoch)


def test_a_history_with_malformed_member_epochs_is_refused():
    h = dp.History()
    h.loss, h.val_loss, h.val_metric, h.grad_norm, h.learning_rate, h.time = ([1.0, 0.5] for _ in range(6))
    for bad in ([0], [3], [1.5], "2"):
        with pytest.raises(ValueError, match="member_best_epochs"):
            dp.History.from_dict({**h.to_dict(), "member_best_epochs": bad})
    assert dp.History.from_dict({**h.to_dict(), "member_best_epochs": [2, 1]}).member_best_epochs == [2, 1]


def test_a_malformed_state_of_the_members_stopping_is_refused():
    X, y = _data(30)
    net = dp.Network([3, 4, 3], members=2)
    stopping = FoldStopping(X, np.eye(3)[y], np.arange(30) % 2, early_stopping=2)
    stopping.on_train_begin(net, None)
    scalars, arrays = stopping.state_dict()
    assert scalars["members"] == 2 and scalars["wait_1"] == 0 and scalars["best_epoch_0"] == -1
    for bad in ({**scalars, "members": 3}, {**scalars, "wait_1": -1}, {**scalars, "best_epoch_0": 1.5},
                {k: v for k, v in scalars.items() if k != "best_1"}, {**scalars, "best_0": float("nan")}):
        with pytest.raises(ValueError, match="malformed state of its early stopping for 2 members"):
            stopping.load_state_dict(bad, arrays)
    with pytest.raises(ValueError, match="malformed"):
        stopping.load_state_dict(scalars, {"best_theta": arrays["best_theta"][:-1]})
    stopping.load_state_dict({**scalars, "wait_1": 1}, arrays)
    assert stopping.wait.tolist() == [0, 1]


def test_without_restore_best_each_member_keeps_its_last_weights():
    X, y = _data()
    call = dict(epochs=30, batch_size=16, optimizer=dp.Adam(3e-2), seed=4)
    kept = dp.Network([3, 16, 3], members=3, seed=0)
    state = train_cross_fit(kept, X, y, early_stopping=dp.EarlyStopping(2, restore_best=False), **call)
    assert state.history.member_best_epochs == [state.history.epochs] * 3
    restored = dp.Network([3, 16, 3], members=3, seed=0)
    train_cross_fit(restored, X, y, early_stopping=2, **call)
    assert not np.array_equal(kept.theta, restored.theta)


def test_sparse_rows_are_cross_fitted_as_the_same_rows_dense():
    """Sparse inputs (TF-IDF, say) train and are scored on their folds as they are."""
    sp = pytest.importorskip("scipy.sparse")
    X = sp.random(200, 30, density=0.2, format="csr", random_state=0)
    y = (np.asarray(X[:, :5].sum(axis=1)).ravel() > 0.4).astype(int)
    nets = [dp.Network([30, 8, 2], members=3, seed=0, dtype="float64") for _ in range(2)]
    states = [train_cross_fit(net, rows, y, seed=1, epochs=6, batch_size=32, early_stopping=2)
              for net, rows in zip(nets, (X, X.toarray()))]
    np.testing.assert_allclose(nets[0].theta, nets[1].theta, rtol=1e-9, atol=1e-12)
    assert states[0].history.member_best_epochs == states[1].history.member_best_epochs


def test_each_member_waits_out_its_own_patience_by_min_delta_and_keeps_its_best_weights():
    X, y = _data(30)
    net = dp.Network([3, 4, 3], members=2, seed=0)
    stopping = FoldStopping(X, np.eye(3)[y], np.arange(30) % 2, early_stopping=dp.EarlyStopping(2, min_delta=0.1))
    stopping.on_train_begin(net, None)
    h = dp.History()
    losses = iter([[1.0, 1.0], [0.95, 0.5], [0.5, 0.45], [0.45, 0.44], [0.44, 0.3]])  # member 1 stalls first (then is done)
    stopping.fold_scores = lambda n: (np.array(next(losses)), 0.5)
    thetas, stopped = [], []
    for epoch in range(5):
        net.theta[...] = epoch  # (each epoch's weights told apart)
        h.val_loss.append(float("nan"))
        h.val_metric.append(float("nan"))
        h.loss.append(1.0)
        stopped.append(stopping.on_epoch_end(epoch, h, net))
        thetas.append(net.theta.copy())
    # member 0: better by more than 0.1 at epochs 0 and 2; member 1: at 0 and 1, then done after epoch 3
    assert stopping.best_epoch.tolist() == [2, 1] and stopping.wait.tolist() == [2, 2]
    assert stopped == [False, False, False, False, True]
    assert h.val_loss[1] == pytest.approx(0.725)
    stopping.on_train_end(net, h)
    assert h.member_best_epochs == [3, 2]
    positions = net.member_positions()
    assert np.all(net.theta[positions[0]] == 2) and np.all(net.theta[positions[1]] == 1)
