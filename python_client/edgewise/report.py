"""The stability report of one estimation round, as the sidecar sends it (protocol/SPEC.md §5)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["StabilityReport"]


@dataclass(frozen=True)
class StabilityReport:
    """Where a run stands against the edge of mean-square stability at one round.

    Every number is optional: a report can be *missing* (the round was skipped because the
    sidecar was unreachable, slow or failed; ``missing`` is True and ``reason`` says why), and
    the sidecar omits what it could not compute. ``margin = lr / eta_star``: below 1 the run is
    mean-square stable at its batch size, above 1 its second moment grows near this point.

    With an optimizer model (``Monitor(optimizer=...)``, ``estimate(optimizer=...)``; SPEC §5,
    shared/docs/momentum.md) ``eta_star`` is the threshold of the run's own optimizer in units
    of its ``lr`` (for Adam the ``lr`` that multiplies ``P⁻¹m``), ``lambda_gen = 2 / eta_star``
    and ``margin = lr / eta_star`` keep their meaning, and ``optimizer`` says which dynamics
    (``kind``, ``name``, ``description``, ``assumed``); ``method`` how they were solved
    (``sgd``, ``pencil``, ``brent``); ``eta_star_sgd`` is plain SGD's threshold on the same
    probe, ``eta_star_full_batch`` the optimizer's deterministic threshold (``2(1+β)/λ_max``;
    Adam's ``38/λ_max(P⁻¹H)``-style value), ``eta_star_upper`` Nesterov's certified upper
    bound, ``naive`` the popular rescalings of SGD's threshold (``rescaled`` ``(1+β)·2/λ_gen``,
    ``effective_lr`` ``(1−β)·2/λ_gen``) and ``eta_star_by_momentum`` the threshold against β.

    Example:
        >>> r = StabilityReport.from_dict({"lambda_gen": 4.0, "eta_star": 0.5, "lr": 0.25,
        ...                                 "margin": 0.5, "future_field": 1})
        >>> r.eta_star, r.margin, r.extra["future_field"]
        (0.5, 0.5, 1)
        >>> StabilityReport.skipped("sidecar timed out").missing
        True
    """

    run: str | None = None
    round: int | None = None
    step: int | None = None
    epoch: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    n: int | None = None
    p: float | None = None
    m: int | None = None
    lambda_max: float | None = None
    lambda_gen: float | None = None
    eta_star: float | None = None
    eta_gd: float | None = None
    margin: float | None = None
    suggested_lr: float | None = None
    converged: bool | None = None
    residual: float | None = None
    basis_size: int | None = None
    hvps: float | None = None
    wall_ms: float | None = None
    time: float | None = None
    bounds: dict[str, float] = field(default_factory=dict)
    eta_star_by_batch: list[dict[str, float]] = field(default_factory=list)
    min_stable_batch: int | None = None
    ci: dict[str, float] = field(default_factory=dict)
    loss_floor: float | None = None
    loss_floor_leading: float | None = None
    grad_norm: float | None = None
    grad_norm_floor: float | None = None
    min_curvature: float | None = None
    stopped: str | None = None
    tol: float | None = None
    curvature: str | None = None
    operator_applications: int | None = None
    sidecar_ms: float | None = None
    optimizer: dict[str, Any] = field(default_factory=dict)
    method: str | None = None
    eta_star_sgd: float | None = None
    eta_star_full_batch: float | None = None
    eta_star_upper: float | None = None
    naive: dict[str, float] = field(default_factory=dict)
    eta_star_by_momentum: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    missing: bool = False
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StabilityReport":
        """Builds a report from the sidecar's map; unknown fields land in ``extra``."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names}
        return cls(**known, extra=extra)

    @classmethod
    def skipped(cls, reason: str, **context: Any) -> "StabilityReport":
        """A placeholder for a round that did not happen (monitoring never breaks training)."""
        return cls(missing=True, reason=reason, **context)

    @property
    def stable(self) -> bool | None:
        """True when the current lr is below the mean-square threshold, None if unknown."""
        if self.margin is None or math.isnan(self.margin):
            return None
        return self.margin < 1.0

    def to_dict(self) -> dict[str, Any]:
        """Flat dict for logging: the sidecar's fields plus ``missing`` / ``reason``."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "extra"}
        out.update(self.extra)
        return {k: v for k, v in out.items() if v is not None and v != [] and v != {}}

    def summary(self) -> str:
        """One readable line: sharpness, threshold, margin and what to do."""
        if self.missing:
            return f"edgewise: round skipped ({self.reason})"
        parts = []
        if self.lambda_max is not None:
            parts.append(f"λ_max {self.lambda_max:.4g}")
        if self.lambda_gen is not None:
            gen = f"λ_gen {self.lambda_gen:.4g}"
            lo, hi = self.ci.get("lambda_gen_lo"), self.ci.get("lambda_gen_hi")
            if lo is not None and hi is not None:
                gen += f" [{lo:.4g}, {hi:.4g}]"
            parts.append(gen)
        if self.eta_star is not None:
            parts.append(f"η* {self.eta_star:.4g}{self._optimizer_note()}")
        if self.lr is not None:
            parts.append(f"lr {self.lr:.4g}")
        if self.margin is not None:
            flag = "STABLE" if self.margin < 1 else "UNSTABLE"
            parts.append(f"margin {self.margin:.3f} ({flag})")
        if self.suggested_lr is not None:
            parts.append(f"suggested lr ≤ {self.suggested_lr:.4g}")
        if self.min_stable_batch is not None:
            parts.append(f"min stable B {self.min_stable_batch}")
        if self.converged is False:
            parts.append(f"(not converged: {self.stopped or 'budget'})")
        if self.curvature == "ggn_mc":
            parts.append("(Monte Carlo Gauss–Newton curvature)")
        return " | ".join(parts)

    def _optimizer_note(self) -> str:
        """`` (heavy ball (β = 0.9); full batch 3.15)``: the dynamics η* is for, briefly."""
        if not self.optimizer or self.optimizer.get("kind", "sgd") == "sgd" and not self.optimizer.get("assumed"):
            return ""
        label = self.optimizer.get("description") or self.optimizer.get("name") or self.optimizer.get("kind")
        if self.optimizer.get("assumed"):
            label = f"{self.optimizer.get('name', '?')} assumed plain SGD"
        if self.eta_star_full_batch is not None:
            label += f"; full batch {self.eta_star_full_batch:.4g}"
        return f" ({label})"
