"""Replication of Mulayoff & Michaeli §4 / App. J: where does SGD converge, relative to η*?

How to run (from the repository root):
    .venv/bin/python examples/paper/sweep.py --reduced        # ~2 min on 2 CPU cores (106 s measured)
    .venv/bin/python examples/paper/sweep.py --smoke          # ~10 s, what the tests run
    .venv/bin/python examples/paper/sweep.py --full --estimator edgewise   # see below
    .venv/bin/python examples/paper/plot.py                   # figures from the CSV
Output: examples/paper/results/sweep_<mode>.csv (one row per (lr, B)), progress lines, and a
summary. What to expect (reduced, see docs/paper-replication.md): 36 of 40 runs converge;
``ratio = λ_gen·lr/2`` is 0.87–1.09 where the initial point is unstable (lr ≥ 0.144, and
B = 1 from lr 0.054: SGD settles at the edge of mean-square stability) and smaller at small
lr; ``λ_max·lr/2`` stays at 0.13–0.40 for B = 1 (GD's criterion misses the edge).

Setup (paper §4 and App. J; their constants were lost in extraction, ours are below):
one-hidden-layer ReLU network with biases, 4 MNIST classes (0–3), quadratic loss
``l_i = ‖f(x_i) − y_i‖²`` on one-hot targets (no softmax), torch's default initialisation
multiplied by ``init_scale`` (large initialisation, so the nearest minima are unstable),
the SAME initial point for every run, linear learning-rate warm-up from lr/100 to lr over
``warmup_epochs``, SGD with batches drawn without replacement (a fresh permutation per
epoch, ``n/B`` steps per epoch), and the convergence criterion: full training loss below
``loss_tol`` for ``patience`` consecutive epochs (runs that do not converge within
``max_epochs`` or diverge are kept in the CSV with ``converged = 0`` and left out of the
figures, as in the paper). All learning rates of one batch size are trained side by side
(vectorised over runs, with the same batch sequence).

At each final point ONE function, ``measure(model, loss_fn, x, y, batch_size)``, computes
``λ_max, λ_gen`` (with a bootstrap interval) and the bounds of theory §3 — see SWAP POINT.
``--estimator dense`` (default) uses full per-sample Hessians (examples/_dense_reference.py;
feasible up to a few hundred parameters); ``--estimator edgewise`` calls ``edgewise.estimate``.
The full configuration (14×14 inputs, 32 hidden units, 512 samples, d = 6436) needs
``--estimator edgewise``.
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")   # tiny matrices: BLAS threads only contend on shared CPUs
import argparse
import csv
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import _dense_reference as ref  # noqa: E402
from mnist_data import load_digits  # noqa: E402


@dataclass
class Config:
    classes: tuple = (0, 1, 2, 3)
    per_class: int = 8
    pool: int = 4
    hidden: int = 8
    init_scale: float = 3.0
    lrs: tuple = tuple(float(v) for v in np.round(np.geomspace(0.02, 0.2, 8), 4))
    batch_sizes: tuple = (1, 2, 4, 8, 32)
    warmup_epochs: int = 50
    max_epochs: int = 3000
    loss_tol: float = 1e-2
    patience: int = 20
    seed: int = 0
    curvature: str = "hessian"
    n_boot: int = 10


CONFIGS = {
    # d = 49·8 + 8 + 8·4 + 4 = 436 parameters, n = 32 samples (interpolation possible: 4n < d)
    "reduced": Config(),
    "smoke": Config(lrs=(0.04, 0.1), batch_sizes=(2, 32), max_epochs=300, warmup_epochs=20,
                    loss_tol=5e-2, patience=5, n_boot=4),
    # d = 196·32 + 32 + 32·4 + 4 = 6436, n = 512; needs --estimator edgewise
    "full": Config(per_class=128, pool=2, hidden=32, init_scale=3.0,
                   lrs=tuple(float(v) for v in np.round(np.geomspace(0.01, 0.2, 10), 4)),
                   batch_sizes=(1, 2, 4, 8, 16, 32, 64, 512), max_epochs=5000, n_boot=20),
}


def quadratic_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Quadratic loss on one-hot targets, mean over samples: ``mean_i ‖f(x_i) − y_i‖²``.

    Works for one sample (output of shape ``(k,)``: ``‖f(x) − y‖²``, what the dense reference
    differentiates per sample) and for a batch (``(m, k)``: the mean-reduced loss that
    ``edgewise.estimate`` expects).
    """
    return ((output - target) ** 2).sum(-1).mean()


# =======================================================================================
# SWAP POINT: the one measurement used at every converged minimum.
# =======================================================================================
KEYS = ("lambda_max", "lambda_gen", "lambda_gen_lo", "lambda_gen_hi",
        "bound_top_eigvec", "bound_rank_one")
DENSE_MAX_PARAMS = 600
_SETTINGS = {"curvature": "hessian", "n_boot": 10, "seed": 0}


def measure_dense(model, loss_fn, x, y, batch_size) -> dict:
    """Dense reference: full per-sample Hessians (or GGN), exact λ_gen, bootstrap interval."""
    d = sum(p.numel() for p in model.parameters())
    if d > DENSE_MAX_PARAMS:
        raise ValueError(f"expected at most {DENSE_MAX_PARAMS} parameters for the dense "
                         f"reference, got {d}: use --estimator edgewise")
    Hs = ref.per_sample_curvature(model, loss_fn, x, y, _SETTINGS["curvature"])
    r = ref.measure_dense(Hs, batch_size, n_train=len(x), n_boot=_SETTINGS["n_boot"],
                          seed=_SETTINGS["seed"])
    return {k: float(r[k]) for k in KEYS} | {"min_curvature": r["min_curvature"]}


def _field(obj, *path):
    for name in path:
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if obj is None:
            return float("nan")
    return float(obj)


def measure_edgewise(model, loss_fn, x, y, batch_size) -> dict:
    """The product: ``edgewise.estimate`` (report fields per docs/design.md)."""
    import edgewise

    # at the reduced sweep's d = 436 and m = 32 a checkpoint on the Hessian route solves in the
    # whole parameter space (identity basis, exact); the full sweep's d = 6436 uses 64 columns
    rep = edgewise.estimate(model, loss_fn, probe=(x, y), n_train=len(x),
                            batch_size=batch_size, curvature=_SETTINGS["curvature"],
                            bootstrap=_SETTINGS["n_boot"], seed=_SETTINGS["seed"],
                            bounds=["top_eigvec", "rank_one"])  # the paper's bound: only computed when asked
    return {"lambda_max": _field(rep, "lambda_max"), "lambda_gen": _field(rep, "lambda_gen"),
            "lambda_gen_lo": _field(rep, "ci", "lambda_gen_lo"),
            "lambda_gen_hi": _field(rep, "ci", "lambda_gen_hi"),
            "bound_top_eigvec": _field(rep, "bounds", "top_eigvec"),
            "bound_rank_one": _field(rep, "bounds", "rank_one"),
            "min_curvature": _field(rep, "min_curvature")}


#: The measurement for each ``--estimator``.
MEASURES = {"edgewise": measure_edgewise, "dense": measure_dense}
measure = measure_edgewise       # Edgewise's own estimator; --estimator dense for the reference


# ---------------------------------------------------------------------------------------
# Model and vectorised SGD
# ---------------------------------------------------------------------------------------

def initial_params(cfg: Config, d_in: int, n_out: int) -> dict[str, torch.Tensor]:
    """torch's default ``nn.Linear`` initialisation (seeded) times ``init_scale``."""
    torch.manual_seed(cfg.seed)
    net = torch.nn.Sequential(torch.nn.Linear(d_in, cfg.hidden), torch.nn.ReLU(),
                              torch.nn.Linear(cfg.hidden, n_out)).double()
    return {"W1": net[0].weight.detach() * cfg.init_scale, "b1": net[0].bias.detach() * cfg.init_scale,
            "W2": net[2].weight.detach() * cfg.init_scale, "b2": net[2].bias.detach() * cfg.init_scale}


def to_module(P: dict[str, torch.Tensor]) -> torch.nn.Module:
    h, d_in = P["W1"].shape
    net = torch.nn.Sequential(torch.nn.Linear(d_in, h), torch.nn.ReLU(),
                              torch.nn.Linear(h, P["W2"].shape[0])).double()
    with torch.no_grad():
        net[0].weight.copy_(P["W1"]), net[0].bias.copy_(P["b1"])
        net[2].weight.copy_(P["W2"]), net[2].bias.copy_(P["b2"])
    return net


def _forward(P, X):
    z = torch.einsum("rhi,bi->rbh", P["W1"], X) + P["b1"][:, None, :]
    a = torch.relu(z)
    return z, a, torch.einsum("rkh,rbh->rbk", P["W2"], a) + P["b2"][:, None, :]


def batch_loss_and_grad(P, X, Y):
    """Mean per-sample quadratic loss over the batch and its gradient, for every run ``r``."""
    z, a, out = _forward(P, X)
    e = out - Y[None]
    B = X.shape[0]
    dout = 2.0 * e / B
    da = torch.einsum("rbk,rkh->rbh", dout, P["W2"])
    dz = da * (z > 0)
    grads = {"W2": torch.einsum("rbk,rbh->rkh", dout, a), "b2": dout.sum(1),
             "W1": torch.einsum("rbh,bi->rhi", dz, X), "b1": dz.sum(1)}
    return (e**2).sum(2).mean(1), grads


def full_loss(P, X, Y):
    return ((_forward(P, X)[2] - Y[None]) ** 2).sum(2).mean(1)


@dataclass
class RunResult:
    lr: float
    batch_size: int
    converged: bool
    diverged: bool
    steps: int
    epochs: int
    final_loss: float
    params: dict = field(repr=False, default_factory=dict)


def train_batch_size(cfg: Config, x, y, B: int, P0: dict) -> list[RunResult]:
    """SGD for every learning rate of ``cfg`` at batch size ``B``, from the same ``P0``."""
    torch.set_num_threads(1)          # tiny tensors: threads only contend on a shared machine
    n = x.shape[0]
    lrs = torch.tensor(cfg.lrs, dtype=torch.float64)
    R = len(lrs)
    P = {k: v[None].repeat((R,) + (1,) * v.dim()).clone() for k, v in P0.items()}
    active = torch.ones(R, dtype=torch.bool)
    conv = torch.zeros(R, dtype=torch.bool)
    div = torch.zeros(R, dtype=torch.bool)
    streak = torch.zeros(R, dtype=torch.int64)
    steps = torch.zeros(R, dtype=torch.int64)
    epochs = torch.zeros(R, dtype=torch.int64)
    last = torch.full((R,), float("nan"), dtype=torch.float64)
    g = torch.Generator().manual_seed(cfg.seed * 1000 + B)
    per_epoch = n // B
    warm_steps = max(1, cfg.warmup_epochs * per_epoch)
    t = 0
    for ep in range(cfg.max_epochs):
        perm = torch.randperm(n, generator=g)
        for s in range(per_epoch):
            idx = perm[s * B:(s + 1) * B]
            frac = min(1.0, (t + 1) / warm_steps)
            eta = lrs * (0.01 + 0.99 * frac) * active
            _, grads = batch_loss_and_grad(P, x[idx], y[idx])
            for k in P:
                P[k] -= eta.view((R,) + (1,) * (P[k].dim() - 1)) * grads[k]
            t += 1
        steps += active.long() * per_epoch
        epochs += active.long()
        L = full_loss(P, x, y)
        last = torch.where(active, L, last)
        bad = active & (~torch.isfinite(L) | (L > 1e6))
        div |= bad
        streak = torch.where(active & (L < cfg.loss_tol), streak + 1, torch.zeros_like(streak))
        conv |= active & (streak >= cfg.patience)
        active &= ~(conv | bad)
        for k in P:                                   # keep diverged runs finite
            P[k][bad] = 0.0
        if not active.any():
            break
    return [RunResult(float(lrs[r]), B, bool(conv[r]), bool(div[r]), int(steps[r]),
                      int(epochs[r]), float(last[r]), {k: v[r].clone() for k, v in P.items()})
            for r in range(R)]


COLUMNS = ["lr", "batch_size", "lambda_max", "lambda_gen", "lambda_gen_lo", "lambda_gen_hi",
           "bound_top_eigvec", "bound_rank_one", "ratio", "converged", "steps", "final_loss",
           "ratio_gd", "epochs", "diverged", "min_curvature", "measure_s"]


def sweep(cfg: Config, csv_path: Path | None, verbose: bool = True) -> list[dict]:
    t0 = time.time()
    torch.set_num_threads(1)
    x, y, _ = load_digits(cfg.classes, per_class=cfg.per_class, pool=cfg.pool, seed=cfg.seed)
    n, d_in = x.shape
    P0 = initial_params(cfg, d_in, y.shape[1])
    d = sum(v.numel() for v in P0.values())
    _SETTINGS.update(curvature=cfg.curvature, n_boot=cfg.n_boot, seed=cfg.seed)
    m0 = measure(to_module(P0), quadratic_loss, x, y, n)
    if verbose:
        print(f"n = {n} samples, d = {d} parameters, classes {cfg.classes}, "
              f"{int(math.sqrt(d_in))}×{int(math.sqrt(d_in))} inputs; at the initial point "
              f"λ_max = {m0['lambda_max']:.3f} (2/λ_max = {2 / m0['lambda_max']:.4f}), "
              f"loss {float(full_loss({k: v[None] for k, v in P0.items()}, x, y)):.3f}")
    rows = []
    for B in cfg.batch_sizes:
        tb = time.time()
        results = train_batch_size(cfg, x, y, B, P0)
        if verbose:
            print(f"B = {B}: trained {len(results)} learning rates in {time.time() - tb:.1f} s")
        for rr in results:
            row = {"lr": rr.lr, "batch_size": B, "converged": int(rr.converged),
                   "diverged": int(rr.diverged), "steps": rr.steps, "epochs": rr.epochs,
                   "final_loss": rr.final_loss}
            if not rr.diverged:
                tm = time.time()
                mres = measure(to_module(rr.params), quadratic_loss, x, y, B)
                row |= mres
                row["measure_s"] = round(time.time() - tm, 2)
                row["ratio"] = row["lambda_gen"] * rr.lr / 2
                row["ratio_gd"] = row["lambda_max"] * rr.lr / 2
            rows.append(row)
            if verbose:
                if rr.diverged:
                    print(f"  lr {rr.lr:<7g} diverged")
                else:
                    print(f"  lr {rr.lr:<7g} conv {rr.converged!s:5} ep {rr.epochs:5d} "
                          f"loss {rr.final_loss:.1e}  λmax {row['lambda_max']:8.3f}  "
                          f"λgen {row['lambda_gen']:8.3f} [{row['lambda_gen_lo']:.2f}, "
                          f"{row['lambda_gen_hi']:.2f}]  λgen·lr/2 {row['ratio']:.3f}  "
                          f"λmax·lr/2 {row['ratio_gd']:.3f}")
    if csv_path is not None:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k, ""))
                            for k in COLUMNS})
    if verbose:
        ok = [r for r in rows if r["converged"]]
        if ok:
            rat = np.array([r["ratio"] for r in ok])
            print(f"converged {len(ok)}/{len(rows)}; λ_gen·lr/2 over converged runs: "
                  f"median {np.median(rat):.3f}, range [{rat.min():.3f}, {rat.max():.3f}]")
        print(f"elapsed {time.time() - t0:.1f} s" + (f"; CSV: {csv_path}" if csv_path else ""))
    return rows


def main(argv=None) -> int:
    global measure
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--reduced", action="store_const", dest="mode", const="reduced")
    mode.add_argument("--smoke", action="store_const", dest="mode", const="smoke")
    mode.add_argument("--full", action="store_const", dest="mode", const="full")
    ap.add_argument("--estimator", choices=tuple(MEASURES), default="edgewise")
    ap.add_argument("--curvature", choices=("hessian", "ggn"), default=None)
    ap.add_argument("--csv", type=Path, default=None)
    a = ap.parse_args(argv)
    name = a.mode or "reduced"
    cfg = CONFIGS[name]
    if a.curvature:
        cfg.curvature = a.curvature
    measure = MEASURES[a.estimator]
    path = a.csv or HERE / "results" / f"sweep_{name}.csv"
    sweep(cfg, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
