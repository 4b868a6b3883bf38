"""A training loop whose embedded sidecar is SIGKILLed mid-round: no training step waits on it,
the monitor notices the exit at once, reaps the child, starts a new sidecar, resumes the run
with its session secret, and the next round's report continues the run's history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch

import edgewise
from edgewise._client import SidecarClient
from edgewise.monitor import EdgewiseWarning

from _sidecar import process_gone

LIMIT = 120.0  # seconds of training the test allows for the whole story (a bug, not slowness)


def test_sigkill_of_the_embedded_sidecar_mid_round_never_stalls_training_and_history_continues(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    x = torch.randn(64, 5, dtype=torch.float64)
    y = torch.nn.functional.one_hot((x[:, 0] > 0).long(), 2).double()
    loss_fn = torch.nn.functional.mse_loss
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def factory(endpoint, timeout):
        return SidecarClient(None, timeout=timeout, sidecar_args=["--data-dir", str(tmp_path), "--no-dashboard"])

    monitor = edgewise.Monitor(model, loss_fn, train_data=(x, y), probe_size=16, n_train=64, batch_size=8,
                               optimizer=opt, every_steps=20, console=False, client_factory=factory,
                               bootstrap=0)
    killed: list[int] = []

    def kill_mid_round(original):
        def execute(op, args=None):
            if not killed and op == "blocks":  # the sidecar is waiting for this result
                pid = monitor._client.process.pid
                os.kill(pid, signal.SIGKILL)  # no wait(): the monitor must reap it
                killed.append(pid)
            return original(op, args)
        return execute

    reports = []
    monitor.add_listener(reports.append)
    slowest = 0.0
    started = time.monotonic()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EdgewiseWarning)
            while time.monotonic() - started < LIMIT:
                t0 = time.monotonic()
                idx = torch.randint(0, 64, (8,))
                opt.zero_grad()
                loss_fn(model(x[idx]), y[idx]).backward()
                opt.step()
                monitor.step()
                slowest = max(slowest, time.monotonic() - t0)
                if reports and not killed and monitor._oracle is not None and "execute" not in vars(monitor._oracle):
                    monitor._oracle.execute = kill_mid_round(monitor._oracle.execute)
                if killed and any(not r.missing and r.round is not None and r.round >= 1 for r in reports):
                    break
                time.sleep(0.005)
    finally:
        monitor.close()

    assert killed, "the sidecar was never killed: no round reached the blocks op"
    good = [r for r in reports if not r.missing]
    assert good and good[0].round == 0
    missing = [r for r in reports if r.missing]
    assert missing and "exited" in missing[0].reason and "restarted" in missing[0].reason, [r.reason for r in missing]
    after = [r for r in good if r.round is not None and r.round >= 1]
    assert after, f"no report after the restart within {LIMIT} s: {[r.reason for r in reports]}"
    assert after[0].run == good[0].run == monitor.run_id  # the same run, its history continued
    assert after[0].round == 1
    assert slowest < 1.0, f"a training step waited {slowest:.2f} s"
    with pytest.raises(ChildProcessError):
        os.waitpid(killed[0], os.WNOHANG)  # reaped: no zombie left for us to collect
    rounds = [json_round for json_round in _stored_rounds(tmp_path, monitor.run_id)]
    # the history continued without a gap: rounds 0, 1, ... (the loop may finish another before close)
    assert rounds == list(range(len(rounds))) and len(rounds) >= 2


def _stored_rounds(data_dir, run_id):
    import json

    for path in data_dir.rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            report = json.loads(line)
            if report.get("run") == run_id:
                yield report["round"]


def test_an_attached_sidecar_that_stops_answering_is_detected_by_heartbeats_not_the_timeout():
    from _transport_helpers import FakeOracle, run_meta, stub_sidecar

    from edgewise.errors import SidecarTimeout

    proc = stub_sidecar()
    stopped = []

    class FreezesSidecar(FakeOracle):
        def execute(self, op, args):
            if op == "blocks" and not stopped:
                os.kill(proc.pid, signal.SIGSTOP)  # alive but silent, as a hung remote host
                stopped.append(time.monotonic())
            return super().execute(op, args)

    client = SidecarClient(proc.endpoint, timeout=60.0, liveness=2.0)  # attached: no process to watch
    try:
        client.open_session(run_meta())
        with pytest.raises(SidecarTimeout, match="stopped answering"):
            client.run_round(FreezesSidecar(), step=1, epoch=0, lr=0.1, batch_size=8, n=100)
        waited = time.monotonic() - stopped[0]
        assert waited < 10.0, f"detected after {waited:.1f} s (the timeout is 60 s)"
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        client.close()
        proc.stop()


def test_a_spawned_sidecar_ends_with_a_training_process_that_is_sigkilled(tmp_path):
    # an OOM kill or a crash runs no atexit: the sidecar used to stay, bound, for good
    script = ("import sys, time\n"
              "from edgewise._client import SidecarClient\n"
              f"c = SidecarClient(None, sidecar_args=['--data-dir', {str(tmp_path)!r}, '--no-dashboard'])\n"
              "print(c.process.pid, flush=True)\n"
              "time.sleep(120)\n")
    trainer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    sidecar = int(trainer.stdout.readline())
    try:
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(timeout=30)
        assert process_gone(sidecar, within=15.0), f"the sidecar (pid {sidecar}) outlived its SIGKILLed training process"
    finally:
        if not process_gone(sidecar, within=0.0):
            os.kill(sidecar, signal.SIGKILL)
