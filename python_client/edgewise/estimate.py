"""One-shot stability report of a model at its current parameters (e.g. a checkpoint)."""

from __future__ import annotations

import uuid
import warnings
from typing import Any, Callable

import torch

from ._batch import split_probe
from ._optimizer_model import snapshot, unwrap
from ._run_info import round_options, run_metadata
from .report import StabilityReport

__all__ = ["estimate"]

#: Longest wait for one answer of a sidecar that keeps echoing heartbeats while it computes
#: (an exact solve in a large factor span; SPEC §7), when no ``budget_seconds`` bounds it.
PATIENCE = 3600.0


def estimate(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    probe: Any,
    *,
    n_train: int,
    batch_size: int,
    lr: float | None = None,
    curvature: str = "ggn",
    mc_samples: int = 1,
    tol: float | None = None,
    bounds: list[str] | None = None,
    batch_grid: list[int] | None = None,
    bootstrap: int | None = None,
    budget_hvps: float | None = None,
    budget_seconds: float | None = None,
    max_basis: int | None = None,
    endpoint: str | None = None,
    server_key: Any = None,
    client_keys: Any = None,
    timeout: float = 120.0,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    seed: int = 0,
    name: str = "estimate",
    forward: Callable[[torch.nn.Module, Any], Any] | None = None,
    loss_on: str = "target",
    process_group: Any = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> StabilityReport:
    """Computes the exact mean-square stability threshold at the model's parameters.

    Unlike :class:`Monitor`, errors are raised: a one-shot call has nobody to keep running.

    Args:
        model: the model; it is not modified (eval mode during the probe, no ``.grad`` writes).
        loss_fn: the ordinary mean-reduced loss ``loss_fn(output, target)``.
        probe: ``(x, y)`` probe samples (``m`` of them) drawn from the training data; ``x``
            may be a tensor or any pytree of tensors (tuple/list → ``model(*x)``, dict →
            ``model(**x)``). With ``loss_on="batch"``: the batch itself.
        n_train: training-set size ``n``.
        batch_size: the SGD batch size ``B`` the threshold is for.
        lr: when given, the report includes the margin ``lr / eta_star`` (default: the
            optimizer's group-0 lr when ``optimizer`` is given).
        curvature: ``"ggn"`` (Gauss–Newton factors, the default, as for :class:`Monitor`),
            ``"ggn_mc"`` (Monte Carlo Gauss–Newton factors with ``mc_samples`` sampled labels
            per sample, for large output counts) or ``"hessian"`` (exact per-sample Hessians).
        mc_samples: sampled labels per sample for ``"ggn_mc"``.
        tol: relative tolerance on ``lambda_gen``; None: the sidecar's checkpoint tolerance
            (the round is sent with ``exact: true``: tight tolerances, and on the Gauss–Newton
            route a solve in the whole span of the factors when it is small enough).
        bounds: cheap lower bounds to report (subset of ``top_eigvec``, ``identity``,
            ``rank_one``); None: the sidecar's default.
        batch_grid: batch sizes for the ``eta_star_by_batch`` curve.
        bootstrap: number of bootstrap resamples for the interval (0 disables).
        budget_hvps / budget_seconds: stop early (the report says so).
        max_basis: basis budget of the subspace iteration; None: the sidecar's (with
            ``curvature="hessian"`` the whole parameter space, exact, while ``m·d³ ≤ 2³²``,
            else 64 columns).
        endpoint: a running sidecar; None spawns a local one for the call.
        server_key / client_keys: CURVE for a sidecar started with ``--curve-keys``.
        timeout: seconds to wait for any one sidecar answer; for a sidecar that computes in
            workers and echoes heartbeats meanwhile (the default), seconds of silence: its
            compute between two ops may take up to ``budget_seconds`` plus ``timeout``, else an
            hour (module constant ``PATIENCE``).
        chunk_size: samples per vectorised HVP chunk.
        memory_budget: bytes for one chunk of products (see :class:`CurvatureOracle`).
        seed: seed of the sidecar's random starts.
        name: run name shown on the dashboard.
        forward: ``forward(model, batch) -> output`` instead of the call by the batch's structure.
        loss_on: ``"batch"`` for ``loss_fn(output, batch)`` (a model computing its own loss;
            exact Hessian only, ``curvature="hessian"``), see :class:`CurvatureOracle`.
        process_group: in a ``torch.distributed`` run (call on every rank), ``probe`` is this
            rank's shard and the report is for the union of the shards, on every rank (None:
            the default group when initialised; False: this process alone). See
            docs/distributed.md.
        optimizer: the threshold of this optimizer's dynamics instead of plain SGD's
            (shared/docs/momentum.md): ``SGD`` with momentum, dampening, Nesterov, weight decay;
            ``Adam``/``AdamW`` with their current second-moment state as the frozen
            preconditioner (at least one ``step()`` taken). Others are modelled as plain SGD
            (the report says so). ``eta_star`` is in units of the optimizer's ``lr``.

    Returns:
        The :class:`StabilityReport` (``lambda_max``, ``lambda_gen``, ``eta_star``, bounds, ...).

    Raises:
        edgewise.errors.EdgewiseError: the sidecar failed or timed out.
        ValueError: inconsistent arguments; Adam without second-moment state yet.
    """
    from ._client import SidecarClient
    from ._distributed import unwrap_model
    from ._distributed_rounds import DistributedRounds
    from .oracle import CurvatureOracle

    model = unwrap_model(model)
    # a sidecar that echoes heartbeats may compute this long between two ops (SPEC §7); the other
    # ranks of a distributed run wait as long for the leader's next op
    patience = max(timeout, budget_seconds + timeout if budget_seconds is not None else PATIENCE)
    rounds = DistributedRounds.detect(process_group, max(2.0 * timeout, patience + timeout))

    x, y = split_probe(probe, loss_on)
    opt = snapshot(optimizer, model) if optimizer is not None else None
    if opt is not None and opt.note:
        warnings.warn(f"edgewise: {opt.note}", stacklevel=2)
    if opt is not None and lr is None:
        lr = float(unwrap(optimizer).param_groups[0]["lr"])
    if not 1 <= batch_size <= n_train:
        raise ValueError(f"expected 1 <= batch_size <= n_train, got batch_size={batch_size}, n_train={n_train}")
    oracle = CurvatureOracle(model, loss_fn, x, y, curvature=curvature, mc_samples=mc_samples,
                             seed=seed if rounds is None else rounds.oracle_seed(seed),
                             chunk_size=chunk_size, memory_budget=memory_budget, forward=forward, loss_on=loss_on)
    options = round_options(tol=tol, seed=seed, batch_grid=batch_grid, max_basis=max_basis, bootstrap=bootstrap,
                            exact=True, bounds=bounds, optimizer=opt.model.wire() if opt is not None else None)
    m = oracle.probe_size if rounds is None else rounds.group.share_counts(oracle.probe_size)
    run = run_metadata(model, run_id=f"{name}-{uuid.uuid4().hex[:8]}", name=name, probe_size=m, n=n_train,
                       batch_size=batch_size, curvature=curvature, outputs=oracle.outputs)

    def drive(oracle: Any) -> dict[str, Any]:
        with SidecarClient(endpoint, timeout=timeout, server_key=server_key, client_keys=client_keys,
                           patience=patience) as client:
            client.open_session(run)
            oracle.begin_round(preconditioner=opt.scale if opt is not None else None)
            try:
                return client.run_round(
                    oracle,
                    step=0,
                    epoch=-1,
                    lr=float(lr) if lr is not None else 0.0,
                    batch_size=int(batch_size),
                    n=int(n_train),
                    momentum=opt.model.round_momentum if opt is not None else 0.0,
                    budget_hvps=budget_hvps,
                    budget_seconds=budget_seconds,
                    options=options,
                )
            finally:
                if hasattr(oracle, "end_round"):
                    oracle.end_round()

    # in a distributed run rank 0 drives the round and every rank executes its ops
    raw = drive(oracle) if rounds is None else rounds.once(oracle, drive, opt.scale if opt is not None else None)
    report = StabilityReport.from_dict(raw)
    if lr is None:
        # lr = 0 was only a placeholder: drop the fields derived from it.
        derived = ("lr", "margin", "min_stable_batch", "loss_floor", "loss_floor_leading", "grad_norm_floor")
        cleaned = {k: v for k, v in report.to_dict().items() if k not in derived}
        report = StabilityReport.from_dict(cleaned)
    return report
