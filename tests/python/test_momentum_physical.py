"""Tests for examples/momentum_checks.py: the dense momentum reference and the physical checks.

Reference values: docs/momentum.md §8 (12 digits; pencil and dense spectral radius agree there).
The physical checks run ``momentum_checks.run(fast=True)`` (~20 s on 2 shared cores): real
``torch.optim.SGD(momentum=0.9)`` (also Nesterov) and ``torch.optim.Adam`` with a frozen
preconditioner, started on the slowest mode, shrink at 0.97 η* and grow at 1.03 η*.
"""

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")   # tiny matrices: BLAS threads only contend on shared CPUs
import dataclasses
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import momentum_checks as mc  # noqa: E402

HS = np.einsum("na,nb->nab", mc.WORKED_ROWS, mc.WORKED_ROWS)


# --------------------------------------------------------------------------- dense reference

def test_worked_rows_are_momentum_md_matrices():
    np.testing.assert_allclose(HS, [[[2, 0], [0, 0]], [[0, 0], [0, 1]], [[1, 1], [1, 1]]], atol=1e-15)


@pytest.mark.parametrize("beta,B,hb,nag", mc.WORKED_TABLE)
def test_dense_reference_reproduces_worked_examples(beta, B, hb, nag):
    assert mc.eta_star(HS, B, mc.Optimizer("sgd", beta)) == pytest.approx(hb, abs=1e-9)
    assert mc.eta_star(HS, B, mc.Optimizer("nesterov", beta)) == pytest.approx(nag, abs=1e-9)


@pytest.mark.parametrize("B,ref", mc.ADAM_TABLE)
def test_dense_reference_reproduces_adam_worked_examples(B, ref):
    assert mc.eta_star(HS, B, mc.Optimizer("adam", 0.9, tuple(mc.ADAM_P))) == pytest.approx(ref, abs=1e-9)


def test_rho_at_099_1_101_eta_star():
    """momentum.md §8: ρ(L) at 0.99, 1, 1.01 η* for β = 0.9, B = 1 and B = 2."""
    opt = mc.Optimizer("sgd", 0.9)
    for B, eta, refs in [(1, 0.228988352238, (0.998908961457, 1.0, 1.001093355428)),
                         (2, 0.787061846527, (0.998696021677, 1.0, 1.001312282216))]:
        p = mc.noise_weight(3, B)
        for f, ref in zip((0.99, 1.0, 1.01), refs):
            assert mc.radius(HS, p, opt, f * eta) == pytest.approx(ref, abs=2e-12)


def test_moment_map_equals_enumerated_batches():
    """L is the second-moment map of the batch-enumerated recursion (no p, no D)."""
    rng = np.random.default_rng(0)
    Hs = np.einsum("na,nb->nab", *(2 * [rng.standard_normal((5, 3))]))
    Z = rng.standard_normal((6, 6))
    Z = Z @ Z.T
    for opt in (mc.Optimizer("sgd", 0.7), mc.Optimizer("nesterov", 0.7),
                mc.Optimizer("adam", 0.7, (0.5, 1.0, 2.0), decay=0.1)):
        C, F = opt.dynamics(0.3, 3)
        E = np.vstack([np.eye(3), np.zeros((3, 3))])
        for B in (1, 2, 5):
            acc = np.zeros((6, 6))
            batches = list(itertools.combinations(range(5), B))
            for b in batches:
                M = C + F @ Hs[list(b)].mean(0) @ E.T
                acc += M @ Z @ M.T
            L = mc.moment_map(Hs, mc.noise_weight(5, B), C, F)
            np.testing.assert_allclose((L @ Z.reshape(-1)).reshape(6, 6), acc / len(batches),
                                       rtol=1e-12, atol=1e-12)


def test_perron_vector_is_psd_and_matches_sigma_star():
    """The x-block of Z* at η* is momentum.md §8's Σ* (β = 0.9, B = 1)."""
    rho, Z, W = mc.perron(HS, 1, mc.Optimizer("sgd", 0.9), 0.228988352238)
    assert rho == pytest.approx(1.0, abs=1e-10)
    assert np.linalg.eigvalsh(Z).min() > -1e-10 and np.linalg.eigvalsh(W).min() > -1e-10 * np.abs(W).max()
    S = Z[:2, :2] / np.trace(Z[:2, :2])
    np.testing.assert_allclose(S, [[0.4956363799, -0.0600502230], [-0.0600502230, 0.5043636201]], atol=1e-9)


# --------------------------------------------------------------------------- physical checks

@pytest.mark.parametrize("case", mc.cases(fast=False), ids=lambda c: f"{c.name} B={c.batch_size}")
def test_torch_optimizers_follow_the_linear_recursion(case):
    """Real torch.optim steps (Adam with its frozen-P hook) are exactly z ← (C + F Ĥ_b Eᵀ) z."""
    rng = np.random.default_rng(1)
    z0 = rng.standard_normal((7, 4))
    short = dataclasses.replace(case, steps=15)
    eta = 0.5 * mc.eta_star(HS, case.batch_size, case.opt)
    zT, batches = mc.torch_runs(short, mc.WORKED_ROWS, np.array([0.3, -0.2]), eta, z0, seed=3)
    ref = mc.linear_replay(short, mc.WORKED_ROWS, eta, z0, batches)
    np.testing.assert_allclose(zT, ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    assert all(b.shape == (7, case.batch_size) and (np.sort(b, 1)[:, 1:] != np.sort(b, 1)[:, :-1]).all()
               for b in batches)                                # B distinct samples per run


@pytest.fixture(scope="module")
def fast_run():
    return mc.run(fast=True, runs=100_000, verbose=False)


def test_fast_mode_shrinks_below_and_grows_above_eta_star(fast_run):
    results, worst, failures = fast_run
    assert failures == [] and worst < 1e-9
    kinds = {r.name.split("(")[0] for r in results}
    assert kinds == {"SGD", "Adam"} and any("nesterov" in r.name for r in results)
    for r in results:
        assert r.mc_lo + 3 * r.se_lo < 1 < r.mc_hi - 3 * r.se_hi, r
        assert r.exact_lo < 1 < r.exact_hi


def test_checks_detect_a_wrong_threshold():
    """The checks can fail: with a 5 % too large η* claimed, "0.97 η*" already grows."""
    case = mc.Case("SGD(momentum=0.9, nesterov=True)", mc.Optimizer("nesterov", 0.9), 1, 12)
    es = mc.eta_star(HS, 1, case.opt)
    _, Z, W = mc.perron(HS, 1, case.opt, es)
    w, U = np.linalg.eigh(Z)
    z0 = np.random.default_rng(5).standard_normal((50_000, 4)) @ (U * np.sqrt(np.clip(w, 0, None))).T
    f, se = mc.torch_factor(case, mc.WORKED_ROWS, np.array([0.3, -0.2]), 0.97 * 1.05 * es, z0, W, 6)
    assert f - 3 * se > 1, (f, se)
    bad = mc.Result(case.name, 1, 1.05 * es, 12, 1.0, 1.0, f, f, se, se)
    assert any("no shrinkage" in m for m in mc.evaluate([bad]))


def test_example_runs_as_a_script():
    import subprocess
    proc = subprocess.run([sys.executable, str(Path(mc.__file__)), "--fast", "--runs", "20000"],
                          capture_output=True, text=True, timeout=300)
    assert "momentum.md §8" in proc.stdout and "factor at 1.03 η*" in proc.stdout, proc.stdout + proc.stderr
