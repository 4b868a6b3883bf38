"""Edgewise on torch.distributed: 2 and 4 CPU ranks (spawned processes, gloo) against one process.

The reference is independent of the distributed code: the same estimate / Monitor round in a
single process on the union probe set (the shards concatenated in rank order), with the
distributed machinery off (``process_group=False``). An exact round (``estimate()``: on the
Gauss–Newton route the solve in the whole span of the factor rows; on the Hessian route a basis
as large as ``d``) has a unique answer, so the two agree to rounding: 1e-10 relative in float64.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _distributed_ranks import run_ranks  # noqa: E402
from _sidecar import SidecarProcess  # noqa: E402

#: Report fields compared at 1e-10 relative (numbers and number lists).
FIELDS = ("lambda_max", "lambda_gen", "eta_star", "eta_gd", "suggested_lr", "margin", "grad_norm",
          "min_curvature", "p", "m")
#: Fields the sidecar solves iteratively to a loose tolerance (conjugate gradients to a 1e-8
#: residual, sidecar/estimate/floors.ts): rounding-level differences in the inputs (a sum over
#: samples in another order) move them by up to ~1e-5 relative, in one process as well.
LOOSE = ("loss_floor", "grad_norm_floor")


@pytest.fixture(scope="module")
def sidecar():
    proc = SidecarProcess().start()
    yield proc.endpoint
    proc.stop()


def problem(m: int, outputs: int = 2, seed: int = 0, hidden: int = 5):
    """A small float64 tanh network and a seeded union probe of ``m`` samples (MSE loss)."""
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, outputs)).double()
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(m, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(m, outputs, generator=gen, dtype=torch.float64)
    return model, torch.nn.functional.mse_loss, x, y


def shard(x, rank: int, world: int):
    """Rank ``rank``'s rows of ``x`` (the sizes edgewise gives: first ranks one more)."""
    from edgewise._distributed import shard_sizes

    sizes = shard_sizes(len(x), world)
    lo = sum(sizes[:rank])
    return x[lo : lo + sizes[rank]]


def numbers(report: dict) -> dict:
    out = {k: report[k] for k in FIELDS if report.get(k) is not None}
    out["ci"] = [report["ci"][k] for k in sorted(report.get("ci") or {})]
    out["curve"] = [row["eta_star"] for row in report.get("eta_star_by_batch", [])]
    out["bounds"] = sorted((k, v) for k, v in (report.get("bounds") or {}).items() if isinstance(v, (int, float)))
    return out


def loose(report: dict) -> dict:
    return {k: report[k] for k in LOOSE if report.get(k) is not None}


def assert_same(got: dict, want: dict, rtol: float = 1e-10, atol: float = 1e-13) -> None:
    """Relative agreement; ``atol`` for values that are rounding noise around 0 (``min_curvature``)."""
    assert got.keys() == want.keys(), (got.keys(), want.keys())
    for key in want:
        a, b = got[key], want[key]
        if key == "bounds":
            assert [k for k, _ in a] == [k for k, _ in b], key
            a, b = [v for _, v in a], [v for _, v in b]
        if isinstance(b, list):
            assert len(a) == len(b), key
            for u, v in zip(a, b):
                assert abs(u - v) <= rtol * abs(v) + atol, (key, u, v)
        else:
            assert abs(a - b) <= rtol * abs(b) + atol, (key, a, b)


# ------------------------------------------------------------------- estimate on the union


def estimate_rank(rank: int, world: int, out_dir: str, endpoint: str, m: int, curvature: str) -> dict:
    import edgewise

    model, loss_fn, x, y = problem(m)
    kw = dict(n_train=1000, batch_size=4, lr=0.05, curvature=curvature, endpoint=endpoint, bootstrap=20,
              bounds=["top_eigvec", "identity"])
    r = edgewise.estimate(model, loss_fn, (shard(x, rank, world), shard(y, rank, world)), **kw)
    out = {"dist": r.to_dict()}
    if rank == 0:  # the single-process reference on the union probe
        out["alone"] = edgewise.estimate(model, loss_fn, (x, y), process_group=False, **kw).to_dict()
    return out


@pytest.mark.parametrize("world,curvature", [(2, "ggn"), (4, "ggn"), (2, "hessian")])
def test_estimate_on_shards_equals_one_process_on_the_union(tmp_path, sidecar, world, curvature):
    m = 12
    ranks = run_ranks(world, estimate_rank, tmp_path, sidecar, m, curvature)
    alone = ranks[0]["alone"]
    assert alone["m"] == m and not alone.get("missing")
    for res in ranks:
        assert res["dist"]["m"] == m
        assert_same(numbers(res["dist"]), numbers(alone))
        assert_same(loose(res["dist"]), loose(alone), rtol=1e-3)
    assert all(res["dist"]["run"] == ranks[0]["dist"]["run"] for res in ranks)  # one run: the leader's


# ------------------------------------------------------------------- Monitor rounds on the union


def monitor_rank(rank: int, world: int, out_dir: str, endpoint: str, m: int, blocking: bool) -> dict:
    import edgewise

    model, loss_fn, x, y = problem(m, hidden=16)
    kw = dict(n_train=1000, batch_size=4, endpoint=endpoint, bootstrap=0, tol=1e-6, max_basis=24, seed=3,
              console=False, blocking=blocking)
    out = {}
    with edgewise.Monitor(model, loss_fn, (shard(x, rank, world), shard(y, rank, world)), **kw) as mon:
        out["dist"] = [mon.round(lr=0.05, step=s).to_dict() for s in (1, 2)]  # cold, then warm from V
    if rank == 0:
        with edgewise.Monitor(model, loss_fn, (x, y), process_group=False, **kw) as mon:
            out["alone"] = [mon.round(lr=0.05, step=s).to_dict() for s in (1, 2)]
    return out


@pytest.mark.parametrize("blocking", [True, False])
def test_monitor_rounds_on_shards_equal_one_process_on_the_union(tmp_path, sidecar, blocking):
    """The same ops in the same order, on the union: a live round (iterative, to ``tol`` = 1e-6)
    matches to its tolerance; the second, warm-started from the kept basis and converged, to
    rounding (an unconverged Lanczos-type iteration amplifies rounding differences in the
    inputs, a sum over samples taken in another order, up to its tolerance)."""
    ranks = run_ranks(2, monitor_rank, tmp_path, sidecar, 10, blocking)
    alone = ranks[0]["alone"]
    assert alone[1]["converged"], alone[1]
    for res in ranks:
        for got, want in zip(res["dist"], alone):
            assert not got.get("missing"), got.get("reason")
            assert_same(numbers(got), numbers(want), rtol=1e-6)
        assert_same(numbers(res["dist"][1]), numbers(alone[1]), rtol=1e-9)
        assert res["dist"] == ranks[0]["dist"]  # every rank records the leader's reports
