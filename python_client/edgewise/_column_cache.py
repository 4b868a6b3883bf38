"""Per-basis-column results kept for one round, so no product is computed twice.

The oracle keeps two: the Gauss–Newton factors ``A_i = L_i J_i v_j`` (``m × s`` per column) and
the mean-Hessian products ``H v_j`` (``d`` per column, for ``hessian_gram``). Both are linear in
the column, so a rotation ``V ← V U`` maps them to ``X U`` without new products; new columns
(``random``, ``expand``) start without a value, ``reset`` and a new round drop everything.

Example:
    >>> import torch
    >>> cache = ColumnCache()
    >>> cache.resize(3)
    >>> cache.missing(0, 3)
    [0, 1, 2]
    >>> cache.store([0, 2], torch.ones(4, 2))
    >>> cache.missing(0, 3)
    [1]
"""

from __future__ import annotations

import torch
from torch import Tensor


class ColumnCache:
    """Values ``X[..., j]`` of basis columns ``j`` computed so far in a round (columns last)."""

    def __init__(self) -> None:
        self._x: Tensor | None = None
        self._have: list[bool] = []

    def clear(self) -> None:
        """Forget every value (new snapshot, or ``V ← []``)."""
        self._x, self._have = None, []

    def resize(self, k: int) -> None:
        """The basis now has ``k`` columns; new ones have no value yet."""
        self._have = (self._have + [False] * k)[:k]

    def missing(self, start: int, count: int) -> list[int]:
        """Columns in ``start … start+count−1`` without a value yet."""
        return [j for j in range(start, start + count) if not self._have[j]]

    def store(self, columns: list[int], x: Tensor) -> None:
        """Record ``x`` (``... × len(columns)``) as the values of ``columns``."""
        if not columns:
            return
        k = len(self._have)
        if self._x is None or self._x.shape[-1] < k:
            grown = x.new_zeros((*x.shape[:-1], k))
            if self._x is not None:
                grown[..., : self._x.shape[-1]] = self._x
            self._x = grown
        self._x[..., columns] = x
        for j in columns:
            self._have[j] = True

    def get(self, start: int, count: int) -> Tensor:
        """The values of columns ``start … start+count−1`` (all must be stored); a view."""
        assert self._x is not None and all(self._have[start : start + count])
        return self._x[..., start : start + count]

    def rotate(self, u: Tensor) -> None:
        """``V ← V U`` maps the values to ``X U``; kept only when every column had one."""
        if self._x is not None and self._have and all(self._have):
            self._x = self._x[..., : len(self._have)] @ u
            self._have = [True] * u.shape[1]
        else:
            self.clear()
            self.resize(u.shape[1])
