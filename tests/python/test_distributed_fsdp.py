"""FSDP2 (``fully_shard``) on 2 CPU ranks (gloo): monitoring through a full-state-dict replica.

An FSDP model's parameters are sharded, and the oracle needs whole tensors, so ``Monitor`` and
``estimate`` refuse it and say to monitor a plain replica filled with
``get_model_state_dict(..., full_state_dict=True)`` (docs/distributed.md). Checked here: the
refusal, and that the recipe gives, on every rank, the report a single process computes for the
same network trained without FSDP (plain SGD on the union of the ranks' batches, which is what
FSDP's averaged gradients do) on the union probe, to 1e-10 (an exact round, ``estimate()``).
FSDP1 needs an accelerator in torch 2.13 and is not tested (see docs/distributed.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _distributed_ranks import run_ranks  # noqa: E402
from _sidecar import SidecarProcess  # noqa: E402
from test_distributed import assert_same, numbers, problem, shard  # noqa: E402

STEPS, BATCH = 3, 2  # per-rank batch (3 × 2 = the 6 samples of a rank)


@pytest.fixture(scope="module")
def sidecar():
    proc = SidecarProcess().start()
    yield proc.endpoint
    proc.stop()


def train_plain(model, loss_fn, x, y, world: int) -> None:
    """The reference: SGD on the union of the ranks' batches (FSDP averages the ranks' gradients)."""
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(STEPS):
        idx = torch.cat([r * (len(x) // world) + torch.arange(BATCH) + BATCH * step for r in range(world)])
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()


def fsdp_rank(rank: int, world: int, out_dir: str, endpoint: str, m: int) -> dict:
    import copy

    import torch
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import fully_shard

    import edgewise

    model, loss_fn, x, y = problem(m, seed=4)
    replica = copy.deepcopy(model)  # plain module, same architecture
    reference = copy.deepcopy(model)
    fully_shard(model)
    xs, ys = shard(x, rank, world), shard(y, rank, world)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(STEPS):
        i = torch.arange(BATCH) + BATCH * step
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xs[i]), ys[i]).backward()
        opt.step()
    out: dict = {}
    try:
        edgewise.estimate(model, loss_fn, (xs, ys), n_train=1000, batch_size=8, endpoint=endpoint)
    except TypeError as exc:
        out["refused"] = str(exc)
    replica.load_state_dict(get_model_state_dict(model, options=StateDictOptions(full_state_dict=True)))
    kw = dict(n_train=1000, batch_size=8, lr=0.05, endpoint=endpoint, bootstrap=20)
    out["dist"] = edgewise.estimate(replica, loss_fn, (xs, ys), **kw).to_dict()
    if rank == 0:
        train_plain(reference, loss_fn, x, y, world)
        out["param_gap"] = max(float((a - b).abs().max()) for a, b in zip(reference.parameters(), replica.parameters()))
        out["alone"] = edgewise.estimate(reference, loss_fn, (x, y), process_group=False, **kw).to_dict()
    return out


def test_fsdp2_is_monitored_through_a_full_state_dict_replica(tmp_path, sidecar):
    ranks = run_ranks(2, fsdp_rank, tmp_path, sidecar, 12)
    assert ranks[0]["param_gap"] < 1e-12  # FSDP trained what plain SGD on the union trains
    for res in ranks:
        assert "full_state_dict" in res["refused"], res.get("refused")
        assert_same(numbers(res["dist"]), numbers(ranks[0]["alone"]))
