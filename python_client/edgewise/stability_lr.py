"""Keep the learning rate below the mean-square stability edge that the monitor measures."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from .monitor import Monitor
from .report import StabilityReport

log = logging.getLogger("edgewise")

__all__ = ["StabilityLR", "LRChange"]


@dataclass(frozen=True)
class LRChange:
    """One learning-rate change and the report that caused it."""

    group: int
    old_lr: float
    new_lr: float
    report: StabilityReport


class StabilityLR(LRScheduler):
    """Caps (or tracks) each param group's lr at ``safety · η*`` from the latest report.

    A ``torch.optim.lr_scheduler.LRScheduler``: ``get_last_lr()``, ``last_epoch``,
    ``state_dict()`` behave as for any scheduler, so it goes into Lightning's
    ``configure_optimizers`` and into ``ChainedScheduler`` / ``SequentialLR``. It listens to a
    :class:`Monitor` (given here or later through :meth:`attach`): every report that is not
    missing sets the limit ``safety · eta_star`` and applies it at once, without counting a
    step. In ``"cap"`` mode the lr the user asked for (set at construction or by another
    scheduler) is kept whenever it is below the limit; in ``"track"`` mode the lr follows the
    limit, up and down. Missing reports change nothing.

    Composing with another scheduler: step it first, then this one (``ChainedScheduler([other,
    stability])`` does that); a value set by the other scheduler is taken as the new request.
    Optimizers: with ``Monitor(optimizer=opt)`` the report's ``η*`` is the threshold of that
    optimizer's dynamics (momentum, Nesterov, Adam/AdamW with a frozen preconditioner) in units
    of its own ``lr`` (for Adam the ``lr`` that multiplies ``P⁻¹m``), so the cap applies to the
    lr the optimizer actually uses. Without the optimizer given to the monitor, ``η*`` is plain
    SGD's.

    Args:
        optimizer: the optimizer whose param groups are controlled.
        monitor: the :class:`Monitor` producing reports; None to :meth:`attach` one later (the
            Lightning callback does, for a scheduler made in ``configure_optimizers``).
        safety: fraction of ``η*`` to stay at or below (0 < safety ≤ 1).
        mode: ``"cap"`` or ``"track"``.
        min_lr: never set an lr below this.
        verbose: log each change at INFO on the ``edgewise`` logger (DEBUG when False).
        last_epoch: as for every scheduler (-1: a fresh start).

    Example::

        monitor = edgewise.Monitor(model, loss_fn, train_data=data, loader=loader, optimizer=opt)
        stability = edgewise.StabilityLR(opt, monitor, safety=0.9)
        for epoch in range(epochs):
            train_one_epoch()
            monitor.end_epoch(epoch)        # the cap is applied when the report arrives
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        monitor: Monitor | None = None,
        *,
        safety: float = 0.9,
        mode: str = "cap",
        min_lr: float = 0.0,
        verbose: bool = True,
        last_epoch: int = -1,
    ) -> None:
        if not 0 < safety <= 1:
            raise ValueError(f"expected 0 < safety <= 1, got {safety}")
        if mode not in ("cap", "track"):
            raise ValueError(f"expected mode 'cap' or 'track', got {mode!r}")
        self.safety = safety
        self.mode = mode
        self.min_lr = min_lr
        self.verbose = verbose
        self.changes: list[LRChange] = []
        self.monitor: Monitor | None = None
        self._requested = [float(g["lr"]) for g in optimizer.param_groups]
        self._applied = list(self._requested)
        self._limit: float | None = None
        self._report: StabilityReport | None = None
        super().__init__(optimizer, last_epoch)
        if monitor is not None:
            self.attach(monitor)

    def attach(self, monitor: Monitor) -> None:
        """Starts listening to ``monitor``'s reports (once per monitor)."""
        if self.monitor is not monitor:
            self.monitor = monitor
            monitor.add_listener(self._on_report)

    @property
    def limit(self) -> float | None:
        """The current lr limit ``safety · η*`` (None before the first report)."""
        return self._limit

    def get_lr(self) -> list[float]:
        """This step's lrs: each group's request (its lr, if another scheduler changed it), capped
        at (``"cap"``) or replaced by (``"track"``) the limit."""
        for i, group in enumerate(self.optimizer.param_groups):
            if float(group["lr"]) != self._applied[i]:
                self._requested[i] = float(group["lr"])
        return self._targets()

    def _get_closed_form_lr(self) -> list[float]:
        """A restart (``SequentialLR`` handing over at a milestone): the requests go back to the
        base lrs, as every scheduler with a closed form starts from them."""
        self._requested = [float(lr) for lr in self.base_lrs]
        return self._targets()

    def _targets(self) -> list[float]:
        if self._limit is None:
            targets = list(self._requested)
        elif self.mode == "cap":
            targets = [max(min(r, self._limit), self.min_lr) for r in self._requested]
        else:
            targets = [max(self._limit, self.min_lr) for _ in self._requested]
        self._record_changes(targets)
        self._applied = list(targets)
        return targets

    def state_dict(self) -> dict[str, Any]:
        """Plain numbers only (no monitor, no reports), so any checkpoint loader accepts it."""
        keys = ("last_epoch", "base_lrs", "_last_lr", "_step_count", "safety", "mode", "min_lr")
        state = {k: self.__dict__[k] for k in keys if k in self.__dict__}
        return state | {"requested": list(self._requested), "applied": list(self._applied), "limit": self._limit}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        state = dict(state)
        self._requested = list(state.pop("requested"))
        self._applied = list(state.pop("applied"))
        self._limit = state.pop("limit")
        self.__dict__.update(state)

    def _on_report(self, report: StabilityReport) -> None:
        if report.missing or report.eta_star is None or not report.eta_star > 0:
            return
        self._limit = self.safety * float(report.eta_star)
        self._report = report
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr  # applied now; last_epoch counts the training's steps only
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def _record_changes(self, targets: list[float]) -> None:
        if self._report is None:
            return
        for i, (group, target) in enumerate(zip(self.optimizer.param_groups, targets)):
            old = float(group["lr"])
            if target == old:
                continue
            change = LRChange(i, old, target, self._report)
            self.changes.append(change)
            log.log(
                logging.INFO if self.verbose else logging.DEBUG,
                "lr %.4g -> %.4g (group %d; %g·η* = %.4g, η* = %.4g, margin was %.3f)",
                old, target, i, self.safety, self._limit, self._report.eta_star, old / self._report.eta_star,
            )
