"""The worked examples of shared/docs/momentum.md §8 through the whole stack.

A linear model ``f_θ(a_i) = a_iᵀθ`` with loss ``½(f − y)²`` has per-sample curvature exactly
``H_i = a_i a_iᵀ`` (Gauss–Newton factor route and Hessian route alike); with the rows
``(√2, 0), (0, 1), (1, 1)`` these are §8's ``H_1 = diag(2, 0)``, ``H_2 = diag(0, 1)``,
``H_3 = [[1, 1], [1, 1]]`` (n = 3, the probe is the whole training set). A real torch optimizer
of each kind goes to ``edgewise.estimate(optimizer=...)`` / ``Monitor(optimizer=...)``, which
read it, send ``options.optimizer``, apply Adam's frozen ``P`` in the products, and the sidecar
solves. Reference values are §8's 12-digit table (pencil and dense spectral radius agree
there), not this code's. Physical checks go through the stack too: real ``SGD(momentum=0.9)``
and ``Adam`` (P frozen) runs started on the slowest mode shrink at 0.97 η* and grow at 1.03 η*
where η* is the stack's.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import edgewise
from _sidecar import SidecarProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import momentum_checks as mc  # noqa: E402

F64 = torch.float64
ROWS = torch.tensor([[math.sqrt(2.0), 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=F64)
N = 3
ETA_SGD = {1: 1.073657959761}  # §8, β = 0 (plain SGD), B = 1
LAMBDA_MAX = 1.206011329583
ADAM_FULL_BATCH = 26.202191846633  # 38/λ_max(P⁻¹H), P = diag(2, 0.5)


class RowModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor([0.3, -0.2], dtype=F64))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return (a @ self.theta).unsqueeze(-1)


def half_square(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((output - target) ** 2).mean()


@pytest.fixture(scope="module")
def sidecar():
    proc = SidecarProcess(None, "--no-dashboard").start()
    yield proc.endpoint
    proc.stop()


def probe():
    return ROWS, torch.zeros(N, 1, dtype=F64)


def adam_with_p(model: RowModel, p=(2.0, 0.5), beta1=0.9, beta2=0.999, step=3, **kw):
    """A real Adam whose state gives ``sqrt(v̂) + eps = P`` (eps = 0) at step ``step``."""
    opt = torch.optim.Adam(model.parameters(), lr=1.0, betas=(beta1, beta2), eps=0.0, **kw)
    v = torch.tensor(p, dtype=F64) ** 2 * (1 - beta2 ** step)
    opt.state[model.theta] = {"step": torch.tensor(float(step)), "exp_avg": torch.zeros(2, dtype=F64),
                              "exp_avg_sq": v.clone(), **({"max_exp_avg_sq": v.clone()} if kw.get("amsgrad") else {})}
    return opt


def estimate(sidecar, opt_fn, B, curvature="ggn", **kw):
    model = RowModel()
    return edgewise.estimate(model, half_square, probe(), n_train=N, batch_size=B, optimizer=opt_fn(model),
                             endpoint=sidecar, curvature=curvature, bootstrap=0, tol=1e-10, **kw)


@pytest.mark.parametrize("beta,B,hb,nag", mc.WORKED_TABLE)
def test_heavy_ball_and_nesterov_worked_examples(sidecar, beta, B, hb, nag):
    r = estimate(sidecar, lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=beta), B)
    assert r.eta_star == pytest.approx(hb, abs=1e-9)
    assert r.lambda_gen == pytest.approx(2 / hb, rel=1e-9) and r.margin == pytest.approx(0.1 / hb, rel=1e-9)
    assert r.optimizer["kind"] == "heavy_ball" and r.optimizer["momentum"] == beta and r.method == "pencil"
    assert r.eta_star_full_batch == pytest.approx(2 * (1 + beta) / LAMBDA_MAX, rel=1e-9)
    assert not any("indicative" in w or "ignored" in w for w in r.warnings)
    r = estimate(sidecar, lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=beta, nesterov=True), B,
                 curvature="hessian")
    assert r.eta_star == pytest.approx(nag, abs=1e-9)
    assert r.optimizer["kind"] == "nesterov" and r.method == "brent"
    assert r.eta_star_full_batch == pytest.approx(2 * (1 + beta) / ((1 + 2 * beta) * LAMBDA_MAX), rel=1e-9)
    assert r.eta_star_upper is not None and r.eta_star_upper >= r.eta_star * (1 - 1e-9)


def test_heavy_ball_comparisons_at_beta_09_b_1(sidecar):
    """§4: the popular rescalings of SGD's threshold beside the exact one; dampening τ scales η* by 1/(1 − τ)."""
    r = estimate(sidecar, lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9), 1,
                 batch_grid=[1, 2, 3])
    assert r.eta_star_sgd == pytest.approx(ETA_SGD[1], abs=1e-9)
    assert r.naive["rescaled"] == pytest.approx(1.9 * ETA_SGD[1], rel=1e-9)
    assert r.naive["effective_lr"] == pytest.approx(0.1 * ETA_SGD[1], rel=1e-9)
    by_b = {e["B"]: e["eta_star"] for e in r.eta_star_by_batch}
    assert by_b[2] == pytest.approx(0.787061846527, abs=1e-9) and by_b[3] == pytest.approx(3.150882505650, abs=1e-9)
    curve = {round(e["momentum"], 6): e["eta_star"] for e in r.eta_star_by_momentum}
    assert curve[0.9] == pytest.approx(0.228988352238, rel=1e-6) and curve[0.5] == pytest.approx(0.859809722958, rel=1e-6)
    damped = estimate(sidecar, lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, dampening=0.5), 1)
    assert damped.eta_star == pytest.approx(0.228988352238 / 0.5, abs=1e-9)
    nag = estimate(sidecar, lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True), 1)
    assert nag.eta_star_upper == pytest.approx(1.9 / 2.8 * ETA_SGD[1], rel=1e-9)  # §4's certified bound


@pytest.mark.parametrize("B,ref", mc.ADAM_TABLE)
@pytest.mark.parametrize("curvature", ["ggn", "hessian"])
def test_adam_worked_examples_with_a_real_adam_state(sidecar, B, ref, curvature):
    r = estimate(sidecar, adam_with_p, B, curvature=curvature)
    assert r.eta_star == pytest.approx(ref, abs=1e-9)
    assert r.optimizer["kind"] == "adam" and r.optimizer["beta1"] == 0.9 and r.lr == 1.0
    assert r.eta_star_full_batch == pytest.approx(ADAM_FULL_BATCH, abs=1e-9)


def test_adam_amsgrad_reads_max_exp_avg_sq_and_a_monitor_round_agrees(sidecar):
    r = estimate(sidecar, lambda m: adam_with_p(m, amsgrad=True), 2)
    assert r.eta_star == pytest.approx(7.384679731323, abs=1e-9)
    model = RowModel()
    opt = adam_with_p(model)
    with edgewise.Monitor(model, half_square, probe(), n_train=N, batch_size=1, optimizer=opt, endpoint=sidecar,
                          console=False, blocking=True, tol=1e-8, bootstrap=0) as monitor:
        report = monitor.round()
    assert not report.missing, report.reason
    assert report.eta_star == pytest.approx(2.264349798320, rel=1e-6)
    assert "full batch" in report.summary()


@pytest.mark.parametrize("kind", ["heavy_ball", "adam"])
def test_real_optimizers_shrink_below_and_grow_above_the_stacks_eta_star(sidecar, kind):
    """Real torch.optim runs (Adam with P held frozen by momentum_checks' step hook), started on the
    slowest mode, at 0.97 and 1.03 times the η* that edgewise.estimate returned."""
    if kind == "heavy_ball":
        case = mc.Case("SGD(momentum=0.9)", mc.Optimizer("sgd", 0.9), 2, 60)
        es = estimate(sidecar, lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9), 2).eta_star
    else:
        case = mc.Case("Adam(betas=(0.9, 0.999)), frozen P", mc.Optimizer("adam", 0.9, tuple(mc.ADAM_P)), 2, 60)
        es = estimate(sidecar, adam_with_p, 2).eta_star
    hs = np.einsum("na,nb->nab", mc.WORKED_ROWS, mc.WORKED_ROWS)
    _, Z, W = mc.perron(hs, 2, case.opt, es)
    w, U = np.linalg.eigh(Z)
    z0 = np.random.default_rng(0).standard_normal((50_000, 4)) @ (U * np.sqrt(np.clip(w, 0, None))).T
    lo, se_lo = mc.torch_factor(case, mc.WORKED_ROWS, np.array([0.3, -0.2]), 0.97 * es, z0, W, seed=1)
    hi, se_hi = mc.torch_factor(case, mc.WORKED_ROWS, np.array([0.3, -0.2]), 1.03 * es, z0, W, seed=1)
    assert lo + 3 * se_lo < 1 < hi - 3 * se_hi, (lo, se_lo, hi, se_hi)
