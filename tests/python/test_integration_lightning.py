"""EdgewiseCallback in a real Lightning Trainer (CPU, 2 epochs, a real sidecar).

The metrics must reach a CSVLogger file, and the last λ_max logged must equal the top
eigenvalue of the probe's dense Hessian at the trained parameters (torch.func.hessian).
"""

from __future__ import annotations

import csv

import pytest
import torch
from torch.func import functional_call, hessian

lightning = pytest.importorskip("lightning")
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

import edgewise  # noqa: E402
from edgewise.integrations.lightning import EdgewiseCallback  # noqa: E402

mse = torch.nn.functional.mse_loss


class Regressor(lightning.LightningModule):
    def __init__(self, lr=0.05, scheduler=None):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
        self.lr = lr
        self.scheduler = scheduler

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        return mse(self(x), y)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr)
        if self.scheduler is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": self.scheduler(opt)}


def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, generator=g, dtype=torch.float64)
    y = torch.sin(x.sum(1, keepdim=True))
    return x, y


def fit(module, callback, tmp_path):
    x, y = data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    trainer = lightning.Trainer(max_epochs=2, accelerator="cpu", logger=CSVLogger(tmp_path), callbacks=[callback],
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    with open(trainer.logger.experiment.metrics_file_path) as f:
        rows = list(csv.DictReader(f))
    return trainer, rows


def logged(rows, name):
    return [(int(r["step"]), float(r[name])) for r in rows if r.get(name)]


def dense_lambda_max(module, x, y):
    net = module.net
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    def loss(flat):
        params, i = {}, 0
        for name, shape in zip(names, shapes):
            params[name] = flat[i : i + shape.numel()].view(shape)
            i += shape.numel()
        return mse(functional_call(net, params, (x,)), y)

    return float(torch.linalg.eigvalsh(hessian(loss)(theta))[-1])


def test_rounds_at_epoch_end_reach_the_csv_logger_and_match_a_dense_hessian(tmp_path):
    x, y = data()
    probe = (x[:32], y[:32])
    callback = EdgewiseCallback(mse, probe=probe, curvature="hessian", tol=1e-9, bootstrap=0, console=False)
    module = Regressor()
    trainer, rows = fit(module, callback, tmp_path)

    lam_max = logged(rows, "edgewise/lambda_max")
    eta = logged(rows, "edgewise/eta_star")
    assert len(lam_max) == 2 and len(eta) == 2 and len(logged(rows, "edgewise/lambda_gen")) == 2
    assert [s for s, _ in lam_max] == [7, 15]  # Lightning's step of each epoch's end (8 batches each)
    history = callback.monitor.history
    assert (history[0].batch_size, history[0].n) == (8, 64)  # B = loader batch × devices × accumulation
    assert [r.eta_star for r in history] == pytest.approx([v for _, v in eta], rel=1e-6)  # logged as float32
    assert lam_max[-1][1] == pytest.approx(dense_lambda_max(module, *probe), rel=1e-6)
    assert callback.state_dict() == {"batches": 16, "rounds": 2}
    fresh = EdgewiseCallback(mse)
    fresh.load_state_dict(callback.state_dict())
    assert (fresh.batches, fresh.rounds) == (16, 2)


def test_every_n_batches_and_a_stability_lr_from_configure_optimizers(tmp_path):
    x, y = data()
    schedulers = []

    def make(opt):
        schedulers.append(edgewise.StabilityLR(opt, safety=0.5, mode="track", verbose=False))
        return schedulers[-1]

    callback = EdgewiseCallback(mse, probe=(x[:16], y[:16]), every_n_batches=5, bootstrap=0, console=False)
    module = Regressor(scheduler=make)
    trainer, rows = fit(module, callback, tmp_path)

    eta = logged(rows, "edgewise/eta_star")
    assert [s for s, _ in eta] == [5, 10, 15]  # rounds at batches 5, 10, 15 of 16
    (stability,) = schedulers
    assert callback.stability is stability and stability.monitor is callback.monitor
    assert stability.last_epoch == 2  # Lightning stepped it once per epoch
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(0.5 * eta[-1][1], rel=1e-6) and stability.get_last_lr() == [lr]
