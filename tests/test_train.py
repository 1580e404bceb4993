"""The shared training loop: it learns, stops early on a worsening validation loss and restores the
best weights, checkpoints and resumes to the same weights, refuses absent devices, is reproducible,
and records what it did."""

import numpy as np
import pytest
import torch
from torch import nn

from graphimpute import train
from graphimpute.errors import DeviceError
from graphimpute.train import TrainConfig


class Regressor(nn.Module):
    """A small MLP with dropout, so that training draws from the torch RNG."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def regression_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(n, generator=g)


def mse_loss(module, batch):
    x, y = batch
    err = (module(x) - y) ** 2
    return {"loss": err.mean(), "max_err": err.max()}


def shuffled_batches(x, y, size=16):
    """Mini-batches in a numpy-RNG order, so resuming must also restore numpy's generator."""
    def batches():
        order = np.random.permutation(len(x))
        return [(x[order[i:i + size]], y[order[i:i + size]]) for i in range(0, len(x), size)]
    return batches


def config(**kw):
    kw.setdefault("progress", False)
    return TrainConfig(**kw)


def fit_regressor(seed=0, **kw):
    train.seed_everything(seed)
    module = Regressor()
    x, y = regression_data()
    history = train.fit(module, mse_loss, config=config(**kw), device=torch.device("cpu"),
                        train_data=shuffled_batches(x, y))
    return module, history


def test_loss_decreases():
    _, history = fit_regressor(max_epochs=40, lr=1e-2)
    losses = [row["train_loss"] for row in history.epochs]
    assert len(losses) == 40
    assert losses[-1] < 0.2 * losses[0]


class Scalar(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))


def test_early_stopping_restores_best_weights():
    # training pulls w towards 5; validation wants w = 1, so it improves, then worsens past w = 1
    def loss(module, batch):
        target = 5.0 if batch == "train" else 1.0
        return {"loss": (module.w - target) ** 2}

    module = Scalar()
    history = train.fit(module, loss, config=config(max_epochs=500, lr=0.05, patience=5),
                        device=torch.device("cpu"), train_data=lambda: ["train"], val_data=lambda: ["val"])
    assert history.stopped_early
    assert history.n_epochs == history.best_epoch + 5 < 500
    val = [row["val_loss"] for row in history.epochs]
    assert val[-1] > min(val)  # validation really did worsen before the stop
    assert history.best_loss == pytest.approx(min(val))
    # the restored weights are the best epoch's, not the last one's
    assert (module.w.item() - 1.0) ** 2 == pytest.approx(history.best_loss, rel=1e-6)
    assert abs(module.w.item() - 1.0) < 0.1


def test_restore_best_false_keeps_the_last_epochs_weights():
    # the same run as above, but as Keras' EarlyStopping without restore_best_weights: the weights of
    # the epoch training stopped at (5 past the best) come back, and the history says so
    def loss(module, batch):
        target = 5.0 if batch == "train" else 1.0
        return {"loss": (module.w - target) ** 2}

    module = Scalar()
    history = train.fit(module, loss, config=config(max_epochs=500, lr=0.05, patience=5, restore_best=False),
                        device=torch.device("cpu"), train_data=lambda: ["train"], val_data=lambda: ["val"])
    assert history.stopped_early and history.weights == "last"
    assert (module.w.item() - 1.0) ** 2 == pytest.approx(history.epochs[-1]["val_loss"], rel=1e-4)
    assert (module.w.item() - 1.0) ** 2 > history.best_loss


def test_monitors_training_loss_without_validation():
    _, history = fit_regressor(max_epochs=30, lr=1e-2)
    assert history.best_loss == pytest.approx(min(row["train_loss"] for row in history.epochs))
    assert "val_loss" not in history.epochs[0]


def test_checkpoint_resume_gives_uninterrupted_weights(tmp_path):
    kw = dict(max_epochs=12, lr=1e-2, lr_decay_every=3, lr_decay=0.5, checkpoint_every=4)
    uninterrupted, full_history = fit_regressor(checkpoint_dir=tmp_path / "a", **kw)

    # the same run killed during epoch 10: the last checkpoint is the one after epoch 8
    train.seed_everything(0)
    module = Regressor()
    x, y = regression_data()
    calls = {"n": 0}

    def dying_loss(module, batch):
        calls["n"] += 1
        if calls["n"] > 9 * 4 + 2:  # 4 batches per epoch
            raise KeyboardInterrupt
        return mse_loss(module, batch)

    with pytest.raises(KeyboardInterrupt):
        train.fit(module, dying_loss, config=config(checkpoint_dir=tmp_path / "b", **kw),
                  device=torch.device("cpu"), train_data=shuffled_batches(x, y))
    assert (tmp_path / "b" / "checkpoint.pt").exists()

    # a new process: other seed, fresh weights; everything must come from the checkpoint
    train.seed_everything(123)
    resumed = Regressor()
    history = train.fit(resumed, mse_loss, config=config(checkpoint_dir=tmp_path / "b", resume=True, **kw),
                        device=torch.device("cpu"), train_data=shuffled_batches(x, y))
    assert history.resumed_from_epoch == 8
    assert history.n_epochs == full_history.n_epochs == 12
    assert [r["lr"] for r in history.epochs] == [r["lr"] for r in full_history.epochs]
    for key, value in uninterrupted.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)


def test_resume_after_early_stop_trains_no_further(tmp_path):
    def loss(module, batch):
        return {"loss": (module.w - (5.0 if batch == "train" else 1.0)) ** 2}

    cfg = dict(max_epochs=500, lr=0.05, patience=5, checkpoint_every=1000, checkpoint_dir=tmp_path)
    first = Scalar()
    done = train.fit(first, loss, config=config(**cfg), device=torch.device("cpu"),
                     train_data=lambda: ["train"], val_data=lambda: ["val"])
    again = Scalar()
    resumed = train.fit(again, loss, config=config(resume=True, **cfg), device=torch.device("cpu"),
                        train_data=lambda: ["train"], val_data=lambda: ["val"])
    assert resumed.n_epochs == done.n_epochs
    assert again.w.item() == first.w.item()


def test_same_seed_same_weights_other_seed_other_weights():
    a, _ = fit_regressor(seed=7, max_epochs=5)
    b, _ = fit_regressor(seed=7, max_epochs=5)
    c, _ = fit_regressor(seed=8, max_epochs=5)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
    assert not torch.equal(a.state_dict()["net.0.weight"], c.state_dict()["net.0.weight"])


def test_history_records_what_happened():
    module, history = fit_regressor(max_epochs=3)
    d = history.to_dict()
    assert d["n_epochs"] == 3 and d["device"] == "cpu"
    assert d["wall_time_s"] > 0 and d["peak_memory_mb"] > 0
    assert set(d["epochs"][0]) == {"train_loss", "train_max_err", "lr", "time_s"}
    assert d["best_epoch"] in (1, 2, 3) and d["stopped_early"] is False


def test_module_ends_in_eval_mode():
    module, _ = fit_regressor(max_epochs=2)
    assert not module.training
    assert all(not m.training for m in module.modules())


def test_learning_rate_decay_is_recorded():
    _, history = fit_regressor(max_epochs=5, lr=0.1, lr_decay_every=2, lr_decay=0.5)
    assert [r["lr"] for r in history.epochs] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_a_full_batch_schedule_in_mini_batch_epochs_keeps_the_updates():
    assert train.schedule_in_steps(1, max_epochs=3000, patience=200, lr_decay_every=50) == {
        "max_epochs": 3000, "patience": 200, "lr_decay_every": 50}
    # 100,000 cells in 23 steps: the paper's 3,000 updates and patience of 200 in whole epochs
    steps = train.schedule_in_steps(23, max_epochs=3000, patience=200, lr_decay_every=50)
    assert (steps["max_epochs"], steps["patience"]) == (131, 9) and steps["lr_decay_every"] == pytest.approx(50 / 23)
    assert train.schedule_in_steps(400, max_epochs=100, patience=5)["patience"] == 1  # checked once per epoch
    # the smooth decay per update is the full-batch one: after e epochs of 4 steps, lr·0.5^(4e/8)
    _, history = fit_regressor(max_epochs=3, lr=0.1, lr_decay=0.5, lr_decay_staircase=False,
                               **{k: v for k, v in train.schedule_in_steps(4, max_epochs=12, lr_decay_every=8).items()
                                  if k != "max_epochs"})
    assert [r["lr"] for r in history.epochs] == pytest.approx([0.1 * 0.5 ** (4 * e / 8) for e in range(3)])


def test_non_finite_loss_stops_with_a_clear_error():
    def loss(module, batch):
        return {"loss": module.w * float("nan")}

    with pytest.raises(FloatingPointError, match="lower learning rate"):
        train.fit(Scalar(), loss, config=config(max_epochs=3), device=torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_refused_where_absent(name):
    with pytest.raises(DeviceError, match="no CUDA device"):
        train.resolve_device(name)


def test_resolve_device():
    assert train.resolve_device("cpu") == torch.device("cpu")
    assert train.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="unknown device"):
        train.resolve_device("tpu")


@pytest.mark.gpu
def test_checkpoint_resume_on_cuda(tmp_path):
    device = torch.device("cuda")
    x, y = (t.to(device) for t in regression_data())
    kw = dict(max_epochs=6, lr=1e-2, checkpoint_every=3, progress=False)

    def fit(resume, max_epochs, seed):
        train.seed_everything(seed)
        module = Regressor().to(device)
        train.fit(module, mse_loss, config=TrainConfig(**{**kw, "max_epochs": max_epochs}, resume=resume,
                                                       checkpoint_dir=tmp_path),
                  device=device, train_data=lambda: [(x, y)])
        return module

    full = fit(False, 6, 0)
    fit(False, 3, 0)
    resumed = fit(True, 6, 1)
    for key, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value)
