"""Monitor and estimate() with an optimizer: what reaches the sidecar and the oracle (scripted client).

The whole-stack numbers (momentum.md §8 through a real sidecar) are in test_momentum_stack.py.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import edgewise
from edgewise._preconditioner import adam_scale
from edgewise.monitor import EdgewiseWarning
from edgewise.report import StabilityReport
from test_monitor import ScriptedClient, report, tiny_problem


def monitor_for(opt_fn, client, **kw):
    model, loss_fn, data = tiny_problem()
    opt = opt_fn(model)
    mon = edgewise.Monitor(model, loss_fn, train_data=data, probe_size=8, n_train=20, batch_size=4, optimizer=opt,
                           console=False, blocking=True, client_factory=lambda e, t: client, **kw)
    return mon, model, loss_fn, data, opt


def adam_step(model, loss_fn, data, opt):
    opt.zero_grad()
    loss_fn(model(data[0]), data[1]).backward()
    opt.step()


def test_adam_rounds_wait_for_a_preconditioner_then_send_the_model_and_apply_it():
    client = ScriptedClient([report(2.0), report(2.0)])
    mon, model, loss_fn, data, opt = monitor_for(
        lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.85, 0.99), weight_decay=0.1), client)
    with pytest.warns(EdgewiseWarning, match="no Adam preconditioner yet"):
        first = mon.round()
    assert first.missing and "exp_avg_sq" in first.reason and client.rounds == []
    adam_step(model, loss_fn, data, opt)
    r = mon.round()
    assert not r.missing and r.lr == 1e-3
    sent = client.rounds[0]
    assert sent["options"]["optimizer"] == {"kind": "adam", "beta1": 0.85, "decoupled_decay": 0.1, "name": "AdamW", "assumed": False}
    assert sent["momentum"] == 0.85
    want = adam_scale(model, opt, eps=1e-8, beta2=0.99, amsgrad=False).to(mon._oracle.dtype)
    assert torch.equal(mon._oracle._layout.scale, want)
    # the snapshot is a copy: the optimizer's later steps do not reach a scheduled round's P
    adam_step(model, loss_fn, data, opt)
    assert torch.equal(mon._oracle._layout.scale, want)


def test_plain_sgd_monitor_sends_no_optimizer_and_no_preconditioner():
    client = ScriptedClient([report(1.0)])
    model, loss_fn, data = tiny_problem()
    mon = edgewise.Monitor(model, loss_fn, train_data=data, probe_size=8, n_train=20, batch_size=4, console=False,
                           blocking=True, client_factory=lambda e, t: client)
    mon.round(lr=0.1)
    assert "optimizer" not in client.rounds[0]["options"] and client.rounds[0]["momentum"] == 0.0
    assert mon._oracle._layout.scale is None


def test_unmodelled_optimizers_and_differing_groups_warn_once():
    client = ScriptedClient([report(1.0)] * 2)
    mon, *_ = monitor_for(lambda m: torch.optim.RMSprop(m.parameters(), lr=0.01), client)
    with pytest.warns(EdgewiseWarning, match="RMSprop is not modelled"):
        mon.round()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mon.round()
    assert client.rounds[1]["options"]["optimizer"] == {"kind": "sgd", "name": "RMSprop", "assumed": True}

    client = ScriptedClient([report(1.0)] * 2)
    mon, *_ = monitor_for(lambda m: torch.optim.SGD([{"params": list(m.parameters())[:2], "momentum": 0.5},
                                                     {"params": list(m.parameters())[2:]}], lr=0.1, momentum=0.9),
                          client)
    with pytest.warns(EdgewiseWarning, match="group 0"):
        mon.round()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mon.round()
    assert client.rounds[0]["options"]["optimizer"]["momentum"] == 0.5


def test_report_exposes_the_optimizer_fields_and_the_console_line_names_the_model():
    raw = {"eta_star": 2.264349798320, "lambda_gen": 2 / 2.264349798320, "lr": 1.0, "margin": 1 / 2.264349798320,
           "optimizer": {"kind": "adam", "name": "Adam", "beta1": 0.9, "assumed": False,
                         "description": "Adam (β₁ = 0.9, frozen preconditioner)"},
           "method": "pencil", "eta_star_sgd": 1.07, "eta_star_full_batch": 26.202191846633,
           "naive": {"rescaled": 2.0, "effective_lr": 0.1},
           "eta_star_by_momentum": [{"momentum": 0.0, "eta_star": 1.0, "converged": True}]}
    r = StabilityReport.from_dict(raw)
    assert r.optimizer["kind"] == "adam" and r.method == "pencil" and r.eta_star_full_batch == 26.202191846633
    assert r.eta_star_sgd == 1.07 and r.naive["effective_lr"] == 0.1 and r.eta_star_by_momentum[0]["converged"]
    assert r.eta_star_upper is None and r.extra == {}
    assert "η* 2.264 (Adam (β₁ = 0.9, frozen preconditioner); full batch 26.2)" in r.summary()
    assert "(" not in StabilityReport.from_dict({"eta_star": 1.0, "optimizer": {"kind": "sgd"}}).summary()


def test_stability_lr_caps_the_optimizers_own_lr_against_its_eta_star():
    client = ScriptedClient([report(0.02)])
    mon, model, loss_fn, data, opt = monitor_for(lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9),
                                                 client)
    sched = edgewise.StabilityLR(opt, mon, safety=0.5, verbose=False)
    mon.round()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01) and sched.limit == pytest.approx(0.01)


def test_estimate_refuses_adam_without_state():
    model, loss_fn, (x, y) = tiny_problem()
    with pytest.raises(ValueError, match="no Adam state"):
        edgewise.estimate(model, loss_fn, (x, y), n_train=20, batch_size=4,
                          optimizer=torch.optim.Adam(model.parameters()), endpoint="tcp://127.0.0.1:1")


def test_background_rounds_use_the_preconditioner_snapshotted_at_the_cadence_point():
    """The round runs on the worker while training goes on; its P is the one at scheduling time."""
    import threading

    gate = threading.Event()

    class SlowClient(ScriptedClient):
        def run_round(self, oracle, **kwargs):
            gate.wait(10)  # training takes more steps meanwhile
            self.scale = oracle._layout.scale.clone()  # forwarded to the CurvatureOracle
            return super().run_round(oracle, **kwargs)

    client = SlowClient([report(2.0)])
    model, loss_fn, data = tiny_problem()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    mon = edgewise.Monitor(model, loss_fn, train_data=data, probe_size=8, n_train=20, batch_size=4, optimizer=opt,
                           console=False, blocking=False, every_steps=1, client_factory=lambda e, t: client)
    adam_step(model, loss_fn, data, opt)
    want = adam_scale(model, opt, eps=1e-8, beta2=0.999, amsgrad=False)
    mon.step()  # schedules the round in the background
    for _ in range(3):
        adam_step(model, loss_fn, data, opt)
    gate.set()
    r = mon.wait(10)
    mon.close()
    assert r is not None and not r.missing and torch.equal(client.scale, want)
    assert not torch.equal(adam_scale(model, opt, eps=1e-8, beta2=0.999, amsgrad=False), want)


def test_an_optimizer_that_cannot_be_read_skips_the_round_and_never_raises():
    class BrokenState(dict):
        def get(self, *args):
            raise RuntimeError("boom")

    client = ScriptedClient([report(1.0)])
    model, loss_fn, data = tiny_problem()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    opt.state = BrokenState()
    mon = edgewise.Monitor(model, loss_fn, train_data=data, probe_size=8, n_train=20, batch_size=4, optimizer=opt,
                           console=False, blocking=True, client_factory=lambda e, t: client)
    with pytest.warns(EdgewiseWarning, match="could not read the optimizer"):
        r = mon.round(lr=0.1)
    assert r.missing and "boom" in r.reason and client.rounds == []
