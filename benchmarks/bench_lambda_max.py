"""λ_max (and λ_gen) cost of Edgewise vs PyHessian and hessian-eigenthings, same model, same probe.

Run:  .venv/bin/python benchmarks/bench_lambda_max.py [--threads 1] [--repeats 5] [--gen-repeats 1]
(about 3 minutes on 2 shared CPU cores, almost all in the two full λ_gen rounds; prints a
Markdown table; not a test)

Needs ``pyhessian`` and ``hessian-eigenthings`` in the venv (benchmark-only, not project
dependencies): ``.venv/bin/pip install pyhessian hessian-eigenthings``.

Setup: the MNIST MLP of examples/mnist_live.py (digits 0-3, 2×2 average pooling → 14×14 inputs,
one hidden ReLU layer of 32, MSE on one-hot targets, float64), trained by a few epochs of SGD so
it is not at initialisation; a fixed probe batch of m = 256 training samples. Every tool sees
the same parameters, the same probe and the same loss (the mean over the probe), so all compute
the top eigenvalue of the same Hessian H = mean_i H_i.

Cost unit: one HVP-equivalent = one Hessian-vector product of the probe-mean loss (PyHessian,
hessian-eigenthings: one batched double-backward) = m per-sample HVPs (Edgewise's oracle, whose
report counts hvps / m). Wall times are client-side and include each tool's setup at the given
parameters (PyHessian's create_graph backward, Edgewise's oracle snapshot and the ZeroMQ round
trips to the sidecar); the sidecar and the model are started/built beforehand. Each measurement
is repeated (fresh state every time; --repeats for the λ_max tools, --gen-repeats for the full
rounds, which take minutes on 2 shared cores) after one untimed warm-up call of each λ_max tool,
and the median wall time is reported; HVP counts are listed per run where they differ (PyHessian's
random start is seeded by the repeat index).

Tools:
  edgewise λ_max   one round with options {"target": "lambda_max", "tol": 1e-3} (fresh oracle)
  edgewise λ_gen   one full round (default options, tol 1e-3), fresh oracle: "cold"
  edgewise warm    one SGD step on the model, then another full round with the same client,
                   session and oracle (the oracle keeps its basis): "warm"
  pyhessian        hessian(model, mse, data=probe).eigenvalues(top_n=1, maxIter=100, tol=1e-3):
                   power iteration, stop at 1e-3 relative change of the eigenvalue
  eigenthings      hessian_eigenthings.lanczos(HessianOperator, k=1, which="LA", tol=1e-3): the
                   library runs a fixed number of Lanczos steps (tol only flags convergence), so
                   we report the fewest steps whose run its own test marks converged (found by a
                   sweep that is not counted): an optimistic count for it
  scipy eigsh      scipy.sparse.linalg.eigsh(LinearOperator of batched HVPs, k=1, which="LA",
                   tol=1e-3): ARPACK's implicitly restarted Lanczos, for reference
The reference λ_max is eigsh at tol 1e-12; each tool's relative error is against it.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import warnings
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mnist_data import load_digits  # noqa: E402

import edgewise  # noqa: E402

TOL = 1e-3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads for every tool")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats of each λ_max tool (median)")
    ap.add_argument("--gen-repeats", type=int, default=1,
                    help="timed repeats of Edgewise's cold+warm full λ_gen rounds (each takes minutes)")
    ap.add_argument("--classes", default="0,1,2,3")
    ap.add_argument("--per-class", type=int, default=256)
    ap.add_argument("--pool", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--probe-size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16, help="SGD batch size B (training and λ_gen)")
    ap.add_argument("--lr", type=float, default=0.3)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


# ----------------------------------------------------------------------------- setup
def build_problem(args):
    classes = tuple(int(c) for c in args.classes.split(","))
    x, y, _ = load_digits(classes, per_class=args.per_class, pool=args.pool, seed=args.seed)
    n = len(x)
    torch.manual_seed(args.seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], args.hidden), torch.nn.ReLU(), torch.nn.Linear(args.hidden, len(classes))
    ).double()
    loss_fn = torch.nn.functional.mse_loss
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    for _ in range(args.epochs):
        order = torch.randperm(n, generator=g)
        for s in range(0, n - args.batch_size + 1, args.batch_size):
            idx = order[s : s + args.batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    with torch.no_grad():
        loss = float(loss_fn(model(x), y))
        acc = float((model(x).argmax(1) == y.argmax(1)).double().mean())
    probe_idx = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed + 1))[: args.probe_size]
    # the SGD step taken between the cold and the warm round (a fixed minibatch)
    step_idx = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed + 2))[: args.batch_size]
    model.zero_grad(set_to_none=True)
    return dict(model=model, loss_fn=loss_fn, x=x, y=y, n=n, loss=loss, acc=acc,
                px=x[probe_idx].clone(), py=y[probe_idx].clone(), step=(x[step_idx], y[step_idx]))


def batched_hvp_fn(model, loss_fn, px, py):
    """v ↦ H v of the probe-mean loss (one double backward), flat float64 numpy in and out."""
    params = [p for p in model.parameters() if p.requires_grad]
    loss = loss_fn(model(px), py)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    flat_g = torch.cat([g.reshape(-1) for g in grads])

    def hvp(v: np.ndarray) -> np.ndarray:
        vt = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64).reshape(-1))
        hv = torch.autograd.grad(flat_g, params, grad_outputs=vt, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]).numpy()

    return hvp, flat_g.numel()


# ----------------------------------------------------------------------------- tools
def run_eigsh(model, loss_fn, px, py, tol, seed=0):
    from scipy.sparse.linalg import LinearOperator, eigsh

    t0 = time.perf_counter()
    hvp, d = batched_hvp_fn(model, loss_fn, px, py)
    count = [0]

    def mv(v):
        count[0] += 1
        return hvp(v)

    op = LinearOperator((d, d), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(d)
    val = eigsh(op, k=1, which="LA", tol=tol, v0=v0, return_eigenvectors=False)[0]
    return float(val), count[0], time.perf_counter() - t0


def run_pyhessian(model, loss_fn, px, py, seed=0):
    import importlib

    ph = importlib.import_module("pyhessian.hessian")  # the module (the package re-exports the class)

    model = copy.deepcopy(model)  # PyHessian writes .grad (create_graph) into the model
    count = [0]
    original = ph.hessian_vector_product

    def counted(gradsH, params, v):
        count[0] += 1
        return original(gradsH, params, v)

    ph.hessian_vector_product = counted
    # PyHessian draws its start with torch.randn(p.size()) in the default dtype: make that
    # float64 like the model (with float32 it would mix dtypes in the HVP)
    old_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        h = ph.hessian(model, loss_fn, data=(px, py), cuda=False)
        vals, _ = h.eigenvalues(maxIter=100, tol=TOL, top_n=1)
        wall = time.perf_counter() - t0
    finally:
        torch.set_default_dtype(old_dtype)
        ph.hessian_vector_product = original
    return float(vals[0]), count[0], wall


def run_eigenthings(model, loss_fn, px, py, steps, seed=0):
    import hessian_eigenthings as he

    count = [0]

    class Counted(he.HessianOperator):
        def matvec(self, v):
            count[0] += 1
            return super().matvec(v)

    t0 = time.perf_counter()
    op = Counted(model, [(px, py)], lambda mdl, batch: loss_fn(mdl(batch[0]), batch[1]))
    res = he.lanczos(op, k=1, max_iter=steps, tol=TOL, which="LA", seed=seed)
    wall = time.perf_counter() - t0
    return float(res.eigenvalues[0]), count[0], wall, bool(res.converged[0])


def eigenthings_min_steps(model, loss_fn, px, py, max_steps=60, seed=0) -> int:
    """Fewest Lanczos steps whose run hessian-eigenthings itself marks converged at tol 1e-3."""
    for steps in range(2, max_steps + 1):
        *_, ok = run_eigenthings(model, loss_fn, px, py, steps, seed)
        if ok:
            return steps
    return max_steps


def run_info(model, px, n, B, name):
    import uuid

    return {"id": f"{name}-{uuid.uuid4().hex[:8]}", "name": name,
            "params": int(sum(p.numel() for p in model.parameters())), "probe": int(len(px)),
            "n": int(n), "batch_size": int(B), "curvature": "hessian", "dtype": "f64", "model": "Sequential"}


class TimedOracle(edgewise.CurvatureOracle):
    """The oracle, timing its ops (to split a round's wall time into client HVP work and the rest)."""

    op_seconds = 0.0

    def execute(self, op, args=None):
        t0 = time.perf_counter()
        try:
            return super().execute(op, args)
        finally:
            self.op_seconds += time.perf_counter() - t0


def edgewise_round(client, oracle, *, step, B, n, options):
    oracle.begin_round()
    oracle.op_seconds = 0.0
    t0 = time.perf_counter()
    try:
        rep = client.run_round(oracle, step=step, epoch=0, lr=0.0, batch_size=B, n=n, options=options)
    finally:
        oracle.end_round()
    rep["_oracle_s"] = oracle.op_seconds
    return rep, time.perf_counter() - t0


def run_edgewise(prob, endpoint, B, seed=0, full=True):
    """λ_max-only round; when ``full``, also a cold full round, one SGD step and a warm full round
    (model restored after)."""
    model, loss_fn, px, py, n = prob["model"], prob["loss_fn"], prob["px"], prob["py"], prob["n"]
    out = {}
    # 1. λ_max alone, fresh oracle and session
    with edgewise.SidecarClient(endpoint, timeout=300.0) as client:
        client.open_session(run_info(model, px, n, B, "bench-lmax"))
        t0 = time.perf_counter()
        oracle = TimedOracle(model, loss_fn, px, py, curvature="hessian")
        rep, wall = edgewise_round(client, oracle, step=0, B=B, n=n,
                                   options={"target": "lambda_max", "tol": TOL, "seed": seed})
        out["lmax"] = (rep, time.perf_counter() - t0)
    if not full:
        return out
    # 2. + 3. cold full round, SGD step, warm full round (same client, session, oracle)
    saved = copy.deepcopy(model.state_dict())
    try:
        with edgewise.SidecarClient(endpoint, timeout=300.0) as client:
            client.open_session(run_info(model, px, n, B, "bench-gen"))
            t0 = time.perf_counter()
            oracle = TimedOracle(model, loss_fn, px, py, curvature="hessian")
            rep, _ = edgewise_round(client, oracle, step=0, B=B, n=n, options={"tol": TOL, "seed": seed})
            out["cold"] = (rep, time.perf_counter() - t0)
            sx, sy = prob["step"]
            opt = torch.optim.SGD(model.parameters(), lr=prob["lr"])
            opt.zero_grad(set_to_none=True)
            loss_fn(model(sx), sy).backward()
            opt.step()
            model.zero_grad(set_to_none=True)
            rep, wall = edgewise_round(client, oracle, step=1, B=B, n=n, options={"tol": TOL, "seed": seed})
            out["warm"] = (rep, wall)
            # reference λ_max at the perturbed point, for the warm round's accuracy
            out["ref_warm"] = run_eigsh(model, loss_fn, px, py, 1e-12)[0]
    finally:
        model.load_state_dict(saved)
        model.zero_grad(set_to_none=True)
    return out


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")  # PyHessian's
    import platform

    prob = build_problem(args)
    prob["lr"] = args.lr
    model, loss_fn, px, py, n, B = prob["model"], prob["loss_fn"], prob["px"], prob["py"], prob["n"], args.batch_size
    d = sum(p.numel() for p in model.parameters())
    m = len(px)
    versions = {}
    for mod, dist in (("pyhessian", "pyhessian"), ("hessian_eigenthings", "hessian-eigenthings"), ("scipy", "scipy")):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:  # noqa: BLE001
            versions[dist] = "missing"
    print(f"MNIST MLP {x_shape(prob)} → {args.hidden} → {len(args.classes.split(','))}, d = {d}, float64, MSE; "
          f"trained {args.epochs} epochs SGD (lr {args.lr}, B {B}) on n = {n}: loss {prob['loss']:.4f}, "
          f"acc {prob['acc']:.3f}; probe m = {m}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, tol {TOL}, "
          f"{', '.join(f'{k} {v}' for k, v in versions.items())}; {platform.platform()}, "
          f"{os.cpu_count()} CPUs visible")

    ref, ref_hvps, _ = run_eigsh(model, loss_fn, px, py, 1e-12)
    print(f"reference λ_max (eigsh tol 1e-12, {ref_hvps} HVPs): {ref:.10g}")

    steps = eigenthings_min_steps(model, loss_fn, px, py)
    print(f"hessian-eigenthings: fewest Lanczos steps its test marks converged at tol {TOL}: {steps}")

    client = edgewise.SidecarClient(None, timeout=300.0)  # spawns the sidecar (untimed)
    endpoint = client.endpoint
    try:
        # one untimed pass of everything (Deno/V8 JIT, torch.func tracing, allocator)
        run_edgewise(prob, endpoint, B, full=False)
        run_pyhessian(model, loss_fn, px, py)
        run_eigenthings(model, loss_fn, px, py, steps)
        rows: dict[str, list] = {k: [] for k in ("ew_lmax", "ew_cold", "ew_warm", "pyh", "eig", "eigsh")}
        ew_last: dict = {}
        for r in range(max(args.repeats, args.gen_repeats)):
            if r < args.gen_repeats:
                t = time.perf_counter()
                ew = run_edgewise(prob, endpoint, B, full=True)
                print(f"(Edgewise λ_max + cold + warm rounds, repeat {r + 1}: {time.perf_counter() - t:.1f} s)",
                      flush=True)
            else:
                ew = run_edgewise(prob, endpoint, B, full=False)
            ew_last.update(ew)
            for key, src in (("ew_lmax", "lmax"), ("ew_cold", "cold"), ("ew_warm", "warm")):
                if src in ew:
                    rep, wall = ew[src]
                    rows[key].append((rep.get("lambda_max"), rep.get("hvps"), wall, rep))
            if r >= args.repeats:
                continue
            val, hv, wall = run_pyhessian(model, loss_fn, px, py, seed=r)
            rows["pyh"].append((val, hv, wall, None))
            val, hv, wall, ok = run_eigenthings(model, loss_fn, px, py, steps)
            rows["eig"].append((val, hv, wall, ok))
            val, hv, wall = run_eigsh(model, loss_fn, px, py, TOL, seed=r)
            rows["eigsh"].append((val, hv, wall, None))
    finally:
        client.close()

    lmax_rep = ew_last["lmax"][0]
    target_ok = "lambda_gen" not in lmax_rep
    if not target_ok:
        print("NOTE: the sidecar ignored options.target (the λ_max round also computed λ_gen): "
              "its cost below is that of a full round")

    def summary(key):
        vals = rows[key]
        lam = vals[-1][0]
        hv = statistics.median(v[1] for v in vals)
        hv_all = sorted({round(v[1], 3) for v in vals})
        wall = statistics.median(v[2] for v in vals)
        return lam, hv, hv_all, wall

    pyh = summary("pyh")
    table = [
        ("Edgewise λ_max (target=lambda_max)", "ew_lmax", ref),
        ("PyHessian power iteration", "pyh", ref),
        ("hessian-eigenthings Lanczos", "eig", ref),
        ("scipy eigsh (ARPACK)", "eigsh", ref),
        ("Edgewise full λ_gen round, cold", "ew_cold", ref),
        ("Edgewise full λ_gen round, warm (after 1 SGD step)", "ew_warm", ew_last["ref_warm"]),
    ]
    lines = [
        "| tool | λ_max | rel. err vs reference | HVP-equivalents | wall s (median) | HVPs / PyHessian | wall / PyHessian |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, key, reference in table:
        lam, hv, hv_all, wall = summary(key)
        spread = "" if len(hv_all) == 1 else f" (runs: {', '.join(f'{h:g}' for h in hv_all)})"
        lines.append(f"| {label} | {lam:.7g} | {abs(lam - reference) / reference:.1e} | {hv:.4g}{spread} | "
                     f"{wall:.3f} | {hv / pyh[1]:.3f} | {wall / pyh[3]:.3f} |")
    cold, warm, lmx = summary("ew_cold"), summary("ew_warm"), summary("ew_lmax")
    gen = ew_last["cold"][0].get("lambda_gen")
    gen_w = ew_last["warm"][0].get("lambda_gen")
    extra = [
        f"- reference λ_max (eigsh, tol 1e-12): {ref:.10g} at the trained point; "
        f"{ew_last['ref_warm']:.10g} after the SGD step",
        f"- λ_gen (B = {B}): {gen:.6g} cold, {gen_w:.6g} warm; "
        f"λ_gen round / λ_max round: {cold[1] / lmx[1]:.2f}× the HVP-equivalents, {cold[3] / lmx[3]:.2f}× the wall time",
        f"- warm / cold full round: {warm[1] / cold[1]:.3f} in HVP-equivalents, {warm[3] / cold[3]:.3f} in wall time",
        f"- target 1, Edgewise λ_max ≤ 1/3 of PyHessian's HVPs: {lmx[1] / pyh[1]:.3f} → "
        f"{'met' if lmx[1] <= pyh[1] / 3 else 'NOT met'}" + ("" if target_ok else " (target option not honoured)"),
        f"- target 2, warm round ≤ 1/4 of a cold one (HVP-equivalents): {warm[1] / cold[1]:.3f} → "
        f"{'met' if warm[1] <= cold[1] / 4 else 'NOT met'}",
    ]
    per = {k: summary(k) for k in ("ew_lmax", "pyh", "eig", "eigsh")}
    extra.append("- wall ms per HVP-equivalent: " + ", ".join(
        f"{name} {1000 * v[3] / v[1]:.2f}" for name, v in
        (("Edgewise λ_max", per["ew_lmax"]), ("PyHessian", per["pyh"]), ("eigenthings", per["eig"]), ("eigsh", per["eigsh"]))))
    for key, label in (("ew_lmax", "λ_max"), ("ew_cold", "cold"), ("ew_warm", "warm")):
        rep = ew_last[{"ew_lmax": "lmax", "ew_cold": "cold", "ew_warm": "warm"}[key]][0]
        extra.append(f"- Edgewise {label} round: sidecar wall_ms {rep.get('wall_ms', float('nan')):.0f} "
                     f"(client oracle ops {1000 * rep['_oracle_s']:.0f} ms of it), "
                     f"basis {rep.get('basis_size')}, stopped {rep.get('stopped')}, converged {rep.get('converged')}"
                     + (f", warnings {rep['warnings']}" if rep.get("warnings") else ""))
    print()
    print("\n".join(lines))
    print()
    print("\n".join(extra))
    return 0


def x_shape(prob) -> int:
    return prob["x"].shape[1]


if __name__ == "__main__":
    sys.exit(main())
