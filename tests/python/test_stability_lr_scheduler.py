"""StabilityLR as a torch LRScheduler: its counters, its checkpoint state, and chaining.

Reports come from a scripted client (test_monitor.py); the expected lrs are worked out by hand
from the schedules (StepLR halves, the cap is safety · η*).
"""

from __future__ import annotations

import io

import pytest
import torch
from torch.optim.lr_scheduler import ChainedScheduler, LinearLR, LRScheduler, SequentialLR, StepLR

import edgewise
from test_monitor import ScriptedClient, report, tiny_problem


def setup(script, lr=1.0):
    model, loss_fn, data = tiny_problem()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    monitor = edgewise.Monitor(model, loss_fn, train_data=data, probe_size=8, n_train=20, batch_size=4,
                               optimizer=opt, console=False, client_factory=lambda e, t: ScriptedClient(script))
    return opt, monitor


def test_it_is_a_scheduler_with_last_lr_last_epoch_and_a_plain_state_dict():
    opt, monitor = setup([report(0.5)])
    sched = edgewise.StabilityLR(opt, monitor, safety=0.8, verbose=False)
    assert isinstance(sched, LRScheduler) and sched.last_epoch == 0 and sched.get_last_lr() == [1.0]
    monitor.round()  # cap 0.4, applied at once, not counted as a step
    assert sched.get_last_lr() == [pytest.approx(0.4)] and sched.last_epoch == 0
    opt.step()
    sched.step()
    assert sched.last_epoch == 1 and opt.param_groups[0]["lr"] == pytest.approx(0.4)

    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)  # plain numbers: loads with weights_only=True
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    opt2, monitor2 = setup([])
    restored = edgewise.StabilityLR(opt2, monitor2, safety=0.8, verbose=False)
    restored.load_state_dict(state)
    assert restored.limit == pytest.approx(0.4) and restored.last_epoch == 1
    restored.step()  # the restored cap applies to the fresh optimizer's requested 1.0
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.4) and restored.get_last_lr() == [pytest.approx(0.4)]


def test_chained_after_step_lr_it_caps_the_decayed_schedule():
    opt, monitor = setup([report(0.5)])
    decay = StepLR(opt, step_size=1, gamma=0.5)
    stability = edgewise.StabilityLR(opt, safety=0.9, verbose=False)  # monitor attached later
    stability.attach(monitor)
    chained = ChainedScheduler([decay, stability])
    monitor.round()  # cap 0.45 < requested 1.0
    assert opt.param_groups[0]["lr"] == pytest.approx(0.45)
    lrs = []
    for _ in range(3):
        opt.step()
        chained.step()
        lrs.append(opt.param_groups[0]["lr"])
    # StepLR is chainable: it halves the current lr (0.45 -> 0.225 -> ...), all below the cap
    assert lrs == [pytest.approx(0.225), pytest.approx(0.1125), pytest.approx(0.05625)]
    assert chained.get_last_lr() == [pytest.approx(0.05625)]


def test_after_a_warmup_in_sequential_lr_it_takes_over_and_caps():
    opt, monitor = setup([report(0.5)], lr=1.0)
    warmup = LinearLR(opt, start_factor=0.1, total_iters=2)
    stability = edgewise.StabilityLR(opt, monitor, safety=0.9, verbose=False)
    seq = SequentialLR(opt, [warmup, stability], milestones=[2])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    lrs = []
    for _ in range(3):
        opt.step()
        seq.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.55) and lrs[1:] == [pytest.approx(1.0)] * 2  # warm-up done, no cap yet
    monitor.round()  # η* = 0.5: cap 0.45
    opt.step()
    seq.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.45) and seq.get_last_lr() == [pytest.approx(0.45)]
