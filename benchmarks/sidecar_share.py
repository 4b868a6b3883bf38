"""Where a warm round's sidecar time goes on the main example's network: the default round beside
the same round without its bootstrap interval, and without the interval and the η*(B) curve.

Not a test: one run prints, per configuration, the median warm round's wall, client and sidecar
seconds, the sidecar's share of the wall (median of per-round ratios), operator applications,
how many rounds converged, λ_gen and the tolerance. The configurations alternate for
``--passes`` passes on the same model and probe (rounds run one after another drift with the
machine). The rounds without the interval are given the default round's tolerance cap (0.02):
without the interval the automatic tolerance has nothing to follow.

Run:  .venv/bin/python benchmarks/sidecar_share.py --epochs 12     (~1 min on 2 CPU cores)

The network is ``bench_round.py``'s CPU case (examples/mnist_live.py after ``--epochs`` epochs),
m = 128, B = 16, Gauss–Newton, one sidecar per configuration and pass, a cold round then warm ones.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from bench_round import mnist_setup, run_rounds

CONFIGS = {
    "default": {"seed": 0},
    "no interval (tol 0.02)": {"seed": 0, "bootstrap": 0, "tol": 0.02},
    "no interval, curve at B only": {"seed": 0, "bootstrap": 0, "tol": 0.02, "batch_grid": [16]},
}


def summary(rows: list[dict]) -> str:
    """One line of medians over warm rounds."""
    def med(key):
        return statistics.median(r[key] for r in rows)

    share = statistics.median(r["sidecar_s"] / r["wall_s"] for r in rows)
    return (f"{len(rows)} warm rounds: wall {med('wall_s'):.3f} s, client {med('client_s'):.3f} s, "
            f"sidecar {med('sidecar_s'):.3f} s ({share:.0%}), applications {med('operator_applications'):.0f}, "
            f"converged {sum(bool(r['converged']) for r in rows)}, λ_gen {med('lambda_gen'):.5f}, "
            f"tol {med('tol'):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="epochs of training before the rounds")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per configuration and pass (a cold one, then warm)")
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in bench_round.py: the client's conditions in a training process
    model, loss_fn, probe, n, epoch_s = mnist_setup(args.epochs, 128)
    print(f"main example's network after {args.epochs} epochs: {epoch_s:.3f} s per epoch")
    warm = {name: [] for name in CONFIGS}
    for _ in range(args.passes):
        for name, options in CONFIGS.items():
            rows = run_rounds(model, loss_fn, probe, n=n, batch_size=16, curvature="ggn", options=options,
                              rounds=args.rounds, label=name)
            warm[name] += [r for r in rows if r["round"] == "warm"]
    for name, rows in warm.items():
        print(f"{name}: {summary(rows)}")


if __name__ == "__main__":
    main()
