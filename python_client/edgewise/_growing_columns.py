"""The oracle's basis ``V`` (``d × k``) with room to append columns without copying the others.

Why: appending by ``torch.cat`` copies all of ``V`` per expansion; for ResNet-18 (d = 11.2M,
float32) at 50 columns that is 2.2 GB and about 2 s on the project's CPU, as much as the
expansion's own products at m = 32, a dozen times a round. Here ``V`` is a view of the first
``k`` columns of a wider buffer, and the buffer grows by a quarter (at least 16 columns) when
full, so a round that grows ``V`` from 0 to 60 columns copies it three times, not a dozen; while
it grows, the old and new buffers are alive together, as the two tensors of ``torch.cat`` are.

Example:
    >>> import torch
    >>> cols = GrowingColumns(torch.zeros(4, 0))
    >>> cols.append(torch.ones(4, 2))
    >>> cols.view.shape, cols.capacity
    (torch.Size([4, 2]), 18)
"""

from __future__ import annotations

from torch import Tensor

#: Columns a full buffer gains at least when it grows (and at most a quarter of its size more).
MIN_GROWTH = 16


class GrowingColumns:
    """``d × k`` columns stored in a ``d × capacity`` buffer.

    Args:
        v: The initial columns; the buffer starts as ``v`` itself (no spare room).
    """

    def __init__(self, v: Tensor) -> None:
        self._buffer = v
        self._k = v.shape[1]

    @property
    def view(self) -> Tensor:
        """The ``k`` columns (a view: valid until the next :meth:`append`)."""
        return self._buffer[:, : self._k]

    @property
    def capacity(self) -> int:
        return self._buffer.shape[1]

    def append(self, q: Tensor) -> None:
        """Add the columns of ``q`` (``d × r``) after the others."""
        need = self._k + q.shape[1]
        if need > self.capacity:
            wider = self._buffer.new_empty((self._buffer.shape[0], need + max(MIN_GROWTH, need // 4)))
            wider[:, : self._k] = self.view
            self._buffer = wider
        self._buffer[:, self._k : need] = q
        self._k = need
