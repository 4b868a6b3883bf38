"""Edgewise on ``torch.distributed``: the ranks of a data-parallel run share one round.

The probe set is sharded: rank ``r`` holds ``m_r`` samples drawn from its own data shard, and
the sidecar sees their union (``m = Σ m_r`` samples, in rank order). Rank 0 of the group (the
*leader*) alone talks to the sidecar; the others (*followers*) execute every op on their shard
(see :mod:`edgewise._distributed_oracle`). What the ranks exchange, all of it on private
``gloo`` process groups made with ``dist.new_group(timeout=...)``, so that monitoring
collectives never interleave with the training's own (DDP's gradient all-reduce, FSDP's
all-gathers) and every one of them is bounded by a timeout:

- the *ops group* (used by the round's thread): each op's arguments, scattered by the leader
  (per-sample coefficients sliced to each shard); the per-sample results, gathered to the
  leader; the ``d``-sized partial sums of ``expand`` and ``grads``, all-reduced; the report,
  broadcast at the end of the round;
- the *cadence group* (used by the training thread, background rounds only): one all-reduce of
  a flag at each cadence point, so that every rank starts a round at the same step, or every
  rank skips it when a round is still running on any of them.

A failure inside an op on any rank (out of memory, a non-finite loss) is reported in the gather
and makes the round missing on every rank; the collectives stay aligned, so the next round runs.
A failed or timed-out collective (a rank died, hung or fell behind) leaves the group's state
unknown: that rank stops distributed monitoring for the run (its later reports are missing,
with the reason), and its peers do the same when their next collective fails or times out, so
no rank ever waits longer than the timeout.

Example (in a process started by ``torchrun``; see ``examples/ddp_live.py``)::

    dist.init_process_group("gloo")
    model = DistributedDataParallel(net)
    monitor = edgewise.Monitor(model, loss_fn, train_data=my_shard, probe_size=256, ...)
"""

from __future__ import annotations

import datetime
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist

__all__ = ["RankGroup", "unwrap_model", "shard_seed"]

T = TypeVar("T")


class CollectiveFailed(RuntimeError):
    """A monitoring collective failed or timed out: the group's state is unknown from now on."""


def shard_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s probe draw (and Monte Carlo labels): distinct per rank, so
    that shards drawn from overlapping data do not pick the same indices.

    Example:
        >>> shard_seed(0, 0), shard_seed(0, 1) != shard_seed(0, 0)
        (0, True)
    """
    return (int(seed) + 1_000_003 * int(rank)) % 2**63


def shard_sizes(m: int, world: int) -> list[int]:
    """How ``m`` probe samples divide over ``world`` ranks (the first ``m % world`` get one more).

    Example:
        >>> shard_sizes(10, 4)
        [3, 3, 2, 2]
    """
    if m < world:
        raise ValueError(f"expected a probe size m >= world size {world} (a sample per rank at least), got {m}")
    return [m // world + (1 if r < m % world else 0) for r in range(world)]


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module a round evaluates: ``model.module`` for ``DistributedDataParallel`` (whose
    forward would synchronise buffers and arm gradient hooks), the model itself otherwise.

    FSDP models are refused: a round needs every parameter on every rank. Pass a plain replica
    of the architecture filled with the full state dict instead (see docs/distributed.md).

    Raises:
        TypeError: an FSDP-wrapped model.
    """
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.module
    kinds = {type(m).__name__ for m in model.modules()}
    if "FullyShardedDataParallel" in kinds or any(type(p).__name__ == "DTensor" for p in model.parameters()):
        raise TypeError(
            "expected a model whose parameters are whole on every rank (a plain module or DistributedDataParallel),"
            " got an FSDP-sharded one; give the Monitor a replica: a plain copy of the architecture that you fill"
            " with get_model_state_dict(model, options=StateDictOptions(full_state_dict=True)) (docs/distributed.md)")
    return model


class RankGroup:
    """This rank's place in a distributed run and the private groups monitoring talks on.

    Made with :meth:`detect` on every rank at the same point (it is collective).

    Args:
        ranks: global ranks of the members, the leader first.
        timeout: seconds any one monitoring collective may take.
    """

    def __init__(self, ranks: list[int], timeout: float) -> None:
        self.ranks = list(ranks)
        self.world = len(ranks)
        if dist.get_rank() not in self.ranks:
            raise ValueError(f"expected this rank ({dist.get_rank()}) to be a member of process_group, got ranks {self.ranks}")
        self.rank = self.ranks.index(dist.get_rank())
        self.timeout = float(timeout)
        delta = datetime.timedelta(seconds=self.timeout)
        # gloo: timeouts raise in the calling thread (an NCCL timeout aborts the process), and
        # CPU tensors suffice for everything but the d-sized sums, which are staged on the host
        # (members only: ranks outside a given process_group need not take part)
        self.ops = dist.new_group(ranks=self.ranks, timeout=delta, backend="gloo", use_local_synchronization=True)
        self.cadence = dist.new_group(ranks=self.ranks, timeout=delta, backend="gloo", use_local_synchronization=True)
        self.broken: str | None = None
        self.counts: list[int] = []
        self.round_id = 0  # rounds served so far: every message names its round

    @classmethod
    def detect(cls, process_group: Any, timeout: float) -> "RankGroup | None":
        """The group to monitor over, or None for a single process.

        Args:
            process_group: None: the default group when one is initialised (and has more than
                one rank); a ``ProcessGroup``: its ranks; False: never distributed.
            timeout: seconds any one monitoring collective may take.
        """
        if process_group is False or not dist.is_available() or not dist.is_initialized():
            if process_group not in (None, False):
                raise ValueError("expected an initialised torch.distributed for process_group=, got none")
            return None
        ranks = dist.get_process_group_ranks(process_group if process_group is not None else dist.group.WORLD)
        if len(ranks) <= 1:
            return None
        if timeout <= 0:
            raise ValueError(f"expected a positive collective timeout, got {timeout}")
        return cls(sorted(ranks), timeout)

    @property
    def leader(self) -> bool:
        """Whether this rank talks to the sidecar (rank 0 of the group)."""
        return self.rank == 0

    @property
    def offsets(self) -> list[int]:
        """First union index of each rank's shard."""
        out, total = [], 0
        for c in self.counts:
            out.append(total)
            total += c
        return out

    def share_counts(self, local_m: int) -> int:
        """Tells every rank every shard's size (collective, training thread, so on the cadence
        group: a round may be using the ops group); returns the union size ``m``."""
        sizes = torch.tensor([0] * self.world, dtype=torch.int64)
        sizes[self.rank] = int(local_m)
        self.call(dist.all_reduce, sizes, group=self.cadence)
        self.counts = [int(s) for s in sizes]
        if min(self.counts) < 1:
            raise ValueError(f"expected at least one probe sample on every rank, got shard sizes {self.counts}")
        return sum(self.counts)

    def local_probe_size(self, m: int) -> int:
        """This rank's share of a union probe of ``m`` samples."""
        return shard_sizes(m, self.world)[self.rank]

    def close(self) -> None:
        """Destroys the two monitoring groups (a one-shot ``estimate`` is done with them)."""
        for group in (self.ops, self.cadence):
            try:
                dist.destroy_process_group(group)
            except Exception:
                pass
        self.broken = self.broken or "the monitoring groups were closed"

    def call(self, collective: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs one monitoring collective; a failure or timeout marks the group broken.

        Raises:
            CollectiveFailed: the group was already broken, or this collective failed.
        """
        if self.broken is not None:
            raise CollectiveFailed(self.broken)
        try:
            return collective(*args, **kwargs)
        except Exception as exc:
            self.broken = (f"distributed monitoring stopped on rank {self.rank}: a collective failed"
                           f" ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
            from .monitor import EdgewiseWarning  # (monitor imports this module)

            warnings.warn(f"edgewise: {self.broken}", EdgewiseWarning, stacklevel=3)
            raise CollectiveFailed(self.broken) from exc

    def any_busy(self, busy: bool) -> bool:
        """Whether a round is still running on any rank (training thread, cadence group).

        Every rank asks at the same cadence point, so every rank gets the same answer and
        either all start a round (and deliver the last one's report) or all skip it. A broken
        group answers ``busy`` (this rank's rounds are then missing at once).
        """
        flag = torch.tensor([1 if busy else 0], dtype=torch.int64)
        try:
            self.call(dist.all_reduce, flag, op=dist.ReduceOp.MAX, group=self.cadence)
        except CollectiveFailed:
            return busy
        return bool(flag.item())

    def scatter(self, messages: list[Any] | None) -> Any:
        """Leader: hands ``messages[r]`` to rank ``r``; every rank returns its own."""
        out: list[Any] = [None]
        self.call(dist.scatter_object_list, out, messages if self.leader else None, group=self.ops, group_src=0)
        return out[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on the leader, in rank order (None on the others)."""
        into = [None] * self.world if self.leader else None
        self.call(dist.gather_object, obj, into, group=self.ops, group_dst=0)
        return into

    def broadcast(self, obj: Any) -> Any:
        """The leader's ``obj`` on every rank."""
        box = [obj if self.leader else None]
        self.call(dist.broadcast_object_list, box, group=self.ops, group_src=0)
        return box[0]

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """``Σ_r t_r`` over the ranks (a ``d``-sized partial sum), on ``t``'s device."""
        host = t.detach().to("cpu", copy=True).contiguous()
        self.call(dist.all_reduce, host, group=self.ops)
        return host.to(t.device)
