"""Probes of any batch structure: tuples, dicts, nested pytrees, models computing their own loss.

The reference for a dict batch is the same model called with a tuple (the equality is exact up
to the sidecar's float64 arithmetic, 1e-12); the nested pytree's per-sample Hessian blocks are
checked against ``torch.func.hessian`` of a hand-written per-sample loss.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, hessian

import edgewise
from edgewise._probe import draw_probe
from edgewise.oracle import CurvatureOracle

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sidecar import SidecarProcess  # noqa: E402

M = 12


class TwoInputs(torch.nn.Module):
    """``out(tanh(fa(a) + fb(b)))``: two inputs, by position or by keyword."""

    def __init__(self) -> None:
        super().__init__()
        self.fa = torch.nn.Linear(3, 4)
        self.fb = torch.nn.Linear(2, 4)
        self.out = torch.nn.Linear(4, 3)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.fa(a) + self.fb(b)))


class OwnLoss(torch.nn.Module):
    """Hugging Face style: takes ``labels`` and returns its own mean cross-entropy."""

    def __init__(self, net: TwoInputs) -> None:
        super().__init__()
        self.net = net

    def forward(self, a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.net(a, b)
        return {"loss": F.cross_entropy(logits, labels), "logits": logits}


def data(seed: int = 0) -> tuple[TwoInputs, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = TwoInputs().double()
    a, b = torch.randn(M, 3, dtype=torch.float64), torch.randn(M, 2, dtype=torch.float64)
    labels = torch.randint(0, 3, (M,))
    return model, a, b, labels


@pytest.fixture(scope="module")
def endpoint():
    proc = SidecarProcess().start()
    try:
        yield proc.endpoint
    finally:
        proc.stop()


def run(endpoint: str, model: torch.nn.Module, loss_fn, probe, **kwargs) -> edgewise.StabilityReport:
    return edgewise.estimate(model, loss_fn, probe, n_train=100, batch_size=4, endpoint=endpoint, **kwargs)


def assert_same(r1: edgewise.StabilityReport, r2: edgewise.StabilityReport) -> None:
    for name in ("lambda_gen", "lambda_max"):
        v1, v2 = getattr(r1, name), getattr(r2, name)
        assert v1 is not None and v1 > 0, name
        assert abs(v1 - v2) <= 1e-12 * abs(v1), (name, v1, v2)


@pytest.mark.parametrize("curvature", ["ggn", "hessian"])
def test_a_dict_batch_gives_the_lambda_gen_of_the_same_model_called_with_a_tuple(endpoint, curvature):
    model, a, b, labels = data()
    tup = run(endpoint, model, F.cross_entropy, ((a, b), labels), curvature=curvature)
    dic = run(endpoint, model, F.cross_entropy, ({"a": a, "b": b}, labels), curvature=curvature)
    assert_same(tup, dic)


def test_estimate_defaults_take_a_dict_batch(endpoint):
    model, a, b, labels = data(1)
    assert_same(run(endpoint, model, F.cross_entropy, ((a, b), labels)),
                run(endpoint, model, F.cross_entropy, ({"b": b, "a": a}, labels)))


def test_a_model_computing_its_own_loss_matches_the_plain_loss_on_the_exact_hessian(endpoint):
    model, a, b, labels = data(2)
    plain = run(endpoint, model, F.cross_entropy, ((a, b), labels), curvature="hessian")
    own = run(endpoint, OwnLoss(model), lambda out, batch: out["loss"], {"a": a, "b": b, "labels": labels},
              curvature="hessian", loss_on="batch")
    assert_same(plain, own)


def test_a_user_forward_selecting_the_logits_gives_gauss_newton_for_an_own_loss_model(endpoint):
    model, a, b, labels = data(3)
    plain = run(endpoint, model, F.cross_entropy, ((a, b), labels))
    own = run(endpoint, OwnLoss(model), F.cross_entropy, ({"a": a, "b": b, "labels": labels}, labels),
              forward=lambda m, batch: m(**batch)["logits"])
    assert_same(plain, own)


def nested_forward(model: TwoInputs, batch) -> torch.Tensor:
    a, b = batch["inputs"]
    return model(a, b) * batch["extra"]["scale"]


def test_nested_pytree_blocks_match_torch_func_hessians():
    model, a, b, labels = data(4)
    scale = 1 + torch.rand(M, 1, dtype=torch.float64)
    batch = {"inputs": (a, b), "extra": {"scale": scale}}
    oracle = CurvatureOracle(model, F.cross_entropy, batch, labels, curvature="hessian", forward=nested_forward,
                             chunk_size=5)
    oracle.begin_round()
    oracle.random(4, seed=0)
    blocks = oracle.blocks(0, 4)
    v = oracle.basis
    names = [n for n, _ in model.named_parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    sizes = [p.numel() for p in model.parameters()]
    shapes = [p.shape for p in model.parameters()]

    def loss_i(theta, i):
        params = {n: t.reshape(s) for n, t, s in zip(names, theta.split(sizes), shapes)}
        out = functional_call(model, params, (a[i : i + 1], b[i : i + 1])) * scale[i : i + 1]
        return F.cross_entropy(out, labels[i : i + 1])

    for i in range(M):
        h = hessian(loss_i)(flat, i)
        ref = v.T @ h @ v
        assert torch.allclose(blocks[i], ref, rtol=1e-10, atol=1e-12), i


def test_own_loss_with_gauss_newton_is_a_clear_error():
    model, a, b, labels = data()
    with pytest.raises(ValueError, match="curvature='hessian'"):
        CurvatureOracle(OwnLoss(model), lambda out, batch: out["loss"], {"a": a, "b": b, "labels": labels}, None,
                        loss_on="batch")
    with pytest.raises(ValueError, match="curvature='hessian'"):
        edgewise.Monitor(OwnLoss(model), lambda out, batch: out["loss"], {"a": a, "b": b, "labels": labels},
                         n_train=100, batch_size=4, loss_on="batch")


def test_mismatched_leading_dimensions_are_clear_errors():
    model, a, b, labels = data()
    with pytest.raises(ValueError, match="same number of samples along dim 0"):
        CurvatureOracle(model, F.cross_entropy, {"a": a, "b": b[:-1]}, labels)
    with pytest.raises(ValueError, match="same number m of samples"):
        CurvatureOracle(model, F.cross_entropy, {"a": a, "b": b}, labels[:-1])
    with pytest.raises(TypeError, match="only tensors"):
        CurvatureOracle(model, F.cross_entropy, {"a": a, "b": [1.0] * M}, labels)
    with pytest.raises(ValueError, match="same number of samples along dim 0"):
        edgewise.estimate(model, F.cross_entropy, ({"a": a, "b": b[:-1]}, labels), n_train=100, batch_size=4)


def test_monitor_accepts_a_dict_probe_and_draws_one_from_dict_samples():
    model, a, b, labels = data()
    rows = [{"a": a[i], "b": b[i], "labels": labels[i]} for i in range(M)]
    probe = draw_probe(rows, 5, seed=1)
    assert set(probe) == {"a", "b", "labels"} and probe["a"].shape == (5, 3) and probe["labels"].shape == (5,)
    picked = [i for i in range(M) if any(torch.equal(a[i], r) for r in probe["a"])]
    assert all(torch.equal(labels[i], probe["labels"][k]) for k, i in enumerate(picked))
    monitor = edgewise.Monitor(OwnLoss(model), lambda out, batch: out["loss"], train_data=rows, probe_size=5,
                               n_train=M, batch_size=4, curvature="hessian", loss_on="batch", console=False)
    try:
        oracle = monitor._ensure_oracle()
        assert oracle.probe_size == 5
        oracle.begin_round()
        assert oracle.grads()["losses"].shape == (5,)
    finally:
        monitor.close()


def test_gauss_newton_on_a_structured_output_asks_for_the_logits():
    model, a, b, labels = data()
    with pytest.raises(TypeError, match="logits"):
        CurvatureOracle(OwnLoss(model), F.cross_entropy, {"a": a, "b": b, "labels": labels}, labels)
