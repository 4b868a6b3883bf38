"""Does the bootstrap interval hold the training set's λ_gen? Coverage over many probes.

Run:  .venv/bin/python benchmarks/interval_coverage.py --per-class 100 --pool 4 --hidden 16 --draws 30

The network is the main example's (examples/mnist_live.py: one hidden ReLU layer, MSE on one-hot
targets, SGD at ``--lr``, B = 16), trained ``--epochs`` epochs on ``--per-class`` digits of each
class (0: all 10,000) pooled ``--pool``×. The training set is the population: its exact
Gauss–Newton λ_gen is computed once in the span of all its factor rows
(tests/python/_exact_span.py, independent of the sidecar). Then ``--draws`` probes of m = 128
samples (seeded, without replacement) each get ``edgewise.estimate()`` with ``--bootstrap``
resamples, and the line says whether its 90 % interval holds the population value.

The sidecar reports the basic interval ``[2λ − q₉₅, 2λ − q₅]`` of its resample quantiles ``q``;
the percentile interval ``[q₅, q₉₅]`` of the same resamples is recovered from it
(``q₅ = 2λ − hi``, ``q₉₅ = 2λ − lo``), so both are judged on the same draws. Not a test:
about 40 s per probe on the project's 2-core CPU (the exact population solve takes 20 s at
n = 1000 and d = 970).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "tests" / "python")]

import edgewise  # noqa: E402
from _exact_span import batch_noise, factor_rows, lambda_gen, span_factors  # noqa: E402
from mnist_live import sgd_epoch, training_setup  # noqa: E402

BATCH = 16
PROBE = 128


def population_lambda_gen(model, loss_fn, x, y) -> float:
    """Exact λ_gen of the whole training set, in the span of all its factor rows."""
    return lambda_gen(span_factors(factor_rows(model, loss_fn, x, y)), batch_noise(len(x), BATCH))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=100, help="digits per class (0: all)")
    ap.add_argument("--pool", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1.0)
    ap.add_argument("--draws", type=int, default=30)
    ap.add_argument("--bootstrap", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(2)
    x, y, model, loss_fn, opt, gen = training_setup(args.lr, per_class=args.per_class or None, pool=args.pool,
                                                    hidden=args.hidden)
    n = len(x)
    for _ in range(args.epochs):
        sgd_epoch(model, loss_fn, opt, x, y, BATCH, gen)
    t = time.perf_counter()
    truth = population_lambda_gen(model, loss_fn, x, y)
    print(f"n = {n}, d = {sum(p.numel() for p in model.parameters())}: training-set λ_gen {truth:.6f} "
          f"({time.perf_counter() - t:.0f} s)", flush=True)
    held = {"basic": 0, "percentile": 0}
    below = {"basic": 0, "percentile": 0}
    points = []
    for s in range(args.draws):
        pick = torch.randperm(n, generator=torch.Generator().manual_seed(100 + s))[:PROBE]
        t = time.perf_counter()
        r = edgewise.estimate(model, loss_fn, (x[pick], y[pick]), n_train=n, batch_size=BATCH,
                              bootstrap=args.bootstrap, seed=s)
        lam, lo, hi = r.lambda_gen, r.ci["lambda_gen_lo"], r.ci["lambda_gen_hi"]
        ends = {"basic": (lo, hi), "percentile": (2 * lam - hi, 2 * lam - lo)}
        for kind, (a, b) in ends.items():
            held[kind] += a <= truth <= b
            below[kind] += truth < a
        points.append(lam)
        print(f"probe {s}: λ_gen {lam:.5f}, basic [{lo:.5f}, {hi:.5f}], percentile [{ends['percentile'][0]:.5f}, "
              f"{ends['percentile'][1]:.5f}] ({time.perf_counter() - t:.0f} s)", flush=True)
    k = args.draws
    print(f"probe λ_gen mean {np.mean(points):.5f} ({np.mean(points) / truth - 1:+.2%} against the training set), "
          f"sd {np.std(points):.5f}; 90 % intervals holding the training-set value: basic {held['basic']}/{k} "
          f"({below['basic']} wholly above it), percentile {held['percentile']}/{k} ({below['percentile']} wholly above it)")


if __name__ == "__main__":
    main()
