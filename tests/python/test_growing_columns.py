"""The basis buffer appends without copying and always holds exactly the columns appended."""

from __future__ import annotations

import torch

from edgewise._growing_columns import MIN_GROWTH, GrowingColumns


def test_appended_columns_equal_concatenation_and_grow_rarely():
    torch.manual_seed(0)
    cols, buffers = GrowingColumns(torch.randn(7, 3)), set()
    want = cols.view.clone()
    for r in [1, 8, 1, 1, 8, 8, 8, 8, 1]:
        q = torch.randn(7, r)
        cols.append(q)
        want = torch.cat([want, q], dim=1)
        assert torch.equal(cols.view, want)
        buffers.add(cols.view.data_ptr())
    assert cols.capacity >= want.shape[1]
    assert len(buffers) == 3  # grown at 4, 22 and 46 columns, not at each of the 9 appends


def test_the_first_append_to_a_tight_buffer_makes_room():
    cols = GrowingColumns(torch.zeros(5, 0))
    cols.append(torch.ones(5, 1))
    assert cols.capacity == 1 + MIN_GROWTH
    ptr = cols.view.data_ptr()
    cols.append(torch.full((5, 2), 2.0))
    assert cols.view.data_ptr() == ptr and cols.view.shape == (5, 3)
    assert torch.equal(cols.view[:, 1:], torch.full((5, 2), 2.0))
