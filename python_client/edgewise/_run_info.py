"""What the sidecar is told about a run (``hello.run``) and about a round (``round.options``)."""

from __future__ import annotations

from typing import Any

import torch


def run_metadata(model: torch.nn.Module, *, run_id: str, name: str, probe_size: int, n: int,
                 batch_size: int, curvature: str, outputs: int) -> dict[str, Any]:
    """The ``run`` map of SPEC §3's ``hello``: ``params`` counts trainable parameters only;
    ``outputs`` is the number of rows of each per-sample factor (the oracle's ``outputs``)."""
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
        "outputs": int(outputs),
        "dtype": "f64" if dtype == torch.float64 else "f32",
        "model": type(model).__name__,
    }


def round_options(*, seed: int, tol: float | None = None, batch_grid: list[int] | None = None,
                  max_basis: int | None = None, bootstrap: int | None = None, exact: bool = False,
                  bounds: list[str] | None = None, optimizer: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``options`` map of a ``round``: only what the user set; options left as None take
    the sidecar's defaults (no ``tol``: the sidecar's automatic live tolerance, a fraction of
    the bootstrap half-width; ``exact``: a checkpoint solve with tight tolerances; no
    ``optimizer``: plain SGD)."""
    options: dict[str, Any] = {"seed": seed}
    if tol is not None:
        options["tol"] = float(tol)
    if exact:
        options["exact"] = True
    if bounds is not None:
        options["bounds"] = [str(b) for b in bounds]
    if batch_grid is not None:
        options["batch_grid"] = [int(b) for b in batch_grid]
    if max_basis is not None:
        options["max_basis"] = int(max_basis)
    if bootstrap is not None:
        options["bootstrap"] = int(bootstrap)
    if optimizer is not None:
        options["optimizer"] = dict(optimizer)
    return options
