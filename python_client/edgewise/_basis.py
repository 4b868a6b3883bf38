"""Orthonormal-basis bookkeeping for the oracle: Gram–Schmidt with a drop rule, seeded probes.

The sidecar relies on the client's basis ``V`` being orthonormal to working precision, so new
columns are orthogonalised by classical Gram–Schmidt applied twice ("twice is enough") and
dropped when almost nothing is left of them (protocol/SPEC.md §4).

Example:
    >>> import torch
    >>> v = torch.zeros(3, 0, dtype=torch.float64)
    >>> w = torch.tensor([[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    >>> q, norms, kept = orthonormalize(v, w)
    >>> kept, q.shape
    ([0], torch.Size([3, 1]))
"""

from __future__ import annotations

import torch
from torch import Tensor

#: A column is dropped when its norm after orthogonalisation is below this times its norm before.
DROP_TOL = 1e-10


#: Rows per partial product in :func:`inner` and :func:`column_norms`.
_ROWS_PER_PARTIAL = 1 << 16


def inner(a: Tensor, b: Tensor) -> Tensor:
    """``aᵀ b`` over the long dimension ``d``, accurate to working precision at any ``d``.

    Why: a float32 product over d = 11.2M rows (ResNet-18) came out of torch's CPU BLAS with
    relative errors near 1e-2 (the whole length accumulated in float32); the basis then drifted
    from ``VᵀV = I`` by 1e-2 within a round and a rotation failed. Below float64, partial
    products of 65,536 rows are added in float64.
    """
    if a.dtype == torch.float64 or a.shape[0] <= _ROWS_PER_PARTIAL:
        return a.T @ b
    if 1 < b.shape[1] < a.shape[1]:
        # the narrow operand on the left: a basis of 60 against 8 new columns at d = 11.2M took
        # 1.1 s as aᵀb and 0.4 s as (bᵀa)ᵀ (torch's CPU BLAS, float32)
        return inner(b, a).T
    total = torch.zeros(a.shape[1], b.shape[1], dtype=torch.float64, device=a.device)
    for s in range(0, a.shape[0], _ROWS_PER_PARTIAL):
        total += (a[s : s + _ROWS_PER_PARTIAL].T @ b[s : s + _ROWS_PER_PARTIAL]).double()
    return total.to(a.dtype)


def column_dots(a: Tensor, b: Tensor) -> Tensor:
    """``a_jᵀ b_j`` per column (the diagonal of :func:`inner` without the rest), accurate at any
    ``d`` the same way; in float64 for inputs below float64."""
    if a.dtype == torch.float64 or a.shape[0] <= _ROWS_PER_PARTIAL:
        return (a * b).sum(0)
    total = torch.zeros(a.shape[1], dtype=torch.float64, device=a.device)
    for s in range(0, a.shape[0], _ROWS_PER_PARTIAL):
        total += (a[s : s + _ROWS_PER_PARTIAL] * b[s : s + _ROWS_PER_PARTIAL]).sum(0, dtype=torch.float64)
    return total


def column_norms(w: Tensor) -> Tensor:
    """``‖w_j‖`` per column, accurate at any ``d`` (see :func:`inner`; ``vector_norm`` over
    11.2M float32 rows was 1e-2 off)."""
    if w.dtype == torch.float64 or w.shape[0] <= _ROWS_PER_PARTIAL:
        return torch.linalg.vector_norm(w, dim=0)
    return column_dots(w, w).sqrt().to(w.dtype)


def _project_once(basis: Tensor, w: Tensor, bw: Tensor | None = None) -> Tensor:
    """``w − B (Bᵀ w)`` (``bw``: ``Bᵀ w`` when known); ``addmm`` writes it in one pass over ``w``
    (8 columns against 60 at d = 11.2M: 0.6 s against 1.2 s for ``w − B X``)."""
    return torch.addmm(w, basis, inner(basis, w) if bw is None else bw, alpha=-1)


def _project_out(basis: Tensor, w: Tensor, first: Tensor | None = None) -> Tensor:
    """Classical Gram–Schmidt, twice: ``w − B (Bᵀ w)`` repeated (``first``: ``Bᵀ w`` when known)."""
    if basis.shape[1] == 0:
        return w
    return _project_once(basis, _project_once(basis, w, first))


#: Columns orthonormalised together in one panel (BLAS3 against the columns accepted before).
_PANEL = 32

#: A column that kept less than this fraction of its norm gets a second pass (``_second_pass``):
#: rounding of the first, ``ε‖w‖``, is then above ``10 ε`` of what is left.
_REPASS = 0.1


def orthonormalize(v: Tensor, w: Tensor, drop_tol: float = DROP_TOL, *,
                   vw: Tensor | None = None) -> tuple[Tensor, Tensor, list[int]]:
    """Orthonormalise the columns of ``w`` against ``v`` and each other.

    Columns are processed in order: first all of ``w`` against ``v`` (CGS twice, as a block),
    then each column against the columns already accepted from ``w`` (CGS twice). A column is
    dropped when its final norm is below ``drop_tol`` (at least 1000 machine epsilons of the
    dtype, so 1.2e-4 in float32) times its original norm (or is zero or not finite). The within-``w`` step runs in panels of 32 columns, projected as a block
    against the columns accepted before the panel (matrix products into a preallocated
    result), so hundreds of columns (a whole Gauss–Newton span) cost ``O(d r²)`` in BLAS3.
    Each panel's accepted columns that kept less than a tenth of their norm then get one more
    block projection (``_second_pass``), so the result is orthonormal against ``v`` to working
    precision even where the candidates cancel almost entirely.

    Args:
        v: Orthonormal basis, ``d × k`` (``k`` may be 0).
        w: Candidate columns, ``d × r``.
        drop_tol: Relative drop threshold.
        vw: ``vᵀ w`` (:func:`inner`) when the caller computed it already: one pass over ``v`` less.

    Returns:
        ``(q, norms, kept_index)``: the new orthonormal columns ``d × kept``; per candidate the
        norm after orthogonalisation against ``v`` (before normalising), length ``r``; and the
        indices of the accepted candidates, in order.
    """
    if v.dim() != 2 or w.dim() != 2 or v.shape[0] != w.shape[0]:
        raise ValueError(f"expected v (d, k) and w (d, r) with the same d, got {tuple(v.shape)} and {tuple(w.shape)}")
    # in float32 what is left of a dependent column after CGS2 is rounding noise of ~1e-7, far
    # above 1e-10: the threshold is never below 1000 machine epsilons of the compute dtype
    drop_tol = max(drop_tol, 1e3 * torch.finfo(w.dtype).eps)
    before = column_norms(w)
    p = _project_out(v, w, vw)
    norms = column_norms(p)
    q = w.new_empty(w.shape)
    n = 0
    kept: list[int] = []
    # an orthonormal basis of R^d has at most d columns: once V spans everything, what is left
    # of any candidate is rounding noise (in float32 it can pass the relative drop test)
    room = v.shape[0] - v.shape[1]
    for start in range(0, w.shape[1], _PANEL):
        if n >= room:
            break
        panel = _project_out(q[:, :n], p[:, start : start + _PANEL])
        first = n
        flagged: list[int] = []
        for j in range(panel.shape[1]):
            col = _project_out(q[:, first:n], panel[:, j : j + 1])
            after = column_norms(col)[0]
            b = before[start + j]
            if not (torch.isfinite(after) and b > 0 and after >= drop_tol * b):
                continue
            q[:, n : n + 1] = col / after
            if after < _REPASS * b:
                flagged.append(n)
            n += 1
            kept.append(start + j)
            if n >= room:
                break
        n = _second_pass(v, q, first, n, flagged, kept)
    return (q if n == q.shape[1] else q[:, :n].clone()), norms, kept


def _second_pass(v: Tensor, q: Tensor, first: int, n: int, flagged: list[int], kept: list[int]) -> int:
    """Orthogonalise the panel's ``flagged`` columns of ``q`` (positions in ``first … n−1``) once
    more against ``v``, the earlier panels and the panel's columns before them, in place.

    The first pass projects a candidate against ``v`` and earlier panels *before* the within-panel
    step cancels most of it: what rounding left along them, ``ε‖w‖``, is tiny against ``‖w‖``
    but not against the column that survives (``ε‖w‖ / after``, up to 1e-6 in float64 at the drop
    threshold), and a Krylov expansion near convergence cancels that much in every column. The
    basis then drifted from ``VᵀV = I`` round after round (``|VᵀV − I|`` reached 0.99 on a d = 37
    MLP, which made the sidecar's reduced problem wrong while it reported convergence). Flagged
    columns (``after < _REPASS ‖w‖``) are unit vectors off by at most that rounding, so one more
    projection restores orthonormality to working precision with no cancellation; a column that
    is mostly noise after all is dropped. The columns after a corrected one were orthogonalised
    against it before the correction, which moved it only along ``v`` and earlier columns, where
    they are orthogonal already.

    Returns:
        The new ``n``; ``q`` and ``kept`` lose the columns dropped here.
    """
    if not flagged:
        return n
    block = q[:, flagged]
    if v.shape[1]:
        block = _project_once(v, block)
    if first:
        block = _project_once(q[:, :first], block)
    dropped: list[int] = []
    for c, t in enumerate(flagged):
        col = block[:, c : c + 1]
        if t > first:
            col = _project_once(q[:, first:t], col)
        after = column_norms(col)[0]
        if torch.isfinite(after) and after >= 0.5:
            q[:, t : t + 1] = col / after
        else:
            dropped.append(t)
    for t in reversed(dropped):  # rare: shift the later columns left over the dropped one
        q[:, t : n - 1] = q[:, t + 1 : n].clone()
        del kept[t]
        n -= 1
    return n


def _generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A seeded generator on ``device``: the draw happens where the basis lives, so an
    accelerator never waits for ``d × r`` numbers drawn on the CPU and copied over (0.4 s for
    ResNet-18 on an H200). Seeded draws are reproducible per device type, not across them."""
    dev = torch.device(device)
    return torch.Generator(device=dev).manual_seed(int(seed))


def gaussian(d: int, r: int, seed: int, *, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    """Seeded standard Gaussian ``d × r``, drawn on ``device`` (in float64 on the CPU)."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return torch.randn(d, r, generator=_generator(seed, dev), dtype=torch.float64).to(dtype=dtype)
    return torch.randn(d, r, generator=_generator(seed, dev), dtype=dtype, device=dev)


def rademacher(d: int, r: int, seed: int, *, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    """Seeded Rademacher (±1) ``d × r``, drawn on ``device``."""
    dev = torch.device(device)
    signs = torch.randint(0, 2, (d, r), generator=_generator(seed, dev), dtype=torch.int64, device=dev) * 2 - 1
    return signs.to(dtype=dtype)


#: ``W`` is "orthonormal up to rounding" when ``|WᵀW − I|`` is at most this (entrywise).
NEARLY_ORTHONORMAL = 1e-3


def reorthonormalize(w: Tensor) -> Tensor | None:
    """``W R⁻¹`` with ``R`` the Cholesky factor of ``WᵀW``, twice (CholeskyQR2), for columns that
    are orthonormal up to rounding, such as ``V U`` in a rotation; None when they are not.

    Why not :func:`orthonormalize`: it is the same ``Q`` (Gram–Schmidt is ``W R⁻¹`` with the same
    triangular ``R``), but column by column; on the main example's basis (d = 25,450, 80 → 60
    columns) CholeskyQR2 took a third of the time (two Gram products and two triangular solves).
    It is accurate to working precision only for well-conditioned ``W``, hence the guard.

    Example:
        >>> import torch
        >>> w = torch.tensor([[1.0, 0.0], [1e-9, 1.0], [0.0, 0.0]], dtype=torch.float64)
        >>> q = reorthonormalize(w)
        >>> bool((q.T @ q - torch.eye(2, dtype=torch.float64)).abs().max() < 1e-15)
        True
        >>> reorthonormalize(2 * w) is None
        True
    """
    if w.shape[1] == 0:
        return w
    eye = torch.eye(w.shape[1], dtype=w.dtype, device=w.device)
    for _ in range(2):
        gram = inner(w, w)
        if not bool(torch.isfinite(gram).all()) or float((gram - eye).abs().max()) > NEARLY_ORTHONORMAL:
            return None
        r, info = torch.linalg.cholesky_ex(gram, upper=True)
        if int(info) != 0:
            return None
        w = torch.linalg.solve_triangular(r, w, upper=True, left=False)
    return w
