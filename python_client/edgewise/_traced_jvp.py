"""When a round's JVP columns come from one trace of the forward-mode product (``torch.func.linearize``).

``linearize`` runs the model once, traces its JVP and folds everything that depends only on the
parameters (activations, ReLU masks, normalisations) into constants; each column then runs only
the tangent half of the product. Measured on the project's 2-core CPU, the same numbers to the
last digit: ResNet-18 (d = 11.2M, float32) at m = 128, a column 1.5–1.8 → 0.5–0.8 training steps
after a setup of about 2.7 steps; at m = 32, 3.4–3.8 → 0.6–0.7 steps after about 4.5. On the main
example's MLP (d = 25k) the setup, 40–200 ms of Python tracing (1 s the first time in a process),
is worth more columns than a round uses.

So the choice is a ski rental: a round's columns run as plain forward-mode products until they
have cost what the setup is expected to cost, then the round traces once. In hindsight that is
never more than about twice the cheaper of the two pure choices. The expected setup is the last
measured one (the same model and probe from round to round); before any, a guess from the first
column's time (the trace itself evaluates one product and the model's forward).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

from torch.func import linearize

#: Before any measured setup: it is expected to cost this many plain columns ...
FIRST_GUESS_COLUMNS = 2.0
#: ... plus this many seconds (tracing's Python work and first-time imports).
FIRST_GUESS_S = 0.5


class JvpTracing:
    """What tracing the JVP cost, kept by the oracle across rounds, and whether it failed."""

    def __init__(self) -> None:
        self.setup_s: float | None = None
        self.failure: str | None = None
        self.traces = 0

    def worth_tracing(self, plain_s: float, first_column_s: float) -> bool:
        """Trace now, after ``plain_s`` seconds of plain columns in this round (the first took
        ``first_column_s``)?"""
        if self.failure is not None:
            return False
        expected = self.setup_s if self.setup_s is not None else FIRST_GUESS_COLUMNS * first_column_s + FIRST_GUESS_S
        return plain_s >= expected

    def trace(self, forward: Callable[[Any], Any], params: Any) -> Callable[[Any], Any] | None:
        """The traced tangent map of ``forward`` at ``params``; None (and plain products from then
        on) when the model cannot be traced, e.g. Python control flow on tensor values."""
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # torch's constant folding warns about the get_attr nodes it creates itself
                warnings.simplefilter("ignore", UserWarning)
                _, tangent_map = linearize(forward, params)
        except Exception as e:  # noqa: BLE001 — any failure leaves the plain products, which work
            self.failure = f"{type(e).__name__}: {e}"
            return None
        self.setup_s = time.perf_counter() - t0
        self.traces += 1
        return tangent_map
