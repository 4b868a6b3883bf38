"""The numbers of a report that the integrations hand to their frameworks' loggers."""

from __future__ import annotations

import math

from ..report import StabilityReport

#: Report fields logged as scalars, in this order.
SCALARS = ("lambda_max", "lambda_gen", "eta_star", "margin", "suggested_lr", "min_stable_batch")


def report_metrics(report: StabilityReport, prefix: str = "edgewise/") -> dict[str, float]:
    """``{prefix + field: value}`` for the finite scalars of ``report``; empty when it is missing.

    Example:
        >>> report_metrics(StabilityReport(lambda_gen=4.0, eta_star=0.5, lr=0.1, margin=0.2))
        {'edgewise/lambda_gen': 4.0, 'edgewise/eta_star': 0.5, 'edgewise/margin': 0.2}
    """
    if report.missing:
        return {}
    out = {}
    for name in SCALARS:
        value = getattr(report, name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[prefix + name] = float(value)
    return out
