"""Figures of the paper replication from the sweep CSV (matplotlib, PNG).

How to run (from the repository root, after examples/paper/sweep.py):
    .venv/bin/python examples/paper/plot.py                        # reads results/sweep_reduced.csv
    .venv/bin/python examples/paper/plot.py --csv PATH --out DIR
What to expect, in DIR (default: the CSV's folder), in about 2 s:
- fig1a_sharpness_vs_lr.png  paper Fig. 1a: λ_max (left) and λ_gen (right) of the converged
  minima against the step size, one curve per batch size, with the edge 2/η (black).
- fig1b_sharpness_vs_batch.png  paper Fig. 1b: λ_max and λ_gen against the batch size for
  three step sizes, each with its edge 2/η (dotted).
- fig2_bounds_vs_edge.png  paper Fig. 2: for three batch sizes, λ_max, the top-eigenvector
  bound (15), the rank-one bound (25) and λ_gen (with its bootstrap interval) against 2/η;
  a point on the diagonal means SGD converged exactly at the edge of mean-square stability.
Only converged runs are drawn (as in the paper).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
COLORS = {"lambda_max": "#e6a800", "bound_top_eigvec": "#1f77b4",
          "bound_rank_one": "#8e44ad", "lambda_gen": "#d62728"}
LABELS = {"lambda_max": r"$\lambda_{\max}$ (GD sharpness)",
          "bound_top_eigvec": "top-eigenvector bound (15)",
          "bound_rank_one": "rank-one bound (25)",
          "lambda_gen": r"$\lambda_{\mathrm{gen}}$ (exact)"}


def _plain_log_ticks(ax, xticks=None):
    """Log axes with plain-number labels (no overlapping 3×10⁻² minor labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(fmt)
        axis.set_minor_formatter(NullFormatter())
    if xticks is not None:
        ax.set_xticks(xticks)
        ax.set_xticklabels([f"{v:.3g}" for v in xticks], rotation=45, fontsize=8)
        ax.xaxis.set_minor_formatter(NullFormatter())


def read_rows(path: Path) -> list[dict]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        if r.get("converged") not in ("1", "True"):
            continue
        out.append({k: (float(v) if v not in ("", None) else float("nan")) for k, v in r.items()})
    return out


def _by(rows, key):
    groups = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    return {k: sorted(v, key=lambda r: r["lr"] if key == "batch_size" else r["batch_size"])
            for k, v in sorted(groups.items())}


def fig1a(rows, out: Path):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    groups = _by(rows, "batch_size")
    cmap = plt.get_cmap("viridis")
    lrs = np.array(sorted({r["lr"] for r in rows}))
    grid = np.geomspace(lrs.min() * 0.9, lrs.max() * 1.1, 50)
    for ax, key, title in [(axes[0], "lambda_max", r"$\lambda_{\max}$ at the converged minimum"),
                           (axes[1], "lambda_gen", r"$\lambda_{\mathrm{gen}}$ at the converged minimum")]:
        for j, (B, rs) in enumerate(groups.items()):
            c = cmap(j / max(1, len(groups) - 1) * 0.9)
            lr = [r["lr"] for r in rs]
            ax.plot(lr, [r[key] for r in rs], "o-", color=c, label=f"B = {int(B)}")
            if key == "lambda_gen":
                lo = [r["lambda_gen_lo"] for r in rs]
                hi = [r["lambda_gen_hi"] for r in rs]
                ax.fill_between(lr, lo, hi, color=c, alpha=0.15, lw=0)
        ax.plot(grid, 2 / grid, "k-", lw=2, label=r"edge $2/\eta$")
        ax.set_xscale("log"), ax.set_yscale("log")
        ax.set_xlabel(r"step size $\eta$"), ax.set_title(title)
        _plain_log_ticks(ax, lrs)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("sharpness")
    axes[1].legend(fontsize=8, loc="lower left")
    fig.suptitle("Fig. 1a: sharpness of the minima SGD converged to, against the step size")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def fig1b(rows, out: Path, n_lrs: int = 3):
    groups = _by(rows, "lr")
    # the three step sizes with the most converged batch sizes (ties: spread over the range)
    cand = sorted(groups, key=lambda lr: (-len(groups[lr]), lr))
    full = [lr for lr in sorted(groups) if len(groups[lr]) == max(len(v) for v in groups.values())]
    pick = full[-n_lrs:]          # the largest step sizes: the initial point is unstable there
    pick = sorted(set(pick)) or cand[:n_lrs]
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for j, lr in enumerate(pick):
        c = plt.get_cmap("tab10")(j)
        rs = groups[lr]
        Bs = [r["batch_size"] for r in rs]
        ax.plot(Bs, [r["lambda_gen"] for r in rs], "o-", color=c,
                label=rf"$\lambda_{{\mathrm{{gen}}}}$, $\eta$ = {lr:g}")
        ax.plot(Bs, [r["lambda_max"] for r in rs], "s--", color=c, alpha=0.7,
                label=rf"$\lambda_{{\max}}$, $\eta$ = {lr:g}")
        ax.axhline(2 / lr, color=c, ls=":", lw=1.5)
    ax.set_xscale("log", base=2), ax.set_yscale("log")
    _plain_log_ticks(ax)
    ax.set_xticks(sorted({r["batch_size"] for r in rows}))
    ax.set_xlabel("batch size B"), ax.set_ylabel("sharpness")
    ax.set_title("Fig. 1b: sharpness against batch size (dotted: edge 2/η)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def fig2(rows, out: Path, n_bs: int = 3):
    groups = _by(rows, "batch_size")
    Bs = [B for B in groups if len(groups[B]) >= 2]
    pick = [Bs[i] for i in np.linspace(0, len(Bs) - 1, min(n_bs, len(Bs))).round().astype(int)]
    pick = sorted(set(pick))
    fig, axes = plt.subplots(1, len(pick), figsize=(4.4 * len(pick), 4.4), squeeze=False)
    for ax, B in zip(axes[0], pick):
        rs = sorted(groups[B], key=lambda r: -r["lr"])
        edge = np.array([2 / r["lr"] for r in rs])
        for key in ("lambda_max", "bound_top_eigvec", "bound_rank_one", "lambda_gen"):
            ax.plot(edge, [r[key] for r in rs], "o-", color=COLORS[key], label=LABELS[key],
                    ms=4, lw=1.6)
        ax.fill_between(edge, [r["lambda_gen_lo"] for r in rs], [r["lambda_gen_hi"] for r in rs],
                        color=COLORS["lambda_gen"], alpha=0.15, lw=0, label="bootstrap 95 %")
        lim = [edge.min() * 0.8, edge.max() * 1.1]
        ax.plot(lim, lim, "k:", lw=1.2, label=r"$y = 2/\eta$ (edge)")
        ax.set_xscale("log"), ax.set_yscale("log")
        ax.set_xlabel(r"$2/\eta$")
        ax.set_title(f"B = {int(B)}" + ("  (GD: p = 0, all four coincide)" if B == max(groups) else ""))
        _plain_log_ticks(ax)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("value at the converged minimum")
    axes[0][0].legend(fontsize=7.5, loc="upper left")
    fig.suptitle("Fig. 2: sharpness, bounds and generalized sharpness against the edge 2/η")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", type=Path, default=HERE / "results" / "sweep_reduced.csv")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    out = a.out or a.csv.parent
    out.mkdir(parents=True, exist_ok=True)
    rows = read_rows(a.csv)
    if not rows:
        print(f"no converged runs in {a.csv}", file=sys.stderr)
        return 1
    fig1a(rows, out / "fig1a_sharpness_vs_lr.png")
    fig1b(rows, out / "fig1b_sharpness_vs_batch.png")
    fig2(rows, out / "fig2_bounds_vs_edge.png")
    print(f"wrote 3 figures to {out} from {len(rows)} converged runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
