"""Rounds in the background: a private copy of the model and one worker thread per monitor.

A background round must not touch the user's module while training runs: ``functional_call``
swaps a module's parameters for the duration of a call and the oracle flips ``training`` flags
(eval mode), so sharing the live module with a second thread would corrupt the training step.
The monitor therefore evaluates a :class:`ShadowModel` (a deep copy made once, whose parameters
and buffers are refreshed in place at each round start, on the training thread, under
``no_grad``: one device copy per tensor) and runs the round on a :class:`RoundWorker` thread,
which owns the sidecar client for the monitor's whole life (the client is not thread-safe).

On CUDA the worker runs the oracle on its own stream, which first waits for the copy made on
the training stream, so the round's kernels overlap the training step instead of queueing
behind it.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(2, 1)
    >>> shadow = ShadowModel(model)
    >>> with torch.no_grad():
    ...     _ = model.weight.add_(1.0)
    >>> shadow.sync(model)
    >>> bool(torch.equal(shadow.module.weight, model.weight))
    True
    >>> worker = RoundWorker("demo")
    >>> worker.submit(lambda: 6 * 7)
    True
    >>> worker.wait(5.0)
    (True, 42)
    >>> worker.close(1.0)
    True
"""

from __future__ import annotations

import contextlib
import copy
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["ShadowModel", "RoundWorker", "oracle_stream"]


class ShadowModel:
    """A private copy of the user's module, refreshed in place at each round start.

    Args:
        model: the user's module; deep-copied once (parameters, buffers, submodules).

    Raises:
        TypeError: the module cannot be deep-copied (the monitor then runs rounds blocking).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        try:
            self.module = copy.deepcopy(model)
        except Exception as exc:  # e.g. modules holding locks, file handles or generators
            raise TypeError(f"expected a module that copy.deepcopy can copy, got {type(exc).__name__}: {exc}") from exc
        for p in self.module.parameters():
            p.grad = None  # the copy never trains; do not keep a second set of gradients
        self._event: Any = None

    def sync(self, model: torch.nn.Module) -> None:
        """Copies ``model``'s parameters, buffers and ``requires_grad`` flags into the copy.

        Called on the training thread (cheap: one in-place copy per tensor). A model whose
        parameter names or shapes changed since the copy was made is copied anew.
        """
        ours = dict(self.module.named_parameters())
        theirs = dict(model.named_parameters())
        our_bufs = dict(self.module.named_buffers())
        their_bufs = dict(model.named_buffers())
        if not _same_layout(ours, theirs) or not _same_layout(our_bufs, their_bufs):
            self.__init__(model)  # type: ignore[misc]
            return
        with torch.no_grad():
            for name, p in theirs.items():
                ours[name].copy_(p)
                ours[name].requires_grad_(p.requires_grad)
            for name, b in their_bufs.items():
                our_bufs[name].copy_(b)
        first = next(iter(theirs.values()), None)
        self._event = None
        if first is not None and first.is_cuda:
            self._event = torch.cuda.Event()
            self._event.record(torch.cuda.current_stream(first.device))

    @property
    def ready_event(self) -> Any:
        """The CUDA event recorded after the last :meth:`sync` (None on CPU)."""
        return self._event


def _same_layout(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and a[k].device == b[k].device for k in a
    )


@contextlib.contextmanager
def oracle_stream(module: torch.nn.Module, ready: Any = None) -> Iterator[None]:
    """Runs the body on a dedicated CUDA stream when ``module`` lives on CUDA; else does nothing.

    The stream first waits for ``ready`` (the event recorded after the shadow's sync; without
    one, for everything queued on the current stream), and is synchronised before leaving
    (the results are read on the CPU right after).
    """
    first = next(iter(module.parameters()), None)
    if first is None or not first.is_cuda:
        yield
        return
    stream = torch.cuda.Stream(device=first.device)
    if ready is not None:
        stream.wait_event(ready)  # background: only the shadow's copy must be done
    else:
        stream.wait_stream(torch.cuda.current_stream(first.device))  # blocking: all queued work
    with torch.cuda.stream(stream):
        yield
    stream.synchronize()


_STOP = object()


class RoundWorker:
    """One daemon thread that runs at most one job at a time and keeps its result.

    ``submit`` never blocks: it refuses a job while one is queued or running. The training
    thread picks results up with :meth:`take` (non-blocking) or :meth:`wait` (bounded).

    Args:
        name: thread name suffix (the run id), for debuggers and ``threading.enumerate()``.
        idle: optional ``callable()`` run every ``idle_interval`` seconds while no job is
            queued (the monitor sends heartbeats there); its exceptions are ignored.
        idle_interval: seconds between ``idle`` calls.
    """

    def __init__(self, name: str, *, idle: Callable[[], Any] | None = None, idle_interval: float = 1.0) -> None:
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._lock = threading.Lock()
        self._busy = False
        self._done: list[tuple[bool, Any]] = []
        self._finished = threading.Condition(self._lock)
        self._idle = idle
        self._idle_interval = idle_interval
        self._thread = threading.Thread(target=self._loop, name=f"edgewise-{name}", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """Whether a job is queued or running."""
        with self._lock:
            return self._busy

    def submit(self, job: Callable[[], Any]) -> bool:
        """Queues ``job``; returns False (and queues nothing) while another one is pending."""
        with self._lock:
            if self._busy or not self._thread.is_alive():
                return False
            self._busy = True
        self._jobs.put_nowait(job)
        return True

    def take(self) -> tuple[bool, Any] | None:
        """The oldest finished job's ``(ok, result or exception)``, or None."""
        with self._lock:
            return self._done.pop(0) if self._done else None

    def wait(self, timeout: float | None) -> tuple[bool, Any] | None:
        """Waits up to ``timeout`` seconds for the pending job; returns as :meth:`take`."""
        with self._finished:
            self._finished.wait_for(lambda: self._done or not self._busy, timeout)
            return self._done.pop(0) if self._done else None

    def close(self, timeout: float) -> bool:
        """Asks the thread to stop after its current job; True when it ended within ``timeout``.

        A thread still busy after ``timeout`` is abandoned (it is a daemon, and it ends by
        itself once its job returns).
        """
        try:
            self._jobs.put(_STOP, timeout=max(0.0, timeout))
        except queue.Full:
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._idle_interval if self._idle else None)
            except queue.Empty:
                self._run_idle()
                continue
            if job is _STOP:
                return
            try:
                outcome: tuple[bool, Any] = (True, job())
            except BaseException as exc:  # handed to the training thread, never raised here
                outcome = (False, exc)
            with self._finished:
                self._done.append(outcome)
                self._busy = False
                self._finished.notify_all()

    def _run_idle(self) -> None:
        try:
            self._idle()  # type: ignore[misc]
        except Exception:
            pass
