"""One sidecar, two runs: while run A's round (m = 256, max_basis 64, the real estimator, 10 s budget)
solves, run B's heartbeats are answered at once, because rounds run in Deno Workers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from edgewise._client import SidecarClient
from edgewise._sidecar_process import SidecarProcess

from _transport_helpers import run_meta

ROUND_A = textwrap.dedent("""
    import sys, torch, edgewise
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.Tanh(), torch.nn.Linear(64, 4))
    x, y = torch.randn(256, 20), torch.randn(256, 4)
    monitor = edgewise.Monitor(model, torch.nn.functional.mse_loss, probe=(x, y), n_train=1024, batch_size=32,
                               endpoint=sys.argv[1], console=False, blocking=True, max_basis=64, timeout=300,
                               budget_seconds=10)
    print("START", flush=True)
    report = monitor.round(lr=0.01)
    print("DONE", report.missing, report.basis_size, flush=True)
    monitor.close()
""")


def heartbeat_latencies(endpoint: str) -> tuple[list[float], str]:
    b = SidecarClient(endpoint, timeout=60.0)
    b.open_session(run_meta())
    a = subprocess.Popen([sys.executable, "-c", ROUND_A, endpoint], stdout=subprocess.PIPE, text=True)
    latencies = []
    try:
        assert a.stdout is not None and a.stdout.readline().strip() == "START"
        while a.poll() is None:
            latencies.append(b.heartbeat())
            time.sleep(0.05)
        out = a.stdout.read()
    finally:
        a.kill()
        b.close()
    return latencies, out


def test_another_runs_heartbeat_is_answered_while_a_round_solves(tmp_path):
    proc = SidecarProcess(extra_args=["--no-dashboard", "--data-dir", str(tmp_path)]).start()
    try:
        latencies, out = heartbeat_latencies(proc.endpoint)
    finally:
        proc.stop()
    assert out.startswith("DONE False"), out
    worst = max(latencies)
    print(f"{len(latencies)} heartbeats during the round, worst {1e3 * worst:.1f} ms, median "
          f"{1e3 * sorted(latencies)[len(latencies) // 2]:.1f} ms")
    # on the event loop (--workers 0) single solves here block heartbeats for seconds
    assert worst < 1.0, f"a heartbeat waited {worst:.2f} s"
