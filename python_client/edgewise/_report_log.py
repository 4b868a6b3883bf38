"""Where reports go besides the caller: JSONL, CSV, TensorBoard scalars and the console."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from .report import StabilityReport

# Columns of the CSV log, in order. Nested fields are flattened (ci_lambda_gen_lo, ...).
CSV_COLUMNS = (
    "run", "round", "step", "epoch", "lr", "batch_size", "n", "p", "m",
    "lambda_max", "lambda_gen", "ci_lambda_gen_lo", "ci_lambda_gen_hi",
    "eta_star", "eta_gd", "margin", "suggested_lr", "min_stable_batch",
    "bounds_top_eigvec", "bounds_identity", "bounds_rank_one",
    "loss_floor", "grad_norm", "min_curvature", "converged", "stopped",
    "basis_size", "hvps", "wall_ms", "missing", "reason",
)

_SCALARS = ("lambda_max", "lambda_gen", "eta_star", "margin", "lr", "suggested_lr")


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
    """Appends one line per round to JSONL and CSV files, and scalars to TensorBoard.

    Every write is flushed, so a crashed training run keeps every round it logged. Logging
    failures (a full disk, a missing tensorboard) warn once and never reach the training loop.

    Args:
        directory: folder for ``edgewise.jsonl`` and ``edgewise.csv``; None logs nowhere.
        tensorboard: True to write scalars with ``torch.utils.tensorboard`` (needs the
            ``tensorboard`` package), "auto" to do so when it is installed.
    """

    def __init__(self, directory: str | os.PathLike | None, *, tensorboard: bool | str = "auto"):
        self.directory = Path(directory) if directory is not None else None
        self._jsonl: IO[str] | None = None
        self._csv: IO[str] | None = None
        self._csv_writer: csv.DictWriter | None = None
        self._tb = None
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
        except Exception as exc:  # never break training for a log line
            if not self._warned:
                print(f"edgewise: logging failed ({exc}); further log errors are silent", file=sys.stderr)
                self._warned = True

    def close(self) -> None:
        """Closes the files (idempotent)."""
        for handle in (self._jsonl, self._csv):
            if handle is not None:
                handle.close()
        if self._tb is not None:
            self._tb.close()
        self._jsonl = self._csv = self._csv_writer = self._tb = None
