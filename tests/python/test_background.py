"""Background rounds (Monitor(blocking=False)) against scripted clients: training goes on while
a round runs, reports arrive tagged with the step they describe, the round sees the parameters
of its start, cadence points hit meanwhile are counted, and close() never hangs."""

from __future__ import annotations

import threading
import time

import pytest
import torch

import edgewise

WAIT = 20.0  # generous bound on waits that only a bug would exhaust


class GatedClient:
    """Holds every round until ``gate`` is set, then answers with the loss the oracle computes
    at the round's parameters (so the test sees which parameters the round used)."""

    def __init__(self):
        self.gate = threading.Event()
        self.started = threading.Event()
        self.gate_was_open = []
        self.dashboard_url = None
        self.closed = False
        self.threads = set()

    def open_session(self, run):
        return "s"

    def run_round(self, oracle, **kw):
        self.threads.add(threading.get_ident())
        self.started.set()
        self.gate_was_open.append(self.gate.wait(WAIT))
        self.gate.clear()
        losses = oracle.execute("grads", {})["losses"]
        return {"lambda_gen": 1.0, "lambda_max": 1.0, "eta_star": 2.0, "step": kw["step"], "lr": kw["lr"],
                "epoch": kw["epoch"], "loss_at_round": float(losses.mean())}

    def close(self):
        self.closed = True


def problem():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 1, dtype=torch.float64)
    return model, torch.nn.functional.mse_loss, x, y


def monitor_for(client, model, loss_fn, x, y, **kw):
    return edgewise.Monitor(model, loss_fn, probe=(x, y), n_train=20, batch_size=4, console=False,
                            client_factory=lambda e, t: client, **kw)


def sgd_step(model, opt, loss_fn, x, y):
    opt.zero_grad()
    loss_fn(model(x), y).backward()
    opt.step()


def test_training_goes_on_while_a_round_runs_and_the_report_is_tagged_with_its_step():
    model, loss_fn, x, y = problem()
    client = GatedClient()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = monitor_for(client, model, loss_fn, x, y, every_steps=5, optimizer=opt)
    seen = []
    monitor.add_listener(seen.append)
    loss_at_5 = None
    try:
        for _ in range(5):
            sgd_step(model, opt, loss_fn, x, y)
            assert monitor.step() is None
        with torch.no_grad():
            loss_at_5 = float(loss_fn(model(x), y))  # the parameters the round must see
        assert client.started.wait(WAIT)
        # the round is held at the gate: if step() waited for it, this loop would never end
        for _ in range(3):
            sgd_step(model, opt, loss_fn, x, y)
            assert monitor.step() is None
        assert seen == []  # nothing delivered yet
        client.gate.set()
        report = monitor.wait(WAIT)
    finally:
        client.gate.set()
        monitor.close()
    assert client.gate_was_open == [True]
    assert threading.get_ident() not in client.threads  # served by the worker thread
    assert report is not None and report.step == 5 and not report.missing
    assert seen == [report] and monitor.latest is report and monitor.history == [report]
    # the oracle evaluated the parameters of step 5, not the 3 steps trained since
    assert report.extra["loss_at_round"] == pytest.approx(loss_at_5, rel=1e-12)
    with torch.no_grad():
        assert float(loss_fn(model(x), y)) != pytest.approx(loss_at_5, rel=1e-9)


def test_a_cadence_point_hit_while_a_round_runs_is_skipped_and_said_in_the_report():
    model, loss_fn, x, y = problem()
    client = GatedClient()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = monitor_for(client, model, loss_fn, x, y, every_steps=2, optimizer=opt)
    try:
        for _ in range(2):
            sgd_step(model, opt, loss_fn, x, y)
            monitor.step()
        assert client.started.wait(WAIT)
        for _ in range(6):  # three more cadence points while the first round is held
            sgd_step(model, opt, loss_fn, x, y)
            monitor.step()
        client.gate.set()
        first = monitor.wait(WAIT)
    finally:
        client.gate.set()
        monitor.close()
    assert first.step == 2
    assert first.extra["cadence_skipped"] == 3
    assert any("3 cadence point(s) skipped" in w for w in first.warnings)
    assert len(client.gate_was_open) == 1  # never two rounds at once


def test_a_finished_round_is_delivered_by_the_next_step_and_stability_lr_acts_then():
    model, loss_fn, x, y = problem()
    client = GatedClient()
    client.gate.set()
    opt = torch.optim.SGD(model.parameters(), lr=5.0)  # η* = 2 in the scripted report
    monitor = monitor_for(client, model, loss_fn, x, y, every_steps=1, optimizer=opt)
    stability = edgewise.StabilityLR(opt, monitor, safety=0.5, verbose=False)
    arrived = None
    try:
        sgd_step(model, opt, loss_fn, x, y)
        assert monitor.step() is None  # round started, not finished
        deadline = time.monotonic() + WAIT
        while arrived is None and time.monotonic() < deadline:
            time.sleep(0.01)
            client.gate.set()
            arrived = monitor.step() if monitor._worker is not None and not monitor._worker.busy else None
    finally:
        client.gate.set()
        monitor.close()
    assert arrived is not None and arrived.step == 1
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)  # 0.5 · η*
    assert stability.limit == pytest.approx(1.0)


def test_the_users_model_is_untouched_by_a_background_round():
    model, loss_fn, x, y = problem()
    model.train()
    model[1].training = False  # a mixed flag the round must not reset
    client = GatedClient()
    client.gate.set()
    monitor = monitor_for(client, model, loss_fn, x, y, every_steps=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        monitor.step(lr=0.1)
        report = monitor.wait(WAIT)
    finally:
        monitor.close()
    assert report is not None and not report.missing
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert model.training and not model[1].training and model[0].training


def test_close_never_hangs_on_a_round_that_does_not_end():
    model, loss_fn, x, y = problem()
    client = GatedClient()  # the gate is never opened: the round would wait WAIT seconds
    monitor = monitor_for(client, model, loss_fn, x, y, every_steps=1, close_timeout=0.3)
    monitor.step(lr=0.1)
    assert client.started.wait(WAIT)
    t0 = time.monotonic()
    monitor.close()
    waited = time.monotonic() - t0
    client.gate.set()  # let the abandoned thread end
    assert waited < 5.0, f"close() took {waited:.1f} s"


def test_blocking_true_runs_on_the_training_thread():
    model, loss_fn, x, y = problem()
    client = GatedClient()
    client.gate.set()
    monitor = monitor_for(client, model, loss_fn, x, y, every_steps=1, blocking=True)
    report = monitor.step(lr=0.1)
    monitor.close()
    assert report is not None and report.step == 1
    assert client.threads == {threading.get_ident()}
