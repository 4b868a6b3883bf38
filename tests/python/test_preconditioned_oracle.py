"""Adam's frozen preconditioner inside every oracle product (shared/docs/momentum.md §5).

With ``s = P^{-1/2}`` given to ``begin_round``, every op must answer for ``S H_i S`` (``S =
diag(s)``) and ``S g_i``, on both routes. References: dense ``torch.func`` per-sample Hessians
and Gauss–Newton matrices (tests/python/test_oracle.py's ``dense``) sandwiched by ``S`` here.
``adam_scale`` is checked against the step ``torch.optim.Adam`` actually takes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgewise._basis import rademacher
from edgewise._preconditioner import NoPreconditioner, adam_scale
from edgewise.oracle import CurvatureOracle
from test_oracle import M, dense, make_case, theta_of

F64 = torch.float64


def close(a, b, rel=1e-12):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * max(1.0, float(np.abs(b).max())))


def _case(name, curvature, seed=0):
    model, loss, x, y = make_case(name)
    d = theta_of(model).numel()
    s = torch.exp(torch.empty(d, dtype=F64).uniform_(-0.75, 0.75, generator=torch.Generator().manual_seed(seed)))
    H, G, L = dense(model, loss, x, y, curvature)
    oracle = CurvatureOracle(model, loss, x, y, curvature=curvature)
    oracle.begin_round(preconditioner=s)
    return oracle, s, s[:, None] * H * s[None, :], G * s, L


@pytest.mark.parametrize("name,curvature", [("tanh", "hessian"), ("tanh", "ggn"), ("relu", "ggn"), ("conv", "hessian")])
def test_blocks_and_expand_are_those_of_the_preconditioned_curvature(name, curvature):
    oracle, s, Ht, _, _ = _case(name, curvature)
    oracle.random(4, 3)
    v = oracle.basis
    res = oracle.execute("blocks", {"start": 0, "count": 4})
    want = torch.einsum("dk,ide,ec->ikc", v, Ht, v)
    if curvature == "hessian":
        close(res["blocks"], want)
    else:
        a = torch.from_numpy(res["factors"])
        close(a.transpose(1, 2) @ a, want)
    rng = np.random.default_rng(1)
    cv = rng.standard_normal((4, 2))
    if curvature == "hessian":
        coeffs = rng.standard_normal((M, 4, 2))
        w = torch.einsum("ide,ek,ikr->dr", Ht, v, torch.from_numpy(coeffs)) + v @ torch.from_numpy(cv)
        args = {"coeffs": coeffs}
    else:  # U_i = A_i C_i gives Σ_i H̃_i V C_i
        c = rng.standard_normal((M, 4, 2))
        a = torch.from_numpy(res["factors"])
        args = {"out_coeffs": (a @ torch.from_numpy(c)).numpy()}
        w = torch.einsum("ide,ek,ikr->dr", Ht, v, torch.from_numpy(c)) + v @ torch.from_numpy(cv)
    out = oracle.execute("expand", {**args, "basis_coeffs": cv, "blocks": False})
    close(out["proj"], v.T @ w)
    close(out["norms"], torch.linalg.vector_norm(w - v @ (v.T @ w), dim=0))


@pytest.mark.parametrize("curvature", ["hessian", "ggn"])
def test_grads_and_hutchinson_are_preconditioned(curvature):
    oracle, s, Ht, Gt, L = _case("tanh", curvature, seed=4)
    oracle.random(3, 0)
    g = oracle.execute("grads", {})
    close(g["losses"], L)
    close(g["sq_norms"], (Gt * Gt).sum(1))
    close(g["proj"], Gt @ oracle.basis)
    close(g["mean_sq_norm"], float(Gt.mean(0) @ Gt.mean(0)))
    h = oracle.execute("hutchinson", {"r": 3, "seed": 5})
    z = rademacher(oracle.params, 3, 5, dtype=F64, device="cpu")
    hz = torch.einsum("ide,er->idr", Ht, z)
    close(h["quad"], torch.einsum("dr,idr->ir", z, hz))
    close(h["sq_norms"], (hz * hz).sum(1))


def test_the_model_is_untouched_and_the_next_round_can_drop_the_preconditioner():
    oracle, s, _, _, _ = _case("tanh", "hessian")
    model = oracle._model
    before = theta_of(model).clone()
    oracle.random(2, 0)
    oracle.execute("blocks", {"start": 0, "count": 2})
    oracle.end_round()
    assert torch.equal(theta_of(model), before)
    oracle.begin_round()  # plain coordinates again
    H, _, _ = dense(*make_case("tanh"))
    v = oracle.basis
    close(oracle.execute("blocks", {"start": 0, "count": 2})["blocks"], torch.einsum("dk,ide,ec->ikc", v, H, v))
    with pytest.raises(ValueError, match="scale of shape"):
        oracle.begin_round(preconditioner=torch.ones(3, dtype=F64))


@pytest.mark.parametrize("cls,amsgrad,eps", [(torch.optim.Adam, False, 1e-8), (torch.optim.AdamW, True, 1e-3),
                                             (torch.optim.Adam, True, 0.0)])
def test_adam_scale_is_the_denominator_torch_divides_by(cls, amsgrad, eps):
    """Adam's step t is Δθ = −lr m̂_t ⊙ s_t², s_t = P_t^{-1/2} read from the state after the step."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).to(F64)
    lr, b1, b2 = 0.01, 0.8, 0.95
    opt = cls(model.parameters(), lr=lr, betas=(b1, b2), eps=eps, amsgrad=amsgrad, weight_decay=0.0)
    with pytest.raises(NoPreconditioner, match="no Adam state"):
        adam_scale(model, opt, eps=eps, beta2=b2, amsgrad=amsgrad)
    for t in range(1, 5):
        opt.zero_grad()
        x = torch.randn(8, 3, dtype=F64) * (3.0 if t == 2 else 0.3)  # a large gradient once: amsgrad's max matters
        model(x).pow(2).mean().backward()
        before = theta_of(model).clone()
        opt.step()
        s = adam_scale(model, opt, eps=eps, beta2=b2, amsgrad=amsgrad)
        m_hat = torch.cat([opt.state[p]["exp_avg"].reshape(-1) for p in model.parameters()]) / (1 - b1 ** t)
        close(theta_of(model) - before, -lr * m_hat * s * s, rel=1e-13)


def test_adam_scale_refuses_a_zero_preconditioner_and_skips_frozen_parameters():
    model = torch.nn.Linear(2, 1).to(F64)
    model.bias.requires_grad_(False)
    opt = torch.optim.Adam([model.weight], lr=0.1, eps=0.0)
    model(torch.tensor([[1.0, 0.0]], dtype=F64)).sum().backward()  # weight[0, 1] gets a zero gradient
    opt.step()
    with pytest.raises(NoPreconditioner, match="zero or non-finite"):
        adam_scale(model, opt, eps=0.0, beta2=0.999, amsgrad=False)
    assert adam_scale(model, opt, eps=1e-8, beta2=0.999, amsgrad=False).shape == (2,)  # the frozen bias is no variable
