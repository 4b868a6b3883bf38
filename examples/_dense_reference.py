"""Dense reference for the mean-square stability threshold of SGD (small problems only).

How to run:  ``.venv/bin/python examples/_dense_reference.py``
What to expect: the worked examples of docs/theory.md §7 recomputed (λ_max, λ_gen, η* for
B = 1, 2, 3 and the regression example), each next to the value printed in theory.md, in
about a second.

Everything here starts from explicit per-sample Hessians ``Hs`` (numpy array ``(n, d, d)``)
and is meant for small ``d``: it is the independent reference that the matrix-free
estimator of the ``edgewise`` package is checked against, and what the examples use until
``edgewise.estimate`` is wired in. Formulas: docs/theory.md §1–§3 (notation kept).

- ``noise_weight(n, B)``: ``p = (n − B) / (B (n − 1))``.
- ``lambda_gen_kron``: ``λ_max(2 (H ⊕ H)^† D)`` with explicit ``d² × d²`` Kronecker matrices.
- ``lambda_gen``: the same number from the symmetric reduced operator of theory §4 with
  ``V = I`` (dense ``eigh`` when small, Lanczos otherwise), plus the PSD maximiser ``Σ*``.
- ``q_matrix`` / ``q_spectral_radius``: ``Q(η, B) = I − η (H ⊕ H) + η² D``.
- ``sgd_moment_step`` / ``sgd_moment_matrix``: the second-moment map of SGD derived directly
  from without-replacement batch sampling (pair inclusion probabilities), *not* from ``p``
  or ``D``, so that simulating it is an independent check of the theory.
- ``mixture_moment_step``: the same for the mixture process of Prop. 2.
- ``bound_top_eigvec``, ``bound_identity``, ``bound_rank_one``: the lower bounds of §3.
- ``per_sample_curvature``: per-sample Hessians (``torch.func.hessian``) or Gauss–Newton
  matrices (``torch.func.jacrev``) of a small torch model, flattened to ``(n, d, d)``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = [
    "noise_weight", "mean_hessian", "lambda_max", "kron_sum", "moment_d", "lambda_gen_kron",
    "lambda_gen", "sigma_star", "sample_factors", "measure_dense", "q_matrix", "q_spectral_radius", "sgd_moment_step",
    "mixture_moment_step", "moment_matrix", "bound_top_eigvec", "bound_identity",
    "bound_rank_one", "per_sample_curvature", "lanczos_top",
]


# ---------------------------------------------------------------------------------------
# Basic quantities (theory §1)
# ---------------------------------------------------------------------------------------

def noise_weight(n: int, batch_size: int) -> float:
    """Batch-noise weight ``p = (n − B) / (B (n − 1))`` (1 for B = 1, 0 for B = n)."""
    if not 1 <= batch_size <= n:
        raise ValueError(f"expected 1 <= batch_size <= n, got batch_size={batch_size}, n={n}")
    if n == 1:
        return 0.0
    return (n - batch_size) / (batch_size * (n - 1))


def _check(Hs: np.ndarray) -> np.ndarray:
    Hs = np.asarray(Hs, dtype=np.float64)
    if Hs.ndim != 3 or Hs.shape[1] != Hs.shape[2]:
        raise ValueError(f"expected per-sample Hessians of shape (n, d, d), got {Hs.shape}")
    return 0.5 * (Hs + Hs.transpose(0, 2, 1))


def mean_hessian(Hs: np.ndarray) -> np.ndarray:
    """``H = (1/n) Σ_i H_i``."""
    return _check(Hs).mean(axis=0)


def lambda_max(Hs: np.ndarray) -> float:
    """Top eigenvalue of ``H`` (the sharpness)."""
    return float(np.linalg.eigvalsh(mean_hessian(Hs))[-1])


def kron_sum(H: np.ndarray) -> np.ndarray:
    """``H ⊕ H = H ⊗ I + I ⊗ H`` (``d² × d²``)."""
    eye = np.eye(H.shape[0])
    return np.kron(H, eye) + np.kron(eye, H)


def moment_d(Hs: np.ndarray, p: float) -> np.ndarray:
    """``D = (1 − p) H ⊗ H + p (1/n) Σ_i H_i ⊗ H_i`` (``d² × d²``)."""
    Hs = _check(Hs)
    H = Hs.mean(axis=0)
    d = H.shape[0]
    per = np.einsum("nab,ncd->acbd", Hs, Hs).reshape(d * d, d * d) / Hs.shape[0]
    return (1.0 - p) * np.kron(H, H) + p * per


def lambda_gen_kron(Hs: np.ndarray, batch_size: int) -> float:
    """Generalized sharpness by the dense Kronecker form ``λ_max(2 (H ⊕ H)^† D)``.

    Only for tiny ``d`` (builds ``d² × d²`` matrices).
    """
    Hs = _check(Hs)
    p = noise_weight(Hs.shape[0], batch_size)
    C = 2.0 * np.linalg.pinv(kron_sum(Hs.mean(axis=0)), rcond=1e-10) @ moment_d(Hs, p)
    return float(np.max(np.linalg.eigvals(C).real))


# ---------------------------------------------------------------------------------------
# Symmetric reduced operator (theory §4 with V = I) and Lanczos
# ---------------------------------------------------------------------------------------

def lanczos_top(matvec: Callable[[np.ndarray], np.ndarray], v0: np.ndarray,
                max_iter: int = 150, tol: float = 1e-10) -> tuple[float, np.ndarray, float]:
    """Top eigenpair of a symmetric operator by Lanczos with full reorthogonalisation.

    Args:
        matvec: symmetric linear operator on vectors shaped like ``v0``.
        v0: start vector (any shape; flattened internally).
        max_iter: Krylov dimension cap.
        tol: stop when the Ritz residual is below ``tol · |θ|``.

    Returns:
        ``(theta, vector, residual)`` with the vector shaped like ``v0``.
    """
    shape = v0.shape
    q = v0.reshape(-1).astype(np.float64)
    q = q / np.linalg.norm(q)
    Qs, alphas, betas = [q], [], []
    theta, vec, res = 0.0, q, np.inf
    m = min(max_iter, q.size)
    for j in range(m):
        w = matvec(Qs[j].reshape(shape)).reshape(-1)
        a = float(Qs[j] @ w)
        alphas.append(a)
        Qm = np.asarray(Qs)
        w = w - Qm.T @ (Qm @ w)
        w = w - Qm.T @ (Qm @ w)
        b = float(np.linalg.norm(w))
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        ev, evec = np.linalg.eigh(T)
        theta = float(ev[-1])
        res = abs(b * evec[-1, -1])
        vec = Qm.T @ evec[:, -1]
        if res <= tol * max(abs(theta), 1e-300) or b < 1e-14 or j == m - 1:
            break
        betas.append(b)
        Qs.append(w / b)
    return theta, vec.reshape(shape), float(res)


def sample_factors(Hs: np.ndarray, rel_tol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Low-rank factors ``H_i = F_i diag(s_i) F_iᵀ`` (``F`` of shape ``(n, d, k)``, ``s`` ``(n, k)``).

    Exact up to eigenvalues below ``rel_tol`` times the largest ``|eigenvalue|`` of all
    ``H_i``; ``k`` is the largest numerical rank (zero-padded).
    """
    s, F = np.linalg.eigh(_check(Hs))
    smax = np.abs(s).max() if s.size else 1.0
    k = max(1, int((np.abs(s) > rel_tol * smax).sum(axis=1).max()))
    order = np.argsort(-np.abs(s), axis=1)[:, :k]
    return (np.take_along_axis(F, order[:, None, :], axis=2),
            np.take_along_axis(s, order, axis=1))


class _Reduced:
    """Per-sample Hessians rotated into the eigenbasis of ``H`` restricted to range(H)."""

    def __init__(self, Hs: np.ndarray | None = None, rel_tol: float = 1e-9, factors=None):
        F, s = factors if factors is not None else sample_factors(Hs)
        self.n, self.d = F.shape[0], F.shape[1]
        H = np.einsum("nak,nk,nbk->ab", F, s, F) / self.n
        kappa, U = np.linalg.eigh(0.5 * (H + H.T))
        keep = kappa > rel_tol * max(kappa[-1], 1e-300)
        self.min_curvature = float(kappa[0])
        self.kappa, self.U = kappa[keep], U[:, keep]
        self.r = int(keep.sum())
        self.G = np.einsum("da,ndk->nak", self.U, F)                        # (n, r, k)
        self.s = s
        ks = self.kappa
        self.W = 1.0 / np.sqrt((ks[:, None] + ks[None, :]) / 2.0)

    @property
    def K(self) -> np.ndarray:
        """Dense rotated per-sample Hessians ``K_i' = Uᵀ H_i U`` ``(n, r, r)``."""
        return np.einsum("nak,nk,nbk->nab", self.G, self.s, self.G)

    def apply_t(self, X: np.ndarray, p: float) -> np.ndarray:
        """``T(X) = W ∘ [(1 − p) κ (W∘X) κ + p mean_i K_i' (W∘X) K_i']``."""
        S = self.W * X
        full = self.kappa[:, None] * S * self.kappa[None, :]
        G = self.G
        M = (G.transpose(0, 2, 1) @ S @ G) * self.s[:, :, None] * self.s[:, None, :]
        GM = G @ M                                                     # (n, r, k)
        r = G.shape[1]
        per = GM.transpose(1, 0, 2).reshape(r, -1) @ G.transpose(1, 0, 2).reshape(r, -1).T
        per /= self.n
        return self.W * ((1.0 - p) * full + p * per)


def lambda_gen(Hs: np.ndarray, batch_size: int, dense_max: int = 40,
               n_train: int | None = None) -> tuple[float, np.ndarray]:
    """Generalized sharpness ``λ_gen`` and a maximiser ``Σ*`` (theory §2 matrix form).

    Solved as the top eigenvalue of the symmetric reduced operator of theory §4 with
    ``V = I``: exact for any ``d``. Dense ``eigh`` when ``rank(H) ≤ dense_max``, Lanczos
    otherwise.

    Args:
        Hs: per-sample Hessians ``(n, d, d)`` (PSD for the theory to apply).
        batch_size: SGD batch size ``B``.
        dense_max: largest rank solved densely.
        n_train: dataset size for ``p`` (default ``n``: ``Hs`` is the whole training set).

    Returns:
        ``(λ_gen, Σ*)`` with ``Σ*`` symmetric ``d × d``, unit trace, signed so its trace is
        positive (PSD whenever the top eigenvalue is simple and all ``H_i`` are PSD).
    """
    red = _Reduced(Hs)
    p = noise_weight(n_train or red.n, batch_size)
    return _solve(red, p, dense_max)


def _solve(red: _Reduced, p: float, dense_max: int = 40, sigma0: np.ndarray | None = None,
           tol: float = 1e-10):
    r = red.r
    if r == 0:
        return 0.0, np.zeros((red.d, red.d))
    if r <= dense_max:
        iu = np.triu_indices(r)
        # orthonormal basis of symmetric matrices: E_aa, (E_ab + E_ba)/√2
        m = len(iu[0])
        basis = np.zeros((m, r, r))
        for j, (a, b) in enumerate(zip(*iu)):
            if a == b:
                basis[j, a, a] = 1.0
            else:
                basis[j, a, b] = basis[j, b, a] = 1 / math.sqrt(2)
        TB = np.stack([red.apply_t(B_, p) for B_ in basis])
        Tm = np.einsum("iab,jab->ij", basis, TB)
        ev, evec = np.linalg.eigh(0.5 * (Tm + Tm.T))
        lam, X = float(ev[-1]), np.einsum("j,jab->ab", evec[:, -1], basis)
    else:
        if sigma0 is not None:                       # warm start from a previous Σ*
            X0 = (red.U.T @ sigma0 @ red.U) / red.W
        else:
            X0 = np.diag(red.kappa)
        X0 = X0 + 1e-3 * np.abs(X0).max() * np.eye(red.r)
        lam, X, _ = lanczos_top(lambda Y: red.apply_t(0.5 * (Y + Y.T), p), X0, tol=tol)
    S = red.W * X
    Sigma = red.U @ S @ red.U.T
    tr = np.trace(Sigma)
    Sigma = Sigma / (tr if abs(tr) > 1e-300 else 1.0)
    return lam, Sigma


def sigma_star(Hs: np.ndarray, batch_size: int) -> np.ndarray:
    """PSD maximiser ``Σ*`` of the matrix form (unit trace; negative eigenvalues clipped)."""
    _, S = lambda_gen(Hs, batch_size)
    w, U = np.linalg.eigh(0.5 * (S + S.T))
    S = (U * np.clip(w, 0.0, None)) @ U.T
    return S / np.trace(S)


# ---------------------------------------------------------------------------------------
# Second-moment maps
# ---------------------------------------------------------------------------------------

def q_matrix(Hs: np.ndarray, eta: float, batch_size: int) -> np.ndarray:
    """Theory's ``Q(η, B) = I − η (H ⊕ H) + η² D`` (``d² × d²``)."""
    Hs = _check(Hs)
    p = noise_weight(Hs.shape[0], batch_size)
    d = Hs.shape[1]
    return np.eye(d * d) - eta * kron_sum(Hs.mean(axis=0)) + eta**2 * moment_d(Hs, p)


def q_spectral_radius(Hs: np.ndarray, eta: float, batch_size: int) -> float:
    """Spectral radius of ``Q(η, B)``."""
    return float(np.max(np.abs(np.linalg.eigvals(q_matrix(Hs, eta, batch_size)))))


def sgd_moment_step(S: np.ndarray, Hs: np.ndarray, eta: float, batch_size: int) -> np.ndarray:
    """One step of ``S ← E[(I − η Ĥ_b) S (I − η Ĥ_b)]`` for SGD, batches without replacement.

    Derived from the sampling scheme alone: sample ``i`` is in the batch w.p. ``B/n`` and a
    pair ``i ≠ j`` w.p. ``B (B − 1) / (n (n − 1))``, so with ``Ĥ_b = (1/B) Σ_{i∈b} H_i``:
    ``E[Ĥ_b] = H`` and ``E[Ĥ_b S Ĥ_b] = (1/B²)[(B/n) Σ_i H_i S H_i
    + B(B−1)/(n(n−1)) Σ_{i≠j} H_i S H_j]``. No use of ``p`` or ``D``.
    Works on a stack of matrices ``S`` of shape ``(..., d, d)``.
    """
    Hs = _check(Hs)
    n, B = Hs.shape[0], batch_size
    Hsum = Hs.sum(axis=0)
    diag = np.einsum("iab,...bc,icd->...ad", Hs, S, Hs)            # Σ_i H_i S H_i
    cross = Hsum @ S @ Hsum - diag                                  # Σ_{i≠j} H_i S H_j
    pair = B * (B - 1) / (n * (n - 1)) if n > 1 else 0.0
    second = ((B / n) * diag + pair * cross) / B**2
    H = Hsum / n
    return S - eta * (H @ S + S @ H) + eta**2 * second


def mixture_moment_step(S: np.ndarray, Hs: np.ndarray, eta: float, p: float) -> np.ndarray:
    """One step of the second moment of Prop. 2's mixture process.

    W.p. ``1 − p`` a full-batch step ``I − η H``, w.p. ``p`` a single-sample step
    ``I − η H_i`` with ``i`` uniform.
    """
    Hs = _check(Hs)
    H = Hs.mean(axis=0)
    full = (np.eye(H.shape[0]) - eta * H)
    A = full @ S @ full
    single = S - eta * (H @ S + S @ H) + eta**2 * np.einsum(
        "iab,...bc,icd->...ad", Hs, S, Hs) / Hs.shape[0]
    return (1.0 - p) * A + p * single


def moment_matrix(step: Callable[[np.ndarray], np.ndarray], basis: np.ndarray) -> np.ndarray:
    """Matrix of a linear map on symmetric matrices in an orthonormal basis ``(m, r, r)``."""
    images = step(basis)
    return np.einsum("iab,jab->ij", basis, images)


# ---------------------------------------------------------------------------------------
# Lower bounds on λ_gen (theory §3)
# ---------------------------------------------------------------------------------------

def bound_top_eigvec(Hs: np.ndarray, batch_size: int, n_train: int | None = None) -> float:
    """``λ_max + p · Var_i(vᵀ H_i v) / λ_max`` with ``v`` the top eigenvector of ``H``."""
    Hs = _check(Hs)
    p = noise_weight(n_train or Hs.shape[0], batch_size)
    w, U = np.linalg.eigh(Hs.mean(axis=0))
    v = U[:, -1]
    q = np.einsum("a,nab,b->n", v, Hs, v)
    return float(w[-1] + p * q.var() / w[-1])


def bound_identity(Hs: np.ndarray, batch_size: int, n_train: int | None = None) -> float:
    """``[(1 − p) ‖H‖_F² + p mean_i ‖H_i‖_F²] / tr(H)``."""
    Hs = _check(Hs)
    p = noise_weight(n_train or Hs.shape[0], batch_size)
    H = Hs.mean(axis=0)
    return float(((1 - p) * (H**2).sum() + p * (Hs**2).sum(axis=(1, 2)).mean()) / np.trace(H))


def _rank_one_value(u, Hs, H, p):
    a = u @ H @ u
    b = np.einsum("a,nab,b->n", u, Hs, u)
    return ((1 - p) * a**2 + p * (b**2).mean()) / a


def bound_rank_one(Hs: np.ndarray, batch_size: int, n_train: int | None = None,
                   starts: int = 6, iters: int = 300, seed: int = 0) -> float:
    """Optimised rank-one bound (eq. 25): ``max_u [(1−p)(uᵀHu)² + p mean(uᵀH_i u)²] / uᵀHu``.

    Riemannian gradient ascent on the unit sphere of range(H) with backtracking, from the top
    eigenvectors of ``H``, the top eigenvector of ``Σ*`` and random starts; best value kept.
    Always a valid lower bound on ``λ_gen`` (it evaluates the quotient at ``Σ = u uᵀ``).
    """
    red = _Reduced(Hs)
    p = noise_weight(n_train or red.n, batch_size)
    _, S = _solve(red, p)
    return _rank_one(red, p, S, starts, iters, seed)


def _rank_one(red: _Reduced, p: float, sigma: np.ndarray | None, starts: int, iters: int,
              seed: int) -> float:
    G, sv, kap = red.G, red.s, red.kappa          # range(H), eigenbasis; H_i = G s Gᵀ

    def parts(u):
        c = np.einsum("nak,a->nk", G, u)
        b = (c * c * sv).sum(1)                    # uᵀ H_i u
        return b, c

    def value(u):
        a = (kap * u * u).sum()
        b, _ = parts(u)
        return ((1 - p) * a**2 + p * (b**2).mean()) / a

    rng = np.random.default_rng(seed)
    cands = [np.eye(red.r)[:, -j] for j in range(1, min(3, red.r) + 1)]
    if sigma is not None:
        w, V = np.linalg.eigh(red.U.T @ sigma @ red.U)
        cands.append(V[:, np.argmax(np.abs(w))])
    cands += [rng.standard_normal(red.r) for _ in range(starts)]
    best = -np.inf
    for u in cands:
        u = u / np.linalg.norm(u)
        f = value(u)
        step = 1.0 / max(kap[-1], 1e-300)
        for _ in range(iters):
            a = (kap * u * u).sum()
            b, c = parts(u)
            num = (1 - p) * a**2 + p * (b**2).mean()
            hiu = np.einsum("nak,nk->na", G, c * sv)                    # H_i u
            gnum = 4 * (1 - p) * a * (kap * u) + 4 * p * (b[:, None] * hiu).mean(0)
            g = (gnum * a - num * 2 * (kap * u)) / a**2
            g = g - (g @ u) * u
            if np.linalg.norm(g) < 1e-10 * max(abs(f), 1e-300) / step:
                break
            while step > 1e-14:
                un = u + step * g
                un /= np.linalg.norm(un)
                fn = value(un)
                if fn > f:
                    u, f, step = un, fn, step * 2.0
                    break
                step *= 0.5
            else:
                break
            if step <= 1e-14:
                break
        best = max(best, f)
    return float(best)


def measure_dense(Hs: np.ndarray, batch_size: int, n_train: int | None = None,
                  n_boot: int = 20, seed: int = 0, level: float = 0.95) -> dict:
    """All quantities the paper sweep reports, from explicit per-sample Hessians.

    Args:
        Hs: per-sample Hessians ``(m, d, d)`` of the samples at hand.
        batch_size: SGD batch size ``B``.
        n_train: dataset size for ``p`` (default ``m``).
        n_boot: bootstrap resamples of the samples (with replacement) for the interval.
        seed: bootstrap seed.
        level: two-sided level of the basic bootstrap interval ``[2λ − q_hi, 2λ − q_lo]``, as the
            sidecar's (sidecar/estimate/bootstrap.ts, ``basicInterval``, says why).

    Returns:
        dict with ``lambda_max, lambda_gen, lambda_gen_lo, lambda_gen_hi, bound_top_eigvec,
        bound_rank_one, bound_identity, min_curvature, rank_H, p``.
    """
    F, s = sample_factors(Hs)
    red = _Reduced(factors=(F, s))
    m = red.n
    p = noise_weight(n_train or m, batch_size)
    lam, S = _solve(red, p)
    u_top = red.U[:, -1]
    q = (np.einsum("nak,a->nk", F, u_top) ** 2 * s).sum(1)
    lmax = float(red.kappa[-1])
    out = dict(lambda_max=lmax, lambda_gen=float(lam),
               bound_top_eigvec=float(lmax + p * q.var() / lmax),
               bound_rank_one=_rank_one(red, p, S, starts=2, iters=200, seed=seed),
               min_curvature=red.min_curvature, rank_H=red.r, p=p)
    fro_i = (s**2).sum(1)                      # ‖H_i‖_F² (orthonormal eigenvector factors)
    H = red.U @ np.diag(red.kappa) @ red.U.T
    out["bound_identity"] = float(((1 - p) * (H**2).sum() + p * fro_i.mean()) / red.kappa.sum())
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, m, size=m)
        rb = _Reduced(factors=(F[idx], s[idx]))
        boots.append(_solve(rb, p, sigma0=S, tol=1e-7)[0])
    if boots:
        a = (1 - level) / 2
        q_lo, q_hi = np.quantile(boots, [a, 1 - a])
        out["lambda_gen_lo"], out["lambda_gen_hi"] = float(max(0.0, 2 * lam - q_hi)), float(2 * lam - q_lo)
    else:
        out["lambda_gen_lo"] = out["lambda_gen_hi"] = float("nan")
    return out


# ---------------------------------------------------------------------------------------
# Per-sample curvature of a small torch model
# ---------------------------------------------------------------------------------------

def per_sample_curvature(model, loss_fn, x, y, curvature: str = "hessian") -> np.ndarray:
    """Per-sample Hessians or Gauss–Newton matrices of a small torch model, ``(n, d, d)``.

    Args:
        model: ``torch.nn.Module``; parameters are read, never modified.
        loss_fn: per-sample loss ``loss_fn(output, target) -> scalar`` for ONE sample
            (output shape ``model(x[i:i+1])[0]``); e.g. ``lambda o, t: ((o - t)**2).sum()``.
        x, y: inputs and targets (first axis = samples).
        curvature: ``"hessian"`` (``torch.func.hessian`` of the per-sample loss) or ``"ggn"``
            (``J_iᵀ Λ_i J_i`` with ``J_i`` by ``jacrev`` and ``Λ_i`` the output Hessian of the
            loss), PSD by construction for a convex loss.

    Returns:
        float64 numpy array ``(n, d, d)``, parameters flattened in ``named_parameters`` order.
    """
    import torch
    from torch.func import functional_call, hessian, jacrev, vmap

    names = [k for k, _ in model.named_parameters()]
    params = tuple(p.detach().to(torch.float64) for _, p in model.named_parameters())
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    flat0 = torch.cat([p.reshape(-1) for p in params])
    model64 = model.to(torch.float64) if next(model.parameters()).dtype != torch.float64 else model

    def unflat(flat):
        out, o = {}, 0
        for nm, sh, sz in zip(names, shapes, sizes):
            out[nm] = flat[o:o + sz].reshape(sh)
            o += sz
        return out

    def f_out(flat, xi):
        return functional_call(model64, unflat(flat), (xi.unsqueeze(0),))[0]

    xs = torch.as_tensor(x, dtype=torch.float64)
    ys = torch.as_tensor(y, dtype=torch.float64)
    if curvature == "hessian":
        def li(flat, xi, yi):
            return loss_fn(f_out(flat, xi), yi)
        Hs = vmap(hessian(li), in_dims=(None, 0, 0))(flat0, xs, ys)
    elif curvature == "ggn":
        J = vmap(jacrev(f_out), in_dims=(None, 0))(flat0, xs)            # (n, k, d)
        outs = vmap(f_out, in_dims=(None, 0))(flat0, xs)
        Lam = vmap(hessian(loss_fn), in_dims=(0, 0))(outs, ys)            # (n, k, k)
        Hs = torch.einsum("nka,nkl,nlb->nab", J, Lam, J)
    else:
        raise ValueError(f"expected curvature 'hessian' or 'ggn', got {curvature!r}")
    return Hs.detach().numpy().astype(np.float64)


# ---------------------------------------------------------------------------------------
# theory.md §7 worked examples
# ---------------------------------------------------------------------------------------

def worked_example_2d() -> np.ndarray:
    """The three 2×2 per-sample Hessians of theory §7."""
    return np.array([[[2.0, 0], [0, 0]], [[0, 0], [0, 1.0]], [[1.0, 1], [1, 1]]])


def worked_example_regression() -> np.ndarray:
    """``H_i = x_i x_iᵀ`` for the five regression rows of theory §7."""
    X = np.array([[0, 0.3, -0.27], [-0.89, -0.45, -0.99], [0.06, 1.34, -0.49],
                  [-0.62, 0.49, 0.36], [0.11, -0.93, -0.03]])
    return np.einsum("na,nb->nab", X, X)


if __name__ == "__main__":
    Hs = worked_example_2d()
    print(f"2-D example: λ_max = {lambda_max(Hs):.12f}   (theory.md: 1.206011329583)")
    for B, ref in [(1, 1.862790641860), (2, 1.327173104349), (3, 1.206011329583)]:
        lg, _ = lambda_gen(Hs, B)
        print(f"  B={B}: λ_gen = {lg:.12f} (Kronecker {lambda_gen_kron(Hs, B):.12f}; "
              f"theory.md {ref:.12f}), η* = {2 / lg:.12f}")
    Hs = worked_example_regression()
    print(f"regression example: λ_max = {lambda_max(Hs):.12f}   (theory.md: 0.639704178285)")
    for B, ref in [(1, 1.918584156108), (2, 0.982530638265), (5, 0.639704178285)]:
        print(f"  B={B}: λ_gen = {lambda_gen(Hs, B)[0]:.12f} (theory.md {ref:.12f})")
