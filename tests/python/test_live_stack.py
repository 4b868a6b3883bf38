"""The whole stack, live: torch model → Python oracle → ZeroMQ → Deno sidecar → report.

Expected values come from theory.md §7 (computed there independently of this code) or from
dense numpy references built in the test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import edgewise
from edgewise.monitor import EdgewiseWarning

from _sidecar import SidecarProcess, free_port

# theory.md §7: rows of X for l_i = ½ (x_iᵀ w − y_i)² at an interpolating solution.
X_WORKED = torch.tensor(
    [[0, 0.3, -0.27], [-0.89, -0.45, -0.99], [0.06, 1.34, -0.49], [-0.62, 0.49, 0.36], [0.11, -0.93, -0.03]],
    dtype=torch.float64,
)
LAMBDA_MAX_WORKED = 0.639704178285
LAMBDA_GEN_WORKED = {1: 1.918584156108, 2: 0.982530638265, 5: 0.639704178285}


def half_mse(output, target):
    return 0.5 * ((output.squeeze(-1) - target) ** 2).mean()


def linear_model(w: torch.Tensor) -> torch.nn.Module:
    model = torch.nn.Linear(len(w), 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w.unsqueeze(0))
    return model


@pytest.fixture(scope="module")
def sidecar():
    proc = SidecarProcess().start()
    yield proc
    proc.stop()


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_worked_linear_regression_example_through_the_whole_stack(sidecar, batch_size):
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    y = X_WORKED @ w  # interpolating: every per-sample gradient vanishes
    report = edgewise.estimate(linear_model(w), half_mse, (X_WORKED, y), n_train=5, batch_size=batch_size,
                               endpoint=sidecar.endpoint, tol=1e-12)
    assert report.lambda_max == pytest.approx(LAMBDA_MAX_WORKED, rel=1e-9)
    assert report.lambda_gen == pytest.approx(LAMBDA_GEN_WORKED[batch_size], rel=1e-9)
    assert report.eta_star == pytest.approx(2 / LAMBDA_GEN_WORKED[batch_size], rel=1e-9)


def test_estimate_spawns_its_own_sidecar_when_no_endpoint_is_given():
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    report = edgewise.estimate(linear_model(w), half_mse, (X_WORKED, X_WORKED @ w), n_train=5, batch_size=2)
    assert report.lambda_gen == pytest.approx(LAMBDA_GEN_WORKED[2], rel=1e-9)


def regression_problem(n=12, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w_star = torch.randn(d, generator=g, dtype=torch.float64)
    return x, x @ w_star, w_star


def train(model, x, y, lr, steps, batch_size, monitor=None, stability=None, seed=0):
    """Plain SGD with batches without replacement; returns the final full loss."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    if monitor is not None:
        monitor.optimizer = opt
    if stability is not None:
        stability = edgewise.StabilityLR(opt, monitor, safety=0.9, verbose=False)
        monitor.round(step=0)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randperm(len(x), generator=g)[:batch_size]
        opt.zero_grad()
        half_mse(model(x[idx]), y[idx]).backward()
        opt.step()
        if monitor is not None:
            monitor.step()
    with torch.no_grad():
        return float(half_mse(model(x), y))


def test_stability_lr_keeps_a_run_started_above_eta_star_finite(sidecar):
    x, y, w_star = regression_problem()
    start = w_star + 0.1
    report = edgewise.estimate(linear_model(w_star), half_mse, (x, y), n_train=len(x), batch_size=2,
                               endpoint=sidecar.endpoint)
    lr = 1.2 * report.eta_gd  # above 2/λ_max > η*: even the mean diverges
    diverged = train(linear_model(start), x, y, lr, steps=300, batch_size=2)
    assert not np.isfinite(diverged) or diverged > 1e6

    model = linear_model(start)
    monitor = edgewise.Monitor(model, half_mse, probe=(x, y), n_train=len(x), batch_size=2,
                               endpoint=sidecar.endpoint, console=False)
    capped = train(model, x, y, lr, steps=300, batch_size=2, monitor=monitor, stability=True)
    monitor.close()
    assert np.isfinite(capped) and capped < 1e-6


def tiny_classifier(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    x = torch.randn(64, 5, dtype=torch.float64)
    y = torch.nn.functional.one_hot((x[:, 0] > 0).long(), 2).double()
    return model, x, y


def test_training_loop_finishes_when_the_sidecar_is_killed_and_resumes_after_restart():
    proc = SidecarProcess().start()
    model, x, y = tiny_classifier()
    monitor = edgewise.Monitor(model, torch.nn.functional.mse_loss, train_data=(x, y), probe_size=16,
                               n_train=64, batch_size=8, endpoint=proc.endpoint, timeout=2.0, console=False,
                               blocking=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    outcomes, reasons = [], []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EdgewiseWarning)
            for epoch in range(12):
                for idx in torch.randperm(64).split(8):
                    opt.zero_grad()
                    torch.nn.functional.mse_loss(model(x[idx]), y[idx]).backward()
                    opt.step()
                if epoch == 2:
                    proc.kill()
                if epoch == 5:
                    proc.start()
                report = monitor.end_epoch(epoch, lr=0.1)
                outcomes.append(report.missing)
                reasons.append(report.reason)
    finally:
        monitor.close()
        proc.stop()
    assert outcomes[:2] == [False, False], reasons
    assert all(outcomes[2:5]), outcomes  # dead sidecar: skipped rounds, no exception
    assert outcomes[-1] is False, reasons  # monitoring resumed after the restart (back-off ≤ 3 rounds here)


def test_a_run_with_no_sidecar_reachable_still_trains():
    model, x, y = tiny_classifier()
    endpoint = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    monitor = edgewise.Monitor(model, torch.nn.functional.mse_loss, train_data=(x, y), probe_size=16,
                               n_train=64, batch_size=8, endpoint=endpoint, timeout=0.5, console=False,
                               blocking=True)
    before = float(torch.nn.functional.mse_loss(model(x), y))
    with pytest.warns(EdgewiseWarning):
        loss = train(model, x, y, lr=0.2, steps=200, batch_size=8, monitor=monitor)
        reports = [monitor.end_epoch(e, lr=0.2) for e in range(3)]
    monitor.close()
    assert loss < before and all(r.missing for r in reports)
