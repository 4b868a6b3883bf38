"""Where reports go besides the caller: JSONL, CSV, TensorBoard scalars and Weights & Biases."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import IO, Any

from ._console import log
from .report import StabilityReport

# Columns of the CSV log, in order. Nested fields are flattened (ci_lambda_gen_lo, ...).
CSV_COLUMNS = (
    "run", "round", "step", "epoch", "lr", "batch_size", "n", "p", "m",
    "lambda_max", "lambda_gen", "ci_lambda_gen_lo", "ci_lambda_gen_hi",
    "eta_star", "eta_gd", "margin", "suggested_lr", "min_stable_batch",
    "bounds_top_eigvec", "bounds_identity", "bounds_rank_one",
    "loss_floor", "grad_norm", "min_curvature", "converged", "stopped",
    "basis_size", "hvps", "wall_ms", "missing", "reason",
    "optimizer_kind", "optimizer_name", "eta_star_sgd", "eta_star_full_batch",
)

_SCALARS = ("lambda_max", "lambda_gen", "eta_star", "margin", "lr", "suggested_lr", "eta_star_sgd",
            "eta_star_full_batch")


def flatten(report: StabilityReport) -> dict[str, Any]:
    """Flattens nested report fields into ``parent_child`` columns for CSV and TensorBoard."""
    flat: dict[str, Any] = {}
    for key, value in report.to_dict().items():
        if isinstance(value, dict):
            for sub, v in value.items():
                flat[f"{key}_{sub}"] = v
        elif not isinstance(value, list):
            flat[key] = value
    flat["missing"] = report.missing
    return flat


class ReportLog:
    """Appends one line per round to JSONL and CSV files, and scalars to TensorBoard and W&B.

    Every write is flushed, so a crashed training run keeps every round it logged. Logging
    failures (a full disk, a missing tensorboard) warn once and never reach the training loop.

    Args:
        directory: folder for ``edgewise.jsonl``, ``edgewise.csv`` and ``tensorboard/``; None
            writes no files.
        tensorboard: True to write scalars with ``torch.utils.tensorboard`` (needs the
            ``tensorboard`` package), "auto" to do so when it is installed.
        wandb: a W&B run (``wandb.init(...)``), or True for the active ``wandb.run``: each
            round logs ``edgewise/<name>`` scalars with ``edgewise/step`` (the training step)
            as their x-axis (``define_metric``), so they plot against training whatever W&B's
            own step counter says.
    """

    def __init__(self, directory: str | os.PathLike | None, *, tensorboard: bool | str = "auto", wandb: Any = None):
        self.directory = Path(directory) if directory is not None else None
        self._jsonl: IO[str] | None = None
        self._csv: IO[str] | None = None
        self._csv_writer: csv.DictWriter | None = None
        self._tb = None
        self._wandb = _wandb_run(wandb)
        self._warned = False
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.directory / "edgewise.jsonl"
        self.csv_path = self.directory / "edgewise.csv"
        self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")
        new_csv = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
        self._csv = open(self.csv_path, "a", encoding="utf-8", newline="")
        self._csv_writer = csv.DictWriter(self._csv, CSV_COLUMNS, extrasaction="ignore")
        if new_csv:
            self._csv_writer.writeheader()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # type: ignore

                self._tb = SummaryWriter(str(self.directory / "tensorboard"))
            except Exception as exc:  # tensorboard not installed
                if tensorboard is True:
                    raise ImportError("tensorboard logging needs `pip install tensorboard`") from exc

    def write(self, report: StabilityReport) -> None:
        """Logs one report; never raises."""
        try:
            if self._jsonl is not None:
                self._jsonl.write(json.dumps(report.to_dict() | {"missing": report.missing}) + "\n")
                self._jsonl.flush()
            if self._csv_writer is not None and self._csv is not None:
                self._csv_writer.writerow(flatten(report))
                self._csv.flush()
            if self._tb is not None and not report.missing:
                step = report.step if report.step is not None else report.round or 0
                for name in _SCALARS:
                    value = getattr(report, name)
                    if value is not None:
                        self._tb.add_scalar(f"edgewise/{name}", value, step)
                self._tb.flush()
            if self._wandb is not None and not report.missing:
                self._wandb.log(wandb_row(report))
        except Exception as exc:  # never break training for a log line
            if not self._warned:
                log.warning("logging failed (%s); further log errors are silent", exc)
                self._warned = True

    def close(self) -> None:
        """Closes the files (idempotent)."""
        for handle in (self._jsonl, self._csv):
            if handle is not None:
                handle.close()
        if self._tb is not None:
            self._tb.close()
        self._jsonl = self._csv = self._csv_writer = self._tb = self._wandb = None  # the W&B run is the user's


def wandb_row(report: StabilityReport) -> dict[str, float]:
    """``edgewise/<name>`` scalars of ``report`` and ``edgewise/step``, their x-axis."""
    step = report.step if report.step is not None else report.round or 0
    row = {f"edgewise/{name}": float(getattr(report, name)) for name in _SCALARS if getattr(report, name) is not None}
    return row | {"edgewise/step": step}


def _wandb_run(wandb: Any) -> Any:
    """The run to log to (None: no W&B), with the ``edgewise/*`` metrics defined on it."""
    if wandb is None or wandb is False:
        return None
    if wandb is True:
        import wandb as wandb_module  # noqa: PLC0415  (optional dependency)

        wandb = wandb_module.run
        if wandb is None:
            raise ValueError("expected an active W&B run for wandb=True; call wandb.init() first or pass the run")
    wandb.define_metric("edgewise/step")
    wandb.define_metric("edgewise/*", step_metric="edgewise/step")
    return wandb
