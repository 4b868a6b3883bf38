"""What a background round costs the training loop: per-step time during a round with
``Monitor(blocking=False)`` against the same loop without Edgewise, side by side in one run.

Run:  .venv/bin/python benchmarks/bench_background.py [--rounds 3] [--hidden 32] [--threads 0] [--device cuda]
(about 1-2 minutes on 2 shared CPU cores; prints a Markdown table; not a test)

Setup: an MLP (64 inputs, one hidden tanh layer of ``--hidden``, 10 outputs, float32, MSE) on
random data, SGD with batch 32; probe m = 64; the embedded sidecar (spawned, no dashboard) with
``--max-basis 32 --bootstrap 0 --budget-seconds 10`` (lighter than the Monitor's defaults of
64 and 50, so a run fits in minutes on a shared 2-core machine). Phases alternate in one process:
a baseline phase (no monitor calls) of ``--steps`` steps, then a monitored phase that starts
one background round and times every step while it runs; this is repeated ``--rounds`` times,
so both see the same machine load. Reported: the median and 90th percentile step time in each
phase, their ratio (monitored / baseline), the round's wall time, and how long the loop would
have stalled per round with ``blocking=True`` (one blocking round timed at the end).

On a 2-core machine the round's own work (the oracle's products in a Python thread, and the
sidecar process) competes with the training step for the cores, so the ratio measures that
sharing; on a GPU the oracle runs on its own CUDA stream. ``--threads N`` sets torch's
intra-op threads (0: torch's default).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings

import torch

import edgewise
from edgewise._client import SidecarClient


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=200, help="baseline steps per phase")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--budget-seconds", type=float, default=10.0, help="per-round budget (keeps the run short)")
    p.add_argument("--max-basis", type=int, default=32)
    p.add_argument("--bootstrap", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (the oracle then runs on its own stream)")
    return p.parse_args(argv)


def q(xs: list[float], f: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(f * len(xs)))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    model = torch.nn.Sequential(torch.nn.Linear(64, args.hidden), torch.nn.Tanh(), torch.nn.Linear(args.hidden, 10)).to(dev)
    x, y = torch.randn(4096, 64, device=dev), torch.randn(4096, 10, device=dev)
    loss_fn = torch.nn.functional.mse_loss
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data_dir = tempfile.mkdtemp(prefix="edgewise-bench-")

    def factory(endpoint, timeout):
        return SidecarClient(None, timeout=timeout, sidecar_args=["--data-dir", data_dir, "--no-dashboard"])

    def train_step() -> float:
        t0 = time.perf_counter()
        idx = torch.randint(0, len(x), (32,), device=dev)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)  # a step's time is its kernels' time
        return time.perf_counter() - t0

    monitor = edgewise.Monitor(model, loss_fn, train_data=(x, y), probe_size=64, n_train=len(x), batch_size=32,
                               optimizer=opt, console=False, client_factory=factory, every_steps=10**9,
                               budget_seconds=args.budget_seconds, max_basis=args.max_basis, bootstrap=args.bootstrap,
                               timeout=120)
    monitor.round()  # start the sidecar and warm everything up (not timed)
    for _ in range(50):
        train_step()
    base: list[float] = []
    during: list[float] = []
    rounds_ms: list[float] = []
    for _ in range(args.rounds):
        base += [train_step() for _ in range(args.steps)]
        t0 = time.perf_counter()
        monitor._cadence(lr=None, step=monitor._steps, epoch=None)  # what step() does at a cadence point
        while monitor._worker.busy:
            t = time.perf_counter()
            train_step()
            monitor.step()
            during.append(time.perf_counter() - t)
        rounds_ms.append(1e3 * (time.perf_counter() - t0))
        monitor.wait(60)
    monitor.blocking = True
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monitor.round()
    blocking_ms = 1e3 * (time.perf_counter() - t0)
    monitor.close()
    d = sum(p.numel() for p in model.parameters())
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "2-core shared CPU"
    print(f"d = {d}, m = 64, device {args.device}, torch threads = {torch.get_num_threads()}, {args.rounds} rounds; {where}\n")
    print("| phase | steps | median step (ms) | p90 step (ms) |")
    print("|---|---|---|---|")
    print(f"| without Edgewise | {len(base)} | {1e3 * statistics.median(base):.3f} | {1e3 * q(base, 0.9):.3f} |")
    print(f"| during a background round | {len(during)} | {1e3 * statistics.median(during):.3f} | {1e3 * q(during, 0.9):.3f} |")
    print(f"\nratio of medians (during / without): {statistics.median(during) / statistics.median(base):.2f}; "
          f"p90 ratio {q(during, 0.9) / q(base, 0.9):.2f}")
    print(f"background round wall time: {', '.join(f'{r:.0f}' for r in rounds_ms)} ms; "
          f"the same round with blocking=True stalls the loop {blocking_ms:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
