"""Probe batches of any structure: pytrees of tensors with a leading sample dimension.

A batch is a tensor, or a tuple / list / dict (nested freely) whose leaves are tensors that all
share the sample count ``m`` along dim 0. Everything the curvature routes do to a batch is a
leafwise map (slice a chunk, unsqueeze one sample into a batch of one, move to the compute
device and dtype), so it works unchanged under ``vmap``/``jvp``/``grad``: ``torch.func``
batches over every leaf of a pytree argument.

How a batch reaches the model (:class:`ModelCall`): ``model(x)`` for a tensor, ``model(*args)``
for a tuple or list, ``model(**batch)`` for a dict, or the user's ``forward(model, batch)``.

Example:
    >>> import torch
    >>> batch = {"a": torch.zeros(4, 3), "b": (torch.zeros(4), torch.zeros(4, 2, dtype=torch.long))}
    >>> batch_size(batch), take(batch, slice(1, 3))["b"][1].shape
    (4, torch.Size([2, 2]))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

#: ``forward(model, batch) -> output``: how the user's model consumes one batch.
Forward = Callable[[torch.nn.Module, Any], Any]


def batch_size(batch: Any, name: str = "batch") -> int:
    """The shared leading dimension ``m`` of every leaf of ``batch``.

    Raises:
        TypeError: A leaf is not a tensor.
        ValueError: No leaves, a 0-d leaf, or leaves with different leading dimensions.
    """
    leaves, _ = tree_flatten(batch)
    if not leaves:
        raise ValueError(f"expected {name} with at least one tensor, got {type(batch).__name__} with none")
    bad = next((t for t in leaves if not isinstance(t, Tensor)), None)
    if bad is not None:
        raise TypeError(f"expected {name} to hold only tensors (a pytree of tensors), got a {type(bad).__name__} leaf")
    if any(t.dim() == 0 for t in leaves):
        raise ValueError(f"expected every tensor in {name} to have a leading sample dimension, got a 0-d tensor")
    sizes = {int(t.shape[0]) for t in leaves}
    if len(sizes) != 1:
        shapes = tree_map(lambda t: tuple(t.shape), batch)
        raise ValueError(f"expected every tensor in {name} to have the same number of samples along dim 0, got shapes {shapes}")
    return sizes.pop()


def take(batch: Any, index: Any) -> Any:
    """``batch`` indexed leafwise along dim 0 (a slice, an index tensor, an int)."""
    return tree_map(lambda t: t[index], batch)


def unsqueeze(batch: Any) -> Any:
    """One sample (as seen inside ``vmap``) as a batch of one: every leaf gets a leading 1."""
    return tree_map(lambda t: t.unsqueeze(0), batch)


def move(batch: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """Detached leaves on ``device``; floating leaves in ``dtype`` (integer ids, masks kept)."""
    return tree_map(lambda t: t.detach().to(device=device, dtype=dtype if t.is_floating_point() else t.dtype), batch)


def split_floats(batch: Any) -> tuple[list[Tensor], Callable[[Sequence[Tensor]], Any]]:
    """The floating leaves of ``batch``, and ``rebuild(floats)`` putting new ones in their place.

    A ``jvp`` can then give the floating leaves explicit zero tangents (see
    :func:`edgewise._hvp._jvp_with_target`) while integer leaves (ids, labels) stay constants.
    """
    leaves, spec = tree_flatten(batch)
    where = [i for i, t in enumerate(leaves) if t.is_floating_point() or t.is_complex()]

    def rebuild(floats: Sequence[Tensor]) -> Any:
        full = list(leaves)
        for i, f in zip(where, floats):
            full[i] = f
        return tree_unflatten(full, spec)

    return [leaves[i] for i in where], rebuild


class _UserForward(torch.nn.Module):
    """Holds the user's model as ``model`` so ``functional_call`` can run ``forward(model, batch)``."""

    def __init__(self, model: torch.nn.Module, forward: Forward) -> None:
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, batch: Any) -> Any:
        return self._forward(self.model, batch)


@dataclass(frozen=True)
class ModelCall:
    """The model as a function of its tensors (parameters and buffers, by name) and a batch.

    Attributes:
        model: The user's module (only run through ``functional_call``).
        forward: ``forward(model, batch) -> output``; ``None`` for the default call by the
            batch's structure (tensor, tuple/list as positional, dict as keyword arguments).
    """

    model: torch.nn.Module
    forward: Forward | None = None

    @cached_property
    def _holder(self) -> _UserForward:
        return _UserForward(self.model, self.forward)

    def __call__(self, tensors: Mapping[str, Tensor], batch: Any) -> Any:
        if self.forward is not None:
            return functional_call(self._holder, {f"model.{k}": v for k, v in tensors.items()}, (batch,))
        if isinstance(batch, Mapping):
            return functional_call(self.model, dict(tensors), (), dict(batch))
        if isinstance(batch, (tuple, list)):
            return functional_call(self.model, dict(tensors), tuple(batch))
        return functional_call(self.model, dict(tensors), (batch,))

    def plain(self, batch: Any) -> Any:
        """The model on ``batch`` with its own tensors (no ``functional_call``)."""
        if self.forward is not None:
            return self.forward(self.model, batch)
        if isinstance(batch, Mapping):
            return self.model(**batch)
        if isinstance(batch, (tuple, list)):
            return self.model(*batch)
        return self.model(batch)


def as_model_call(model: torch.nn.Module | ModelCall) -> ModelCall:
    """``model`` itself if it is a :class:`ModelCall`, else the default call of a module."""
    return model if isinstance(model, ModelCall) else ModelCall(model)


def split_probe(probe: Any, loss_on: str) -> tuple[Any, Any]:
    """``(x, y)`` from a user's ``probe``: the ``(inputs, targets)`` pair, or with
    ``loss_on="batch"`` the batch itself as the inputs and no targets."""
    if loss_on == "batch":
        return probe, None
    if not isinstance(probe, (tuple, list)) or len(probe) != 2:
        raise TypeError(f"expected probe=(inputs, targets) (or loss_on='batch' with the batch as the probe), got {type(probe).__name__}")
    return probe[0], probe[1]
