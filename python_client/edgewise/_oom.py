"""Out-of-memory recovery for the oracle's ops: halve the chunk size, retry the op once.

A round that runs out of memory (CUDA or CPU) in one op would otherwise be abandoned, and the
next round would try the same chunk size again. :class:`OomRetry` wraps an oracle's ``execute``:
after an out-of-memory error it halves the oracle's chunk size (samples per vmapped chunk),
frees the CUDA cache and runs the op once more; the smaller size stays on the oracle for later
ops and rounds, and :attr:`OomRetry.events` says what happened (the monitor puts it in the
report). The ops change the oracle's basis only after their products are computed, so an op
that failed for memory left nothing half done and can be rerun.

Example:
    >>> class Tiny:
    ...     chunk_size, last_chunk, probe_size = None, 8, 8
    ...     calls = 0
    ...     def execute(self, op, args):
    ...         self.calls += 1
    ...         if (self.chunk_size or 8) > 4:
    ...             raise MemoryError("no room")
    ...         return {"basis": 0, "hvps": 0}
    >>> guard = OomRetry(Tiny())
    >>> guard.execute("blocks", {})["basis"], guard.oracle.chunk_size, len(guard.events)
    (0, 4, 1)
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["OomRetry", "is_out_of_memory"]


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error (CUDA, CPU allocator, or Python's)."""
    if isinstance(exc, MemoryError):
        return True
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class OomRetry:
    """Wraps an oracle (anything with ``execute``, ``chunk_size``, ``last_chunk``, ``probe_size``).

    Every other attribute is the oracle's own.

    Args:
        oracle: the curvature oracle.
    """

    def __init__(self, oracle: Any) -> None:
        self.oracle = oracle
        self.events: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.oracle, name)

    def execute(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Runs the op; after an out-of-memory error halves the chunk size and retries once.

        Raises:
            Exception: the op's own error, or its second out-of-memory error (the chunk size is
                halved again first, so the next round starts smaller).
        """
        try:
            return self.oracle.execute(op, args)
        except Exception as exc:
            if not is_out_of_memory(exc) or not self._halve(op):
                raise
        try:
            return self.oracle.execute(op, args)
        except Exception as exc:
            if is_out_of_memory(exc):
                self._halve(op)
            raise

    def _halve(self, op: str) -> bool:
        """Halves the chunk size; False when it is already one sample."""
        used = self.oracle.chunk_size or self.oracle.last_chunk or self.oracle.probe_size
        used = min(int(used), int(self.oracle.probe_size))
        if used <= 1:
            return False
        self.oracle.chunk_size = used // 2
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.events.append(f"out of memory in {op}: chunk size {used} -> {used // 2} samples, op retried")
        return True
