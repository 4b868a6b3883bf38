"""A real Python client for the live dashboard e2e test: trains a tiny MLP with SGD and
streams Edgewise rounds to a running sidecar, printing one JSON line per round on stdout.

Run:  .venv/bin/python tests/e2e/_stream_rounds.py --endpoint tcp://127.0.0.1:PORT

The model (5→6→2 tanh, float64, d = 50 parameters) is small enough that every round is
exact (full space) and fast. `--hold-after K` makes the client wait, after its K-th round,
for one line on stdin (or `--hold-timeout` seconds) before it streams the rest, so a test
can open the page on a run that is certain to still be growing; `--interval` spaces the
remaining rounds so the page sees them arrive one by one.
"""

from __future__ import annotations

import argparse
import json
import math
import select
import sys
import time

import torch

import edgewise


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the sidecar's ZeroMQ endpoint")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps-per-round", type=int, default=4, help="SGD steps between rounds")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between rounds after the hold")
    parser.add_argument("--hold-after", type=int, default=0, help="wait for a stdin line after this round (0: never)")
    parser.add_argument("--hold-timeout", type=float, default=60.0)
    parser.add_argument("--run-name", default="e2e-live")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def emit(**event: object) -> None:
    """One JSON line; non-finite numbers become null so any JSON parser reads it."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in event.items()}
    print(json.dumps(clean), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    x = torch.randn(64, 5, dtype=torch.float64)
    y = torch.nn.functional.one_hot((x[:, 0] > 0).long(), 2).double()
    loss_fn = torch.nn.functional.mse_loss
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    monitor = edgewise.Monitor(model, loss_fn, train_data=(x, y), probe_size=16, n_train=64, batch_size=8,
                               endpoint=args.endpoint, console=False, run_name=args.run_name,
                               optimizer=optimizer, seed=args.seed)
    emit(event="start", run_id=monitor.run_id, params=sum(p.numel() for p in model.parameters()))
    generator = torch.Generator().manual_seed(args.seed)
    step = 0
    missing = 0
    with monitor:
        for r in range(args.rounds):
            for _ in range(args.steps_per_round):
                idx = torch.randperm(64, generator=generator)[:8]
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(x[idx]), y[idx]).backward()
                optimizer.step()
                monitor.step()
                step += 1
            started = time.perf_counter()
            report = monitor.round(lr=args.lr, step=step, epoch=step // 8)
            with torch.no_grad():
                loss = float(loss_fn(model(x), y))
            missing += bool(report.missing)
            emit(event="round", round=r, run_id=monitor.run_id, step=step, loss=loss, missing=report.missing,
                 reason=report.reason, lambda_max=report.lambda_max, lambda_gen=report.lambda_gen,
                 margin=report.margin, seconds=round(time.perf_counter() - started, 3))
            if r + 1 == args.hold_after:
                ready, _, _ = select.select([sys.stdin], [], [], args.hold_timeout)
                if ready:
                    sys.stdin.readline()
            elif r + 1 > args.hold_after and r + 1 < args.rounds:
                time.sleep(args.interval)
    emit(event="done", run_id=monitor.run_id, rounds=args.rounds, missing=missing)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
