"""Live rounds along a real training run are within their reported tolerance.

The main example's set-up (examples/mnist_live.py: all 10,000 digits at 28×28, 784 → 32 → 10,
MSE, SGD at lr 2.0 with B = 16, probe of m = 128 drawn as the example draws it) with a blocking
Monitor round after every epoch, each warm-started from the previous round's basis while the
parameters have moved by an epoch. Each round's λ_gen is checked against the exact probe-set
value, solved in the whole span of the Gauss–Newton factor rows (tests/python/_exact_span.py,
independent of the oracle and the sidecar). Rounds at fixed parameters (test_exact_convergence.py)
did not show it: along training the Davidson gains plateau after a large first one, and the
stop that extrapolated them with a ratio of ½ claimed convergence up to 2.5 % low at a 2 %
tolerance (epochs 3 and 4 here); and a warm round whose maximiser moved to another branch
converged on the old one, 11 % low (epoch 9), until warm rounds took at least
WARM_LANCZOS_MIN_STEPS Lanczos steps of H (sidecar/estimate/round.ts).

Three more trajectories, where a group of high-curvature probe samples carries λ_gen and the
basis held it poorly, converged low until every factor-route round probed the samples of largest
in-basis curvature with one power step each (sidecar/estimate/sample_branches.ts): lr 1.0 after
epoch 4 (16.5 % low), lr 3.0 after epoch 5 (6.3 %), 14×14 inputs at lr 2.0 after epochs 8 and 9
(9.6 % and 7.9 %; the latter on the operator's second eigenvalue).

At lr 1.5 the operator's top eigenvalues after epoch 2 were 0.751, 0.725 and 0.706, and a round
that grew only its basis' top Ritz pair converged at 0.704 (6.3 % low; after epoch 0, 4.3 % low
at 2 %). Davidson now also grows the next Ritz pairs and counts their extrapolated limits as
error (sidecar/estimate/davidson.ts, FOLLOWED_PAIRS): those rounds stop at the basis budget,
not converged.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import edgewise
from edgewise._probe import draw_probe

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from _exact_span import batch_noise, factor_rows, lambda_gen, span_factors  # noqa: E402
from _sidecar import SidecarProcess  # noqa: E402
from mnist_live import sgd_epoch, training_setup  # noqa: E402

EPOCHS = 10


@pytest.fixture(scope="module")
def sidecar():
    proc = SidecarProcess().start()
    yield proc.endpoint
    proc.stop()


def train_with_rounds(endpoint: str, lr: float, epochs: int, pool: int = 1) -> list[tuple]:
    """(report, exact λ_gen at B = 16) after each epoch of the main example's training at ``lr``
    (inputs average-pooled by ``pool``: 1 is 28×28)."""
    torch.manual_seed(0)
    x, y, model, loss_fn, opt, gen = training_setup(lr, pool=pool)
    probe = draw_probe((x, y), 128, seed=0)
    out = []
    with edgewise.Monitor(model, loss_fn, probe=probe, n_train=len(x), batch_size=16, endpoint=endpoint,
                          console=False, blocking=True) as monitor:
        for epoch in range(epochs):
            sgd_epoch(model, loss_fn, opt, x, y, 16, gen)
            report = monitor.round(lr=lr, epoch=epoch)
            exact = lambda_gen(span_factors(factor_rows(model, loss_fn, *probe)), batch_noise(len(x), 16))
            out.append((report, exact))
    return out


def outside_tolerance(rounds: list[tuple]) -> list[str]:
    """Rounds above the exact value (beyond rounding) or converged outside their tolerance."""
    lines, failures = [], []
    for epoch, (r, exact) in enumerate(rounds):
        assert not r.missing, r.reason
        rel = (r.lambda_gen - exact) / exact
        line = f"epoch {epoch}: λ_gen {r.lambda_gen:.5f} exact {exact:.5f} rel {rel:+.2e} tol {r.tol:.3g} converged {r.converged}"
        lines.append(line)
        # a Rayleigh–Ritz value: never above the exact one (beyond rounding)
        if rel > 1e-9 or (r.converged and abs(rel) > r.tol):
            failures.append(line)
    print("\n".join(lines))
    return failures


@pytest.fixture(scope="module")
def rounds_and_exact(sidecar):
    return train_with_rounds(sidecar, lr=2.0, epochs=EPOCHS)


def test_converged_live_rounds_are_within_their_tolerance_along_training(rounds_and_exact):
    failures = outside_tolerance(rounds_and_exact)
    assert not failures, "\n".join(failures)


def test_most_live_rounds_along_training_converge(rounds_and_exact):
    """The conservative stop may leave a round at the basis budget, honestly, but not most.
    Since Davidson follows the next Ritz pairs (a lower branch still growing blocks the stop)
    7 of these 10 rounds converged (2026-11-28; before, all 10), the others within 0.4× their
    tolerance at the budget."""
    converged = sum(r.converged for r, _ in rounds_and_exact)
    assert converged > EPOCHS // 2, [(r.converged, r.stopped) for r, _ in rounds_and_exact]


@pytest.mark.parametrize(("lr", "epochs", "pool"), [(1.0, 5, 1), (3.0, 6, 1), (2.0, 10, 2), (1.5, 3, 1)],
                         ids=["lr1-28x28", "lr3-28x28", "lr2-14x14", "lr1.5-28x28"])
def test_live_rounds_reach_branches_carried_by_a_few_samples(sidecar, lr, epochs, pool):
    failures = outside_tolerance(train_with_rounds(sidecar, lr=lr, epochs=epochs, pool=pool))
    assert not failures, "\n".join(failures)
