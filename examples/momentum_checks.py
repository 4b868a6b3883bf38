"""Physical checks of the exact mean-square threshold with momentum (docs/momentum.md).

How to run:
    .venv/bin/python examples/momentum_checks.py --fast    # ~20 s on 2 CPU cores (tests run this)
    .venv/bin/python examples/momentum_checks.py           # more runs and cases, ~2 min
Options: --runs N (parallel runs per case), --seed S.

What to expect: first the worked examples of momentum.md §8 recomputed by the dense reference
below (heavy ball, Nesterov, Adam; each next to the value printed there), then one row per
physical case and a final line "ALL CHECKS PASSED" or the failing checks. In every case the
second moment of REAL ``torch.optim`` iterates shrinks at ``0.97 η*`` and grows at ``1.03 η*``,
and the measured factor agrees with the exact expectation ``⟨W*, L(η)^T Z*⟩ / ⟨W*, Z*⟩``.

What is compared:
- ``η*``: from the dense reference of this file ONLY (numpy; independent of the sidecar):
  the ``(2d)² × (2d)²`` second-moment map ``L = M̄ ⊗ M̄ + (F ⊗ F)(D − H ⊗ H)(E ⊗ E)ᵀ`` of
  momentum.md §2 for the optimizer's own state (``(x, buf)`` for SGD, ``(x, m)`` for Adam with
  ``P⁻¹``, no change of variables) and Brent on ``log ρ(L(η)) = 0``.
- The physical runs: ``torch.optim.SGD(momentum=0.9)`` (also ``nesterov=True``) and
  ``torch.optim.Adam`` on the interpolating least-squares problem whose per-sample Hessians are
  momentum.md's worked-example matrices (``H_i = x_i x_iᵀ`` with rows ``(√2, 0)``, ``(0, 1)``,
  ``(1, 1)``; targets ``y_i = x_iᵀ θ*``). Many runs are one parameter tensor of shape
  ``(runs, d)`` stepped by ONE optimizer (the loss is the sum of the runs' minibatch losses, so
  each row sees only its own gradient; SGD's buffer and Adam's moments are elementwise). Each run
  draws its own batch of ``B`` distinct samples each step. Start: ``z₀ = (x₀, buf₀) ~ N(0, Z*)``
  with ``Z*`` the Perron vector of ``L(η*)`` (the slowest mode, momentum.md §7); statistic
  ``Σ_runs z_Tᵀ W* z_T / Σ_runs z₀ᵀ W* z₀`` with ``W*`` the left Perron vector, with common
  random numbers (same ``z₀`` and batches) at both learning rates.
- Adam with a frozen preconditioner: ``exp_avg_sq`` is held fixed by a step pre-hook that sets it
  so that after Adam's own update it equals ``v̂ · (1 − β₂^t)``, i.e. Adam's denominator is
  exactly ``P = sqrt(v̂) + ε`` every step (the ``v̂`` correction is part of the frozen ``P``,
  momentum.md §5). The state starts at step 10 000 (a run well into training): the ``m̂``
  correction ``1/(1 − β₁^t)`` is then exactly 1 in floating point (§5: it is a transient only).
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")   # tiny matrices: BLAS threads only contend on shared CPUs
import argparse
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

# ---------------------------------------------------------------------------------------
# Dense reference (momentum.md §1, §2, §5)
# ---------------------------------------------------------------------------------------

WORKED_ROWS = np.array([[math.sqrt(2.0), 0.0], [0.0, 1.0], [1.0, 1.0]])   # H_i = x_i x_iᵀ
ADAM_P = np.array([2.0, 0.5])                                               # momentum.md §8


def noise_weight(n: int, batch_size: int) -> float:
    """``p = (n − B) / (B (n − 1))``."""
    if not 1 <= batch_size <= n:
        raise ValueError(f"expected 1 <= batch_size <= n, got batch_size={batch_size}, n={n}")
    return 0.0 if n == 1 else (n - batch_size) / (batch_size * (n - 1))


@dataclass(frozen=True)
class Optimizer:
    """A linearised optimizer: ``kind`` in ``sgd`` (heavy ball), ``nesterov``, ``adam``."""

    kind: str
    beta: float
    precond: tuple[float, ...] | None = None     # Adam's frozen P (diagonal)
    decay: float = 0.0                            # AdamW's decoupled decay

    def dynamics(self, eta: float, d: int) -> tuple[np.ndarray, np.ndarray]:
        """``(C, F)`` with ``M_t = C + F Ĥ_t Eᵀ`` in the optimizer's own state (momentum.md §1, §5)."""
        I, b = np.eye(d), self.beta
        if self.kind == "sgd":        # buf ← β buf + g; θ ← θ − η buf
            C = np.block([[I, -eta * b * I], [0 * I, b * I]])
            F = np.vstack([-eta * I, I])
        elif self.kind == "nesterov":  # buf ← β buf + g; θ ← θ − η (g + β buf)
            C = np.block([[I, -eta * b * b * I], [0 * I, b * I]])
            F = np.vstack([-eta * (1 + b) * I, I])
        elif self.kind == "adam":      # θ ← (1 − ηω)θ; m ← β₁m + (1−β₁)g; θ ← θ − η P⁻¹ m
            Pinv = np.diag(1.0 / np.asarray(self.precond))
            C = np.block([[(1 - eta * self.decay) * I, -eta * b * Pinv], [0 * I, b * I]])
            F = np.vstack([-eta * (1 - b) * Pinv, (1 - b) * I])
        else:
            raise ValueError(f"expected kind 'sgd', 'nesterov' or 'adam', got {self.kind!r}")
        return C, F


def moment_map(Hs: np.ndarray, p: float, C: np.ndarray, F: np.ndarray) -> np.ndarray:
    """``L = M̄ ⊗ M̄ + (F ⊗ F)(D − H ⊗ H)(E ⊗ E)ᵀ`` acting on row-major ``vec(Z)``, ``Z`` ``2d × 2d``."""
    n, d = Hs.shape[0], Hs.shape[1]
    H = Hs.mean(0)
    E = np.vstack([np.eye(d), np.zeros((d, d))])
    Mbar = C + F @ H @ E.T
    noise = p * (np.einsum("iab,icd->acbd", Hs, Hs).reshape(d * d, d * d) / n - np.kron(H, H))
    return np.kron(Mbar, Mbar) + np.kron(F, F) @ noise @ np.kron(E, E).T


def radius(Hs, p, opt: Optimizer, eta: float) -> float:
    """Spectral radius of ``L(η)``."""
    return float(np.max(np.abs(np.linalg.eigvals(moment_map(Hs, p, *opt.dynamics(eta, Hs.shape[1]))))))


def eta_star(Hs: np.ndarray, batch_size: int, opt: Optimizer) -> float:
    """``η*``: Brent on ``log ρ(L(η))`` after doubling from a stable ``η`` to an unstable one."""
    p = noise_weight(Hs.shape[0], batch_size)
    f = lambda eta: math.log(radius(Hs, p, opt, eta))   # noqa: E731
    lo = 1e-3 / np.trace(Hs.mean(0))
    if f(lo) >= 0:
        raise ValueError("expected a stable start")
    hi = 2 * lo
    while f(hi) <= 0:
        lo, hi = hi, 2 * hi
    return brentq(f, lo, hi, xtol=1e-15, rtol=1e-14, maxiter=200)


def perron(Hs, batch_size, opt: Optimizer, eta: float) -> tuple[float, np.ndarray, np.ndarray]:
    """``(ρ, Z*, W*)``: Perron root, right (PSD, unit trace) and left eigenvectors of ``L(η)``."""
    d = Hs.shape[1]
    L = moment_map(Hs, noise_weight(Hs.shape[0], batch_size), *opt.dynamics(eta, d))

    def top(M):
        w, V = np.linalg.eig(M)
        j = int(np.argmax(np.abs(w)))
        Z = V[:, j].real.reshape(2 * d, 2 * d)
        Z = 0.5 * (Z + Z.T)
        return float(w[j].real), Z / np.trace(Z)

    rho, Z = top(L)
    _, W = top(L.T)
    return rho, Z, W


# ---------------------------------------------------------------------------------------
# Physical runs with torch.optim
# ---------------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    opt: Optimizer
    batch_size: int
    steps: int


@dataclass
class Result:
    name: str
    B: int
    eta_star: float
    steps: int
    exact_lo: float        # expected factor at 0.97 η*
    exact_hi: float        # expected factor at 1.03 η*
    mc_lo: float
    mc_hi: float
    se_lo: float
    se_hi: float


def torch_runs(case: Case, X: np.ndarray, theta_star: np.ndarray, eta: float, z0: np.ndarray,
               seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Step ``runs`` copies of the real torch optimizer ``case.steps`` times from ``z₀``.

    Returns the final states ``z_T = (θ − θ*, buf)`` (Adam: ``(θ − θ*, exp_avg)``), shape
    ``(runs, 2d)``, and the batch indices drawn at each step (``(runs, B)`` each).
    """
    import torch

    runs, d = z0.shape[0], X.shape[1]
    n, B = X.shape[0], case.batch_size
    Xt = torch.tensor(X)
    y = Xt @ torch.tensor(theta_star)
    ts = torch.tensor(theta_star)
    theta = torch.nn.Parameter(ts + torch.tensor(z0[:, :d]))
    opt = case.opt
    if opt.kind in ("sgd", "nesterov"):
        optim = torch.optim.SGD([theta], lr=eta, momentum=opt.beta, nesterov=opt.kind == "nesterov")
        optim.state[theta]["momentum_buffer"] = torch.tensor(z0[:, d:]).clone()
        state_key = "momentum_buffer"
    else:
        beta2, eps = 0.999, 1e-8
        optim = torch.optim.Adam([theta], lr=eta, betas=(opt.beta, beta2), eps=eps,
                                 weight_decay=0.0, foreach=False)
        v_hat = torch.tensor((np.asarray(opt.precond) - eps) ** 2).expand(runs, d)
        optim.state[theta] = {"step": torch.tensor(10_000.0),
                              "exp_avg": torch.tensor(z0[:, d:]).clone(),
                              "exp_avg_sq": v_hat.clone()}

        def freeze_p(optimizer, args, kwargs):
            st = optimizer.state[theta]
            t = float(st["step"]) + 1                       # Adam increments before use
            target = v_hat * (1 - beta2**t)                 # so that sqrt(v / bc2) = sqrt(v̂)
            g = theta.grad
            st["exp_avg_sq"].copy_((target - (1 - beta2) * g * g) / beta2)

        optim.register_step_pre_hook(freeze_p)
        state_key = "exp_avg"
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(case.steps):
        idx = torch.rand(runs, n, generator=gen).argsort(dim=1)[:, :B]        # without replacement
        batches.append(idx.numpy())
        Xb = Xt[idx]                                                         # (runs, B, d)
        resid = torch.einsum("rbd,rd->rb", Xb, theta) - y[idx]
        loss = 0.5 * (resid**2).mean(dim=1).sum()
        optim.zero_grad(set_to_none=False)
        loss.backward()
        optim.step()
    with torch.no_grad():
        zT = torch.cat([theta - ts, optim.state[theta][state_key]], dim=1).numpy()
    return zT, batches


def torch_factor(case: Case, X: np.ndarray, theta_star: np.ndarray, eta: float, z0: np.ndarray,
                 W: np.ndarray, seed: int, groups: int = 20) -> tuple[float, float]:
    """``Σ z_TᵀW z_T / Σ z₀ᵀW z₀`` over real optimizer runs, and its standard error (groups of runs)."""
    runs = z0.shape[0]
    zT, _ = torch_runs(case, X, theta_star, eta, z0, seed)
    qT = np.einsum("ra,ab,rb->r", zT, W, zT)
    q0 = np.einsum("ra,ab,rb->r", z0, W, z0)
    ratio = qT.sum() / q0.sum()
    parts = np.array_split(np.arange(runs), groups)
    g_ratios = np.array([qT[i].sum() / q0[i].sum() for i in parts])
    return float(ratio), float(g_ratios.std(ddof=1) / math.sqrt(groups))


def linear_replay(case: Case, X: np.ndarray, eta: float, z0: np.ndarray,
                  batches: list[np.ndarray]) -> np.ndarray:
    """The linear recursion ``z ← (C + F Ĥ_b Eᵀ) z`` of momentum.md §1/§5 with the same batches."""
    d = X.shape[1]
    C, F = case.opt.dynamics(eta, d)
    Hs = np.einsum("na,nb->nab", X, X)
    z = z0.copy()
    for idx in batches:
        Hb = Hs[idx].mean(axis=1)                                   # (runs, d, d)
        z = z @ C.T + np.einsum("ak,rkl,rl->ra", F, Hb, z[:, :d])
    return z


def expected_factor(Hs, batch_size, opt, eta, Z, W, steps) -> float:
    """``⟨W, L(η)^T Z⟩ / ⟨W, Z⟩``: what the runs estimate, exactly."""
    d = Hs.shape[1]
    L = moment_map(Hs, noise_weight(Hs.shape[0], batch_size), *opt.dynamics(eta, d))
    v = Z.reshape(-1)
    for _ in range(steps):
        v = L @ v
    return float(W.reshape(-1) @ v / (W.reshape(-1) @ Z.reshape(-1)))


def check_case(case: Case, runs: int, seed: int) -> Result:
    X = WORKED_ROWS
    Hs = np.einsum("na,nb->nab", X, X)
    d = X.shape[1]
    es = eta_star(Hs, case.batch_size, case.opt)
    _, Z, W = perron(Hs, case.batch_size, case.opt, es)
    w, U = np.linalg.eigh(Z)
    rng = np.random.default_rng(seed)
    z0 = rng.standard_normal((runs, 2 * d)) @ (U * np.sqrt(np.clip(w, 0, None))).T
    theta_star = np.array([0.3, -0.2])
    out = {}
    for tag, f in (("lo", 0.97), ("hi", 1.03)):
        mc, se = torch_factor(case, X, theta_star, f * es, z0, W, seed + 1)
        exact = expected_factor(Hs, case.batch_size, case.opt, f * es, Z, W, case.steps)
        out[tag] = (mc, se, exact)
    return Result(case.name, case.batch_size, es, case.steps, out["lo"][2], out["hi"][2],
                  out["lo"][0], out["hi"][0], out["lo"][1], out["hi"][1])


def cases(fast: bool) -> list[Case]:
    hb, nag = Optimizer("sgd", 0.9), Optimizer("nesterov", 0.9)
    adam = Optimizer("adam", 0.9, precond=tuple(ADAM_P))
    out = [Case("SGD(momentum=0.9)", hb, 1, 60), Case("SGD(momentum=0.9)", hb, 2, 60),
           Case("SGD(momentum=0.9, nesterov=True)", nag, 1, 12),
           Case("Adam(betas=(0.9, 0.999)), frozen P", adam, 1, 60),
           Case("Adam(betas=(0.9, 0.999)), frozen P", adam, 2, 60)]
    if not fast:
        out += [Case("SGD(momentum=0.5)", Optimizer("sgd", 0.5), 1, 30),
                Case("SGD(momentum=0.9, nesterov=True)", nag, 2, 12),
                Case("Adam(betas=(0.5, 0.999)), frozen P", Optimizer("adam", 0.5, tuple(ADAM_P)), 1, 30)]
    return out


def evaluate(results: list[Result], n_se: float = 5.0) -> list[str]:
    """Failing checks: shrink at 0.97 η*, grow at 1.03 η*, agree with the exact factor."""
    bad = []
    for r in results:
        tag = f"{r.name} B={r.B}"
        if not r.mc_lo < 1:
            bad.append(f"FAIL {tag}: no shrinkage at 0.97 η* (factor {r.mc_lo:.4f})")
        if not r.mc_hi > 1:
            bad.append(f"FAIL {tag}: no growth at 1.03 η* (factor {r.mc_hi:.4f})")
        for mc, se, ex, at in ((r.mc_lo, r.se_lo, r.exact_lo, "0.97"), (r.mc_hi, r.se_hi, r.exact_hi, "1.03")):
            if abs(mc - ex) > n_se * se + 1e-9:
                bad.append(f"FAIL {tag}: factor at {at} η* {mc:.4f} ± {se:.4f}, exact {ex:.4f}")
    return bad


WORKED_TABLE = [  # momentum.md §8: β, B, η*_HB, η*_NAG
    (0.5, 1, 0.859809722958, 0.713383575615), (0.5, 2, 1.813339896452, 1.101726494469),
    (0.9, 1, 0.228988352238, 0.469589217777), (0.9, 2, 0.787061846527, 0.952746661153),
    (0.9, 3, 3.150882505650, 1.125315180589), (0.99, 1, 0.024332469085, 0.368916902768),
    (0.99, 2, 0.095799770776, 0.922827513365),
]
ADAM_TABLE = [(1, 2.264349798320), (2, 7.384679731323), (3, 26.202191846633)]


def worked_examples(verbose: bool = True) -> float:
    """momentum.md §8 by the dense reference; returns the largest absolute deviation."""
    Hs = np.einsum("na,nb->nab", WORKED_ROWS, WORKED_ROWS)
    worst = 0.0
    for beta, B, hb, nag in WORKED_TABLE:
        got_hb = eta_star(Hs, B, Optimizer("sgd", beta))
        got_nag = eta_star(Hs, B, Optimizer("nesterov", beta))
        worst = max(worst, abs(got_hb - hb), abs(got_nag - nag))
        if verbose:
            print(f"  β={beta:<4} B={B}: η*_HB = {got_hb:.12f} (§8 {hb:.12f})   "
                  f"η*_NAG = {got_nag:.12f} (§8 {nag:.12f})")
    for B, ref in ADAM_TABLE:
        got = eta_star(Hs, B, Optimizer("adam", 0.9, tuple(ADAM_P)))
        worst = max(worst, abs(got - ref))
        if verbose:
            print(f"  Adam β₁=0.9, P=diag(2, 0.5), B={B}: η* = {got:.12f} (§8 {ref:.12f})")
    return worst


def run(fast: bool, runs: int, seed: int = 0, verbose: bool = True):
    import torch

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    t0 = time.time()
    if verbose:
        print("momentum.md §8 by the dense (2d)² × (2d)² map + Brent:")
    worst = worked_examples(verbose)
    results = []
    if verbose:
        print(f"\n{'case':<38} {'B':>2} {'η*':>10} {'T':>4}   factor at 0.97 η* (exact)   "
              f"factor at 1.03 η* (exact)")
    for i, c in enumerate(cases(fast)):
        r = check_case(c, runs, seed + 17 * i)
        results.append(r)
        if verbose:
            print(f"{r.name:<38} {r.B:>2} {r.eta_star:10.6f} {r.steps:>4}   "
                  f"{r.mc_lo:.4f} ± {r.se_lo:.4f} ({r.exact_lo:.4f})      "
                  f"{r.mc_hi:.4f} ± {r.se_hi:.4f} ({r.exact_hi:.4f})")
    failures = evaluate(results)
    if worst > 1e-9:
        failures.append(f"FAIL worked examples: deviation {worst:.2e} from momentum.md §8")
    if verbose:
        print(f"\n({time.time() - t0:.1f} s)")
        print("\n".join(failures) if failures else "ALL CHECKS PASSED")
    return results, worst, failures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fast", action="store_true", help="five cases, fewer runs (~20 s)")
    ap.add_argument("--runs", type=int, default=None, help="parallel runs per case")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    runs = a.runs or (100_000 if a.fast else 400_000)
    _, _, failures = run(a.fast, runs, a.seed)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
