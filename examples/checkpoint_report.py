"""One-shot stability report of a saved model: how far could SGD push the lr at this point?

Run:   .venv/bin/python examples/checkpoint_report.py CHECKPOINT.pt   (a state_dict of the
       example network below, e.g. saved by your own training script)
       .venv/bin/python examples/checkpoint_report.py                 (trains a small network
       for a few epochs, saves it to a temporary checkpoint, then reports on it)
       .venv/bin/python examples/checkpoint_report.py --fast          (the test suite's mode)

Prints λ_max, λ_gen with its bootstrap interval, the bounds of theory.md §3, η* for the given
batch size and the η*(B) curve over batch sizes: the largest learning rate at which SGD with
batch B is mean-square stable at this checkpoint.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist_data import load_digits  # noqa: E402

import edgewise  # noqa: E402
from mnist_live import build_model  # noqa: E402


def train_and_save(path: Path, x: torch.Tensor, y: torch.Tensor, hidden: int, epochs: int) -> None:
    """A short plain-SGD run whose final state_dict becomes the checkpoint."""
    model = build_model(x.shape[1], hidden, y.shape[1], seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(16):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x[idx]), y[idx]).backward()
            opt.step()
    torch.save(model.state_dict(), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stability report of a saved model")
    parser.add_argument("checkpoint", nargs="?", help="state_dict saved with torch.save")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--per-class", type=int, default=128)
    parser.add_argument("--probe-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=None, help="also report the margin of this lr")
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args(argv)
    if args.fast:
        args.per_class, args.hidden, args.probe_size = 24, 8, 48

    x, y, _ = load_digits((0, 1, 2, 3), per_class=args.per_class, pool=4)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.checkpoint) if args.checkpoint else Path(tmp) / "model.pt"
        if not args.checkpoint:
            train_and_save(path, x, y, args.hidden, epochs=2 if args.fast else 20)
            print(f"trained a small network and saved it to {path}")
        model = build_model(x.shape[1], args.hidden, y.shape[1], seed=0)
        model.load_state_dict(torch.load(path))

    probe = (x[: args.probe_size], y[: args.probe_size]) if args.probe_size < len(x) else (x, y)
    grid = sorted(b for b in {1, 2, 4, 8, 16, 32, 64, 128, args.batch_size, len(x)} if b <= len(x))
    report = edgewise.estimate(model, torch.nn.functional.mse_loss, probe, n_train=len(x),
                               batch_size=args.batch_size, lr=args.lr, batch_grid=grid)
    ci = report.ci
    print(f"n = {len(x)}, m = {report.m} probe samples, B = {args.batch_size}")
    print(f"λ_max  = {report.lambda_max:.6g}   (GD threshold 2/λ_max = {report.eta_gd:.6g})")
    print(f"λ_gen  = {report.lambda_gen:.6g}   90% interval [{ci.get('lambda_gen_lo', float('nan')):.6g}, "
          f"{ci.get('lambda_gen_hi', float('nan')):.6g}]")
    print(f"η*     = {report.eta_star:.6g}   (mean-square threshold of SGD at B = {args.batch_size})")
    for name, value in sorted(report.bounds.items()):
        print(f"  bound {name:<12} {value:.6g}  (a lower bound on λ_gen)")
    if report.margin is not None:
        print(f"margin lr/η* = {report.margin:.4f} for lr = {report.lr}")
    print("η*(B):  " + "  ".join(f"B={int(row['B'])}: {row['eta_star']:.4g}" for row in report.eta_star_by_batch))
    print(f"cost: {report.hvps:.1f} HVP-equivalents, {report.wall_ms:.0f} ms, converged = {report.converged}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
