"""Attach Edgewise to a live training run: one estimation round per epoch (or every N steps)."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
import uuid
import warnings
from typing import Any, Callable

import torch

from ._console import RoundProgress, log
from ._background import RoundWorker, ShadowModel, oracle_stream
from ._oom import OomRetry
from ._optimizer_model import OptimizerSnapshot, snapshot
from ._batch import batch_size as batch_size_of
from ._batch import split_probe
from ._distributed import unwrap_model
from ._distributed_rounds import DistributedRounds
from ._probe import draw_probe
from ._report_log import ReportLog
from ._run_info import round_options, run_metadata
from .report import StabilityReport

__all__ = ["Monitor", "EdgewiseWarning"]


class EdgewiseWarning(UserWarning):
    """Monitoring trouble that the training loop should see but never be stopped by."""


Listener = Callable[[StabilityReport], None]


class Monitor:
    """Estimates, at the current parameters, how close SGD is to its mean-square stability edge.

    The monitor owns a fixed probe set (``m`` samples), a curvature oracle over it, and a
    connection to an Edgewise sidecar (spawned locally unless ``endpoint`` is given). Each
    :meth:`round` freezes a copy of the parameters, lets the sidecar drive per-sample
    Hessian-vector products on the probe set, and returns a :class:`StabilityReport` with
    ``lambda_max``, ``lambda_gen``, ``eta_star = 2 / lambda_gen`` for the run's batch size,
    the margin ``lr / eta_star`` and a suggested learning rate.

    Rounds run in the background by default (``blocking=False``): at a cadence point
    (:meth:`step` every ``every_steps``, or :meth:`end_epoch`) the parameters and buffers are
    copied into a private copy of the model and a worker thread serves the round while training
    goes on; the report arrives at a later :meth:`step` / :meth:`end_epoch` (their return
    value), through the listeners, :attr:`latest`, :attr:`history` and the logs, with the
    ``step`` it describes. At most one round is in flight: a cadence point reached while one
    runs is skipped, and the report says how many were (``extra["cadence_skipped"]``).
    :meth:`round` and :meth:`wait` block. ``blocking=True`` runs every round on the training
    thread, as scripts and tests want.

    Monitoring never breaks training: a dead, slow or restarted sidecar gives an
    :class:`EdgewiseWarning` and a report with ``missing=True``; after repeated failures rounds
    are skipped with exponential back-off (1, 2, 4, ... up to 8 rounds) and monitoring resumes
    when the sidecar answers again. The model is never modified: no ``.grad`` writes, and the
    probe is evaluated in eval mode (BatchNorm statistics and dropout are left as they are).

    Args:
        model: the ``torch.nn.Module`` being trained.
        loss_fn: the ordinary mean-reduced loss ``loss_fn(output, target)``; the per-sample loss
            is ``loss_fn`` on a batch of one.
        probe: ``(x, y)`` probe samples; or give ``train_data`` and ``probe_size`` to draw a
            fixed seeded subset. ``x`` may be a tensor or any pytree of tensors sharing the
            leading sample dimension: a tuple/list is passed as ``model(*x)``, a dict as
            ``model(**x)`` (Hugging Face batches). With ``loss_on="batch"``: the batch itself.
        train_data: ``(x, y)`` tensors or a dataset to draw the probe from (items ``(x, y)``
            pairs or, with ``loss_on="batch"``, dict samples).
        probe_size: ``m``, the number of probe samples (default 256).
        n_train: training-set size ``n``; read from ``loader`` when omitted.
        batch_size: SGD batch size ``B``; read from ``loader`` when omitted.
        optimizer: the run's ``torch.optim`` optimizer: ``lr`` is read from its first param
            group, and the threshold is that of its dynamics (shared/docs/momentum.md): SGD
            with momentum, dampening, Nesterov and weight decay, Adam and AdamW (``betas``,
            ``eps``, ``weight_decay``, ``amsgrad``; the second-moment preconditioner is read at
            each round's start and held fixed, so a round before the first ``step()`` is
            skipped). Other optimizers are modelled as plain SGD (the report says so). Param
            groups with different hyper-parameters: group 0's (a warning, once). None: plain SGD.
        loader: when given, ``n_train`` and ``batch_size`` are read from it.
        curvature: ``"ggn"`` (default: per-sample Gauss–Newton ``J_iᵀ Λ_i J_i``, PSD by
            construction, sent as factors ``Λ_i^{1/2} J_i V`` from batched Jacobian products),
            ``"ggn_mc"`` (Monte Carlo Gauss–Newton factors with ``mc_samples`` sampled labels
            per sample, unbiased, for large output counts) or ``"hessian"`` (exact per-sample
            Hessians, per-sample HVPs). The threshold theory
            assumes PSD per-sample curvature, which holds at minima; during training the exact
            per-sample Hessians are indefinite, their negative parts can cancel in the mean, and
            ``lambda_gen`` can then spike in directions where ``H`` is nearly flat. The
            Gauss–Newton part is PSD everywhere and equals the Hessian at interpolating minima.
        endpoint: ``tcp://host:port`` of a running sidecar; None spawns a local one.
        server_key / client_keys: CURVE for a sidecar started with ``--curve-keys`` (see
            :class:`~edgewise.SidecarClient`; make keys with ``python -m edgewise keys DIR``).
        timeout: seconds to wait for any one sidecar answer.
        every_steps: run a round every N calls of :meth:`step`; None means once per
            :meth:`end_epoch`.
        budget_hvps / budget_seconds: per-round budget; the report says when it stopped early.
        mc_samples: sampled labels per sample for ``"ggn_mc"``.
        tol: relative tolerance on ``lambda_gen``; None (default): the sidecar's automatic
            live tolerance, which follows the probe's sampling error (the report's ``tol``).
        bounds: cheap lower bounds to report (subset of ``top_eigvec``, ``identity``,
            ``rank_one``); None: the sidecar's default.
        batch_grid: batch sizes for the ``eta_star_by_batch`` curve (default: powers of two).
        max_basis: basis budget of the subspace iteration (None: the sidecar's default). On
            the Gauss–Newton route an operator application costs ``O(m · c · k²)`` for a basis of
            ``k`` (``c`` outputs), on the Hessian route ``O(m · k³)``.
        bootstrap: bootstrap resamples for the interval (None: the sidecar's default; 0
            disables).
        log_dir: folder for ``edgewise.jsonl`` / ``edgewise.csv`` (and TensorBoard scalars when
            ``tensorboard`` is installed); None writes no files.
        tensorboard: True, False or "auto" (when the package is installed), under ``log_dir``.
        wandb: a W&B run, or True for the active ``wandb.run``: scalars ``edgewise/*`` against
            ``edgewise/step`` (the training step).
        console: log a one-line summary per round on the ``edgewise`` logger (INFO; skipped
            rounds at WARNING), and show a progress bar during the first round on a terminal.
        run_name: a readable name for the dashboard.
        seed: seed of the probe draw and of the sidecar's random starts.
        chunk_size: samples per vectorised HVP chunk (memory control); None picks one.
        memory_budget: bytes for one chunk of products (default 256 MiB): on the Gauss–Newton
            route, how many Jacobian-product columns run together (raise it on a GPU).
        client_factory: advanced/testing: ``callable(endpoint, timeout) -> client``.
        blocking: run rounds on the training thread (True) or in the background (False,
            the default; costs one extra copy of the parameters and buffers).
        close_timeout: seconds :meth:`close` waits for a round in flight before abandoning it.
        forward: ``forward(model, batch) -> output`` instead of the call by the probe's
            structure (e.g. ``lambda m, b: m(**b).logits`` to give Gauss–Newton the logits).
        loss_on: ``"target"`` (``loss_fn(output, y)``) or ``"batch"`` (``loss_fn(output,
            batch)``, for a model computing its own loss, e.g. ``lambda out, b: out.loss``):
            then only ``curvature="hessian"`` applies (the exact Hessian; Gauss–Newton needs
            the logits and a standard loss, through ``forward`` and ``loss_fn(logits, y)``).
        process_group: data-parallel runs (docs/distributed.md): None uses the default
            ``torch.distributed`` group when one is initialised with several ranks, a
            ``ProcessGroup`` its ranks, False none. Build the monitor on every rank: the probe
            (``probe=`` or drawn from ``train_data``) is this rank's shard of ``probe_size``,
            rank 0 alone talks to the sidecar, and every rank gets every report at the same
            step. A ``DistributedDataParallel`` model is evaluated through ``model.module``.
        collective_timeout: seconds any one monitoring collective may wait (default
            ``max(60, 2 * timeout)``); past it, or when a rank dies, rounds are missing on every
            rank and distributed monitoring stops for the run.

    Example (``examples/mnist_live.py`` runs a full one)::

        monitor = edgewise.Monitor(model, loss_fn, train_data=(x, y), batch_size=32,
                                   n_train=len(x), optimizer=opt)
        for epoch in range(epochs):
            ...  # train
            report = monitor.end_epoch(epoch)
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        probe: Any = None,
        *,
        train_data: Any = None,
        probe_size: int = 256,
        n_train: int | None = None,
        batch_size: int | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        loader: Any = None,
        curvature: str = "ggn",
        mc_samples: int = 1,
        endpoint: str | None = None,
        server_key: Any = None,
        client_keys: Any = None,
        timeout: float = 30.0,
        every_steps: int | None = None,
        budget_hvps: float | None = None,
        budget_seconds: float | None = None,
        tol: float | None = None,
        bounds: list[str] | None = None,
        batch_grid: list[int] | None = None,
        max_basis: int | None = None,
        bootstrap: int | None = None,
        log_dir: str | os.PathLike | None = None,
        tensorboard: bool | str = "auto",
        wandb: Any = None,
        console: bool = True,
        run_name: str | None = None,
        seed: int = 0,
        chunk_size: int | None = None,
        memory_budget: int | None = None,
        client_factory: Callable[[str | None, float], Any] | None = None,
        blocking: bool = False,
        close_timeout: float = 5.0,
        forward: Callable[[torch.nn.Module, Any], Any] | None = None,
        loss_on: str = "target",
        process_group: Any = None,
        collective_timeout: float | None = None,
    ) -> None:
        if curvature not in ("ggn", "ggn_mc", "hessian"):
            raise ValueError(f"expected curvature 'ggn', 'ggn_mc' or 'hessian', got {curvature!r}")
        if every_steps is not None and every_steps <= 0:
            raise ValueError(f"expected a positive every_steps, got {every_steps}")
        model = unwrap_model(model)
        dist_rounds = DistributedRounds.detect(process_group, collective_timeout or max(60.0, 2.0 * timeout))
        if probe is None:
            if train_data is None:
                raise ValueError("expected probe=(x, y) or train_data to draw the probe from, got neither")
            probe = draw_probe(train_data, probe_size, seed=seed) if dist_rounds is None else \
                dist_rounds.draw(train_data, probe_size, seed)
        if loss_on not in ("target", "batch"):
            raise ValueError(f"expected loss_on 'target' or 'batch', got {loss_on!r}")
        if loss_on == "batch" and curvature != "hessian":
            raise ValueError("expected curvature='hessian' with loss_on='batch' (a loss computed from the batch"
                             " is opaque to the Gauss-Newton split; see CurvatureOracle)")
        probe_x, _ = split_probe(probe, loss_on)
        self._probe_size = batch_size_of(probe_x, "the probe inputs")
        if dist_rounds is not None:
            self._probe_size = dist_rounds.group.share_counts(self._probe_size)  # the union's m
        if loader is not None:
            n_train = n_train if n_train is not None else len(loader.dataset)
            batch_size = batch_size if batch_size is not None else loader.batch_size
        if n_train is None or batch_size is None:
            raise ValueError(
                f"expected n_train and batch_size (or a loader to read them from), got n_train={n_train}, batch_size={batch_size}"
            )
        if not 1 <= batch_size <= n_train:
            raise ValueError(f"expected 1 <= batch_size <= n_train, got batch_size={batch_size}, n_train={n_train}")
        self.model = model
        self.loss_fn = loss_fn
        self.probe = probe
        self.forward = forward
        self.loss_on = loss_on
        self.n_train = int(n_train)
        self.batch_size = int(batch_size)
        self.optimizer = optimizer
        self.curvature = curvature
        self.mc_samples = mc_samples
        self.bounds = bounds
        self.endpoint = endpoint
        self.timeout = timeout
        self.every_steps = every_steps
        self.budget_hvps = budget_hvps
        self.budget_seconds = budget_seconds
        self.tol = tol
        self.batch_grid = batch_grid
        self.max_basis = max_basis
        self.bootstrap = bootstrap
        self.console = console
        self.seed = seed
        self.chunk_size = chunk_size
        self.memory_budget = memory_budget
        self.run_id = f"{run_name or 'run'}-{uuid.uuid4().hex[:8]}"
        self.run_name = run_name or self.run_id
        self.history: list[StabilityReport] = []
        self._listeners: list[Listener] = []
        self._client_factory = client_factory or functools.partial(
            _default_client_factory, server_key=server_key, client_keys=client_keys)
        self._client: Any = None
        self._oracle: Any = None
        self._oracle_for: torch.nn.Module | None = None
        self._disabled_reason: str | None = None
        self._failures = 0
        self._skip_rounds = 0
        self._steps = 0
        self._rounds = 0
        self._warned_optimizer: set[str] = set()
        logs = (log_dir is not None or wandb) and (dist_rounds is None or dist_rounds.leader)  # rank 0 logs a run
        self._log = ReportLog(log_dir, tensorboard=tensorboard, wandb=wandb) if logs else None
        self.blocking = blocking
        self.close_timeout = close_timeout
        self._worker: RoundWorker | None = None
        self._shadow: ShadowModel | None = None
        self._cadence_skipped = 0
        self._dist = dist_rounds
        if dist_rounds is not None and not dist_rounds.leader:
            self.console = False  # the leader prints the run; every rank gets its reports

    # ----------------------------------------------------------------- public surface

    @property
    def latest(self) -> StabilityReport | None:
        """The most recent report that is not missing, or None (delivers finished rounds)."""
        if self._dist is None:  # distributed: delivered at cadence points only, on every rank alike
            self._collect()
        for report in reversed(self.history):
            if not report.missing:
                return report
        return None

    @property
    def dashboard_url(self) -> str | None:
        """URL of the sidecar's live dashboard, once connected (None otherwise)."""
        return getattr(self._client, "dashboard_url", None)

    def add_listener(self, listener: Listener) -> None:
        """Calls ``listener(report)`` after every round (missing reports included)."""
        self._listeners.append(listener)

    def step(self, *, lr: float | None = None, epoch: int | None = None) -> StabilityReport | None:
        """Counts one optimizer step; runs a round every ``every_steps`` steps.

        Call it right after ``optimizer.step()``. Returns the report that arrived during this
        call (blocking: the round it ran; background: a round that finished since), or None.
        """
        self._steps += 1
        arrived = self._collect() if self._dist is None else None
        if self.every_steps is not None and self._steps % self.every_steps == 0:
            return self._cadence(lr=lr, step=self._steps, epoch=epoch) or arrived
        return arrived

    def end_epoch(self, epoch: int | None = None, *, lr: float | None = None) -> StabilityReport | None:
        """Runs a round at the end of an epoch, unless the cadence is ``every_steps``.

        Returns the report that arrived during this call (see :meth:`step`), or None.
        """
        arrived = self._collect() if self._dist is None else None
        if self.every_steps is not None:
            return arrived
        return self._cadence(lr=lr, step=self._steps, epoch=epoch) or arrived

    def round(self, lr: float | None = None, step: int | None = None, epoch: int | None = None) -> StabilityReport:
        """Runs one estimation round at the current parameters, waits for it, returns its report.

        Never raises for sidecar trouble: the report is then ``missing`` with a ``reason``.
        In background mode a round in flight is waited for (and delivered) first.
        """
        context = self._context(lr, step, epoch)
        if self.blocking:
            return self._record(self._serve(context))
        self.wait()
        if not self._start_background(context):
            return self._record(self._serve(context))  # no worker thread: run it here
        report = self.wait()
        assert report is not None
        return report

    def wait(self, timeout: float | None = None) -> StabilityReport | None:
        """Waits up to ``timeout`` seconds (None: until it ends) for the round in flight and
        returns its report, or None when none was in flight or it is still running."""
        if self._worker is None:
            return None
        done = self._worker.wait(timeout)
        return self._deliver(done) if done is not None else None

    def _cadence(self, *, lr: float | None, step: int, epoch: int | None) -> StabilityReport | None:
        """A cadence point: a blocking round, or a background round started (None)."""
        context = self._context(lr, step, epoch)
        if self.blocking:
            return self._record(self._serve(context))
        busy = self._worker is not None and self._worker.busy
        arrived = None
        if self._dist is not None:
            # every rank starts this round, or none does; and every rank delivers the last
            # round's report now, at the same step, so StabilityLR changes every lr alike
            busy = self._dist.group.any_busy(busy)
            arrived = None if busy else self._collect()
        if busy:
            self._cadence_skipped += 1
            return None
        if not self._start_background(context):
            return self._record(self._serve(context))
        return arrived

    def _context(self, lr: float | None, step: int | None, epoch: int | None) -> dict[str, Any]:
        """The training state a round describes, read on the training thread (the optimizer's
        hyper-parameters and Adam's preconditioner included: a background round must not read
        them while training changes them)."""
        lr = self._current_lr(lr)
        step = self._steps if step is None else step
        return dict(step=step, epoch=epoch, lr=lr, optimizer=self._optimizer_snapshot(), batch_size=self.batch_size,
                    n=self.n_train)

    def _start_background(self, context: dict[str, Any]) -> bool:
        """Snapshots the model into the shadow copy and queues the round; False when the model
        cannot be copied (the monitor then falls back to blocking rounds, with a warning)."""
        try:
            if self._shadow is None:
                self._shadow = ShadowModel(self.model)
            else:
                self._shadow.sync(self.model)
        except TypeError as exc:
            warnings.warn(f"edgewise: rounds run blocking ({exc})", EdgewiseWarning, stacklevel=3)
            self.blocking = True
            return False
        if self._worker is None:
            self._worker = RoundWorker(self.run_id, idle=self._idle_heartbeat)
        ready = self._shadow.ready_event
        return self._worker.submit(lambda: self._serve(context, ready))

    def _collect(self) -> StabilityReport | None:
        """Delivers a finished background round (on the calling, training, thread)."""
        if self._worker is None:
            return None
        done = self._worker.take()
        return self._deliver(done) if done is not None else None

    def _deliver(self, done: tuple[bool, Any]) -> StabilityReport:
        ok, value = done
        report = value if ok else StabilityReport.skipped(f"{type(value).__name__}: {value}")
        if self._cadence_skipped:
            n, self._cadence_skipped = self._cadence_skipped, 0
            note = f"{n} cadence point(s) skipped while this round ran"
            report = dataclasses.replace(report, warnings=[*report.warnings, note],
                                         extra={**report.extra, "cadence_skipped": n})
        return self._record(report)

    def _idle_heartbeat(self) -> None:
        """Between background rounds (worker thread only): restarts a spawned sidecar that
        exited, at once rather than at the next round, and keeps the session alive."""
        client = self._client
        if client is None:
            return
        process = getattr(client, "process", None)
        if process is not None and not process.alive():
            if self._revive_sidecar(None):
                self._skip_rounds = 0
            return
        if hasattr(client, "maybe_heartbeat"):
            client.maybe_heartbeat()

    def _serve(self, context: dict[str, Any], ready: Any = None) -> StabilityReport:
        """Runs one round for ``context`` and returns its report (never raises for sidecar
        trouble). In background mode this runs on the worker thread, which owns the client."""
        if self._dist is not None:  # every rank takes part; the leader runs the round below
            return self._dist.serve(self._serve_here, context, ready, self._ensure_oracle, self._oracle_model())
        return self._serve_here(context, ready)

    def _serve_here(self, context: dict[str, Any], ready: Any = None) -> StabilityReport:
        """The round of :meth:`_serve`, in this process (the leader's, in a distributed run)."""
        context = dict(context)
        opt = context.pop("optimizer")
        if self._disabled_reason is not None:
            return StabilityReport.skipped(self._disabled_reason, **context)
        if isinstance(opt, str):  # e.g. no Adam preconditioner yet: nothing to model, not a sidecar failure
            warnings.warn(f"edgewise: round skipped ({opt})", EdgewiseWarning, stacklevel=2)
            return StabilityReport.skipped(opt, **context)
        if self._skip_rounds > 0:
            self._skip_rounds -= 1
            reason = f"sidecar unavailable after {self._failures} failed round(s); retrying later"
            return StabilityReport.skipped(reason, **context)
        started = time.perf_counter()
        progress: RoundProgress | None = None
        try:
            client = self._ensure_client()
            oracle = self._ensure_oracle()
            with oracle_stream(self._oracle_model(), ready):
                oracle.begin_round(preconditioner=opt.scale if opt is not None else None)
                guard = OomRetry(oracle) if self._dist is None else self._dist.wrap(oracle)
                progress = RoundProgress(guard, self._rounds, self.console and self.blocking)
                raw = client.run_round(
                    progress,
                    step=context["step"],
                    epoch=context["epoch"] if context["epoch"] is not None else -1,
                    lr=context["lr"],
                    batch_size=self.batch_size,
                    n=self.n_train,
                    momentum=opt.model.round_momentum if opt is not None else 0.0,
                    budget_hvps=self.budget_hvps,
                    budget_seconds=self.budget_seconds,
                    options=self._round_options(opt),
                )
            report = StabilityReport.from_dict(raw)
            if guard.events:  # the chunk size was halved: say so, with the size now in use
                report = dataclasses.replace(report, warnings=[*report.warnings, *guard.events],
                                             extra={**report.extra, "chunk_size": oracle.chunk_size})
            self._failures = 0
        except Exception as exc:  # monitoring must never reach the training loop
            self._failures += 1
            self._skip_rounds = min(2 ** (self._failures - 1) - 1, 8)
            reason = f"{type(exc).__name__}: {exc}"
            if self._revive_sidecar(exc):
                self._skip_rounds = 0  # a fresh sidecar: try again at the next cadence point
                reason += "; the embedded sidecar was restarted"
            warnings.warn(f"edgewise: round skipped ({reason})", EdgewiseWarning, stacklevel=2)
            report = StabilityReport.skipped(reason, **context)
        finally:
            if progress is not None:
                progress.done()  # the bar goes away whether the round finished or failed
            if self._oracle is not None and hasattr(self._oracle, "end_round"):
                try:
                    self._oracle.end_round()
                except Exception:
                    pass
        self._rounds += 1
        if not report.missing and report.wall_ms is None:
            report = StabilityReport.from_dict(report.to_dict() | {"wall_ms": 1e3 * (time.perf_counter() - started)})
        return report

    def _revive_sidecar(self, exc: Exception | None) -> bool:
        """After a failure, restarts a spawned sidecar that died; True when it is back."""
        revive = getattr(self._client, "revive", None)
        if revive is None:
            return False
        try:
            return bool(revive())
        except Exception as err:
            warnings.warn(f"edgewise: could not restart the sidecar ({type(err).__name__}: {err})",
                          EdgewiseWarning, stacklevel=3)
            return False

    def set_probe(self, x: Any, y: Any = None) -> None:
        """Replaces the probe set (the next round starts cold); ``x`` alone with ``loss_on="batch"``."""
        self.probe = x if self.loss_on == "batch" else (x, y)
        self._probe_size = batch_size_of(x, "the probe inputs")
        if self._dist is not None:  # x, y: this rank's shard (call it on every rank)
            self._probe_size = self._dist.group.share_counts(self._probe_size)
        self._oracle = None

    def close(self) -> None:
        """Says goodbye to the sidecar (stopping it if it was spawned) and closes the logs.

        A background round in flight is waited for up to ``close_timeout`` seconds and
        delivered; one still running then is abandoned (its thread ends by itself and closes
        the client) and a spawned sidecar is stopped, so closing never hangs.
        """
        if self._worker is not None:
            worker, self._worker = self._worker, None
            done = worker.wait(self.close_timeout)
            if done is not None:
                self._worker = worker
                self._deliver(done)
                self._worker = None
            if not worker.close(max(0.0, min(1.0, self.close_timeout))):
                self._abandon_client()
                if self._log is not None:
                    self._log.close()
                self._close_groups()
                return
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None
        if self._log is not None:
            self._log.close()
        self._close_groups()

    def _close_groups(self) -> None:
        """Destroys the private monitoring groups of a distributed run now, not when the
        interpreter exits: gloo's threads torn down at exit aborted a process (1 run in 3)."""
        if self._dist is not None:
            self._dist.group.close()

    def _abandon_client(self) -> None:
        """The worker is stuck in a request: stop a spawned sidecar so the request fails soon;
        the socket stays with the worker thread (ZeroMQ sockets are not thread-safe)."""
        process = getattr(self._client, "process", None)
        if process is not None:
            try:
                process.stop(timeout=1.0)
            except Exception:
                pass
        self._client = None

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- internals

    def _record(self, report: StabilityReport) -> StabilityReport:
        self.history.append(report)
        if self._log is not None:
            self._log.write(report)
        if self.console and report.missing:
            log.warning("round skipped (%s)", report.reason)
        elif self.console:
            log.info("round %s: %s", report.round if report.round is not None else self._rounds - 1, report.summary())
        for listener in self._listeners:
            try:
                listener(report)
            except Exception as exc:
                warnings.warn(f"edgewise: report listener failed ({exc})", EdgewiseWarning, stacklevel=2)
        return report

    def _current_lr(self, lr: float | None) -> float:
        if lr is not None:
            return float(lr)
        if self.optimizer is not None:
            return float(self.optimizer.param_groups[0]["lr"])
        raise ValueError("expected lr= (or an optimizer to read it from), got neither")

    def _optimizer_snapshot(self) -> OptimizerSnapshot | str | None:
        """The optimizer's model (and Adam's frozen preconditioner) for the next round; a
        reason string when the round cannot model it yet; None without an optimizer. Warns once
        per distinct message (param groups that differ, an optimizer modelled as plain SGD)."""
        if self.optimizer is None:
            return None
        from ._preconditioner import NoPreconditioner

        try:
            snap = snapshot(self.optimizer, self.model)
        except NoPreconditioner as exc:
            return f"no Adam preconditioner yet: {exc}"
        except Exception as exc:  # this runs on the training thread: never raise into it
            return f"could not read the optimizer ({type(exc).__name__}: {exc})"
        notes = [snap.note] if snap.note else []
        if snap.model.assumed:
            notes.append(f"{snap.model.name} is not modelled: eta* is that of plain SGD")
        for note in notes:
            if note not in self._warned_optimizer:
                self._warned_optimizer.add(note)
                warnings.warn(f"edgewise: {note}", EdgewiseWarning, stacklevel=4)
        return snap

    def _round_options(self, opt: OptimizerSnapshot | None = None) -> dict[str, Any]:
        return round_options(tol=self.tol, seed=self.seed, batch_grid=self.batch_grid,
                             max_basis=self.max_basis, bootstrap=self.bootstrap, bounds=self.bounds,
                             optimizer=opt.model.wire() if opt is not None else None)

    def _ensure_client(self) -> Any:
        if self._client is None:
            try:
                client = self._client_factory(self.endpoint, self.timeout)
            except Exception as exc:
                # A sidecar we could not even start will not come back by itself.
                if self.endpoint is None:
                    self._disabled_reason = f"could not start a local sidecar: {exc}"
                    warnings.warn(f"edgewise: monitoring disabled ({self._disabled_reason})", EdgewiseWarning, stacklevel=3)
                raise
            self._client = client
            self._opened = False
            url = getattr(client, "dashboard_url", None)
            if url and self.console:
                log.info("live dashboard at %s", url)
        if not getattr(self, "_opened", False):
            self._client.open_session(self._run_info())
            self._opened = True
            self.run_id = getattr(self._client, "run_id", None) or self.run_id  # a new id if ours was taken
        return self._client

    def _ensure_oracle(self) -> Any:
        model = self._oracle_model()
        if self._oracle is None or self._oracle_for is not model:
            from .oracle import CurvatureOracle

            x, y = split_probe(self.probe, self.loss_on)
            self._oracle = CurvatureOracle(
                model, self.loss_fn, x, y, curvature=self.curvature, mc_samples=self.mc_samples,
                seed=self.seed if self._dist is None else self._dist.oracle_seed(self.seed), chunk_size=self.chunk_size, memory_budget=self.memory_budget,
                forward=self.forward, loss_on=self.loss_on,
            )
            self._oracle_for = model
        return self._oracle

    def _oracle_model(self) -> torch.nn.Module:
        """The module rounds evaluate: the private copy in background mode, else the model."""
        return self._shadow.module if self._shadow is not None and not self.blocking else self.model

    def _run_info(self) -> dict[str, Any]:
        outputs = getattr(self._ensure_oracle(), "outputs", 1)
        return run_metadata(self.model, run_id=self.run_id, name=self.run_name, probe_size=self._probe_size,
                            n=self.n_train, batch_size=self.batch_size, curvature=self.curvature, outputs=outputs)


def _default_client_factory(endpoint: str | None, timeout: float, **curve: Any) -> Any:
    from ._client import SidecarClient

    return SidecarClient(endpoint, timeout=timeout, **curve)
