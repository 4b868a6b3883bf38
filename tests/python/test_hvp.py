"""Per-sample curvature factories (edgewise._hvp) against dense float64 references.

References are built here, independently of the code under test: the per-sample loss as a
function of a flat parameter vector (own slicing), ``torch.func.hessian`` for ``H_i``,
``jacrev`` for gradients. (The Gauss–Newton route has its own tests: test_factor_route.py.)
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian, jacrev

from edgewise._hvp import (
    ParamLayout,
    chunk_for_budget,
    per_sample_grads,
    per_sample_hvp,
    sample_hvp,
)

torch.set_num_threads(1)
TOL = dict(rtol=1e-10, atol=1e-10)
F64 = torch.float64
M = 5


def _mse(out, target):
    return nn.functional.mse_loss(out, target)


def _ce(out, target):
    return nn.functional.cross_entropy(out, target)


def make_case(name: str):
    """(model, loss_fn, x, y) for a tiny float64 problem."""
    torch.manual_seed({"relu": 0, "tanh": 1, "conv": 2}[name])
    if name == "relu":
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
        x, y, loss = torch.randn(M, 4), torch.randn(M, 3), _mse
    elif name == "tanh":
        model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
        x, y, loss = torch.randn(M, 4), torch.randint(0, 3, (M,)), _ce
    else:
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(18, 3))
        x, y, loss = torch.randn(M, 1, 5, 5), torch.randint(0, 3, (M,)), _ce
    model = model.to(F64)
    x = x.to(F64)
    y = y.to(F64) if y.is_floating_point() else y
    return model, loss, x, y


def flat_params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def ref_split(model, theta):
    out, i = {}, 0
    for n, p in model.named_parameters():
        out[n] = theta[i : i + p.numel()].view_as(p)
        i += p.numel()
    return out


def ref_output(model, theta, xi):
    return functional_call(model, ref_split(model, theta), (xi[None],))


def ref_loss(model, loss, theta, xi, yi):
    return loss(ref_output(model, theta, xi), yi[None])


def dense_hessians(model, loss, x, y):
    theta = flat_params(model)
    return torch.stack([hessian(lambda t: ref_loss(model, loss, t, x[i], y[i]))(theta) for i in range(len(x))])


CASES = ["relu", "tanh", "conv"]


@pytest.fixture(params=CASES)
def case(request):
    return make_case(request.param)


def test_layout_roundtrip(case):
    model = case[0]
    layout = ParamLayout.from_module(model)
    theta = flat_params(model)
    assert layout.size == theta.numel() == sum(p.numel() for p in model.parameters())
    parts = layout.unflatten(theta)
    for n, p in model.named_parameters():
        assert torch.equal(parts[n], p.detach())
    assert torch.equal(layout.flatten(parts), theta)
    with pytest.raises(ValueError, match="expected a flat vector of length d"):
        layout.unflatten(theta[:-1])


def test_per_sample_products_match_dense(case):
    model, loss, x, y = case
    layout = ParamLayout.from_module(model)
    theta = flat_params(model)
    dense = dense_hessians(model, loss, x, y)
    d = theta.numel()
    f = per_sample_hvp(model, loss, layout)
    g = torch.Generator().manual_seed(5)
    v = torch.randn(d, generator=g, dtype=F64)
    vb = torch.randn(d, 3, generator=g, dtype=F64)
    vs = torch.randn(M, d, generator=g, dtype=F64)
    vsb = torch.randn(M, d, 2, generator=g, dtype=F64)
    torch.testing.assert_close(f(theta, x, y, v), torch.einsum("ide,e->id", dense, v), **TOL)
    torch.testing.assert_close(f(theta, x, y, vb), torch.einsum("ide,er->idr", dense, vb), **TOL)
    torch.testing.assert_close(f(theta, x, y, vs, per_sample=True), torch.einsum("ide,ie->id", dense, vs), **TOL)
    want = torch.einsum("ide,ier->idr", dense, vsb)
    torch.testing.assert_close(f(theta, x, y, vsb, per_sample=True), want, **TOL)
    torch.testing.assert_close(f(theta, x, y, vsb, per_sample=True, reduce=True), want.sum(0), **TOL)
    # single-sample function agrees too
    one = sample_hvp(model, loss, layout)
    torch.testing.assert_close(one(theta, x[1], y[1], v), dense[1] @ v, **TOL)


def test_grads_and_losses_match_dense(case):
    model, loss, x, y = case
    layout = ParamLayout.from_module(model)
    theta = flat_params(model)
    losses, grads = per_sample_grads(model, loss, layout)(theta, x, y)
    for i in range(M):
        torch.testing.assert_close(losses[i], ref_loss(model, loss, theta, x[i], y[i]), **TOL)
        torch.testing.assert_close(grads[i], jacrev(lambda t: ref_loss(model, loss, t, x[i], y[i]))(theta), **TOL)


def test_chunked_equals_unchunked(case):
    model, loss, x, y = case
    layout = ParamLayout.from_module(model)
    theta = flat_params(model)
    vsb = torch.randn(M, theta.numel(), 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    full = per_sample_hvp(model, loss, layout)(theta, x, y, vsb, per_sample=True)
    for chunk in (1, 2, 7):
        part = per_sample_hvp(model, loss, layout, chunk_size=chunk)(theta, x, y, vsb, per_sample=True)
        torch.testing.assert_close(part, full, rtol=1e-13, atol=1e-13)
        red = per_sample_hvp(model, loss, layout, chunk_size=chunk)(theta, x, y, vsb, per_sample=True, reduce=True)
        torch.testing.assert_close(red, full.sum(0), rtol=1e-12, atol=1e-12)
    l1, g1 = per_sample_grads(model, loss, layout, chunk_size=2)(theta, x, y)
    l0, g0 = per_sample_grads(model, loss, layout)(theta, x, y)
    torch.testing.assert_close(l1, l0, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(g1, g0, rtol=1e-13, atol=1e-13)


def test_float32_model_stays_float32():
    model, loss, x, y = make_case("relu")
    model32 = model.float()
    layout = ParamLayout.from_module(model32)
    theta = flat_params(model32)
    v = torch.randn(theta.numel(), dtype=torch.float32)
    out = per_sample_hvp(model32, loss, layout)(theta, x.float(), y.float(), v)
    assert out.dtype == torch.float32
    ref = torch.einsum("ide,e->id", dense_hessians(model.double(), loss, x, y), v.double())
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)


def test_bad_inputs_raise():
    model, loss, x, y = make_case("relu")
    layout = ParamLayout.from_module(model)
    theta = flat_params(model)
    d = theta.numel()
    f = per_sample_hvp(model, loss, layout)
    with pytest.raises(ValueError, match=r"expected v of shape \(d,\) or \(d, r\)"):
        f(theta, x, y, torch.zeros(d + 1, dtype=F64))
    with pytest.raises(ValueError, match="expected per-sample vectors with 5 rows"):
        f(theta, x, y, torch.zeros(M + 1, d, dtype=F64), per_sample=True)
    with pytest.raises(ValueError, match="expected y with 5 samples"):
        f(theta, x, y[:3], torch.zeros(d, dtype=F64))
    with pytest.raises(ValueError, match="expected a positive memory budget"):
        chunk_for_budget(0, d, 1, 8)


def test_chunk_for_budget():
    assert chunk_for_budget(8 * 1000 * 8 * 4, 1000, 1, 8) == 4
    assert chunk_for_budget(8 * 1000 * 8 * 4, 1000, 4, 8) == 1
    assert chunk_for_budget(1, 10**6, 10, 4) == 1


class _Scaled(nn.Module):
    """A scalar parameter (shape ``()``) next to matrices: flattening must handle it."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.scale = nn.Parameter(torch.tensor(0.7))

    def forward(self, x):
        return torch.tanh(self.scale * self.lin(x))


def test_scalar_parameter_and_frozen_constants():
    torch.manual_seed(4)
    model = _Scaled().to(F64)
    x, y = torch.randn(M, 3, dtype=F64), torch.randn(M, 2, dtype=F64)
    layout = ParamLayout.from_module(model)
    theta = flat_params(model)
    assert layout.size == 9 and layout.names[0] == "scale" and layout.shapes[0] == torch.Size([])
    H = dense_hessians(model, _mse, x, y)
    vb = torch.randn(9, 2, dtype=F64)
    out = per_sample_hvp(model, _mse, layout)(theta, x, y, vb)
    torch.testing.assert_close(out, torch.einsum("ide,er->idr", H, vb), **TOL)
    # freezing lin.weight: it leaves the layout and becomes a constant
    model.lin.weight.requires_grad_(False)
    frozen = ParamLayout.from_module(model)
    assert frozen.names == ("scale", "lin.bias")
    assert ParamLayout.from_module(model, trainable_only=False).size == 9
    keep = torch.tensor([True] + [False] * 6 + [True] * 2)
    consts = {"lin.weight": model.lin.weight.detach()}
    vs = torch.randn(3, dtype=F64)
    out = per_sample_hvp(model, _mse, frozen, consts)(theta[keep], x, y, vs)
    torch.testing.assert_close(out, torch.einsum("ide,e->id", H[:, keep][:, :, keep], vs), **TOL)
