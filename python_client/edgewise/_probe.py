"""Choosing the probe set: a fixed, seeded subset of the training data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Sequence

import torch
from torch.utils._pytree import tree_map

from ._batch import batch_size, take

__all__ = ["draw_probe"]


def draw_probe(data: Any, size: int, *, seed: int = 0) -> Any:
    """Draws ``size`` samples without replacement from ``data``, reproducibly.

    Args:
        data: a ``(inputs, targets)`` pair of tensors with samples along dim 0, a dict of
            tensors with samples along dim 0 (a whole tokenised dataset), or a map-style dataset
            whose items are ``(input, target)`` pairs (e.g. a ``TensorDataset``) or dicts of
            tensors (Hugging Face style); items are stacked leafwise.
        size: number of probe samples ``m``; capped at the data size.
        seed: seed of the draw, so every round of a run probes the same samples.

    Returns:
        ``(x, y)`` stacked tensors of ``min(size, len(data))`` samples; for dict data or dict
        items the stacked dict batch (a probe for ``loss_on="batch"``).

    Raises:
        ValueError: empty data or a non-positive size.
        TypeError: data of another form.

    Example:
        >>> x, y = torch.arange(10.).unsqueeze(1), torch.arange(10)
        >>> px, py = draw_probe((x, y), 4, seed=1)
        >>> px.shape, bool((px.squeeze(1).long() == py).all())
        (torch.Size([4, 1]), True)
    """
    if size <= 0:
        raise ValueError(f"expected a positive probe size, got {size}")
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(torch.is_tensor(t) for t in data):
        x, y = data
        if len(x) != len(y):
            raise ValueError(f"expected inputs and targets of equal length, got {len(x)} and {len(y)}")
        count = len(x)
        pick = _indices(count, size, seed)
        return x[pick], y[pick]
    if isinstance(data, Mapping):
        pick = _indices(batch_size(data, "data"), size, seed)
        return take(data, pick)
    if hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        count = len(data)
        pick = _indices(count, size, seed)
        items: Sequence = [data[int(i)] for i in pick]
        if isinstance(items[0], Mapping):
            return _stack(items)
        xs, ys = zip(*items)
        return _stack(xs), _stack(ys)
    raise TypeError(f"expected (inputs, targets) tensors or a dataset, got {type(data).__name__}")


def _stack(items: Sequence[Any]) -> Any:
    """Samples (tensors, numbers, or pytrees of them) stacked leafwise into one batch."""
    return tree_map(lambda *vs: torch.stack([torch.as_tensor(v) for v in vs]), *items)


def _indices(count: int, size: int, seed: int) -> torch.Tensor:
    if count == 0:
        raise ValueError("expected non-empty training data, got 0 samples")
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(count, generator=generator)[: min(size, count)].sort().values
