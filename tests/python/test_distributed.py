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


def optimizer_rank(rank: int, world: int, out_dir: str, endpoint: str, m: int, kind: str) -> dict:
    import torch

    import edgewise

    model, loss_fn, x, y = problem(m, hidden=8)
    if kind == "adam":  # one step on the union loss: the same Adam state on every rank
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn(model(x), y).backward()
        opt.step()
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    kw = dict(n_train=1000, batch_size=4, endpoint=endpoint, bootstrap=0, tol=1e-6, max_basis=24, seed=3,
              console=False, blocking=True, optimizer=opt)
    out = {}
    with edgewise.Monitor(model, loss_fn, (shard(x, rank, world), shard(y, rank, world)), **kw) as mon:
        out["dist"] = [mon.round(step=s).to_dict() for s in (1, 2)]
    if rank == 0:
        with edgewise.Monitor(model, loss_fn, (x, y), process_group=False, **kw) as mon:
            out["alone"] = [mon.round(step=s).to_dict() for s in (1, 2)]
    return out


@pytest.mark.parametrize("kind", ["heavy_ball", "adam"])
def test_optimizer_rounds_on_shards_equal_one_process_on_the_union(tmp_path, sidecar, kind):
    """Momentum rounds add the hessian_gram op (``H V``, a mean over the union: all-reduced)
    and, for Adam, the frozen preconditioner on every rank: the threshold of the optimizer
    matches one process on the union to the rounds' tolerance."""
    ranks = run_ranks(2, optimizer_rank, tmp_path, sidecar, 10, kind)
    alone = ranks[0]["alone"]
    for res in ranks:
        for got, want in zip(res["dist"], alone):
            assert not got.get("missing"), got.get("reason")
            assert got["optimizer"]["kind"] == kind and got["method"] == want["method"] == "pencil"
            assert_same(numbers(got), numbers(want), rtol=1e-5)
            assert abs(got["eta_star_full_batch"] - want["eta_star_full_batch"]) <= 1e-5 * want["eta_star_full_batch"]


# ------------------------------------------------------------------- DDP training with StabilityLR


def ddp_rank(rank: int, world: int, out_dir: str, endpoint: str) -> dict:
    import torch
    from torch.nn.parallel import DistributedDataParallel

    import edgewise

    model, loss_fn, x, y = problem(64 * world, hidden=8, seed=1)
    ddp = DistributedDataParallel(model)
    xs, ys = shard(x, rank, world), shard(y, rank, world)
    opt = torch.optim.SGD(ddp.parameters(), lr=3.0)  # well above η*: StabilityLR must act
    mon = edgewise.Monitor(ddp, loss_fn, train_data=(xs, ys), probe_size=16, n_train=len(x), batch_size=8 * world,
                           optimizer=opt, endpoint=endpoint, every_steps=4, console=False, bootstrap=0,
                           log_dir=Path(out_dir, "logs"), tensorboard=False)  # one folder for all ranks
    stability = edgewise.StabilityLR(opt, mon, safety=0.9)
    steps = []
    for step in range(24):
        i = torch.arange(8) + (8 * step) % (len(xs) - 8)
        opt.zero_grad(set_to_none=True)
        loss_fn(ddp(xs[i]), ys[i]).backward()
        opt.step()
        mon.step()
        steps.append(opt.param_groups[0]["lr"])
    mon.wait(60)
    mon.close()
    return {"lr": opt.param_groups[0]["lr"], "lrs": steps, "limit": stability.limit,
            "reports": [(r.step, r.missing, r.eta_star, r.reason) for r in mon.history]}


def test_ddp_training_with_stability_lr_ends_with_the_same_lr_on_every_rank(tmp_path, sidecar):
    ranks = run_ranks(2, ddp_rank, tmp_path, sidecar)
    done = [r for r in ranks[0]["reports"] if not r[1]]
    assert done, ranks[0]["reports"]
    assert ranks[0]["reports"] == ranks[1]["reports"]  # the same rounds at the same steps, the same η*
    assert ranks[0]["lrs"] == ranks[1]["lrs"]  # lr equal on both ranks at every step
    assert ranks[0]["lr"] == ranks[1]["lr"] < 3.0  # StabilityLR acted, identically
    assert ranks[0]["lr"] == pytest.approx(0.9 * done[-1][2], rel=1e-12)
    logged = (tmp_path / "logs" / "edgewise.jsonl").read_text().splitlines()
    assert len(logged) == len(ranks[0]["reports"])  # rank 0 alone writes the run's log


# ------------------------------------------------------------------- a rank dies mid-round


def killed_rank(rank: int, world: int, out_dir: str, endpoint: str, timeout: float, hang: bool = False) -> dict:
    import os

    import torch

    import edgewise
    from edgewise.oracle import CurvatureOracle

    if rank == 1:  # dies (or hangs) in the second round, on its second op, as a crash would
        seen = {"rounds": 0, "ops": 0}
        begin, execute = CurvatureOracle.begin_round, CurvatureOracle.execute

        def counting_begin(self, preconditioner=None):
            seen["rounds"] += 1
            seen["ops"] = 0
            return begin(self, preconditioner)

        def dying_execute(self, op, args=None):
            seen["ops"] += 1
            if seen["rounds"] == 2 and seen["ops"] == 2:
                if not hang:
                    os._exit(17)
                time.sleep(3 * timeout)  # a hung rank: its collectives time out everywhere
            return execute(self, op, args)

        CurvatureOracle.begin_round, CurvatureOracle.execute = counting_begin, dying_execute
    model, loss_fn, x, y = problem(48, hidden=8, seed=2)
    xs, ys = shard(x, rank, world), shard(y, rank, world)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mon = edgewise.Monitor(model, loss_fn, train_data=(xs, ys), probe_size=12, n_train=len(x), batch_size=8,
                           optimizer=opt, endpoint=endpoint, every_steps=3, console=False, bootstrap=0,
                           collective_timeout=timeout, close_timeout=timeout)
    started, longest = time.monotonic(), 0.0
    for step in range(30):
        t0 = time.monotonic()
        i = torch.arange(4) + (4 * step) % (len(xs) - 4)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xs[i]), ys[i]).backward()
        opt.step()
        mon.step()
        time.sleep(0.05)
        longest = max(longest, time.monotonic() - t0)
    mon.wait(2 * timeout)
    mon.close()
    return {"steps": 30, "longest_step": longest, "wall": time.monotonic() - started,
            "reports": [(r.step, r.missing, r.reason) for r in mon.history]}


def test_a_rank_killed_mid_round_makes_the_round_missing_and_the_others_train_on(tmp_path, sidecar):
    timeout = 6.0
    ranks = run_ranks(3, killed_rank, tmp_path, sidecar, timeout)
    assert ranks[1] is None  # it died without a word
    for res in (ranks[0], ranks[2]):
        assert_trained_on(res, timeout)


def test_a_rank_hung_mid_round_costs_at_most_the_timeout(tmp_path, sidecar):
    """A hung rank (not dead: its sockets stay open) is noticed by the timeout alone; its own
    training thread goes on too (it waits at most once, at the next cadence point)."""
    timeout = 4.0
    ranks = run_ranks(2, killed_rank, tmp_path, sidecar, timeout, True)
    for res in ranks:
        assert_trained_on(res, timeout)


def assert_trained_on(res: dict, timeout: float) -> None:
    assert res["steps"] == 30  # the training loop went on
    assert res["longest_step"] < timeout + 3.0, res  # no step waited on monitoring beyond the timeout
    first, *later = res["reports"]
    assert not first[1], first  # the first round was complete on every rank
    assert later and all(r[1] for r in later), later  # the round rank 1 failed in, and after: missing
    assert any("collective" in (r[2] or "") for r in later), later


# ------------------------------------------------------------------- the example, under torchrun


def test_ddp_live_example_under_torchrun_ends_with_equal_lrs():
    import ast
    import subprocess

    from _sidecar import free_port

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-port", str(free_port()),
                           str(root / "examples" / "ddp_live.py"), "--fast"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "same reports on every rank: True" in out, out
    lrs = next(line for line in out.splitlines() if line.startswith("lr on every rank:"))
    values = ast.literal_eval(lrs.split(":", 1)[1].strip())  # two formatted numbers
    assert len(values) == 2 and values[0] == values[1] and float(values[0]) < 8.0, out  # capped, equally


# ------------------------------------------------------------------- an op fails on one rank


def failing_op_rank(rank: int, world: int, out_dir: str, endpoint: str) -> dict:
    import edgewise
    from edgewise.oracle import CurvatureOracle

    if rank == 1:  # its first expand of the first round fails (as an out-of-memory error would)
        seen = {"failed": False}
        expand = CurvatureOracle.expand

        def failing_expand(self, *args, **kwargs):
            if not seen["failed"]:
                seen["failed"] = True
                raise RuntimeError("simulated failure on rank 1")
            return expand(self, *args, **kwargs)

        CurvatureOracle.expand = failing_expand
    model, loss_fn, x, y = problem(8, hidden=8)
    with edgewise.Monitor(model, loss_fn, (shard(x, rank, world), shard(y, rank, world)), n_train=100, batch_size=4,
                          endpoint=endpoint, console=False, blocking=True, bootstrap=0) as mon:
        reports = [mon.round(lr=0.05, step=s) for s in (1, 2)]
    return {"reports": [(r.missing, r.reason, r.lambda_gen) for r in reports]}


def test_an_op_failing_on_one_rank_makes_that_round_missing_everywhere_and_the_next_one_runs(tmp_path, sidecar):
    ranks = run_ranks(2, failing_op_rank, tmp_path, sidecar)
    assert ranks[0]["reports"] == ranks[1]["reports"]
    (missing, reason, _), (later_missing, _, lam) = ranks[0]["reports"]
    assert missing and "rank 1" in reason and "simulated failure" in reason, reason
    assert not later_missing and lam > 0  # the collectives stayed aligned: the next round is whole


# ------------------------------------------------------------------- the ranks' bases are compared


def diverging_basis_rank(rank: int, world: int, out_dir: str, endpoint: str) -> dict:
    import edgewise
    import edgewise.oracle as oracle_module

    if rank == 1:  # draws its random vectors with another seed: its V is not the leader's
        gaussian = oracle_module.gaussian
        oracle_module.gaussian = lambda d, r, seed, **kw: gaussian(d, r, seed + 1, **kw)
    model, loss_fn, x, y = problem(8, hidden=8)
    with edgewise.Monitor(model, loss_fn, (shard(x, rank, world), shard(y, rank, world)), n_train=100, batch_size=4,
                          endpoint=endpoint, console=False, blocking=True, bootstrap=0) as mon:
        r = mon.round(lr=0.05)
    return {"missing": r.missing, "reason": r.reason}


def test_ranks_whose_bases_differ_are_caught_and_the_round_is_missing(tmp_path, sidecar):
    ranks = run_ranks(2, diverging_basis_rank, tmp_path, sidecar)
    assert ranks[0] == ranks[1]
    assert ranks[0]["missing"] and "bases V differ" in ranks[0]["reason"], ranks[0]
