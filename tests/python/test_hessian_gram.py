"""The ``hessian_gram`` op: rows of ``K₂ = (HV)ᵀ(HV) = Vᵀ H² V`` against dense ``torch.func`` Hessians.

``H = mean_i H_i`` over the probe (per-sample Hessians on the Hessian route, Gauss–Newton
matrices on the factor route, ``S H_i S`` with Adam's preconditioner). The ``HV`` columns are
cached per round: rotated with ``V``, extended lazily after ``random``/``expand``, dropped on
``reset`` and at a new round; the costs are those of CONTRACT/SPEC (``m/2`` per new column on
the factor route when its factors are known, ``m`` on the Hessian route).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgewise._protocol import CAPABILITIES
from edgewise.oracle import CurvatureOracle
from test_oracle import M, dense, make_case, theta_of

F64 = torch.float64


def close(a, b, rel=1e-12):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * max(1.0, float(np.abs(b).max())))


def k2(h, v):
    hv = h @ v
    return hv.T @ hv


@pytest.mark.parametrize("name,curvature,adam", [("tanh", "hessian", False), ("tanh", "ggn", False),
                                                 ("relu", "ggn", True), ("conv", "hessian", True)])
def test_gram_rows_equal_dense_k2_through_growth_rotation_and_reset(name, curvature, adam):
    model, loss, x, y = make_case(name)
    H = dense(model, loss, x, y, curvature)[0]
    s = None
    if adam:
        s = torch.exp(torch.linspace(-1.0, 1.0, theta_of(model).numel(), dtype=F64))
        H = s[:, None] * H * s[None, :]
    Hm = H.mean(0)
    oracle = CurvatureOracle(model, loss, x, y, curvature=curvature)
    oracle.begin_round(preconditioner=s)
    per_col = M / 2 if curvature == "ggn" else M  # a VJP (factors known) or a mean-Hessian product
    oracle.random(3, 1)
    if curvature == "ggn":
        oracle.execute("blocks", {"start": 0, "count": 3})  # the factors are then known
    res = oracle.execute("hessian_gram", {"start": 0, "count": 3})
    v = oracle.basis
    assert res["gram"].shape == (3, 3) and res["basis"] == 3 and res["hvps"] == 3 * per_col
    close(res["gram"], k2(Hm, v))
    part = oracle.execute("hessian_gram", {"start": 1, "count": 2})
    assert part["hvps"] == 0
    close(part["gram"], k2(Hm, v)[1:3])

    oracle.random(2, 2)  # grown: only the two new columns cost, factors included on the factor route
    res = oracle.execute("hessian_gram", {"start": 3, "count": 2})
    v = oracle.basis
    assert res["gram"].shape == (2, 5) and res["hvps"] == 2 * M
    close(res["gram"], k2(Hm, v)[3:5])

    u, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((5, 5)))
    oracle.execute("rotate", {"u": u[:, :4]})
    res = oracle.execute("hessian_gram", {"start": 0, "count": 4})
    assert res["hvps"] == 0  # HV ← HV U
    close(res["gram"], k2(Hm, oracle.basis))

    oracle.execute("reset", {})
    assert oracle.execute("hessian_gram", {"start": 0, "count": 0})["gram"].shape == (0, 0)
    oracle.random(2, 3)
    oracle.end_round()
    oracle.begin_round(preconditioner=s)  # a new round: nothing cached
    res = oracle.execute("hessian_gram", {"start": 0, "count": 2})
    assert res["hvps"] == 2 * M
    close(res["gram"], k2(Hm, oracle.basis))


def test_gram_after_expand_with_blocks_costs_only_the_vjps():
    model, loss, x, y = make_case("tanh")
    oracle = CurvatureOracle(model, loss, x, y, curvature="ggn")
    oracle.begin_round()
    out = oracle.execute("expand", {"out_coeffs": np.random.default_rng(1).standard_normal((M, 2, 3)),
                                    "basis_coeffs": np.zeros((0, 3)), "blocks": True})
    assert out["kept"] == 3
    res = oracle.execute("hessian_gram", {"start": 0, "count": 3})
    assert res["hvps"] == 3 * M / 2
    close(res["gram"], k2(dense(model, loss, x, y, "ggn")[0].mean(0), oracle.basis))


def test_bad_gram_requests_raise_and_the_op_is_announced():
    model, loss, x, y = make_case("tanh")
    oracle = CurvatureOracle(model, loss, x, y, curvature="hessian")
    oracle.begin_round()
    oracle.random(2, 0)
    for args in ({"start": 1, "count": 2}, {"start": -1, "count": 1}, {"count": 1}):
        with pytest.raises((ValueError, TypeError)):
            oracle.execute("hessian_gram", args)
    assert "hessian_gram" in CAPABILITIES
