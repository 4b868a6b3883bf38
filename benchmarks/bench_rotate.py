"""What a rotation of the client's basis costs: ``V U`` re-orthonormalised by Gram–Schmidt
column by column (``orthonormalize``, which new columns still use) against CholeskyQR2
(``reorthonormalize``, which ``rotate`` uses when ``V U`` is orthonormal up to rounding).

Run:  .venv/bin/python benchmarks/bench_rotate.py [--d 25450] [--repeat 5]

The default ``d`` is the main example's network (784 → 32 → 10). Both methods run alternately
in one process, one thread, float64; prints the median wall time of ``V U`` plus its
re-orthonormalisation per shape, their ratio, and how far apart the two results are. Not a test.
"""

from __future__ import annotations

import argparse
import time

import torch

from edgewise._basis import orthonormalize, reorthonormalize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=25450)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    methods = {
        "gram-schmidt": lambda w: orthonormalize(w[:, :0], w)[0],
        "cholesky-qr2": reorthonormalize,
    }
    print(f"d = {args.d}, median of {args.repeat}")
    print(f"{'k -> k_new':>12} {'gram-schmidt ms':>16} {'cholesky-qr2 ms':>16} {'ratio':>6} {'max |diff|':>11}")
    for k, k_new in [(80, 60), (80, 80), (68, 40)]:
        v, _ = torch.linalg.qr(torch.randn(args.d, k, dtype=torch.float64, generator=g))
        u, _ = torch.linalg.qr(torch.randn(k, k_new, dtype=torch.float64, generator=g))
        times: dict[str, list[float]] = {name: [] for name in methods}
        out = {}
        for _ in range(args.repeat):
            for name, fn in methods.items():
                t0 = time.perf_counter()
                out[name] = fn(v @ u)
                times[name].append(time.perf_counter() - t0)
        med = {name: sorted(t)[len(t) // 2] * 1e3 for name, t in times.items()}
        diff = float((out["gram-schmidt"] - out["cholesky-qr2"]).abs().max())
        print(f"{f'{k} -> {k_new}':>12} {med['gram-schmidt']:16.1f} {med['cholesky-qr2']:16.1f} "
              f"{med['gram-schmidt'] / med['cholesky-qr2']:6.2f} {diff:11.1e}")


if __name__ == "__main__":
    main()
