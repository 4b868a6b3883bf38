"""A sidecar killed mid-request (SIGKILL) costs the client one SidecarTimeout within its
limit, never a hang; once a sidecar is back on the same endpoint the client works again."""

from __future__ import annotations

import time

import pytest

from _transport_helpers import FakeOracle, run_meta, stub_sidecar
from edgewise._client import SidecarClient
from edgewise._sidecar_process import free_port
from edgewise.errors import SidecarTimeout

TIMEOUT = 2.0


def test_sigkill_mid_round_times_out_then_recovers_after_restart():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = stub_sidecar(endpoint=endpoint)

    class KillsSidecar(FakeOracle):
        """Kills the sidecar while executing `blocks`, so the result goes nowhere."""

        def execute(self, op, args):
            if op == "blocks":
                proc.kill()
            return super().execute(op, args)

    client = SidecarClient(endpoint, timeout=TIMEOUT)
    try:
        client.open_session(run_meta())
        t0 = time.monotonic()
        with pytest.raises(SidecarTimeout):
            client.run_round(KillsSidecar(), step=1, epoch=0, lr=0.1, batch_size=8, n=100)
        waited = time.monotonic() - t0
        assert waited < TIMEOUT + 1.0, f"took {waited:.2f} s"
        assert client.session is None  # will say hello again by itself

        # while the sidecar is down, calls time out too (no hang)
        t0 = time.monotonic()
        with pytest.raises(SidecarTimeout):
            client.heartbeat()
        assert time.monotonic() - t0 < TIMEOUT + 1.0

        proc = stub_sidecar(endpoint=endpoint)
        oracle = FakeOracle()
        report = client.run_round(oracle, step=2, epoch=0, lr=0.1, batch_size=8, n=100)
        assert report["lambda_max"] == pytest.approx(oracle.expected_lambda())
        assert report["round"] == 0  # a fresh sidecar: a fresh session
    finally:
        client.close()
        proc.stop()


def test_sidecar_killed_while_idle_between_rounds():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = stub_sidecar(endpoint=endpoint)
    client = SidecarClient(endpoint, timeout=TIMEOUT)
    try:
        client.open_session(run_meta())
        assert client.run_round(FakeOracle(), step=1, epoch=0, lr=0.1, batch_size=8, n=100)["round"] == 0
        proc.kill()
        proc = stub_sidecar(endpoint=endpoint)
        # the restarted sidecar does not know the session: unknown_session, re-hello, retry
        report = client.run_round(FakeOracle(), step=2, epoch=0, lr=0.1, batch_size=8, n=100)
        assert report["round"] == 0
    finally:
        client.close()
        proc.stop()


def test_close_does_not_hang_when_the_sidecar_is_gone():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = stub_sidecar(endpoint=endpoint)
    client = SidecarClient(endpoint, timeout=TIMEOUT)
    client.open_session(run_meta())
    proc.kill()
    t0 = time.monotonic()
    client.close()
    assert time.monotonic() - t0 < 1.5
