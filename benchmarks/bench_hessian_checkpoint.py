"""Cost and accuracy of ``edgewise.estimate(curvature="hessian")`` at its defaults (not a test).

Run:  .venv/bin/python benchmarks/bench_hessian_checkpoint.py [--hidden 8 12] [--probe 128]
(about 2 minutes on 2 CPU cores; prints a Markdown table)

Models ``Linear(20, h) → tanh → Linear(h, 4)`` in float64 at their seeded random initialisation
(d = 204 for h = 8, 304 for h = 12), m random inputs with random labels, cross-entropy, B = 8,
n = 1000. Each row: the default checkpoint (since the sixteenth session the whole parameter
space when m·d³ ≤ 2³², exact), the same with ``bootstrap=0``, and ``max_basis=64`` (the earlier
default), whose λ_gen is printed as a fraction of the whole-space value.
"""

from __future__ import annotations

import argparse
import time

import torch

import edgewise


def checkpoint(model, x, y, **options) -> tuple[float, edgewise.StabilityReport]:
    """Wall seconds and the report of one ``estimate()`` call (its own sidecar)."""
    started = time.perf_counter()
    report = edgewise.estimate(model, torch.nn.functional.cross_entropy, probe=(x, y), n_train=1000, batch_size=8,
                               curvature="hessian", **options)
    return time.perf_counter() - started, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[8, 12])
    ap.add_argument("--probe", type=int, default=128)
    a = ap.parse_args()
    print("| d | m | default: λ_gen, converged, s (sidecar s) | bootstrap=0: s | max_basis=64: λ_gen (share), converged, s |")
    print("|---|---|---|---|---|")
    for hidden in a.hidden:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(20, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 4)).double()
        x = torch.randn(a.probe, 20, dtype=torch.float64)
        y = torch.randint(0, 4, (a.probe,))
        d = sum(p.numel() for p in model.parameters())
        t_full, full = checkpoint(model, x, y)
        t_point, _ = checkpoint(model, x, y, bootstrap=0)
        t_64, small = checkpoint(model, x, y, max_basis=64, bootstrap=0)
        print(f"| {d} | {a.probe} | {full.lambda_gen:.6g}, {full.converged}, {t_full:.1f} ({full.sidecar_ms / 1e3:.1f}) "
              f"| {t_point:.1f} | {small.lambda_gen:.6g} ({small.lambda_gen / full.lambda_gen:.0%}), {small.converged}, "
              f"{t_64:.1f} |", flush=True)


if __name__ == "__main__":
    main()
