"""The console: the ``edgewise`` logger, and a tqdm bar while the first (cold) round runs.

Summaries and lr changes go through ``logging`` (logger ``"edgewise"``), so a training
framework's progress bars and log configuration decide where they appear. When the program
has configured no logging at all, the logger gets its own stderr handler at INFO (as Lightning
does for ``lightning.pytorch``), so a plain script still sees its summaries; configure
``logging`` (or ``logging.getLogger("edgewise").setLevel(...)``) to change that.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger("edgewise")


def _default_handler() -> None:
    if logging.root.handlers or log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


_default_handler()


class RoundProgress:
    """Forwards oracle calls; on a terminal, the first round (the cold one, which grows the
    basis from nothing) shows a tqdm bar of oracle ops, HVP-equivalents and the basis size.
    Later rounds are warm and short, and show nothing."""

    def __init__(self, oracle: Any, round_index: int, live: bool) -> None:
        self._oracle = oracle
        self._hvps = 0.0
        self._bar = None
        if live and round_index == 0:
            from tqdm.auto import tqdm

            self._bar = tqdm(desc="edgewise: first round", unit="op", leave=False, file=sys.stderr, disable=None)

    @property
    def basis_size(self) -> int:
        return self._oracle.basis_size

    def __getattr__(self, name: str) -> Any:
        return getattr(self._oracle, name)

    def execute(self, op: str, args: dict) -> dict:
        result = self._oracle.execute(op, args)
        if self._bar is not None:
            m = max(1, int(getattr(self._oracle, "probe_size", 1)))
            self._hvps += float(result.get("hvps", 0)) / m
            self._bar.set_postfix(hvp_eq=f"{self._hvps:.0f}", basis=result.get("basis", "?"), refresh=False)
            self._bar.update(1)
        return result

    def done(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
