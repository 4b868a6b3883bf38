"""Keep the learning rate below the mean-square stability edge that the monitor measures."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch

from .monitor import Monitor
from .report import StabilityReport

__all__ = ["StabilityLR", "LRChange"]


@dataclass(frozen=True)
class LRChange:
    """One learning-rate change and the report that caused it."""

    group: int
    old_lr: float
    new_lr: float
    report: StabilityReport


class StabilityLR:
    """Caps (or tracks) each param group's lr at ``safety · η*`` from the latest report.

    It listens to ``monitor``: every report that is not missing updates the limit
    ``safety · eta_star`` and applies it at once. In ``"cap"`` mode the lr the user asked for
    (set at construction or by another scheduler) is kept whenever it is below the limit; in
    ``"track"`` mode the lr follows the limit, up and down. Missing reports change nothing.

    Composing with another scheduler: call ``scheduler.step()`` first, then
    ``stability.step()``; a value set by the other scheduler is taken as the new request.
    Momentum: ``η*`` is derived for plain SGD; with heavy-ball momentum the cap is conservative
    only approximately (the monitor warns once).

    Args:
        optimizer: the optimizer whose param groups are controlled.
        monitor: the :class:`Monitor` producing reports.
        safety: fraction of ``η*`` to stay at or below (0 < safety ≤ 1).
        mode: ``"cap"`` or ``"track"``.
        min_lr: never set an lr below this.
        verbose: print each change.

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
        monitor: Monitor,
        *,
        safety: float = 0.9,
        mode: str = "cap",
        min_lr: float = 0.0,
        verbose: bool = True,
    ) -> None:
        if not 0 < safety <= 1:
            raise ValueError(f"expected 0 < safety <= 1, got {safety}")
        if mode not in ("cap", "track"):
            raise ValueError(f"expected mode 'cap' or 'track', got {mode!r}")
        self.optimizer = optimizer
        self.monitor = monitor
        self.safety = safety
        self.mode = mode
        self.min_lr = min_lr
        self.verbose = verbose
        self.changes: list[LRChange] = []
        self._requested = [float(g["lr"]) for g in optimizer.param_groups]
        self._applied = list(self._requested)
        self._limit: float | None = None
        self._report: StabilityReport | None = None
        monitor.add_listener(self._on_report)

    @property
    def limit(self) -> float | None:
        """The current lr limit ``safety · η*`` (None before the first report)."""
        return self._limit

    def step(self) -> None:
        """Re-applies the limit, taking lrs changed by another scheduler as new requests."""
        for i, group in enumerate(self.optimizer.param_groups):
            if float(group["lr"]) != self._applied[i]:
                self._requested[i] = float(group["lr"])
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to resume the same control."""
        return {"requested": list(self._requested), "applied": list(self._applied), "limit": self._limit}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        self._requested = list(state["requested"])
        self._applied = list(state["applied"])
        self._limit = state["limit"]

    def _on_report(self, report: StabilityReport) -> None:
        if report.missing or report.eta_star is None or not report.eta_star > 0:
            return
        self._limit = self.safety * float(report.eta_star)
        self._report = report
        self.step()

    def _apply(self) -> None:
        if self._limit is None:
            return
        for i, group in enumerate(self.optimizer.param_groups):
            if self.mode == "cap":
                target = min(self._requested[i], self._limit)
            else:
                target = self._limit
            target = max(target, self.min_lr)
            old = float(group["lr"])
            if target != old:
                group["lr"] = target
                assert self._report is not None
                change = LRChange(i, old, target, self._report)
                self.changes.append(change)
                if self.verbose:
                    print(
                        f"edgewise: lr {old:.4g} -> {target:.4g} (group {i}; {self.safety:g}·η* = "
                        f"{self._limit:.4g}, η* = {self._report.eta_star:.4g}, margin was "
                        f"{(old / self._report.eta_star):.3f})",
                        file=sys.stdout,
                        flush=True,
                    )
            self._applied[i] = float(group["lr"])
