"""Adam's second-moment preconditioner, frozen at a round's start (shared/docs/momentum.md §5).

Adam with ``P = diag(sqrt(v̂) + eps)`` held fixed is heavy ball on ``P^{-1/2} H_i P^{-1/2}``, so
the client measures the curvature in the coordinates ``φ = P^{1/2} θ``: this module reads
``s = P^{-1/2}`` (flat, in the oracle's parameter order) from the optimizer's state, and the
oracle's :class:`~edgewise._hvp.ParamLayout` applies it inside every product.

``v̂ = exp_avg_sq / (1 − β₂^step)`` (``max_exp_avg_sq`` with ``amsgrad``), exactly the
denominator ``torch.optim.Adam`` divides by. The snapshot is taken on the training thread
when a round is scheduled (a copy, ``d`` numbers), so a background round sees the ``P`` of
its parameters even while training goes on.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.Adam(model.parameters(), lr=0.1, eps=0.0)
    >>> model(torch.ones(1, 2)).sum().backward(); opt.step()
    >>> adam_scale(model, opt, eps=0.0, beta2=0.999, amsgrad=False).round(decimals=5)   # |g| = 1: v̂ = 1
    tensor([1., 1., 1.])
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["NoPreconditioner", "adam_scale"]


class NoPreconditioner(ValueError):
    """Adam has no second-moment state for a parameter yet (no ``step()`` taken), or ``P`` has a
    zero entry (``eps = 0`` and a zero ``v̂``): there is no frozen preconditioner to model."""


def _param_scale(name: str, state: dict, *, eps: float, beta2: float, amsgrad: bool) -> Tensor:
    key = "max_exp_avg_sq" if amsgrad else "exp_avg_sq"
    if key not in state or "step" not in state:
        raise NoPreconditioner(f"no Adam state for parameter {name!r} yet (no {key}): take an optimizer step first")
    step = float(state["step"])
    if step < 1:
        raise NoPreconditioner(f"Adam's state for parameter {name!r} is at step {step:g}: no preconditioner yet")
    v = state[key].detach()
    v_hat = v.to(torch.promote_types(v.dtype, torch.float32)).flatten() / (1.0 - beta2 ** step)
    p = v_hat.sqrt() + eps
    if not bool((p > 0).all() and torch.isfinite(p).all()):
        raise NoPreconditioner(f"Adam's preconditioner sqrt(v̂) + eps of parameter {name!r} has a zero or"
                               f" non-finite entry (eps = {eps:g}): Adam's own step is undefined there")
    return p.rsqrt()


def adam_scale(module: torch.nn.Module, optimizer: torch.optim.Optimizer, *, eps: float, beta2: float,
               amsgrad: bool) -> Tensor:
    """``s = P^{-1/2}`` for the trainable parameters of ``module`` (``named_parameters`` order).

    Args:
        module: The user's model, whose parameter objects key ``optimizer.state``.
        optimizer: Its Adam/AdamW; ``eps``, ``beta2``, ``amsgrad``: group 0's.

    Returns:
        A vector of length ``d`` on the parameters' device (a copy), in the state's precision
        (at least float32).

    Raises:
        NoPreconditioner: a trainable parameter has no usable Adam state.
    """
    parts = []
    for name, p in module.named_parameters():
        if p.requires_grad:
            parts.append(_param_scale(name, optimizer.state.get(p, {}), eps=eps, beta2=beta2, amsgrad=amsgrad))
    if not parts:
        raise NoPreconditioner("expected trainable parameters, got none")
    return torch.cat(parts)
