"""CurvatureOracle (protocol/SPEC.md §4 ops) against dense float64 per-sample curvature.

Dense references are computed here with ``torch.func.hessian`` / ``jacrev`` on the flat
per-sample loss; the basis ``V`` is read back from the oracle and every op's result is compared
with the formula of SPEC §4 evaluated densely.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian, jacrev

from edgewise._basis import rademacher
from edgewise.oracle import CurvatureOracle

torch.set_num_threads(1)
F64 = torch.float64
M = 6


def close(a, b, **kw):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **({"rtol": 1e-10, "atol": 1e-10} | kw))


def make_case(name: str = "tanh"):
    torch.manual_seed({"tanh": 0, "relu": 1, "conv": 2, "bn": 3}[name])
    if name == "tanh":
        model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
        x, y, loss = torch.randn(M, 3), torch.randn(M, 2), nn.functional.mse_loss
    elif name == "relu":
        model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 3))
        x, y, loss = torch.randn(M, 3), torch.randint(0, 3, (M,)), nn.functional.cross_entropy
    elif name == "conv":
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(8, 2))
        x, y, loss = torch.randn(M, 1, 4, 4), torch.randint(0, 2, (M,)), nn.functional.cross_entropy
    else:
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2))
        x, y, loss = torch.randn(M, 3), torch.randn(M, 2), nn.functional.mse_loss
    model = model.to(F64)
    if name == "bn":  # non-trivial running statistics, then back to training mode
        with torch.no_grad():
            model.train()
            for _ in range(3):
                model(torch.randn(16, 3, dtype=F64))
    return model, loss, x.to(F64), (y.to(F64) if y.is_floating_point() else y)


def ref_loss_fn(model, loss, xi, yi):
    shapes = [(n, p) for n, p in model.named_parameters()]
    buffers = {n: b for n, b in model.named_buffers()}

    def f(theta):
        params, i = {}, 0
        for n, p in shapes:
            params[n] = theta[i : i + p.numel()].view_as(p)
            i += p.numel()
        return loss(functional_call(model, {**params, **buffers}, (xi[None],)), yi[None])

    return f


def ref_output_fn(model, xi):
    shapes = [(n, p) for n, p in model.named_parameters()]
    buffers = {n: b for n, b in model.named_buffers()}

    def f(theta):
        params, i = {}, 0
        for n, p in shapes:
            params[n] = theta[i : i + p.numel()].view_as(p)
            i += p.numel()
        return functional_call(model, {**params, **buffers}, (xi[None],))

    return f


def theta_of(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def dense(model, loss, x, y, curvature="hessian"):
    """Per-sample H_i (m × d × d), gradients (m × d), losses (m), with the model in eval mode."""
    was = [(mod, mod.training) for mod in model.modules()]
    model.eval()
    theta = theta_of(model)
    hs, gs, ls = [], [], []
    for i in range(len(x)):
        f = ref_loss_fn(model, loss, x[i], y[i])
        if curvature == "hessian":
            hs.append(hessian(f)(theta))
        else:
            out_fn = ref_output_fn(model, x[i])
            o = out_fn(theta).detach()
            jac = jacrev(out_fn)(theta).reshape(o.numel(), -1)
            lam = hessian(lambda z: loss(z.view_as(o), y[i][None]))(o.reshape(-1))
            hs.append(jac.T @ lam @ jac)
        gs.append(jacrev(f)(theta))
        ls.append(f(theta).detach())
    for mod, flag in was:
        mod.training = flag
    return torch.stack(hs).detach(), torch.stack(gs).detach(), torch.stack(ls)


def new_oracle(name="tanh", curvature="hessian", **kw):
    model, loss, x, y = make_case(name)
    oracle = CurvatureOracle(model, loss, x, y, curvature=curvature, **kw)
    oracle.begin_round()
    return oracle, (model, loss, x, y)


def rng(seed):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("name,curvature", [("tanh", "hessian"), ("relu", "hessian"), ("conv", "hessian")])
def test_expand_and_blocks_match_dense(name, curvature):
    oracle, (model, loss, x, y) = new_oracle(name, curvature)
    H, _, _ = dense(model, loss, x, y, curvature)
    d = H.shape[1]
    res = oracle.execute("random", {"r": 3, "seed": 7})
    assert res == {"kept": 3, "basis": 3, "hvps": 0}
    v = oracle.basis
    assert oracle.basis_size == 3 and oracle.params == d and oracle.probe_size == M
    close(v.T @ v, np.eye(3), atol=1e-13)

    r = 2
    coeffs = rng(0).standard_normal((M, 3, r))
    cv = rng(1).standard_normal((3, r))
    res = oracle.execute("expand", {"coeffs": coeffs, "basis_coeffs": cv, "blocks": True})
    c_t, cv_t = torch.from_numpy(coeffs), torch.from_numpy(cv)
    w = torch.einsum("ide,ek,ikr->dr", H, v, c_t) + v @ cv_t
    close(res["proj"], v.T @ w)
    p = w - v @ (v.T @ w)
    close(res["norms"], torch.linalg.vector_norm(p, dim=0))
    assert res["kept"] == 2 and res["kept_index"] == [0, 1] and res["basis"] == 5
    assert res["hvps"] == M * r + M * 2
    assert all(isinstance(res[k], np.ndarray) and res[k].dtype == np.float64 for k in ("proj", "norms", "blocks"))
    vn = oracle.basis
    close(vn[:, :3], v, rtol=0, atol=0)
    close(vn.T @ vn, np.eye(5), atol=1e-13)
    close(vn[:, 3], p[:, 0] / torch.linalg.vector_norm(p[:, 0]))
    close(w - vn @ (vn.T @ w), np.zeros((d, r)), atol=1e-10)  # W lies in the new span
    assert res["blocks"].shape == (M, 5, 2)
    close(res["blocks"], torch.einsum("dk,ide,ec->ikc", vn, H, vn[:, 3:]))

    bl = oracle.execute("blocks", {"start": 1, "count": 3})
    assert bl["hvps"] == M * 3 and bl["basis"] == 5
    close(bl["blocks"], torch.einsum("dk,ide,ec->ikc", vn, H, vn[:, 1:4]))
    full = oracle.execute("blocks", {"start": 0, "count": 5})["blocks"]
    close(full, np.swapaxes(full, 1, 2), atol=1e-12)  # V^T H_i V is symmetric
    assert oracle.hvps == M * (2 + 2 + 3 + 5)


def test_expand_from_empty_basis_and_drops():
    oracle, (model, loss, x, y) = new_oracle("tanh")
    res = oracle.execute("expand", {"coeffs": np.zeros((M, 0, 2)), "basis_coeffs": np.zeros((0, 2)), "blocks": False})
    assert res["kept"] == 0 and res["kept_index"] == [] and res["proj"].shape == (0, 2) and "blocks" not in res
    oracle.execute("random", {"r": 2, "seed": 1})
    # W = V C_V lies in span(V): everything dropped, basis unchanged
    res = oracle.execute("expand", {"coeffs": np.zeros((M, 2, 3)), "basis_coeffs": rng(2).standard_normal((2, 3)), "blocks": True})
    assert res["kept"] == 0 and res["kept_index"] == [] and res["basis"] == 2
    assert res["blocks"].shape == (M, 2, 0)
    assert res["norms"].max() < 1e-12  # nothing left of W outside span(V)
    # duplicated and proportional columns: only the first of each direction is kept
    c = rng(3).standard_normal((M, 2, 1))
    coeffs = np.concatenate([c, c, 2 * c, rng(4).standard_normal((M, 2, 1))], axis=2)
    res = oracle.execute("expand", {"coeffs": coeffs, "basis_coeffs": np.zeros((2, 4)), "blocks": False})
    assert res["kept_index"] == [0, 3] and res["kept"] == 2 and res["basis"] == 4
    close(res["norms"][1], res["norms"][0])  # norms: after orthogonalisation against the old V
    v = oracle.basis
    close(v.T @ v, np.eye(4), atol=1e-13)


def test_random_is_seeded_and_orthogonal_to_basis():
    a, _ = new_oracle("tanh")
    b, _ = new_oracle("tanh")
    a.random(2, 11)
    b.random(2, 11)
    assert torch.equal(a.basis, b.basis)
    a.random(3, 12)
    va = a.basis
    close(va.T @ va, np.eye(5), atol=1e-13)
    b.reset()
    assert b.execute("reset", {}) == {"basis": 0, "hvps": 0}
    b.random(2, 12)
    assert not torch.allclose(b.basis, va[:, :2])


def test_grads_match_dense():
    oracle, (model, loss, x, y) = new_oracle("relu")
    _, G, L = dense(model, loss, x, y)
    oracle.random(3, 0)
    res = oracle.execute("grads", {})
    close(res["losses"], L)
    close(res["sq_norms"], (G * G).sum(1))
    close(res["proj"], G @ oracle.basis)
    gm = G.mean(0)
    close(res["mean_sq_norm"], float(gm @ gm))
    assert isinstance(res["mean_sq_norm"], float) and res["hvps"] == M and res["basis"] == 3


@pytest.mark.parametrize("curvature", ["hessian", "ggn"])
def test_hutchinson_matches_dense(curvature):
    oracle, (model, loss, x, y) = new_oracle("tanh", curvature)
    H, _, _ = dense(model, loss, x, y, curvature)
    res = oracle.execute("hutchinson", {"r": 4, "seed": 3})
    z = rademacher(oracle.params, 4, 3, dtype=F64, device="cpu")
    assert set(z.unique().tolist()) == {-1.0, 1.0}
    hz = torch.einsum("ide,er->idr", H, z)
    close(res["quad"], torch.einsum("dr,idr->ir", z, hz))
    close(res["sq_norms"], (hz * hz).sum(1))
    # factor route: 4 batched JVP columns (m/2 each) and 4 per-sample VJPs per sample
    assert res["quad"].shape == (M, 4) and res["hvps"] == (4 * M if curvature == "hessian" else 4 * M * 1.5)
    other = oracle.execute("hutchinson", {"r": 4, "seed": 4})
    assert not np.allclose(other["quad"], res["quad"])


def test_rotate():
    oracle, _ = new_oracle("tanh")
    oracle.random(4, 0)
    v = oracle.basis
    u, _ = np.linalg.qr(rng(5).standard_normal((4, 4)))
    u = u[:, :2]
    res = oracle.execute("rotate", {"u": u})
    assert res == {"basis": 2, "hvps": 0}
    close(oracle.basis, v @ torch.from_numpy(u), atol=1e-13)
    with pytest.raises(ValueError, match="orthonormal columns"):
        oracle.execute("rotate", {"u": 2 * np.eye(2)})
    with pytest.raises(ValueError, match=r"expected u of shape \(k, k'\)"):
        oracle.execute("rotate", {"u": np.eye(3)})


def test_rotate_never_changes_k_prime():
    """The sidecar rotates its curvature by the same U and expects k' columns back (SPEC §4): a
    V that is not orthonormal (here two equal columns) is an error, not a smaller basis."""
    oracle, _ = new_oracle("tanh")
    oracle.random(3, 0)
    broken = oracle.basis.clone()
    broken[:, 2] = broken[:, 1]
    oracle._v = broken
    with pytest.raises(ValueError, match="not orthonormal"):
        oracle.execute("rotate", {"u": np.eye(3)})
    assert oracle.basis_size == 3 and torch.equal(oracle.basis, broken)


def test_user_model_untouched_with_batchnorm_and_dropout():
    model, loss, x, y = make_case("bn")
    model.train()
    model[3].eval()  # a mixed pattern of flags, restored exactly
    flags = [m.training for m in model.modules()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    oracle = CurvatureOracle(model, loss, x, y, curvature="hessian")
    oracle.begin_round()
    oracle.execute("random", {"r": 2, "seed": 0})
    oracle.execute("expand", {"coeffs": rng(0).standard_normal((M, 2, 2)), "basis_coeffs": np.zeros((2, 2)), "blocks": True})
    g = oracle.execute("grads", {})
    h = oracle.execute("hutchinson", {"r": 1, "seed": 0})
    assert [m.training for m in model.modules()] == flags
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # params and BN running stats / counters, bitwise
    assert all(p.grad is None for p in model.parameters())
    # the ops used eval-mode BatchNorm (running statistics) and no dropout: deterministic and dense-equal
    H, G, L = dense(model, loss, x, y)
    close(g["losses"], L)
    close(g["sq_norms"], (G * G).sum(1))
    z = rademacher(oracle.params, 1, 0, dtype=F64, device="cpu")
    close(h["quad"], torch.einsum("dr,ide,er->ir", z, H, z))
    # the snapshot is frozen: changing the model mid-round does not change results
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    close(oracle.execute("grads", {})["losses"], L)


def test_chunked_equals_unchunked():
    results = []
    for kw in ({}, {"chunk_size": 1}, {"chunk_size": 4}, {"memory_budget": 1}):
        oracle, _ = new_oracle("conv", **kw)
        oracle.random(3, 1)
        e = oracle.execute("expand", {"coeffs": rng(0).standard_normal((M, 3, 2)), "basis_coeffs": rng(1).standard_normal((3, 2)), "blocks": True})
        g = oracle.execute("grads", {})
        h = oracle.execute("hutchinson", {"r": 2, "seed": 0})
        results.append((e, g, h))
    for e, g, h in results[1:]:
        for key in ("proj", "norms", "blocks"):
            close(e[key], results[0][0][key], rtol=1e-12, atol=1e-12)
        for key in ("losses", "sq_norms", "proj"):
            close(g[key], results[0][1][key], rtol=1e-12, atol=1e-12)
        for key in ("quad", "sq_norms"):
            close(h[key], results[0][2][key], rtol=1e-12, atol=1e-12)


def test_basis_kept_across_rounds_and_reset_when_d_changes():
    oracle, (model, *_ ) = new_oracle("tanh")
    oracle.random(3, 0)
    v = oracle.basis
    oracle.end_round()
    with torch.no_grad():
        model[0].weight.mul_(1.1)
    oracle.begin_round()
    assert torch.equal(oracle.basis, v)
    model.extra = nn.Parameter(torch.zeros(2, dtype=F64))
    model[2].register_parameter("extra", model.extra)  # d grows by 2; the forward is unaffected
    oracle.begin_round()
    assert oracle.basis_size == 0 and oracle.params == v.shape[0] + 2


def test_float32_model_and_dtype_override():
    model, loss, x, y = make_case("tanh")
    H, _, _ = dense(model, loss, x, y)
    model32 = model.float()
    o32 = CurvatureOracle(model32, loss, x.float(), y.float(), curvature="hessian")
    o32.begin_round()
    o32.random(2, 0)
    b32 = o32.execute("blocks", {"start": 0, "count": 2})["blocks"]
    assert b32.dtype == np.float64 and o32.dtype == torch.float32
    v32 = o32.basis.double()
    close(b32, torch.einsum("dk,ide,ec->ikc", v32, H, v32), rtol=1e-4, atol=1e-5)
    o64 = CurvatureOracle(model32, loss, x.float(), y.float(), curvature="hessian", dtype=torch.float64)
    o64.begin_round()
    o64.random(2, 0)
    b64 = o64.execute("blocks", {"start": 0, "count": 2})["blocks"]
    H32, _, _ = dense(model32.double(), loss, x.float().double(), y.float().double())
    v64 = o64.basis
    assert v64.dtype == F64
    close(b64, torch.einsum("dk,ide,ec->ikc", v64, H32, v64))


def test_bad_arguments_raise():
    oracle, _ = new_oracle("tanh")
    oracle.random(2, 0)
    good = {"coeffs": np.zeros((M, 2, 3)), "basis_coeffs": np.zeros((2, 3)), "blocks": False}
    with pytest.raises(ValueError, match=r"expected coeffs of shape \(m, k, r\) = \(6, 2, 3\), got \(6, 3, 3\)"):
        oracle.execute("expand", good | {"coeffs": np.zeros((M, 3, 3))})
    with pytest.raises(ValueError, match=r"expected coeffs of shape \(m, k, r\)"):
        oracle.execute("expand", good | {"coeffs": np.zeros((M, 2))})
    with pytest.raises(ValueError, match=r"expected basis_coeffs of shape \(k, r\) = \(2, 3\), got \(2, 2\)"):
        oracle.execute("expand", good | {"basis_coeffs": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="expected finite coeffs"):
        bad = np.zeros((M, 2, 3))
        bad[0, 0, 0] = np.nan
        oracle.execute("expand", good | {"coeffs": bad})
    with pytest.raises(TypeError, match="expected blocks to be a bool"):
        oracle.execute("expand", good | {"blocks": "yes"})
    with pytest.raises(ValueError, match="expected arguments 'coeffs' and 'basis_coeffs'"):
        oracle.execute("expand", {})
    with pytest.raises(ValueError, match=r"start \+ count <= k = 2"):
        oracle.execute("blocks", {"start": 1, "count": 2})
    with pytest.raises(ValueError, match="expected r >= 0, got -1"):
        oracle.execute("random", {"r": -1, "seed": 0})
    with pytest.raises(TypeError, match="expected r to be an integer"):
        oracle.execute("hutchinson", {"r": True, "seed": 0})
    with pytest.raises(ValueError, match="expected argument 'seed'"):
        oracle.execute("random", {"r": 1})
    with pytest.raises(ValueError, match="expected op reset, random"):
        oracle.execute("lanczos", {})
    assert oracle.basis_size == 2 and oracle.hvps == 0  # failed ops changed nothing
    fresh = CurvatureOracle(*make_case("tanh"))
    with pytest.raises(RuntimeError, match="begin_round"):
        fresh.execute("grads", {})
    model, loss, x, y = make_case("tanh")
    with pytest.raises(ValueError, match="expected x and y with the same number"):
        CurvatureOracle(model, loss, x, y[:2])
    with pytest.raises(ValueError, match="expected curvature"):
        CurvatureOracle(model, loss, x, y, curvature="fisher")
    with pytest.raises(TypeError, match="expected model to be a torch.nn.Module"):
        CurvatureOracle(lambda t: t, loss, x, y)
    with pytest.raises(ValueError, match="expected chunk_size"):
        CurvatureOracle(model, loss, x, y, chunk_size=0)


def test_frozen_parameters_are_constants():
    model, loss, x, y = make_case("tanh")
    model[0].weight.requires_grad_(False)
    oracle = CurvatureOracle(model, loss, x, y, curvature="hessian")
    oracle.begin_round()
    d_all = sum(p.numel() for p in model.parameters())
    assert oracle.params == d_all - model[0].weight.numel()
    H, _, _ = dense(model, loss, x, y)  # over all parameters; keep the trainable block
    keep = torch.cat([torch.full((p.numel(),), p.requires_grad) for p in model.parameters()])
    Ht = H[:, keep][:, :, keep]
    oracle.random(3, 0)
    v = oracle.basis
    close(oracle.execute("blocks", {"start": 0, "count": 3})["blocks"], torch.einsum("dk,ide,ec->ikc", v, Ht, v))
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="expected a model with trainable parameters"):
        CurvatureOracle(model, loss, x, y)


def test_wire_tensor_maps_are_accepted():
    oracle, (model, loss, x, y) = new_oracle("tanh")
    oracle.random(2, 0)
    c = rng(0).standard_normal((M, 2, 1))
    cv = rng(1).standard_normal((2, 1)).astype("<f4")
    wire = {
        "coeffs": {"data": c.astype("<f8").tobytes(), "dtype": "f64", "shape": [M, 2, 1]},
        "basis_coeffs": {"data": cv.tobytes(), "dtype": "f32", "shape": [2, 1]},
        "blocks": False,
    }
    a = oracle.execute("expand", wire)
    b, _ = new_oracle("tanh")
    b.random(2, 0)
    ref = b.execute("expand", {"coeffs": c, "basis_coeffs": cv.astype(np.float64), "blocks": False})
    close(a["proj"], ref["proj"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="expected coeffs data of"):
        oracle.execute("expand", wire | {"coeffs": {"data": b"1234", "dtype": "f64", "shape": [M, 3, 1]}})


def test_empty_requests():
    oracle, _ = new_oracle("tanh")
    oracle.random(2, 0)
    res = oracle.execute("expand", {"coeffs": np.zeros((M, 2, 0)), "basis_coeffs": np.zeros((2, 0)), "blocks": True})
    assert res["kept"] == 0 and res["blocks"].shape == (M, 2, 0) and res["hvps"] == 0 and res["basis"] == 2
    assert oracle.execute("random", {"r": 0, "seed": 1}) == {"kept": 0, "basis": 2, "hvps": 0}
    assert oracle.execute("hutchinson", {"r": 0, "seed": 1})["quad"].shape == (M, 0)
    assert oracle.execute("blocks", {"start": 2, "count": 0})["blocks"].shape == (M, 2, 0)
    assert oracle.execute("rotate", {"u": np.zeros((2, 0))}) == {"basis": 0, "hvps": 0}


@pytest.mark.parametrize("curvature", ["hessian", "ggn"])
def test_blocks_reproduce_the_worked_lambda_gen_of_theory_md(curvature):
    """theory.md §7 linear regression: blocks in a full random basis give λ_gen(B) exactly
    (Gauss–Newton equals the Hessian for a linear model with squared loss: K_i = A_iᵀA_i)."""
    rows = [[0, 0.3, -0.27], [-0.89, -0.45, -0.99], [0.06, 1.34, -0.49], [-0.62, 0.49, 0.36], [0.11, -0.93, -0.03]]
    x = torch.tensor(rows, dtype=F64)
    model = nn.Linear(3, 1, bias=False).to(F64)
    oracle = CurvatureOracle(model, lambda o, t: 0.5 * ((o.squeeze(-1) - t) ** 2).mean(), x, torch.randn(5, dtype=F64),
                             curvature=curvature)
    oracle.begin_round()
    assert oracle.execute("random", {"r": 3, "seed": 9})["kept"] == 3
    res = oracle.execute("blocks", {"start": 0, "count": 3})
    k_i = res["blocks"] if curvature == "hessian" else np.einsum("isk,isl->ikl", res["factors"], res["factors"])
    n, eye = 5, np.eye(3)
    h = k_i.mean(0)
    ksum = np.kron(h, eye) + np.kron(eye, h)
    for b, want in ((1, 1.918584156108), (2, 0.982530638265), (5, 0.639704178285)):
        p = (n - b) / (b * (n - 1))
        dmat = (1 - p) * np.kron(h, h) + p * np.mean([np.kron(k, k) for k in k_i], axis=0)
        lam = np.max(np.linalg.eigvals(2 * np.linalg.pinv(ksum) @ dmat).real)
        assert abs(lam - want) < 1e-10, (b, lam, want)


def test_non_finite_results_raise_and_keep_the_basis_clean():
    oracle, (model, *_ ) = new_oracle("tanh")
    oracle.random(2, 0)
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    oracle.begin_round()
    with pytest.raises(FloatingPointError, match="expected finite losses from grads"):
        oracle.execute("grads", {})
    with pytest.raises(FloatingPointError, match="expected finite proj from expand"):
        oracle.execute("expand", {"coeffs": np.ones((M, 2, 1)), "basis_coeffs": np.zeros((2, 1)), "blocks": False})
    assert oracle.basis_size == 2 and torch.isfinite(oracle.basis).all()


@pytest.mark.parametrize("name,curvature", [("tanh", "hessian"), ("conv", "hessian")])
def test_expand_with_the_same_coefficients_for_every_sample_matches_dense(name, curvature):
    """A Lanczos step sends C_i = c for all i; the batched mean-HVP path must equal Σ_i H_i V c."""
    oracle, (model, loss, x, y) = new_oracle(name, curvature)
    H, _, _ = dense(model, loss, x, y, curvature)
    oracle.execute("random", {"r": 3, "seed": 2})
    v = oracle.basis
    c = rng(4).standard_normal((3, 2))
    coeffs = np.broadcast_to(c / M, (M, 3, 2)).copy()
    cv = rng(5).standard_normal((3, 2))
    res = oracle.execute("expand", {"coeffs": coeffs, "basis_coeffs": cv, "blocks": False})
    w = torch.einsum("ide,ek->dk", H, v @ torch.from_numpy(c)) / M + v @ torch.from_numpy(cv)
    close(res["proj"], v.T @ w)
    close(res["norms"], torch.linalg.vector_norm(w - v @ (v.T @ w), dim=0))
    assert res["hvps"] == M * 2


def test_orthonormalize_never_grows_a_basis_beyond_d_in_float32():
    """A float32 basis that already spans R^d takes no more columns. Accumulated rounding makes
    such a V only nearly orthonormal, and then what is left of a candidate after CGS2 can pass
    the relative drop test (a d = 99 model once grew a 119-column basis; a rotate lost columns)."""
    from edgewise._basis import orthonormalize

    torch.manual_seed(0)
    d = 12
    q0, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64))
    v = (q0 + 3e-2 * torch.randn(d, d, dtype=torch.float64)).float()  # spans R^d, only nearly orthonormal
    _, norms, kept = orthonormalize(v, torch.randn(d, 4, dtype=torch.float32))
    assert kept == [] and norms.shape == (4,)
    part = v[:, : d - 1]
    q, _, kept = orthonormalize(part, torch.randn(d, 4, dtype=torch.float32))
    assert len(kept) == 1 and q.shape == (d, 1)
