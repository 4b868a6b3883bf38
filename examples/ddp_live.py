"""Data-parallel training (DistributedDataParallel, CPU, gloo) with Edgewise attached to every rank.

Run:   .venv/bin/torchrun --nproc-per-node 2 examples/ddp_live.py                (a minute or so)
       .venv/bin/torchrun --nproc-per-node 2 examples/ddp_live.py --fast         (the test suite's mode)
       .venv/bin/torchrun --nproc-per-node 4 examples/ddp_live.py --endpoint tcp://127.0.0.1:5555

Each rank trains on its shard of real MNIST digits (DistributedSampler) with plain SGD, global
batch size B = ranks × per-rank batch. Every rank builds the same Monitor (a collective call): the
probe set is sharded, each rank drawing its share of ``--probe-size`` samples from its own shard,
and rank 0 alone talks to the sidecar (spawned by rank 0, or ``--endpoint``). Background rounds run
every ``--every`` steps; every rank executes the sidecar's ops on its own probe shard, and every
rank receives the same report at the same step, so StabilityLR (on by default, ``--no-stability-lr``
turns it off) changes every rank's lr identically. The lr starts at ``--lr`` = 8.0, above η* of
this network (about 7.7 at the start), so StabilityLR caps it at 0.9·η* after the first round.

Expect (rank 0 prints): a line per round with λ_gen, η* for the global batch size, the margin and
the lr, then "lr on every rank: [...]" with one equal value per rank, and "same reports on every
rank: True".
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist_data import load_digits  # noqa: E402
from mnist_live import build_model  # noqa: E402

import edgewise  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="DDP training on MNIST digits with Edgewise attached.")
    parser.add_argument("--per-class", type=int, default=200, help="training digits per class")
    parser.add_argument("--pool", type=int, default=4, help="average-pool factor (4: 7×7 inputs)")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16, help="per-rank batch size")
    parser.add_argument("--lr", type=float, default=8.0)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--every", type=int, default=40, help="a round every N steps")
    parser.add_argument("--probe-size", type=int, default=64, help="union probe size m (sharded over ranks)")
    parser.add_argument("--endpoint", default=None, help="a running sidecar (default: rank 0 spawns one)")
    parser.add_argument("--no-stability-lr", action="store_true")
    parser.add_argument("--fast", action="store_true", help="a small run for the tests")
    args = parser.parse_args(argv)
    if args.fast:
        args.per_class, args.epochs, args.every, args.probe_size = 24, 3, 4, 16
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    x, y, _ = load_digits(tuple(range(10)), per_class=args.per_class, pool=args.pool, seed=0)
    data = TensorDataset(x, y)
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    model = DistributedDataParallel(build_model(x.shape[1], args.hidden, 10, seed=0))
    loss_fn = torch.nn.functional.mse_loss
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    shard = torch.utils.data.Subset(data, list(iter(sampler)))  # this rank's digits

    monitor = edgewise.Monitor(
        model, loss_fn, train_data=shard, probe_size=args.probe_size, n_train=len(data),
        batch_size=args.batch_size * world, optimizer=optimizer, endpoint=args.endpoint,
        every_steps=args.every, run_name="ddp_live", console=False, bootstrap=0 if args.fast else None,
    )
    if not args.no_stability_lr:
        edgewise.StabilityLR(optimizer, monitor, safety=0.9, verbose=False)
    if rank == 0:
        print(f"{world} ranks, n = {len(data)}, d = {sum(p.numel() for p in model.parameters())}, "
              f"B = {args.batch_size} × {world}, lr = {args.lr}, probe m = {args.probe_size} (sharded)")
        monitor.add_listener(lambda r: print(row(r, optimizer), flush=True))
    with monitor:
        for epoch in range(args.epochs):
            sampler.set_epoch(epoch)
            for xb, yb in loader:
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(xb), yb).backward()
                optimizer.step()
                monitor.step(epoch=epoch)
        monitor.wait(120)
    lrs = [None] * world
    dist.all_gather_object(lrs, optimizer.param_groups[0]["lr"])
    reports = [None] * world
    dist.all_gather_object(reports, [(r.step, r.missing, r.eta_star) for r in monitor.history])
    if rank == 0:
        done = sum(1 for r in monitor.history if not r.missing)
        print(f"rounds: {done} of {len(monitor.history)} complete")
        print(f"lr on every rank: {[f'{lr:.6g}' for lr in lrs]}")
        print(f"same reports on every rank: {all(r == reports[0] for r in reports)}")
    dist.destroy_process_group()
    return 0


def row(r: edgewise.StabilityReport, optimizer: torch.optim.Optimizer) -> str:
    if r.missing:
        return f"step {r.step:>5}: round missing ({r.reason})"
    return (f"step {r.step:>5}: λ_gen {r.lambda_gen:8.4g}  η* {r.eta_star:8.4g}  margin {r.margin:6.3f}"
            f"  lr now {optimizer.param_groups[0]['lr']:.4g}")


if __name__ == "__main__":
    code = main()
    # Every group is destroyed and the output written; leave without the interpreter's teardown,
    # in which a thread of torch 2.13's gloo backend aborted the process in about 1 run in 5
    # ("terminate called without an active exception", no Python frame left).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
