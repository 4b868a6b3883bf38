"""Per-sample HVP throughput of the oracle vs one batched HVP of the mean loss.

Run:  .venv/bin/python benchmarks/bench_oracle.py [--m 256] [--threads 1] [--repeat 5]

What it measures, on an MLP 784-128-10 (cross-entropy, random inputs and labels), for float32
and float64: the time of ``m`` per-sample HVPs ``H_i v`` (one shared ``v``, vmapped, chunked by
the oracle's default memory budget and unchunked), an ``r = 8`` block per sample, the oracle's end-to-end ``blocks`` op on the
exact-Hessian route, the Gauss–Newton factor route's ``blocks`` (8 batched JVPs of the probe
batch; counted as m/2 per column), and one HVP of the mean loss over the same ``m`` samples. "ratio" is the time per HVP-equivalent (``m`` per-sample HVPs) relative to the
batched HVP: the price of per-sample resolution. Prints a table; not a test.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.func import functional_call, grad, jvp

from edgewise._hvp import ParamLayout, chunk_for_budget, per_sample_hvp
from edgewise.oracle import DEFAULT_MEMORY_BUDGET, CurvatureOracle


def timed(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` calls after one warm-up, in seconds."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench(dtype: torch.dtype, m: int, repeat: int) -> list[tuple[str, float, int]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)).to(dtype)
    x = torch.randn(m, 784, dtype=dtype)
    y = torch.randint(0, 10, (m,))
    loss = nn.functional.cross_entropy
    layout = ParamLayout.from_module(model)
    theta = layout.flatten(dict(model.named_parameters())).detach().clone()
    d = layout.size
    v = torch.randn(d, dtype=dtype)
    v8 = torch.randn(d, 8, dtype=dtype)
    itemsize = theta.element_size()
    chunk1 = chunk_for_budget(DEFAULT_MEMORY_BUDGET, d, 1, itemsize)
    chunk8 = chunk_for_budget(DEFAULT_MEMORY_BUDGET, d, 8, itemsize)

    def mean_loss(t):
        return loss(functional_call(model, layout.unflatten(t), (x,)), y)

    g = grad(mean_loss)
    hess_all = per_sample_hvp(model, loss, layout)
    hess_chunk = per_sample_hvp(model, loss, layout, chunk_size=chunk1)
    hess_block = per_sample_hvp(model, loss, layout, chunk_size=chunk8)
    oracle = CurvatureOracle(model, loss, x, y, curvature="hessian")
    oracle.begin_round()
    oracle.random(8, 0)

    def factor_blocks():
        # a fresh round each time: the factor route caches a round's factors
        factors.begin_round()
        factors.reset()
        factors.random(8, 0)
        return factors.execute("blocks", {"start": 0, "count": 8})

    factors = CurvatureOracle(model, loss, x, y, curvature="ggn")

    with torch.no_grad():
        rows = [
            ("batched HVP of the mean loss (1 HVP)", timed(lambda: jvp(g, (theta,), (v,)), repeat), 1),
            (f"per-sample H_i v, one vmap over {m}", timed(lambda: hess_all(theta, x, y, v), repeat), m),
            (f"per-sample H_i v, chunks of {chunk1}", timed(lambda: hess_chunk(theta, x, y, v), repeat), m),
            (f"per-sample H_i V, V d×8, chunks of {chunk8}", timed(lambda: hess_block(theta, x, y, v8), repeat), 8 * m),
            ("oracle blocks op, count=8 (V^T H_i V)", timed(lambda: oracle.execute("blocks", {"start": 0, "count": 8}), repeat), 8 * m),
            ("GGN factor blocks, count=8 (8 batched JVPs)", timed(factor_blocks, repeat), 8 * m // 2),
        ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=256, help="probe samples")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (best is shown)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"MLP 784-128-10 (d = 101770), cross-entropy, m = {args.m}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), best of {args.repeat}")
    print(f"{'dtype':<8}{'what':<46}{'ms':>10}{'HVPs/s':>12}{'ratio':>8}")
    for dtype in (torch.float32, torch.float64):
        rows = bench(dtype, args.m, args.repeat)
        base = rows[0][1]
        for i, (what, sec, n) in enumerate(rows):
            name = "f32" if dtype == torch.float32 else "f64"
            equivalents = 1 if i == 0 else n / args.m
            print(f"{name:<8}{what:<46}{sec * 1e3:>10.2f}{n / sec:>12.0f}{sec / equivalents / base:>8.1f}")
    print("HVPs/s counts per-sample HVPs (the batched row: its one mean-loss HVP); "
          "ratio = time per HVP-equivalent (m per-sample HVPs) / batched-HVP time.")


if __name__ == "__main__":
    main()
