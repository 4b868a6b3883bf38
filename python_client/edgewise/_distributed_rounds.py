"""A monitor's rounds in a distributed run: the leader's round and the followers' part in it.

Every rank calls :meth:`DistributedRounds.serve` at the same cadence points (the cadence is a
step count, and background rounds start only when no rank is still busy, see
:meth:`~edgewise._distributed.RankGroup.any_busy`). The leader runs the monitor's ordinary round
(sidecar, back-off, restarts) with a :class:`~edgewise._distributed_oracle.ShardedOracle`, then
hands its report to every rank, so all ranks record the same report and a
:class:`~edgewise.StabilityLR` on each of them sets the same lr. Followers execute ops until that
report arrives. Any failure makes the round missing on every rank (see :mod:`edgewise._distributed`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._background import oracle_stream
from ._distributed import CollectiveFailed, RankGroup, shard_seed
from ._distributed_oracle import ShardedOracle, ShardFailed
from ._probe import draw_probe
from .report import StabilityReport

__all__ = ["DistributedRounds"]


class DistributedRounds:
    """The distributed side of one :class:`~edgewise.Monitor` (or one ``estimate`` call).

    Args:
        group: this rank's :class:`~edgewise._distributed.RankGroup`.
    """

    def __init__(self, group: RankGroup) -> None:
        self.group = group
        self._sharded: ShardedOracle | None = None

    @classmethod
    def detect(cls, process_group: Any, timeout: float) -> "DistributedRounds | None":
        """None in a single process; see :meth:`RankGroup.detect`."""
        group = RankGroup.detect(process_group, timeout)
        return None if group is None else cls(group)

    @property
    def leader(self) -> bool:
        return self.group.leader

    def draw(self, train_data: Any, probe_size: int, seed: int) -> Any:
        """This rank's probe shard: its share of ``probe_size`` samples from its own data,
        drawn with a seed of its own."""
        return draw_probe(train_data, self.group.local_probe_size(probe_size), seed=shard_seed(seed, self.group.rank))

    def oracle_seed(self, seed: int) -> int:
        """The seed of this rank's Monte Carlo label draws (``ggn_mc``): distinct per rank."""
        return shard_seed(seed, self.group.rank)

    def wrap(self, oracle: Any) -> ShardedOracle:
        """The leader's oracle for the sidecar client: ``oracle`` (this rank's shard) run on every rank."""
        if self._sharded is None or self._sharded.oracle is not oracle:
            self._sharded = ShardedOracle(oracle, self.group)
        return self._sharded

    def serve(self, serve_here: Callable[[dict[str, Any], Any], StabilityReport], context: dict[str, Any],
              ready: Any, oracle_of: Callable[[], Any], module: Any) -> StabilityReport:
        """One round on this rank; returns the report every rank records (never raises).

        Args:
            serve_here: the leader's ordinary round (the monitor's, with the oracle wrapped).
            context: the round's training state (``step``, ``epoch``, ``lr``, ...).
            ready: the CUDA event after the shadow's copy (background rounds), or None.
            oracle_of: returns this rank's shard oracle (followers).
            module: the module the round evaluates (for the CUDA stream).
        """
        self.group.round_id += 1
        plain = {k: v for k, v in context.items() if k != "momentum"}
        if self.group.broken is not None:
            return StabilityReport.skipped(self.group.broken, **plain)
        if not self.leader:
            return self._follow(plain, ready, oracle_of, module)
        report = serve_here(context, ready)
        try:
            self.group.scatter([("end", self.group.round_id, report)] * self.group.world)
        except CollectiveFailed as exc:
            return StabilityReport.skipped(str(exc), **plain)
        return report

    def once(self, oracle: Any, drive: Callable[[Any], Any]) -> Any:
        """One round outside a monitor (``estimate``): the leader runs ``drive(sharded oracle)``
        against the sidecar, every rank returns its result or raises its error.

        Raises:
            EdgewiseError: the round failed on some rank or at the sidecar (on every rank).
        """
        from .errors import EdgewiseError

        self.group.round_id += 1
        if self.leader:
            try:
                outcome: tuple[str, Any] = ("ok", drive(self.wrap(oracle)))
            except Exception as exc:
                outcome = ("error", f"{type(exc).__name__}: {exc}")
            try:
                self.group.scatter([("end", self.group.round_id, outcome)] * self.group.world)
            except CollectiveFailed as exc:
                outcome = ("error", str(exc))
        else:
            sharded = self.wrap(oracle)
            try:
                oracle.begin_round()
                outcome = sharded.follow()
            except (CollectiveFailed, ShardFailed) as exc:
                outcome = ("error", str(exc))
            finally:
                oracle.end_round()
        self.group.close()
        if outcome[0] != "ok":
            raise EdgewiseError(f"the distributed round failed: {outcome[1]}")
        return outcome[1]

    def _follow(self, context: dict[str, Any], ready: Any, oracle_of: Callable[[], Any], module: Any) -> StabilityReport:
        try:
            oracle = oracle_of()
        except Exception as exc:  # still take part, answering every op with the failure
            d = sum(p.numel() for p in module.parameters() if p.requires_grad)
            oracle = _Failing(f"{type(exc).__name__}: {exc}", d)
        sharded = self.wrap(oracle) if not isinstance(oracle, _Failing) else ShardedOracle(oracle, self.group)
        try:
            with oracle_stream(module, ready):
                try:
                    oracle.begin_round()
                except Exception:
                    pass  # the ops fail on this rank and say so; the leader ends the round
                try:
                    return sharded.follow()
                finally:
                    oracle.end_round()
        except (CollectiveFailed, ShardFailed) as exc:
            return StabilityReport.skipped(str(exc), **context)


class _Failing:
    """A follower's oracle that could not be built: every op fails, with the reason."""

    basis_size = 0

    def __init__(self, reason: str, params: int) -> None:
        import torch

        self.reason = reason
        self.params = params  # for the all-reduces a failed op still owes
        self.dtype = torch.float64
        self._v = torch.zeros(params, 0, dtype=torch.float64)

    def begin_round(self) -> None:
        pass

    def end_round(self) -> None:
        pass

    def execute(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError(f"this rank has no oracle ({self.reason})")
