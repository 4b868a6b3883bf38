"""A round answer that takes longer than the client's timeout while the sidecar is alive.

An ``exact`` solve in a large factor span can compute for minutes between two ops (SPEC §7). The
client's ``timeout`` then bounds the sidecar's silence, not its compute time: while heartbeats
sent during the wait are echoed, the wait goes on up to ``patience``. A fake sidecar (a ROUTER
in a thread) answers ``round`` after a delay, echoing heartbeats meanwhile.
"""

from __future__ import annotations

import threading
import time

import pytest
import zmq

from edgewise._client import SidecarClient
from edgewise._codec import decode, encode
from edgewise.errors import SidecarTimeout

from _transport_helpers import run_meta

LIMITS = {"max_message_bytes": 1 << 20, "heartbeat_ms": 5000, "idle_timeout_ms": 600000, "op_timeout_ms": 60000,
          "liveness_ms": 2000}


class SlowSidecar:
    """Answers ``hello``; answers ``round`` with a report after ``delay`` seconds, echoing
    every heartbeat at once meanwhile (``echo=False``: silent while it computes)."""

    def __init__(self, delay: float, echo: bool = True) -> None:
        self.delay, self.echo = delay, echo
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.stop = threading.Event()
        self.echoes = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _send(self, who: bytes, msg: dict) -> None:
        self.sock.send_multipart([who, encode(msg)])

    def _serve(self) -> None:
        due: tuple[float, bytes, int] | None = None
        while not self.stop.is_set():
            if due is not None and time.monotonic() >= due[0]:
                self._send(due[1], {"type": "report", "re": due[2], "report": {"lambda_gen": 1.0}})
                due = None
            if not self.sock.poll(10):
                continue
            who, raw = self.sock.recv_multipart()
            msg = decode(raw)
            kind, mid = msg.get("type"), msg.get("id")
            if kind == "hello":
                self._send(who, {"type": "welcome", "re": mid, "protocol": 2, "sidecar": "slow", "session": "s1",
                                 "run": msg["run"]["id"], "limits": LIMITS})
            elif kind == "round":
                due = (time.monotonic() + self.delay, who, mid)
            elif kind == "heartbeat" and (self.echo or due is None):
                self.echoes += 1
                self._send(who, {"type": "heartbeat", "re": mid, "session": "s1"})
            elif kind == "bye":
                self._send(who, {"type": "bye", "re": mid, "session": "s1"})

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close(linger=0)
        self.ctx.term()


class NoOps:
    basis_size = 0

    def execute(self, op, args):  # pragma: no cover - the fake sidecar sends no op
        raise AssertionError(op)


def round_with(sidecar: SlowSidecar, **client_args) -> dict:
    client = SidecarClient(sidecar.endpoint, **client_args)
    try:
        client.open_session(run_meta())
        return client.run_round(NoOps(), step=0, epoch=0, lr=0.1, batch_size=8, n=100)
    finally:
        client.close()
        sidecar.close()


def test_a_computing_sidecar_that_echoes_heartbeats_is_waited_for_up_to_patience():
    sidecar = SlowSidecar(delay=3.0)
    t0 = time.monotonic()
    report = round_with(sidecar, timeout=1.0, patience=30.0)
    assert report == {"lambda_gen": 1.0}
    assert time.monotonic() - t0 >= 3.0 and sidecar.echoes >= 2


def test_without_patience_the_timeout_bounds_the_answer():
    with pytest.raises(SidecarTimeout, match="within 1 s"):
        round_with(SlowSidecar(delay=3.0), timeout=1.0)


def test_patience_bounds_the_whole_wait():
    t0 = time.monotonic()
    with pytest.raises(SidecarTimeout):
        round_with(SlowSidecar(delay=30.0), timeout=0.5, patience=2.0)
    assert time.monotonic() - t0 < 10.0


def test_a_silent_sidecar_is_not_waited_for_beyond_its_liveness():
    t0 = time.monotonic()
    with pytest.raises(SidecarTimeout, match="stopped answering"):
        round_with(SlowSidecar(delay=30.0, echo=False), timeout=20.0, patience=60.0)
    assert time.monotonic() - t0 < 10.0


def test_patience_must_be_positive():
    with pytest.raises(ValueError, match="patience"):
        SidecarClient("tcp://127.0.0.1:9", timeout=1.0, patience=0.0)


def test_after_a_silence_hello_waits_the_liveness_window_not_the_timeout():
    # a dead remote sidecar: every retry of a blocking training loop waited the whole timeout
    sidecar = SlowSidecar(delay=3.0, echo=False)
    client = SidecarClient(sidecar.endpoint, timeout=20.0, patience=60.0)
    try:
        client.open_session(run_meta())
        with pytest.raises(SidecarTimeout, match="stopped answering"):
            client.run_round(NoOps(), step=0, epoch=0, lr=0.1, batch_size=8, n=100)
        time.sleep(1.5)  # the fake's round is over: it answers again, and a hello goes through
        assert client.heartbeat() < 2.0
        sidecar.close()  # now gone for good
        t0 = time.monotonic()
        with pytest.raises(SidecarTimeout):
            client.run_round(NoOps(), step=1, epoch=1, lr=0.1, batch_size=8, n=100)
        with pytest.raises(SidecarTimeout, match="to hello within 2 s"):
            client.heartbeat()
        assert time.monotonic() - t0 < 10.0  # two liveness windows (2 s each) and slack, not 2 × 20 s
    finally:
        client.close()


def test_an_endpoint_that_never_answered_is_retried_with_a_short_hello():
    # a mistyped endpoint: the first hello waits the timeout (8 s), a retry only 5 s
    with zmq.Context() as ctx, ctx.socket(zmq.ROUTER) as mute:  # bound, never answers
        port = mute.bind_to_random_port("tcp://127.0.0.1")
        client = SidecarClient(f"tcp://127.0.0.1:{port}", timeout=8.0)
        try:
            with pytest.raises(SidecarTimeout, match="within 8 s"):
                client.open_session(run_meta())
            t0 = time.monotonic()
            with pytest.raises(SidecarTimeout, match="to hello within 5 s"):
                client.heartbeat()
            assert time.monotonic() - t0 < 6.5
        finally:
            client.close()
            mute.close(linger=0)
