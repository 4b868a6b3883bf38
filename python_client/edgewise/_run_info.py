"""What the sidecar is told about a run (``hello.run``) and about a round (``round.options``)."""

from __future__ import annotations

from typing import Any

import torch


def run_metadata(model: torch.nn.Module, *, run_id: str, name: str, probe_size: int, n: int,
                 batch_size: int, curvature: str) -> dict[str, Any]:
    """The ``run`` map of SPEC §3's ``hello``: ``params`` counts trainable parameters only."""
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    dtype = next(model.parameters()).dtype
    return {
        "id": run_id,
        "name": name,
        "params": int(params),
        "probe": int(probe_size),
        "n": int(n),
        "batch_size": int(batch_size),
        "curvature": curvature,
        "dtype": "f64" if dtype == torch.float64 else "f32",
        "model": type(model).__name__,
    }


def round_options(*, tol: float, seed: int, batch_grid: list[int] | None = None,
                  max_basis: int | None = None, bootstrap: int | None = None) -> dict[str, Any]:
    """The ``options`` map of a ``round``; options left as None take the sidecar's defaults."""
    options: dict[str, Any] = {"tol": tol, "seed": seed}
    if batch_grid is not None:
        options["batch_grid"] = [int(b) for b in batch_grid]
    if max_basis is not None:
        options["max_basis"] = int(max_basis)
    if bootstrap is not None:
        options["bootstrap"] = int(bootstrap)
    return options
