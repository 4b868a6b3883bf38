"""Edgewise's estimates against references computed here from full per-sample Hessians.

- λ_max of a small MLP trained on real MNIST digits vs the dense probe-set Hessian (eigvalsh);
  away from a minimum its unconverged λ_gen says it bounds nothing.
- λ_gen of a Hessian-route checkpoint at its defaults (whole parameter space, d = 220) vs the
  dense reference of examples/_dense_reference.py.
- λ_gen with incoherent per-sample Hessians in d = 200 (maximiser of rank ≈ 40, so the sidecar
  must grow a 40-dimensional subspace matrix-free) vs a Python solve of the matrix-form
  quotient of theory.md §2 over the whole space.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.func import functional_call, hessian

import edgewise

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import _dense_reference as ref  # noqa: E402
from mnist_data import load_digits  # noqa: E402


def trained_mlp(x: torch.Tensor, y: torch.Tensor, hidden: int, activation: torch.nn.Module,
                seed: int) -> torch.nn.Module:
    """A one-hidden-layer MLP after 200 full-batch SGD steps on MSE (float64)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), activation,
                                torch.nn.Linear(hidden, y.shape[1])).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return model


def test_lambda_max_of_an_mnist_mlp_matches_dense_eigenvalues_and_lambda_gen_warns_it_bounds_nothing():
    x, y, _ = load_digits((0, 1, 2, 3), per_class=16, pool=4)  # 7×7 inputs, n = 64
    model = trained_mlp(x, y, 8, torch.nn.ReLU(), seed=0)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def probe_loss(flat):
        params, i = {}, 0
        for name, shape in zip(names, shapes):
            size = int(np.prod(shape))
            params[name] = flat[i : i + size].view(shape)
            i += size
        return torch.nn.functional.mse_loss(functional_call(model, params, (x,)), y)

    dense = hessian(probe_loss)(theta)
    reference = float(torch.linalg.eigvalsh(dense)[-1])
    report = edgewise.estimate(model, torch.nn.functional.mse_loss, (x, y), n_train=64, batch_size=8, tol=1e-9,
                               bootstrap=0, curvature="hessian")
    assert theta.numel() == 436 and report.basis_size is not None
    assert report.lambda_max == pytest.approx(reference, rel=1e-6)
    # 64 columns at m d³ = 5.3e9 (above the whole space's budget), and this point is no minimum:
    # a Ritz value of an indefinite operator bounds nothing (it came out 17 % above at B = 1)
    assert not report.converged and report.min_curvature < 0
    assert any("then no lower bound" in w for w in report.warnings)
    assert not any("lower bounds" in w for w in report.warnings), report.warnings


def test_a_hessian_checkpoint_at_its_defaults_is_exact_in_the_whole_parameter_space():
    """d = 220 > 64 columns: ``estimate()`` on the Hessian route solves in the identity basis when
    it can afford it: with 64 columns it stopped unconverged here (6e-5 low), and at half the exact
    value on a freshly initialised MLP of 204 parameters."""
    x, y, _ = load_digits((0, 1, 2, 3), per_class=8, pool=4)  # 7×7 inputs, m = 32
    model = trained_mlp(x, y, 4, torch.nn.Tanh(), seed=1)
    Hs = ref.per_sample_curvature(model, torch.nn.functional.mse_loss, x, y, "hessian")
    reference, _ = ref.lambda_gen(Hs, 4, n_train=320)
    report = edgewise.estimate(model, torch.nn.functional.mse_loss, (x, y), n_train=320, batch_size=4,
                               bootstrap=0, curvature="hessian")
    assert Hs.shape == (32, 220, 220) and report.basis_size == 220 and report.converged
    assert report.lambda_gen == pytest.approx(reference, rel=1e-8)
    assert report.lambda_max == pytest.approx(float(np.linalg.eigvalsh(Hs.mean(0))[-1]), rel=1e-8)


class RowModel(torch.nn.Module):
    """f_θ(a_i) = a_iᵀθ with loss ½ f²: per-sample Hessian exactly a_i a_iᵀ."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(d, dtype=torch.float64))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return a @ self.theta


def half_square(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((output - target) ** 2).mean()


def lambda_gen_full_space(rows: np.ndarray, p: float) -> float:
    """Top eigenvalue of T (theory.md §4) with V = I, by Lanczos on d×d symmetric matrices.

    With H_i = a_i a_iᵀ: tr(H_i S H_i S) = (a_iᵀ S a_i)², so the per-sample term needs no d³ work.
    """
    m, d = rows.shape
    h = rows.T @ rows / m
    kappa, q = np.linalg.eigh(h)
    keep = kappa > 1e-10 * kappa[-1]
    kappa, q = kappa[keep], q[:, keep]
    rot = rows @ q  # samples in H's eigenbasis
    w = 1 / np.sqrt((kappa[:, None] + kappa[None, :]) / 2)

    def apply(x: np.ndarray) -> np.ndarray:
        y = w * x
        acc = (1 - p) * kappa[:, None] * y * kappa[None, :]
        coef = np.einsum("ia,ab,ib->i", rot, y, rot)
        acc += p * np.einsum("i,ia,ib->ab", coef, rot, rot) / m
        return w * acc

    from scipy.sparse.linalg import LinearOperator, eigsh  # noqa: PLC0415

    r = len(kappa)
    op = LinearOperator((r * r, r * r), matvec=lambda v: apply(v.reshape(r, r)).reshape(-1), dtype=np.float64)
    return float(eigsh(op, k=1, which="LA", tol=1e-13)[0][0])


def test_lambda_gen_with_incoherent_samples_in_d_200_matches_a_full_space_reference():
    pytest.importorskip("scipy")
    rng = np.random.default_rng(3)
    m, d, batch = 40, 200, 2
    rows = rng.standard_normal((m, d)) * rng.uniform(0.5, 1.5, size=(m, 1))  # incoherent directions
    p = (m - batch) / (batch * (m - 1))
    reference = lambda_gen_full_space(rows, p)
    x = torch.from_numpy(rows)
    report = edgewise.estimate(RowModel(d), half_square, (x, torch.zeros(m, dtype=torch.float64)), n_train=m,
                               batch_size=batch, tol=1e-10, bootstrap=0, max_basis=64, budget_hvps=2000)
    assert report.basis_size is not None and report.basis_size < d  # matrix-free, not the identity basis
    assert report.lambda_gen == pytest.approx(reference, rel=1e-6)
