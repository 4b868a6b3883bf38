"""One round's ops executed by every rank on its probe shard, answered as for the union probe.

:class:`ShardedOracle` wraps this rank's :class:`~edgewise.oracle.CurvatureOracle` (built on
the rank's ``m_r`` probe samples). On the leader it is the oracle the sidecar client drives:
each op is scattered to every rank (per-sample coefficients sliced to the rank's shard), run
everywhere, and the per-sample results are gathered and concatenated in rank order, which is
the order of the union probe ``hello.run.probe = Σ m_r`` describes. Followers run
:meth:`ShardedOracle.follow` until the leader ends the round.

How each op divides (protocol/SPEC.md §4):

- ``reset``, ``random``, ``rotate``: the same on every rank (seeded draws, the same ``U``): every
  rank keeps the same basis ``V``, checked after every op by a fingerprint of ``V`` (``k``
  numbers per rank) that the leader compares.
- ``blocks``, ``hutchinson``: per-sample results, gathered (``m_r × c × count`` per rank).
- ``expand``: ``W = Σ_i J_iᵀ L_iᵀ U_i`` is a sum over samples: each rank sums its shard, the
  ``d × r`` partial sums are all-reduced (the only ``d``-sized traffic), then every rank adds
  ``V C_V`` and orthonormalises the same ``W`` into the same new columns.
- ``grads``: per-sample losses, norms and ``Vᵀ g_i`` gathered; ``‖mean_i g_i‖²`` needs the
  mean gradient, a ``d``-sized all-reduce.

A rank whose op fails still takes part in the all-reduce the op owes (with NaNs) and reports
the failure in the gather, so the leader abandons the round (the sidecar is told) and every rank
records it as missing; the collectives stay aligned for the next round.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._distributed import CollectiveFailed, RankGroup

__all__ = ["ShardedOracle", "ShardFailed"]

#: Result fields with one row per probe sample, per op (concatenated in rank order).
PER_SAMPLE = {
    "blocks": ("factors", "blocks"),
    "expand": ("factors", "blocks"),
    "grads": ("losses", "sq_norms", "proj"),
    "hutchinson": ("quad", "sq_norms"),
}
#: Integer result fields every rank must agree on.
AGREED = ("basis", "kept", "kept_index")


class ShardFailed(RuntimeError):
    """An op failed on some rank (its message says which and why)."""


class _Reducer:
    """The oracle's hook for ``d``-sized sums over samples: all-reduced over the ranks."""

    def __init__(self, group: RankGroup, total: int) -> None:
        self.group = group
        self.total_samples = total
        self.calls = 0

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.group.sum(t)


class ShardedOracle:
    """This rank's oracle, answering for the union probe of a distributed run.

    Args:
        oracle: the :class:`~edgewise.oracle.CurvatureOracle` on this rank's shard.
        group: the run's :class:`~edgewise._distributed.RankGroup` (``counts`` filled in).
    """

    def __init__(self, oracle: Any, group: RankGroup) -> None:
        self.oracle = oracle
        self.group = group
        self.events: list[str] = []  # as OomRetry's: this wrapper never retries (ranks must stay aligned)
        self._reducer = _Reducer(group, sum(group.counts))
        oracle.reducer = self._reducer
        self._weights: torch.Tensor | None = None

    # what the sidecar client and the monitor read
    @property
    def basis_size(self) -> int:
        return self.oracle.basis_size

    @property
    def probe_size(self) -> int:
        return sum(self.group.counts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.oracle, name)

    # ------------------------------------------------------------------ leader
    def execute(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Leader: runs ``op`` on every rank and returns the union's result.

        Raises:
            ShardFailed: the op failed on some rank, or the ranks' bases disagree.
            CollectiveFailed: a collective failed or timed out.
        """
        messages = [("op", self.group.round_id, op, self._slice(op, args, r)) for r in range(self.group.world)]
        mine = self.group.scatter(messages)
        answers = self.group.gather(self._run(mine[2], mine[3]))
        assert answers is not None
        return self._merge(op, answers)

    def _slice(self, op: str, args: dict[str, Any], rank: int) -> dict[str, Any]:
        """``args`` for ``rank``: per-sample coefficients cut to its shard."""
        if op != "expand":
            return args
        lo = self.group.offsets[rank]
        hi = lo + self.group.counts[rank]
        return {k: (v[lo:hi] if k in ("out_coeffs", "coeffs") and isinstance(v, np.ndarray) and v.ndim == 3 else v)
                for k, v in args.items()}

    def _merge(self, op: str, answers: list[Any]) -> dict[str, Any]:
        failed = [f"rank {r}: {a[1]}" for r, a in enumerate(answers) if a[0] != "ok"]
        if failed:
            raise ShardFailed(f"{op} failed on {'; '.join(failed)}")
        outs = [a[1] for a in answers]
        merged = dict(outs[0])
        for key in AGREED:
            if key in merged and any(o.get(key) != merged[key] for o in outs):
                raise ShardFailed(f"the ranks disagree on {key} after {op}: {[o.get(key) for o in outs]}")
        if len({a[2].shape for a in answers}) != 1:
            raise ShardFailed(f"the ranks' bases V differ in size after {op}: {[a[2].shape for a in answers]}")
        prints = np.stack([a[2] for a in answers])
        spread = float(np.max(np.abs(prints - prints[0]))) if prints.size else 0.0
        if spread > self._fingerprint_tol():
            raise ShardFailed(f"the ranks' bases V differ after {op} (fingerprint spread {spread:.3g})")
        for key in PER_SAMPLE.get(op, ()):
            if key in merged:
                merged[key] = np.concatenate([o[key] for o in outs], axis=0)
        merged["hvps"] = float(sum(o["hvps"] for o in outs))
        return merged

    def _fingerprint_tol(self) -> float:
        eps = torch.finfo(self.oracle.dtype).eps
        return 1e3 * eps * max(1.0, float(self.oracle.params) ** 0.5)

    # ---------------------------------------------------------------- follower
    def follow(self) -> Any:
        """Follower: runs the leader's ops until it ends the round; returns the leader's report.

        Raises:
            CollectiveFailed: a collective failed or timed out (the round is missing here).
            ShardFailed: a message of another round arrived (the ranks fell out of step).
        """
        while True:
            msg = self.group.scatter(None)
            if msg[1] != self.group.round_id:
                raise ShardFailed(f"expected a message of round {self.group.round_id}, got one of round {msg[1]}")
            if msg[0] == "end":
                return msg[2]
            self.group.gather(self._run(msg[2], msg[3]))

    # ------------------------------------------------------------------ every rank
    def _run(self, op: str, args: dict[str, Any]) -> tuple[str, Any, np.ndarray]:
        """Runs ``op`` on this shard; never raises for an op failure (it is reported instead)."""
        self._reducer.calls = 0
        try:
            out = self.oracle.execute(op, args)
            status: tuple[str, Any] = ("ok", out)
        except CollectiveFailed:
            raise
        except Exception as exc:
            self._owe_reductions(op, args)
            status = ("fail", f"{type(exc).__name__}: {exc}")
        return status[0], status[1], self._fingerprint()

    def _owe_reductions(self, op: str, args: dict[str, Any]) -> None:
        """After a failure, the all-reduce the op would have made (with NaNs): the other ranks
        are waiting in it, and the collectives must stay aligned."""
        if self._reducer.calls or op not in ("expand", "grads"):
            return
        d = self.oracle.params
        if op == "grads":
            shape: tuple[int, ...] = (d,)
        else:
            coeffs = args.get("out_coeffs", args.get("coeffs"))
            if not isinstance(coeffs, np.ndarray) or coeffs.ndim != 3:
                return  # a malformed argument fails on every rank alike, before any reduction
            shape = (d, coeffs.shape[2])
        self._reducer.sum(torch.full(shape, float("nan"), dtype=torch.float64))

    def _fingerprint(self) -> np.ndarray:
        """``wᵀ V`` for a fixed vector ``w``: ``k`` numbers that differ when the ranks' bases do."""
        v = self.oracle._v
        if self._weights is None or self._weights.shape[0] != v.shape[0] or self._weights.device != v.device:
            self._weights = torch.cos(torch.arange(v.shape[0], dtype=torch.float64, device=v.device))
        return (self._weights.to(v.dtype) @ v).to("cpu", torch.float64).numpy()
