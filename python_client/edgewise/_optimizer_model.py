"""Which linearised dynamics the threshold is for: a torch optimizer read as SPEC's ``options.optimizer``.

The sidecar computes the exact mean-square threshold of plain SGD, SGD with (damped) heavy-ball
momentum, Nesterov, and Adam/AdamW with a frozen preconditioner (shared/docs/momentum.md §1, §5).
This module reads the user's optimizer once per round (its first param group) into that model:

- ``SGD(momentum=β, dampening=τ, nesterov, weight_decay=ω)``: kind ``sgd`` (β = 0),
  ``heavy_ball`` (with ``dampening``) or ``nesterov``; ``ω`` is coupled decay, ``l2``.
- ``Adam`` / ``AdamW`` (``betas``, ``eps``, ``weight_decay``, ``amsgrad``): kind ``adam`` with
  ``beta1``; AdamW's (or ``Adam(decoupled_weight_decay=True)``'s) ``weight_decay`` is
  ``decoupled_decay`` (θ ← (1 − ηω)θ), Adam's is coupled ``l2``. ``beta2``, ``eps`` and
  ``amsgrad`` never travel: they define the preconditioner the client applies itself
  (:mod:`edgewise._preconditioner`).
- Anything else: kind ``sgd`` with ``assumed: true`` (the report then says, once, that the
  threshold assumes plain SGD).

Param groups whose hyper-parameters differ from group 0's: group 0 is used and :func:`read_optimizer`
returns a note saying so (the caller warns once).

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(3))
    >>> model, note = read_optimizer(torch.optim.SGD([w], lr=0.1, momentum=0.9))
    >>> model.wire()
    {'kind': 'heavy_ball', 'momentum': 0.9, 'name': 'SGD', 'assumed': False}
    >>> read_optimizer(torch.optim.AdamW([w], lr=1e-3))[0].wire()
    {'kind': 'adam', 'beta1': 0.9, 'decoupled_decay': 0.01, 'name': 'AdamW', 'assumed': False}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["OptimizerModel", "OptimizerSnapshot", "read_optimizer", "snapshot", "PLAIN_SGD"]

#: SPEC caps ``options.optimizer.name`` at 64 characters.
_NAME_CAP = 64

#: Hyper-parameters that decide the model; param groups differing in one of these get a note.
_COMPARED = ("lr", "momentum", "dampening", "nesterov", "weight_decay", "betas", "eps", "amsgrad",
             "decoupled_weight_decay")


@dataclass(frozen=True)
class OptimizerModel:
    """The linearised optimizer a threshold is computed for.

    Attributes:
        kind: ``"sgd"``, ``"heavy_ball"``, ``"nesterov"`` or ``"adam"``.
        name: The torch class name (display only).
        momentum: β of heavy ball / Nesterov.
        dampening: τ of heavy ball (``SGD(dampening=τ)``).
        beta1: Adam's ``betas[0]``.
        decoupled_decay: AdamW's ``weight_decay`` ω.
        l2: Coupled weight decay (the dynamics see ``H_i + ωI``).
        assumed: The optimizer is none of these; the threshold assumes plain SGD.
        beta2, eps, amsgrad: Adam's preconditioner ``P = diag(sqrt(v̂) + eps)`` (client side).
    """

    kind: str
    name: str
    momentum: float = 0.0
    dampening: float = 0.0
    beta1: float = 0.0
    decoupled_decay: float = 0.0
    l2: float = 0.0
    assumed: bool = False
    beta2: float = 0.0
    eps: float = 0.0
    amsgrad: bool = False

    @property
    def preconditioned(self) -> bool:
        """Whether the client applies Adam's ``P^{-1/2}`` inside its products."""
        return self.kind == "adam"

    @property
    def round_momentum(self) -> float:
        """The heavy-ball normal form's β, sent as ``round.momentum`` (β₁ for Adam, 0 for SGD)."""
        return self.beta1 if self.kind == "adam" else self.momentum

    def wire(self) -> dict[str, Any]:
        """SPEC ``round.options.optimizer``: only the fields of this kind (zeros left out), plus
        ``name`` and ``assumed``."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind in ("heavy_ball", "nesterov"):
            out["momentum"] = self.momentum
        if self.kind == "heavy_ball" and self.dampening:
            out["dampening"] = self.dampening
        if self.kind == "adam":
            out["beta1"] = self.beta1
            if self.decoupled_decay:
                out["decoupled_decay"] = self.decoupled_decay
        if self.l2:
            out["l2"] = self.l2
        out["name"] = self.name[:_NAME_CAP]
        out["assumed"] = self.assumed
        return out

    def describe(self) -> str:
        """A short human label, e.g. ``"SGD heavy ball β=0.9"`` (the console line)."""
        if self.assumed:
            return f"{self.name} (modelled as plain SGD)"
        if self.kind == "heavy_ball":
            damp = f", τ={self.dampening:g}" if self.dampening else ""
            return f"{self.name} heavy ball β={self.momentum:g}{damp}"
        if self.kind == "nesterov":
            return f"{self.name} Nesterov β={self.momentum:g}"
        if self.kind == "adam":
            decay = f", ω={self.decoupled_decay:g}" if self.decoupled_decay else ""
            return f"{self.name} β₁={self.beta1:g}{decay}, frozen P"
        return self.name


#: What a run without an optimizer is modelled as (and what the wire's absence means).
PLAIN_SGD = OptimizerModel(kind="sgd", name="SGD")


def _number(group: dict[str, Any], key: str, default: float = 0.0) -> float:
    value = group.get(key, default)
    value = default if value is None else value
    return float(value.item() if isinstance(value, torch.Tensor) else value)


def _sgd(group: dict[str, Any], name: str) -> OptimizerModel:
    beta = _number(group, "momentum")
    l2 = _number(group, "weight_decay")
    if beta == 0:
        return OptimizerModel(kind="sgd", name=name, l2=l2)
    if group.get("nesterov", False):
        return OptimizerModel(kind="nesterov", name=name, momentum=beta, l2=l2)
    return OptimizerModel(kind="heavy_ball", name=name, momentum=beta, dampening=_number(group, "dampening"), l2=l2)


def _adam(optimizer: torch.optim.Optimizer, group: dict[str, Any], name: str) -> OptimizerModel:
    beta1, beta2 = (float(b.item() if isinstance(b, torch.Tensor) else b) for b in group["betas"])
    decay = _number(group, "weight_decay")
    decoupled = isinstance(optimizer, torch.optim.AdamW) or bool(group.get("decoupled_weight_decay", False))
    return OptimizerModel(kind="adam", name=name, beta1=beta1, beta2=beta2, eps=_number(group, "eps"),
                          amsgrad=bool(group.get("amsgrad", False)),
                          decoupled_decay=decay if decoupled else 0.0, l2=0.0 if decoupled else decay)


def _groups_differ(optimizer: torch.optim.Optimizer) -> list[str]:
    first = optimizer.param_groups[0]
    return sorted({key for group in optimizer.param_groups[1:] for key in _COMPARED
                   if key in first and group.get(key) != first.get(key)})


def unwrap(optimizer: Any) -> Any:
    """The torch optimizer inside a wrapper (accelerate's ``.optimizer``, Lightning's ``._optimizer``)."""
    for _ in range(4):
        inner = next((getattr(optimizer, a) for a in ("optimizer", "_optimizer")
                      if isinstance(getattr(optimizer, a, None), torch.optim.Optimizer)), None)
        if inner is None or inner is optimizer:
            break
        optimizer = inner
    return optimizer


def read_optimizer(optimizer: torch.optim.Optimizer | None) -> tuple[OptimizerModel, str | None]:
    """The model of ``optimizer`` (from param group 0), and a note when other groups differ.

    Args:
        optimizer: A torch optimizer, or None (plain SGD, nothing sent).

    Returns:
        ``(model, note)``; ``note`` names the hyper-parameters in which later param groups differ
        from group 0 (None when they all agree).

    Raises:
        TypeError: ``optimizer`` has no ``param_groups``.
    """
    if optimizer is None:
        return PLAIN_SGD, None
    optimizer = unwrap(optimizer)
    groups = getattr(optimizer, "param_groups", None)
    if not groups:
        raise TypeError(f"expected a torch optimizer with param_groups, got {type(optimizer).__name__}")
    name = type(optimizer).__name__
    group = groups[0]
    if isinstance(optimizer, torch.optim.SGD):
        model = _sgd(group, name)
    elif isinstance(optimizer, torch.optim.Adam):  # AdamW subclasses Adam
        model = _adam(optimizer, group, name)
    else:
        model = OptimizerModel(kind="sgd", name=name, assumed=True)
    differ = _groups_differ(optimizer)
    note = None
    if differ:
        note = (f"{name} has {len(groups)} param groups differing in {', '.join(differ)}: the threshold"
                " models param group 0 only")
    return model, note


@dataclass(frozen=True)
class OptimizerSnapshot:
    """What a round needs from the optimizer, read on the training thread when it is scheduled.

    Attributes:
        model: The optimizer model (``model.wire()`` is ``options.optimizer``).
        note: Param groups differ from group 0 (warn once), or None.
        scale: Adam's frozen ``P^{-1/2}`` (``d``, the oracle's parameter order), or None.
    """

    model: OptimizerModel
    note: str | None
    scale: torch.Tensor | None


def snapshot(optimizer: torch.optim.Optimizer, module: torch.nn.Module) -> OptimizerSnapshot:
    """Reads ``optimizer`` for a round on ``module`` (the user's model, whose parameters key its state).

    Raises:
        edgewise._preconditioner.NoPreconditioner: Adam has no second-moment state yet.
        TypeError: not an optimizer.
    """
    from ._preconditioner import adam_scale

    optimizer = unwrap(optimizer)
    model, note = read_optimizer(optimizer)
    scale = None
    if model.preconditioned:
        scale = adam_scale(module, optimizer, eps=model.eps, beta2=model.beta2, amsgrad=model.amsgrad)
    return OptimizerSnapshot(model, note, scale)
