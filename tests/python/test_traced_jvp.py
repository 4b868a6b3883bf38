"""Traced JVP columns (``torch.func.linearize``) against independent Jacobians, and the rule that
decides when a round traces (``edgewise/_traced_jvp.py``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, jacrev

import edgewise._traced_jvp as traced_jvp
from edgewise._hvp import ParamLayout
from edgewise._jacobian_products import ProbeJacobian
from edgewise._traced_jvp import FIRST_GUESS_COLUMNS, FIRST_GUESS_S, JvpTracing
from edgewise.oracle import CurvatureOracle


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 4),
    ).double()
    with torch.no_grad():  # running statistics that differ from the batch's (eval mode)
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def _dense_jacobian(model: nn.Module, layout: ParamLayout, x: torch.Tensor) -> torch.Tensor:
    """``J`` of all probe outputs (``m·c × d``) by reverse mode, one row at a time."""
    buffers = dict(model.named_buffers())
    theta = layout.flatten({n: p.detach() for n, p in model.named_parameters()})

    def outputs(flat: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {**layout.unflatten(flat), **buffers}, (x,)).reshape(-1)

    return jacrev(outputs)(theta)


def _probe_jacobian(model: nn.Module, x: torch.Tensor, tracing: JvpTracing | None) -> tuple[ProbeJacobian, ParamLayout]:
    layout = ParamLayout.from_module(model)
    theta = layout.flatten({n: p.detach() for n, p in model.named_parameters()})
    return ProbeJacobian(model, layout, dict(model.named_buffers()), theta, x, None, tracing), layout


def test_traced_columns_equal_the_dense_jacobian():
    model = _cnn()
    x = torch.randn(6, 1, 5, 5, dtype=torch.float64)
    tracing = JvpTracing()
    tracing.setup_s = 0.0  # a free trace: the round traces after its first column
    jac, layout = _probe_jacobian(model, x, tracing)
    v = torch.randn(layout.size, 5, dtype=torch.float64)
    got = jac.jvp(v)
    want = (_dense_jacobian(model, layout, x) @ v).reshape(6, 4, 5)
    assert tracing.traces == 1 and tracing.failure is None
    assert float((got - want).abs().max() / want.abs().max()) < 1e-12


def test_traced_chunks_of_columns_equal_plain_ones():
    model = _cnn()
    x = torch.randn(6, 1, 5, 5, dtype=torch.float64)
    tracing = JvpTracing()
    tracing.setup_s = 0.0
    traced, layout = _probe_jacobian(model, x, tracing)
    plain, _ = _probe_jacobian(model, x, None)
    traced.columns_per_chunk = plain.columns_per_chunk = 3  # vmap over the traced tangent map
    v = torch.randn(layout.size, 7, dtype=torch.float64)
    got, want = traced.jvp(v), plain.jvp(v)
    assert tracing.traces == 1
    assert float((got - want).abs().max() / want.abs().max()) < 1e-12


def test_a_failed_trace_leaves_plain_products_for_the_rest_of_the_run(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("cannot trace this model")

    monkeypatch.setattr(traced_jvp, "linearize", broken)
    model = _cnn()
    x, y = torch.randn(6, 1, 5, 5, dtype=torch.float64), torch.randint(0, 4, (6,))
    oracle = CurvatureOracle(model, nn.functional.cross_entropy, x, y, memory_budget=1)  # a column per chunk
    oracle._jvp_tracing.setup_s = 0.0
    want = _dense_jacobian(model, ParamLayout.from_module(model), x)
    for _ in range(2):
        oracle.begin_round()
        oracle.random(4, seed=1)
        jac = oracle._factor.jacobian
        v = oracle.basis
        got = jac.jvp(v)
        assert float((got - (want @ v).reshape(6, 4, 4)).abs().max()) < 1e-12
        oracle.end_round()
    assert oracle._jvp_tracing.failure == "RuntimeError: cannot trace this model"
    assert oracle._jvp_tracing.traces == 0


def test_a_round_rents_plain_columns_until_they_cost_the_expected_setup():
    tracing = JvpTracing()
    first = 0.3  # seconds of the round's first plain column
    guess = FIRST_GUESS_COLUMNS * first + FIRST_GUESS_S
    assert not tracing.worth_tracing(0.99 * guess, first)
    assert tracing.worth_tracing(guess, first)
    tracing.setup_s = 2.0  # measured in an earlier round: the guess no longer matters
    assert not tracing.worth_tracing(1.9, first)
    assert tracing.worth_tracing(2.0, first)
    tracing.failure = "RuntimeError: x"
    assert not tracing.worth_tracing(100.0, first)


def test_oracle_blocks_are_the_same_traced_or_not():
    model = _cnn()
    x, y = torch.randn(6, 1, 5, 5, dtype=torch.float64), torch.randint(0, 4, (6,))
    blocks = []
    for trace in (True, False):
        oracle = CurvatureOracle(model, nn.functional.cross_entropy, x, y, memory_budget=1)  # a column per chunk
        oracle._jvp_tracing.setup_s = 0.0
        if not trace:
            oracle._jvp_tracing.failure = "off for the reference"
        oracle.begin_round()
        oracle.random(6, seed=3)
        blocks.append(oracle.blocks(0, 6))
        oracle.end_round()
        assert oracle._jvp_tracing.traces == int(trace)
    assert float((blocks[0] - blocks[1]).abs().max()) < 1e-12


def test_a_small_model_never_pays_for_a_trace():
    """Its columns take milliseconds: a round's worth stays below the first guess's 0.5 s."""
    model = _cnn()
    x, y = torch.randn(6, 1, 5, 5, dtype=torch.float64), torch.randint(0, 4, (6,))
    oracle = CurvatureOracle(model, nn.functional.cross_entropy, x, y, memory_budget=1)
    oracle.begin_round()
    oracle.random(20, seed=3)
    oracle.blocks(0, 20)
    oracle.end_round()
    assert oracle._jvp_tracing.traces == 0
