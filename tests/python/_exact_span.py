"""Exact λ_gen of a Gauss–Newton probe set, computed here independently of Edgewise's estimators.

Every per-sample Gauss–Newton matrix ``G_i = F_iᵀ F_i`` with ``F_i = Λ_i^{1/2} J_i`` (``c × d``)
lies in the span of the rows of the stacked ``F`` (``mc × d``, rank ``r ≤ mc``). With the
eigendecomposition of the Gram matrix ``F Fᵀ = U diag(σ²) Uᵀ`` the rows ``Q = diag(1/σ) Uᵀ F``
are an orthonormal basis of that span and the blocks in it are ``K_i = A_iᵀ A_i`` with
``A = U diag(σ)`` (rows of sample ``i``): ``K = mean_i K_i = diag(σ²)/m`` is already diagonal.
The reduced problem of theory.md §4 is then exact (Rayleigh–Ritz in a space that contains every
``G_i``), and its top eigenvalue is found with scipy's ``eigsh`` on the symmetric operator

    T(S) = W ∘ [ (1 − p) κ (W ∘ S) κ + p mean_i K_i (W ∘ S) K_i ],   W_ab = 1/√((κ_a + κ_b)/2),

applied in factor form (``K_i S K_i = A_iᵀ (A_i S A_iᵀ) A_i``, all samples at once). Nothing
here calls the sidecar or the oracle: ``J_i`` comes from ``torch.func.jacrev`` and ``Λ_i`` from
``torch.func.hessian`` of the loss in the outputs.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch.func import functional_call, hessian, jacrev, vmap

#: Gram eigenvalues below this times the largest are the null space (rank detection).
RANK_TOL = 1e-12


def factor_rows(model: torch.nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """``F_i = Λ_i^{1/2} J_i`` for every sample, ``(m, c, d)`` (trainable parameters, eval mode)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    consts = {n: b for n, b in model.named_buffers()}
    theta = torch.cat([p.detach().reshape(-1) for _, p in named])

    def out(t, xi):
        params, i = {}, 0
        for n, p in named:
            params[n] = t[i : i + p.numel()].view_as(p)
            i += p.numel()
        return functional_call(model, {**params, **consts}, (xi[None],)).reshape(-1)

    model.eval()
    with torch.no_grad():
        o = torch.stack([out(theta, xi) for xi in x])
    jac = vmap(jacrev(out), in_dims=(None, 0))(theta, x).detach()  # m × c × d
    lam = torch.stack([hessian(lambda z: loss_fn(z.reshape(1, -1), yi[None]))(oi) for oi, yi in zip(o, y)])
    mu, q = torch.linalg.eigh(0.5 * (lam + lam.transpose(1, 2)))
    root = q @ torch.diag_embed(mu.clamp_min(0).sqrt()) @ q.transpose(1, 2)  # symmetric Λ_i^{1/2}
    return (root @ jac).numpy()


def span_factors(rows: np.ndarray) -> np.ndarray:
    """``A_i`` (``m × c × r``) of every sample in an orthonormal basis of the span of all rows.

    From the smaller Gram matrix: ``F Fᵀ`` (``mc × mc``) as in the module doc, or, when the
    parameters are fewer than the rows (a whole training set of a small network), ``Fᵀ F =
    Q diag(σ²) Qᵀ`` (``d × d``) with ``A = F Q``; either way ``K`` is diagonal.
    """
    m, c, d = rows.shape
    f = rows.reshape(m * c, d)
    if d < m * c:
        sig2, q = np.linalg.eigh(f.T @ f)
        keep = sig2 > RANK_TOL * sig2.max()
        return (f @ q[:, keep]).reshape(m, c, -1)
    sig2, u = np.linalg.eigh(f @ f.T)
    keep = sig2 > RANK_TOL * sig2.max()
    a = u[:, keep] * np.sqrt(sig2[keep])
    return a.reshape(m, c, -1)


def lambda_gen(a: np.ndarray, p: float, tol: float = 1e-10) -> float:
    """Top eigenvalue of ``T`` for the blocks ``K_i = A_iᵀA_i`` and batch-noise weight ``p``."""
    m, c, r = a.shape
    kappa = np.einsum("isk,isk->k", a, a) / m  # K = diag(κ) by construction
    w = 1.0 / np.sqrt(0.5 * (kappa[:, None] + kappa[None, :]))
    flat = a.reshape(m * c, r)
    a_t = np.ascontiguousarray(a.transpose(0, 2, 1))

    def apply(vec: np.ndarray) -> np.ndarray:
        s = vec.reshape(r, r)
        s = w * (0.5 * (s + s.T))
        mid = (flat @ s).reshape(m, c, r) @ a_t  # A_i S A_iᵀ, c × c per sample
        per = flat.T @ (mid @ a).reshape(m * c, r) / m  # mean_i A_iᵀ (A_i S A_iᵀ) A_i
        return (w * ((1 - p) * kappa[:, None] * s * kappa[None, :] + p * per)).reshape(-1)

    op = LinearOperator((r * r, r * r), matvec=apply, dtype=np.float64)
    start = np.eye(r).reshape(-1)
    val = eigsh(op, k=1, which="LA", tol=tol, v0=start, ncv=min(r * r - 1, 40))[0]
    return float(val[0])


def batch_noise(n: int, b: int) -> float:
    """``p = (n − B) / (B (n − 1))`` (theory.md §1)."""
    return (n - b) / (b * (n - 1))
