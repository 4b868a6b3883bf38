"""Monitor and StabilityLR against a scripted sidecar client (no processes, no sockets).

The live tests with a real sidecar are in test_monitor_live.py.
"""

from __future__ import annotations

import csv
import json
import warnings

import pytest
import torch

import edgewise
from edgewise.monitor import EdgewiseWarning
from edgewise.report import StabilityReport


class ScriptedClient:
    """Plays back reports (dicts) or raises (exceptions), one per run_round call."""

    def __init__(self, script):
        self.script = list(script)
        self.rounds = []
        self.sessions = []
        self.closed = False
        self.dashboard_url = None

    def open_session(self, run):
        self.sessions.append(run)
        return "s1"

    def run_round(self, oracle, **kwargs):
        self.rounds.append(kwargs)
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return dict(item, lr=kwargs["lr"], margin=kwargs["lr"] / item["eta_star"], epoch=kwargs["epoch"])

    def close(self):
        self.closed = True


def tiny_problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    x, y = torch.randn(20, 3), torch.randn(20, 1)
    return model, torch.nn.functional.mse_loss, (x, y)


def report(eta_star, **extra):
    return {"lambda_gen": 2 / eta_star, "lambda_max": 1.0, "eta_star": eta_star, "suggested_lr": 0.9 * eta_star, **extra}


def make_monitor(client, **kwargs):
    model, loss_fn, data = tiny_problem()
    kwargs.setdefault("console", False)
    kwargs.setdefault("blocking", True)  # background rounds: test_background.py
    return edgewise.Monitor(
        model, loss_fn, train_data=data, probe_size=8, n_train=20, batch_size=4,
        client_factory=lambda endpoint, timeout: client, **kwargs,
    )


def test_round_returns_the_sidecars_report_and_passes_run_facts():
    client = ScriptedClient([report(0.5)])
    monitor = make_monitor(client)
    r = monitor.round(lr=0.1, step=7, epoch=2)
    assert not r.missing and r.eta_star == 0.5 and r.margin == pytest.approx(0.2)
    assert client.rounds[0]["batch_size"] == 4 and client.rounds[0]["n"] == 20 and client.rounds[0]["step"] == 7
    assert client.sessions[0]["probe"] == 8 and client.sessions[0]["params"] == 3 * 4 + 4 + 4 + 1
    assert monitor.latest is r and monitor.history == [r]


def test_defaults_gauss_newton_factors_and_only_the_options_the_user_set():
    client = ScriptedClient([report(0.5), report(0.5)])
    monitor = make_monitor(client)
    monitor.round(lr=0.1)
    run = client.sessions[0]
    assert run["curvature"] == "ggn" and run["outputs"] == 1  # factor rows: the model's one output
    assert client.rounds[0]["options"] == {"seed": 0}  # no tol: the sidecar's automatic live tolerance
    chosen = make_monitor(ScriptedClient([report(0.5)]), curvature="ggn_mc", mc_samples=3, tol=1e-2,
                          bounds=["identity"])
    chosen.round(lr=0.1)
    sent = chosen._client
    assert sent.sessions[0]["curvature"] == "ggn_mc" and sent.sessions[0]["outputs"] == 3
    assert sent.rounds[0]["options"] == {"seed": 0, "tol": 1e-2, "bounds": ["identity"]}


def test_lr_momentum_and_the_optimizer_model_are_read_from_the_optimizer():
    client = ScriptedClient([report(1.0)])
    model, loss_fn, data = tiny_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    monitor = edgewise.Monitor(model, loss_fn, train_data=data, probe_size=8, n_train=20, batch_size=4,
                               optimizer=opt, console=False, client_factory=lambda e, t: client)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # momentum is modelled: no "indicative only" warning any more
        monitor.round()
    assert client.rounds[0]["lr"] == 0.05 and client.rounds[0]["momentum"] == 0.9
    assert client.rounds[0]["options"]["optimizer"] == {"kind": "heavy_ball", "momentum": 0.9, "name": "SGD", "assumed": False}


def test_sidecar_failure_gives_a_missing_report_then_backs_off_and_resumes():
    from edgewise.errors import SidecarTimeout

    client = ScriptedClient([SidecarTimeout("no answer in 1 s"), SidecarTimeout("again"), report(0.5), report(0.5)])
    monitor = make_monitor(client)
    with pytest.warns(EdgewiseWarning, match="round skipped"):
        first = monitor.round(lr=0.1)
    assert first.missing and "SidecarTimeout" in first.reason
    with pytest.warns(EdgewiseWarning):
        second = monitor.round(lr=0.1)  # back-off 0 after the first failure: tried again, fails
    assert second.missing
    third = monitor.round(lr=0.1)  # back-off of one round after two failures: skipped, not tried
    assert third.missing and "retrying later" in third.reason and len(client.rounds) == 2
    fourth = monitor.round(lr=0.1)
    assert not fourth.missing and fourth.eta_star == 0.5


def test_a_sidecar_that_cannot_start_disables_monitoring_without_raising():
    def broken_factory(endpoint, timeout):
        raise FileNotFoundError("tools/deno not found")

    model, loss_fn, data = tiny_problem()
    monitor = edgewise.Monitor(model, loss_fn, train_data=data, probe_size=8, n_train=20, batch_size=4,
                               console=False, client_factory=broken_factory)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        reports = [monitor.round(lr=0.1) for _ in range(3)]
    assert all(r.missing for r in reports)
    assert "could not start a local sidecar" in reports[-1].reason


def test_cadence_every_steps_and_per_epoch():
    client = ScriptedClient([report(1.0)] * 3)
    monitor = make_monitor(client, every_steps=2)
    ran = [monitor.step(lr=0.1) for _ in range(5)]
    assert [r is not None for r in ran] == [False, True, False, True, False]
    assert monitor.end_epoch(0, lr=0.1) is None  # cadence is every_steps, not per epoch
    per_epoch = make_monitor(ScriptedClient([report(1.0)]))
    assert per_epoch.step(lr=0.1) is None  # no every_steps: steps only count
    assert per_epoch.end_epoch(3, lr=0.1).epoch == 3


def test_logs_one_jsonl_and_csv_line_per_round(tmp_path):
    from edgewise.errors import SidecarTimeout

    client = ScriptedClient([report(0.5, ci={"lambda_gen_lo": 3.9, "lambda_gen_hi": 4.1}), SidecarTimeout("x")])
    monitor = make_monitor(client, log_dir=tmp_path, tensorboard=False)
    monitor.round(lr=0.1, step=1, epoch=0)
    with pytest.warns(EdgewiseWarning):
        monitor.round(lr=0.1, step=2, epoch=1)
    monitor.close()
    lines = [json.loads(l) for l in (tmp_path / "edgewise.jsonl").read_text().splitlines()]
    assert [l["missing"] for l in lines] == [False, True]
    assert lines[0]["ci"]["lambda_gen_hi"] == 4.1
    rows = list(csv.DictReader(open(tmp_path / "edgewise.csv")))
    assert rows[0]["ci_lambda_gen_lo"] == "3.9" and rows[0]["eta_star"] == "0.5" and rows[1]["missing"] == "True"


def test_bad_arguments_are_rejected_clearly():
    model, loss_fn, data = tiny_problem()
    with pytest.raises(ValueError, match="expected probe"):
        edgewise.Monitor(model, loss_fn, n_train=20, batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        edgewise.Monitor(model, loss_fn, train_data=data, n_train=20, batch_size=40)
    with pytest.raises(ValueError, match="curvature"):
        edgewise.Monitor(model, loss_fn, train_data=data, n_train=20, batch_size=4, curvature="fisher")


# ---------------------------------------------------------------------------- StabilityLR


def test_stability_lr_caps_at_safety_times_eta_star_and_keeps_lower_requests():
    client = ScriptedClient([report(0.5), report(2.0)])
    model, loss_fn, data = tiny_problem()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    monitor = edgewise.Monitor(model, loss_fn, train_data=data, probe_size=8, n_train=20, batch_size=4,
                               optimizer=opt, console=False, client_factory=lambda e, t: client)
    stability = edgewise.StabilityLR(opt, monitor, safety=0.9, verbose=False)
    monitor.round()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.45)
    monitor.round()  # η* grew to 2: the cap 1.8 is above the requested 1.0, so back to 1.0
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)
    assert [(c.old_lr, c.new_lr) for c in stability.changes] == [(1.0, pytest.approx(0.45)), (pytest.approx(0.45), 1.0)]
    assert stability.changes[0].report.eta_star == 0.5


def test_stability_lr_track_mode_follows_eta_star_and_ignores_missing_reports():
    from edgewise.errors import SidecarTimeout

    client = ScriptedClient([report(0.5), SidecarTimeout("x"), report(4.0)])
    model, loss_fn, data = tiny_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = edgewise.Monitor(model, loss_fn, train_data=data, probe_size=8, n_train=20, batch_size=4,
                               optimizer=opt, console=False, client_factory=lambda e, t: client)
    edgewise.StabilityLR(opt, monitor, safety=0.5, mode="track", verbose=False)
    monitor.round()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)
    with pytest.warns(EdgewiseWarning):
        monitor.round()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)
    monitor.round()
    assert opt.param_groups[0]["lr"] == pytest.approx(2.0)


def test_stability_lr_composes_with_another_scheduler():
    client = ScriptedClient([report(1.0)])
    model, loss_fn, data = tiny_problem()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    monitor = edgewise.Monitor(model, loss_fn, train_data=data, probe_size=8, n_train=20, batch_size=4,
                               optimizer=opt, console=False, client_factory=lambda e, t: client)
    stability = edgewise.StabilityLR(opt, monitor, safety=0.8, verbose=False)
    monitor.round()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.8)
    opt.step()
    sched.step()  # the user's decay: 0.8 -> 0.4, below the cap
    stability.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="safety"):
        edgewise.StabilityLR(opt, monitor, safety=1.5)


def test_an_interval_reaching_zero_has_no_eta_star_upper_end():
    """The wire and the logs carry no infinities (SPEC §5): an interval whose lower end is 0 comes
    without ``eta_star_hi`` (η* unbounded above), and reads and logs as such."""
    ci = {"lambda_gen_lo": 0.0, "lambda_gen_hi": 4.0, "eta_star_lo": 0.5, "level": 0.9}
    r = StabilityReport.from_dict({"lambda_gen": 2.0, "eta_star": 1.0, "ci": ci})
    assert r.ci == ci and "[0, 4]" in r.summary()
    assert json.loads(json.dumps(r.to_dict()), parse_constant=lambda c: pytest.fail(c))["ci"] == ci
