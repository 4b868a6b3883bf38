"""The client's basis stays orthonormal to working precision (protocol/SPEC.md §4).

The sidecar builds its reduced problem as if ``VᵀV = I``; a basis that drifts from it makes a
live round answer a different eigenproblem while it reports ``converged`` (a d = 37 MLP once
gave λ_gen 4.07 for the exact 3.40, and a rotate of such a basis lost columns). Orthogonality
is checked here directly, in float64 and float32, on candidates built to cancel: columns
nearly parallel to ``V`` and to each other, as a Krylov expansion near convergence produces.
"""

from __future__ import annotations

import pytest
import torch

from edgewise._basis import orthonormalize

torch.set_num_threads(1)


def orthogonality(q: torch.Tensor) -> float:
    """``max |QᵀQ − I|``, accumulated in float64."""
    q = q.double()
    return float((q.T @ q - torch.eye(q.shape[1], dtype=q.dtype)).abs().max())


def cancelling_candidates(d: int, k: int, r: int, gap: float, scale: float, dtype: torch.dtype, seed: int = 0):
    """An orthonormal ``V`` (d × k) and ``r`` candidates ``scale·V a + c_0 + gap·z_j``: every
    candidate is mostly inside ``range(V)`` and all share one direction ``c_0`` outside it, so
    only ``gap`` of each is new, first against ``V`` and then against its neighbours."""
    g = torch.Generator().manual_seed(seed)
    v, _ = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))
    a = torch.randn(k, 1, generator=g, dtype=torch.float64)
    c0 = torch.randn(d, 1, generator=g, dtype=torch.float64)
    z = torch.randn(d, r, generator=g, dtype=torch.float64)
    w = scale * (v @ a) + c0 + gap * z
    return v.to(dtype), w.to(dtype)


@pytest.mark.parametrize("gap", [1e-3, 1e-5, 1e-6])
def test_float64_columns_with_strong_cancellation_stay_orthonormal(gap: float) -> None:
    v, w = cancelling_candidates(60, 20, 8, gap, 1e3, torch.float64)
    q, _, kept = orthonormalize(v, w)
    assert len(kept) == 8  # gap·‖z‖ ≫ 1e-10 of ‖w‖: every column is new
    basis = torch.cat([v, q], dim=1)
    assert orthogonality(basis) < 1e-13


def test_float32_columns_with_strong_cancellation_stay_orthonormal() -> None:
    v, w = cancelling_candidates(60, 20, 8, 1e-3, 1.0, torch.float32)
    q, _, kept = orthonormalize(v, w)
    assert len(kept) == 8
    assert orthogonality(torch.cat([v, q], dim=1)) < 1e-6  # a few ε of float32 (6e-5 before the fix)


def test_orthogonality_holds_across_panels() -> None:
    """More candidates than one panel (32): later panels are projected against earlier ones."""
    v, w = cancelling_candidates(200, 10, 80, 1e-6, 1e2, torch.float64, seed=1)
    q, _, kept = orthonormalize(v, w)
    assert len(kept) == 80
    assert orthogonality(torch.cat([v, q], dim=1)) < 1e-13


def test_repeated_expansions_up_to_d_give_an_orthonormal_basis_of_r_d() -> None:
    """Growing a basis of R^d in steps of nearly dependent columns ends orthonormal and square."""
    d = 37
    g = torch.Generator().manual_seed(3)
    v = torch.zeros(d, 0, dtype=torch.float64)
    while v.shape[1] < d:
        base = torch.randn(d, 1, generator=g, dtype=torch.float64)
        w = base + 1e-7 * torch.randn(d, 8, generator=g, dtype=torch.float64)
        if v.shape[1]:
            w = w + 1e2 * v @ torch.randn(v.shape[1], 8, generator=g, dtype=torch.float64)
        q, _, kept = orthonormalize(v, w)
        assert kept, "a random expansion of a basis short of R^d adds a column"
        v = torch.cat([v, q], dim=1)
        assert orthogonality(v) < 1e-12, f"lost orthogonality at k = {v.shape[1]}"
    assert v.shape == (d, d)


def test_second_pass_drops_a_column_that_was_mostly_rounding() -> None:
    """A flagged column that lies in ``range(V)`` after all is dropped: the later columns move
    left over it and ``kept`` loses its index."""
    from edgewise._basis import _second_pass

    g = torch.Generator().manual_seed(5)
    full, _ = torch.linalg.qr(torch.randn(20, 6, generator=g, dtype=torch.float64))
    v = full[:, :3]
    q = torch.stack([full[:, 3], full[:, 0], full[:, 4], full[:, 5]], dim=1)  # column 1 is v's
    kept = [0, 2, 5, 6]
    n = _second_pass(v, q, 0, 4, [1, 2], kept)
    assert n == 3 and kept == [0, 5, 6]
    torch.testing.assert_close(q[:, :3].abs(), full[:, 3:].abs(), rtol=0, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rotation_reorthonormalised_by_cholesky_qr_as_by_gram_schmidt(dtype):
    """A rotation ``V U`` is re-orthonormalised by CholeskyQR2 (two Gram products): the same
    columns as Gram–Schmidt column by column, orthonormal to working precision after many
    rotations; a ``W`` that is not orthonormal up to rounding is left to Gram–Schmidt."""
    from edgewise._basis import reorthonormalize

    g = torch.Generator().manual_seed(3)
    v, _ = torch.linalg.qr(torch.randn(2000, 40, generator=g, dtype=torch.float64))
    v = v.to(dtype)
    eps = torch.finfo(dtype).eps
    for step in range(30):
        u, _ = torch.linalg.qr(torch.randn(v.shape[1], v.shape[1] - (step % 2), generator=g, dtype=torch.float64))
        w = v @ u.to(dtype)
        q = reorthonormalize(w)
        ref, _, kept = orthonormalize(v[:, :0], w)
        assert q is not None and len(kept) == w.shape[1]
        assert float((q - ref).abs().max()) < 100 * eps
        v = q
    assert orthogonality(v) < 10 * eps
    assert reorthonormalize(torch.cat([v[:, :3], v[:, :1]], dim=1)) is None  # a repeated column
    assert reorthonormalize(1.1 * v) is None


def test_float32_columns_of_millions_of_rows_stay_orthonormal() -> None:
    """At ResNet-18's d (11.2M) torch's CPU float32 products and norms over d were ~1e-2 off,
    and a round's basis drifted until a rotation failed. At d = 4M: new columns against an
    orthonormal V, then a rotation, orthonormal to float32 working precision."""
    from edgewise._basis import reorthonormalize

    d = 4_000_000
    g = torch.Generator().manual_seed(0)
    v, _, kept = orthonormalize(torch.empty(d, 0), torch.randn(d, 4, generator=g))
    assert kept == [0, 1, 2, 3] and orthogonality(v) < 1e-5
    q, _, kept = orthonormalize(v, torch.randn(d, 3, generator=g) + v @ torch.randn(4, 3, generator=g))
    assert kept == [0, 1, 2] and orthogonality(torch.cat([v, q], 1)) < 1e-5
    u, _ = torch.linalg.qr(torch.randn(7, 5, generator=g, dtype=torch.float64))
    rotated = reorthonormalize(torch.cat([v, q], 1) @ u.float())
    assert rotated is not None and orthogonality(rotated) < 1e-5
