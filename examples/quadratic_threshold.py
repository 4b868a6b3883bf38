"""SGD settles just below Edgewise's η* and blows up just above it (linear regression).

Run:   .venv/bin/python examples/quadratic_threshold.py            (about half a minute)
       .venv/bin/python examples/quadratic_threshold.py --fast     (the test suite's mode)

What it does:
  1. Builds an interpolating least-squares problem, l_i(w) = ½ (x_iᵀ w − y_i)², at its
     solution w*, and asks Edgewise (a real sidecar, spawned for the call) for η* at batch B.
  2. Runs real SGD steps on the same loss at fractions of η*: many independent runs in one
     vectorised tensor, batches drawn without replacement, started as theory.md §8 explains
     (w_0 − w* ~ N(0, Σ*), Σ* the slowest-decaying second-moment mode, computed here densely
     and independently of Edgewise).
  3. Prints, per learning rate, the measured mean-square growth E‖w_T − w*‖² / E‖w_0 − w*‖²
     next to the exact value ρ(Q)^T from the second-moment recursion.

What to expect: growth below 1 for lr < η* (SGD settles), above 1 for lr > η* (the second
moment blows up), crossing at the η* that Edgewise reported.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch

import edgewise


def make_problem(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An interpolating regression problem: y = X w* exactly, n > d so H has no null space."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w_star = torch.randn(d, generator=g, dtype=torch.float64)
    return x, x @ w_star, w_star


def half_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """½ mean squared error: the per-sample loss ½ (xᵀw − y)² has Hessian x xᵀ."""
    return 0.5 * ((output.squeeze(-1) - target) ** 2).mean()


def second_moment_map(x: torch.Tensor, batch_size: int, lr: float) -> np.ndarray:
    """Dense Q = I − η (H⊕H) + η² D of theory.md §1 (independent of Edgewise)."""
    xs = x.numpy()
    n, d = xs.shape
    hs = [np.outer(v, v) for v in xs]
    h = sum(hs) / n
    p = (n - batch_size) / (batch_size * (n - 1))
    eye = np.eye(d)
    dmat = (1 - p) * np.kron(h, h) + p * sum(np.kron(a, a) for a in hs) / n
    return np.eye(d * d) - lr * (np.kron(h, eye) + np.kron(eye, h)) + lr**2 * dmat


def slowest_mode(q: np.ndarray, d: int) -> np.ndarray:
    """The PSD second-moment matrix that decays slowest under Q (Perron vector, reshaped)."""
    sym = 0.5 * (q + q.T)  # Q is symmetric on vec(symmetric); symmetrise rounding noise
    vals, vecs = np.linalg.eigh(sym)
    s = vecs[:, np.argmax(vals)].reshape(d, d)
    s = 0.5 * (s + s.T)
    if np.trace(s) < 0:
        s = -s
    w, u = np.linalg.eigh(s)
    return (u * np.clip(w, 0, None)) @ u.T


def sgd_growth(x, y, w_star, batch_size, lr, sigma, runs, steps, seed) -> float:
    """Real SGD steps on ½(xᵀw − y)², `runs` at once; returns E‖w_T − w*‖² / E‖w_0 − w*‖²."""
    g = torch.Generator().manual_seed(seed)
    n, d = x.shape
    chol = torch.linalg.cholesky(torch.as_tensor(sigma) + 1e-15 * torch.eye(d, dtype=torch.float64))
    w = w_star + torch.randn(runs, d, generator=g, dtype=torch.float64) @ chol.T
    start = ((w - w_star) ** 2).sum(1).mean()
    for _ in range(steps):
        batch = torch.rand(runs, n, generator=g).argsort(dim=1)[:, :batch_size]  # without replacement
        mask = torch.zeros(runs, n, dtype=torch.float64).scatter_(1, batch, 1.0)
        residual = w @ x.T - y  # (runs, n)
        grad = (residual * mask) @ x / batch_size
        w = w - lr * grad
    return float(((w - w_star) ** 2).sum(1).mean() / start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer runs (test mode)")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--d", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    runs = 40_000 if args.fast else 400_000
    steps = 30

    x, y, w_star = make_problem(args.n, args.d, args.seed)
    model = torch.nn.Linear(args.d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w_star.unsqueeze(0))
    report = edgewise.estimate(model, half_mse, (x, y), n_train=args.n, batch_size=args.batch_size)
    eta_star = report.eta_star
    print(f"Edgewise: λ_max = {report.lambda_max:.6g}, λ_gen = {report.lambda_gen:.6g} "
          f"at B = {args.batch_size} of n = {args.n}")
    print(f"          η* = 2/λ_gen = {eta_star:.6g}   (GD's 2/λ_max = {report.eta_gd:.6g})")
    print(f"\nReal SGD, {runs:,} runs of {steps} steps each, started on the slowest second-moment mode:")
    print(f"{'lr / η*':>8}  {'measured growth':>16}  {'exact ρ(Q)^T':>13}  verdict")
    rows = []
    for fraction in (0.9, 0.95, 1.05, 1.1):
        lr = fraction * eta_star
        q = second_moment_map(x, args.batch_size, lr)
        rho = max(abs(np.linalg.eigvals(q)))
        sigma = slowest_mode(q, args.d)
        growth = sgd_growth(x, y, w_star, args.batch_size, lr, sigma, runs, steps, args.seed + 1)
        verdict = "settles" if growth < 1 else "blows up"
        rows.append((fraction, growth, rho**steps))
        print(f"{fraction:8.2f}  {growth:16.4g}  {rho**steps:13.4g}  {verdict}")
    ok = all((g < 1) == (f < 1) for f, g, _ in rows)
    print("\n" + ("As predicted: SGD is mean-square stable exactly below η*." if ok else
                  "MISMATCH: measured growth disagrees with η* (see table)."))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
