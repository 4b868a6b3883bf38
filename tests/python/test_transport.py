"""Real rounds over ZeroMQ between the Python client and the Deno sidecar (stub runner)."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

from _transport_helpers import FakeOracle, run_meta, stub_sidecar
from edgewise._client import SidecarClient
from edgewise.errors import NonFinite, OracleFailed, TooLarge, UnknownSession


@pytest.fixture(scope="module")
def sidecar():
    proc = stub_sidecar()
    yield proc
    proc.stop()


@pytest.fixture
def client(sidecar):
    with SidecarClient(sidecar.endpoint, timeout=10) as c:
        yield c


def round_kwargs(**kw):
    return {"step": 10, "epoch": 1, "lr": 0.05, "batch_size": 8, "n": 100, **kw}


def test_open_session_gets_welcome_limits(client):
    sid = client.open_session(run_meta())
    assert sid and client.session == sid
    assert client.limits["max_message_bytes"] == 64 * 2**20
    assert client.limits["op_timeout_ms"] > 0


def test_heartbeat_round_trip(client):
    client.open_session(run_meta())
    assert 0 < client.heartbeat() < 1.0


def test_maybe_heartbeat_only_when_idle(client):
    client.open_session(run_meta())
    assert client.maybe_heartbeat() is False
    client.limits["heartbeat_ms"] = 0
    assert client.maybe_heartbeat() is True


def test_round_reports_the_stub_lambda(client):
    oracle = FakeOracle()
    run = run_meta()
    client.open_session(run)
    report = client.run_round(oracle, **round_kwargs())
    assert report["lambda_max"] == pytest.approx(oracle.expected_lambda(), rel=1e-12)
    assert report["run"] == run["id"] and report["round"] == 0
    assert report["basis_size"] == 2 and report["m"] == 4
    assert oracle.calls == ["reset", "random", "blocks"]


def test_rounds_count_up_and_runner_state_persists(client):
    client.open_session(run_meta())
    first = client.run_round(FakeOracle(), **round_kwargs())
    second = client.run_round(FakeOracle(seed=1), **round_kwargs(step=20))
    assert (first["round"], second["round"]) == (0, 1)
    assert (first["stub_rounds"], second["stub_rounds"]) == (1, 2)


def test_oracle_exception_becomes_oracle_failed_and_the_next_round_works(client):
    class Broken(FakeOracle):
        def execute(self, op, args):
            if op == "blocks":
                raise RuntimeError("out of memory")
            return super().execute(op, args)

    client.open_session(run_meta())
    with pytest.raises(OracleFailed) as info:
        client.run_round(Broken(), **round_kwargs())
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "out of memory" in str(info.value)
    ok = FakeOracle()
    assert client.run_round(ok, **round_kwargs())["lambda_max"] == pytest.approx(ok.expected_lambda())


def test_non_finite_oracle_output_is_refused_before_sending(client):
    class Nan(FakeOracle):
        def execute(self, op, args):
            out = super().execute(op, args)
            if op == "blocks":
                out["blocks"] = out["blocks"] * np.nan
            return out

    client.open_session(run_meta())
    with pytest.raises(NonFinite):
        client.run_round(Nan(), **round_kwargs())
    assert client.run_round(FakeOracle(), **round_kwargs())["round"] == 0


def test_message_over_soft_limit_is_refused_locally(client):
    client.open_session(run_meta())
    client.limits["max_message_bytes"] = 1000
    big = {**run_meta(), "model": "x" * 2000}
    with pytest.raises(TooLarge):
        client.open_session(big)


def test_unknown_session_rehandshakes_once(client):
    client.open_session(run_meta())
    client.session = "forgotten-session"
    assert client.heartbeat() > 0
    assert client.session != "forgotten-session"


def test_spawned_sidecar_is_stopped_on_close():
    with SidecarClient(timeout=10, sidecar_args=["--runner", "stub"]) as c:
        proc = c.process
        assert proc is not None and proc.alive()
        c.open_session(run_meta())
        oracle = FakeOracle()
        assert c.run_round(oracle, **round_kwargs())["lambda_max"] == pytest.approx(oracle.expected_lambda())
    assert not proc.alive()
    assert "session_open" in proc.log_path.read_text()


def test_round_over_ipc():
    path = os.path.join(tempfile.mkdtemp(prefix="edgewise-ipc-"), "sidecar.sock")
    proc = stub_sidecar(endpoint=f"ipc://{path}")
    try:
        with SidecarClient(f"ipc://{path}", timeout=10) as c:
            c.open_session(run_meta())
            oracle = FakeOracle(m=3, d=5)
            run = {**run_meta(m=3, d=5)}
            c.open_session(run)
            assert c.run_round(oracle, **round_kwargs())["lambda_max"] == pytest.approx(oracle.expected_lambda())
    finally:
        proc.stop()


def test_unknown_session_error_maps_to_exception_class(client):
    # a direct request with a bogus session (bypassing the retry) maps to UnknownSession
    from edgewise import _protocol as proto

    client.open_session(run_meta())
    with pytest.raises(UnknownSession):
        client._request(proto.simple("heartbeat", 0, "nope"))


def test_32_concurrent_clients_each_finish_their_rounds(sidecar):
    from concurrent.futures import ThreadPoolExecutor

    def rounds(k: int) -> list[float]:
        with SidecarClient(sidecar.endpoint, timeout=30) as c:
            c.open_session(run_meta(name=f"c{k}"))
            out = []
            for r in range(3):
                oracle = FakeOracle(seed=100 * k + r)
                got = c.run_round(oracle, **round_kwargs(step=r))
                assert got["round"] == r
                out.append(got["lambda_max"] - oracle.expected_lambda())
            return out

    with ThreadPoolExecutor(32) as pool:
        errors = [e for errs in pool.map(rounds, range(32)) for e in errs]
    assert len(errors) == 96 and max(abs(e) for e in errors) < 1e-9
