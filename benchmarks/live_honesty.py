"""Are live rounds honest along training? A blocking Monitor round after every epoch of the main
example's network, each checked against the exact solve in the whole factor span.

Run:  .venv/bin/python benchmarks/live_honesty.py --epochs 8 --pool 1 --lr 2.0 --probe-seed 0
      .venv/bin/python benchmarks/live_honesty.py --set held2     (a named set of runs, two at a time)

The network: 784 (``--pool 1``) or 196 (``--pool 2``) → 32 → 10, MSE on one-hot targets, SGD at
``--lr``, B = 16, all 10,000 digits; probe m = 128 (``--probe-seed 0``: the Monitor's own draw,
otherwise a seeded permutation). After each epoch it prints the live λ_gen, its round's time,
basis, tolerance and ``converged``, the exact λ_gen from ``tests/python/_exact_span.py``
(independent of the sidecar) and the relative error. A round fails when it reports
``converged: true`` outside its own tolerance. ``EDGEWISE_ROOT`` selects the sidecar (e.g. an
older tree made by ``git archive``) for side-by-side runs. Not a test: about 10 s per epoch.

The named sets (benchmarks/RESULTS.md): ``tune`` (the runs the sample probes were tuned on),
``held`` (held out then, since used to design the followed pairs), ``held2`` (chosen after
the code of the ninth session) and ``held3`` (chosen after the code of the seventeenth).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (epochs, pool, lr, probe seed) per run, in two lanes run side by side.
SETS = {
    "tune": [[(6, 1, 1.0, 0), (12, 1, 2.0, 0), (8, 1, 2.0, 2)],
             [(11, 2, 2.0, 0), (6, 1, 3.0, 0), (8, 1, 2.0, 1), (8, 1, 2.0, 3)]],
    "held": [[(10, 1, 1.5, 0), (8, 2, 1.0, 0), (8, 1, 2.0, 4)],
             [(8, 1, 2.5, 1), (8, 2, 3.0, 0), (8, 1, 2.0, 5)]],
    "held2": [[(10, 1, 1.25, 0), (8, 1, 1.75, 6), (8, 2, 2.25, 7)],
              [(8, 1, 2.0, 8), (8, 2, 1.5, 9), (8, 1, 2.75, 10)]],
    "held3": [[(8, 1, 1.6, 11), (8, 2, 2.0, 12), (8, 1, 2.2, 13)],
              [(8, 1, 1.1, 14), (8, 2, 2.6, 15), (8, 1, 1.9, 0)]],
}

LINE = re.compile(r"epoch \d+: live \S+ \((\d+) ms.*tol ([\d.e-]+), conv (\w+)\) exact .* rel (\S+)")


def one_run(epochs: int, pool: int, lr: float, probe_seed: int) -> None:
    """Train and check; prints one line per epoch."""
    sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "tests" / "python")]
    import torch

    torch.set_num_threads(1)
    import edgewise
    from _exact_span import batch_noise, factor_rows, lambda_gen, span_factors
    from edgewise._probe import draw_probe
    from mnist_live import sgd_epoch, training_setup

    x, y, model, loss_fn, opt, gen = training_setup(lr, pool=pool)
    if probe_seed == 0:
        probe = draw_probe((x, y), 128, seed=0)
    else:
        pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(probe_seed))[:128]
        probe = (x[pick], y[pick])
    with edgewise.Monitor(model, loss_fn, probe=probe, n_train=len(x), batch_size=16, console=False,
                          blocking=True) as mon:
        for epoch in range(epochs):
            sgd_epoch(model, loss_fn, opt, x, y, 16, gen)
            r = mon.round(lr=lr, epoch=epoch)
            t = time.perf_counter()
            exact = lambda_gen(span_factors(factor_rows(model, loss_fn, *probe)), batch_noise(len(x), 16))
            rel = (r.lambda_gen - exact) / exact
            print(f"epoch {epoch}: live {r.lambda_gen:.5f} ({r.wall_ms:.0f} ms, side {r.sidecar_ms:.0f}) "
                  f"(basis {r.basis_size}, tol {r.tol:.3g}, conv {r.converged}) exact {exact:.5f} "
                  f"({time.perf_counter() - t:.1f} s) rel {rel:+.2e}", flush=True)


def run_set(name: str) -> None:
    """The named set's runs, two lanes side by side; one summary line at the end."""
    def lane(runs):
        out = []
        for epochs, pool, lr, seed in runs:
            cmd = [sys.executable, __file__, "--epochs", str(epochs), "--pool", str(pool), "--lr", str(lr),
                   "--probe-seed", str(seed)]
            text = subprocess.run(cmd, capture_output=True, text=True).stdout
            print(f"== epochs {epochs} pool {pool} lr {lr} probe seed {seed}\n{text}", end="", flush=True)
            out.append(text)
        return out

    with ThreadPoolExecutor(2) as ex:
        texts = [t for lane_out in ex.map(lane, SETS[name]) for t in lane_out]
    print(f"{name}: {summary(texts)}")


def summary(texts: list[str]) -> str:
    """Rounds, converged ones, converged ones outside their tolerance, the worst of those as a
    multiple of it, and the median round time, over the printed lines of runs."""
    rows = [LINE.search(line) for text in texts for line in text.splitlines()]
    rows = [(int(r[1]), float(r[2]), r[3] == "True", float(r[4])) for r in rows if r]
    converged = [abs(rel) / tol for _, tol, conv, rel in rows if conv]
    times = sorted(ms for ms, *_ in rows)
    return (f"rounds {len(rows)}, converged {len(converged)}, "
            f"converged outside tolerance {sum(e > 1 for e in converged)}, worst {max(converged, default=0):.2f}x, "
            f"median round {times[len(times) // 2] if times else 0} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=sorted(SETS))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--pool", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2.0)
    ap.add_argument("--probe-seed", type=int, default=0)
    args = ap.parse_args()
    if args.set:
        run_set(args.set)
    else:
        one_run(args.epochs, args.pool, args.lr, args.probe_seed)


if __name__ == "__main__":
    main()
