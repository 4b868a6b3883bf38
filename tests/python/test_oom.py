"""Out of memory in an oracle op (per-sample products of the Hessian route; the factor route's
column chunks: test_factor_route.py): the chunk size is halved, the op retried once with the same
result as an unconstrained oracle, the smaller size kept for the next round, and the report
says so."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import edgewise
from edgewise._oom import OomRetry, is_out_of_memory
from edgewise.oracle import CurvatureOracle


def problem(m=16):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    x, y = torch.randn(m, 3, dtype=torch.float64), torch.randn(m, 1, dtype=torch.float64)
    return model, torch.nn.functional.mse_loss, x, y


def memory_limited(oracle, most):
    """Makes the oracle's per-sample products fail for chunks of more than ``most`` samples."""
    calls = []
    hvp = oracle._hvp

    def limited(theta, x, *rest, **kw):
        calls.append(x.shape[0])
        if x.shape[0] > most:
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated for {x.shape[0]} samples)")
        return hvp(theta, x, *rest, **kw)

    oracle._hvp = limited
    return calls


def test_an_out_of_memory_op_is_retried_once_at_half_the_chunk_with_the_same_result():
    model, loss_fn, x, y = problem()
    reference = CurvatureOracle(model, loss_fn, x, y, curvature="hessian", chunk_size=2)
    oracle = CurvatureOracle(model, loss_fn, x, y, curvature="hessian", chunk_size=16)
    for o in (reference, oracle):
        o.begin_round()
        o.execute("random", {"r": 3, "seed": 1})
    calls = memory_limited(oracle, most=8)
    guard = OomRetry(oracle)
    out = guard.execute("blocks", {"start": 0, "count": 3})
    np.testing.assert_allclose(out["blocks"], reference.execute("blocks", {"start": 0, "count": 3})["blocks"], rtol=1e-12)
    assert calls == [16, 8, 8]  # failed at 16, then two chunks of 8
    assert oracle.chunk_size == 8 and guard.events == ["out of memory in blocks: chunk size 16 -> 8 samples, op retried"]
    # the next round keeps the smaller size: no failure, no new event
    oracle.end_round()
    oracle.begin_round()
    memory_limited(oracle, most=8)
    again = OomRetry(oracle)
    again.execute("hutchinson", {"r": 2, "seed": 0})
    assert again.events == [] and oracle.chunk_size == 8


def test_a_second_out_of_memory_is_raised_and_the_size_halved_again_for_the_next_round():
    model, loss_fn, x, y = problem()
    oracle = CurvatureOracle(model, loss_fn, x, y, curvature="hessian", chunk_size=16)
    oracle.begin_round()
    oracle.execute("random", {"r": 2, "seed": 1})
    memory_limited(oracle, most=2)
    with pytest.raises(torch.OutOfMemoryError):
        OomRetry(oracle).execute("blocks", {"start": 0, "count": 2})
    assert oracle.chunk_size == 4  # 16 -> 8 (retried, failed) -> 4 for the next round


def test_other_errors_are_not_retried():
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 TB"))
    assert not is_out_of_memory(ValueError("bad shape"))
    model, loss_fn, x, y = problem()
    oracle = CurvatureOracle(model, loss_fn, x, y, curvature="hessian", chunk_size=16)
    oracle.begin_round()
    with pytest.raises(ValueError):
        OomRetry(oracle).execute("blocks", {"start": 0, "count": 5})
    assert oracle.chunk_size == 16


class BlocksClient:
    """Runs one blocks op through the monitor's oracle, then reports."""

    dashboard_url = None

    def open_session(self, run):
        return "s"

    def run_round(self, oracle, **kw):
        oracle.execute("random", {"r": 2, "seed": 0})
        oracle.execute("blocks", {"start": 0, "count": 2})
        return {"lambda_gen": 1.0, "eta_star": 2.0, "step": kw["step"]}

    def close(self):
        pass


def test_the_report_says_the_chunk_size_was_halved():
    model, loss_fn, x, y = problem()
    monitor = edgewise.Monitor(model, loss_fn, probe=(x, y), n_train=16, batch_size=4, console=False, curvature="hessian",
                               blocking=True, chunk_size=16, client_factory=lambda e, t: BlocksClient())
    oracle = monitor._ensure_oracle()
    original_begin = oracle.begin_round

    def begin_then_limit(**kwargs):
        original_begin(**kwargs)
        memory_limited(oracle, most=8)

    oracle.begin_round = begin_then_limit
    report = monitor.round(lr=0.1)
    monitor.close()
    assert not report.missing
    assert report.extra["chunk_size"] == 8
    assert any("chunk size 16 -> 8" in w for w in report.warnings)
