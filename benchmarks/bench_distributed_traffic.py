"""What crosses the network per round in a distributed run, per rank, measured (docs/distributed.md).

Not a test: one run prints, side by side, the bytes each rank sends and receives through the
monitoring collectives in one cold and one warm round, for 2 and 4 CPU ranks (spawned, gloo) and
two widths of the main example's network (784 → h → 10, so ``d`` grows with ``h``), plus the
rounds' wall time against the same rounds in one process on the same union probe (run just
before, same sidecar).

Bytes counted: op messages scattered by rank 0 (pickled size of what a rank receives), results
gathered to rank 0 (pickled size of what a rank sends), the ``d``-sized all-reduces (tensor bytes
per rank, before the ring's factor of about 2), the report handed out at the end, the cadence
flags (none here: blocking rounds). What to read: everything but the all-reduce does not depend
on ``d``; the all-reduce is ``d × 8`` bytes per expanded column (float64 here).

Run:   .venv/bin/python benchmarks/bench_distributed_traffic.py          (~2-4 min on 2 shared cores)
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

M, PER_CLASS, POOL = 128, 100, 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def problem(hidden: int):
    from mnist_data import load_digits
    from mnist_live import build_model

    x, y, _ = load_digits(tuple(range(10)), per_class=PER_CLASS, pool=POOL, seed=0)
    return build_model(x.shape[1], hidden, 10, seed=0), x, y


def count_traffic(tally: dict) -> None:
    """Wraps RankGroup's collectives to add up this rank's bytes by kind."""
    from edgewise._distributed import RankGroup

    scatter, gather, total = RankGroup.scatter, RankGroup.gather, RankGroup.sum

    def counted_scatter(self, messages):
        got = scatter(self, messages)
        kind = "report" if got[0] == "end" else "ops in"
        tally[kind] = tally.get(kind, 0) + len(pickle.dumps(got))
        return got

    def counted_gather(self, obj):
        tally["results out"] = tally.get("results out", 0) + len(pickle.dumps(obj))
        return gather(self, obj)

    def counted_sum(self, t):
        tally["all-reduce"] = tally.get("all-reduce", 0) + t.numel() * t.element_size()
        return total(self, t)

    RankGroup.scatter, RankGroup.gather, RankGroup.sum = counted_scatter, counted_gather, counted_sum


def rank_main(rank: int, world: int, port: int, endpoint: str, hidden: int, out: str) -> None:
    import torch
    import torch.distributed as dist

    import edgewise

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    tally: dict = {}
    count_traffic(tally)
    model, x, y = problem(hidden)
    xs, ys = x[rank::world], y[rank::world]  # this rank's data
    rounds = []
    with edgewise.Monitor(model, torch.nn.functional.mse_loss, train_data=(xs, ys), probe_size=M, n_train=len(x),
                          batch_size=16, endpoint=endpoint, console=False, blocking=True, bootstrap=0) as mon:
        for step in (1, 2):
            before = dict(tally)
            t0 = time.perf_counter()
            r = mon.round(lr=1.0, step=step)
            rounds.append({"wall": time.perf_counter() - t0, "missing": r.missing, "basis": r.basis_size,
                           "bytes": {k: v - before.get(k, 0) for k, v in tally.items()}})
    Path(out, f"rank{rank}.json").write_text(json.dumps(rounds))
    os._exit(0)


def alone(endpoint: str, hidden: int, world: int) -> list[tuple[float, int]]:
    """The same rounds in one process on the union probe (the ranks' shards, in rank order)."""
    import torch

    import edgewise
    from edgewise._distributed import shard_seed, shard_sizes
    from edgewise._probe import draw_probe

    model, x, y = problem(hidden)
    shards = [draw_probe((x[r::world], y[r::world]), shard_sizes(M, world)[r], seed=shard_seed(0, r))
              for r in range(world)]
    probe = (torch.cat([s[0] for s in shards]), torch.cat([s[1] for s in shards]))
    walls = []
    with edgewise.Monitor(model, torch.nn.functional.mse_loss, probe, n_train=len(x), batch_size=16,
                          endpoint=endpoint, console=False, blocking=True, bootstrap=0, process_group=False) as mon:
        for step in (1, 2):
            t0 = time.perf_counter()
            r = mon.round(lr=1.0, step=step)
            walls.append((time.perf_counter() - t0, r.basis_size or 0))
    return walls


def main() -> int:
    sys.path.insert(0, str(ROOT / "tests" / "python"))
    from _sidecar import SidecarProcess

    sidecar = SidecarProcess().start()
    try:
        print(f"probe m = {M} (union), MNIST 28×28, 784 → h → 10, float64, blocking rounds, bootstrap 0")
        print(f"{'h':>4} {'d':>7} {'W':>2} {'round':>5} {'basis':>5} | {'ops in':>9} {'results out':>11} "
              f"{'report':>7} {'all-reduce':>11} (bytes per rank, mean over ranks) | {'wall s':>6} | alone: {'wall s':>6} {'basis':>5}")
        for hidden in (32, 128):
            d = 784 * hidden + hidden + hidden * 10 + 10
            for world in (2, 4):
                single = alone(sidecar.endpoint, hidden, world)
                with tempfile.TemporaryDirectory() as out:
                    ctx = mp.get_context("spawn")
                    port = free_port()
                    procs = [ctx.Process(target=rank_main, args=(r, world, port, sidecar.endpoint, hidden, out))
                             for r in range(world)]
                    for p in procs:
                        p.start()
                    for p in procs:
                        p.join(600)
                    ranks = [json.loads(Path(out, f"rank{r}.json").read_text()) for r in range(world)]
                for i, name in enumerate(("cold", "warm")):
                    rows = [rk[i] for rk in ranks]
                    mean = {k: sum(r["bytes"].get(k, 0) for r in rows) / world
                            for k in ("ops in", "results out", "report", "all-reduce")}
                    print(f"{hidden:>4} {d:>7} {world:>2} {name:>5} {rows[0]['basis'] or 0:>5} | {mean['ops in']:>9.0f} "
                          f"{mean['results out']:>11.0f} {mean['report']:>7.0f} {mean['all-reduce']:>11.0f}"
                          f"{'':>37} | {rows[0]['wall']:>6.2f} | {single[i][0]:>13.2f} {single[i][1]:>5}", flush=True)
    finally:
        sidecar.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
