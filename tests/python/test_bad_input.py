"""Every bad input gets a clear `error` answer, and another session keeps working meanwhile.

A raw DEALER socket plays the misbehaving peer; a proper SidecarClient runs a round after each
case on the same sidecar (started with a 64 KiB soft limit so "too large" is cheap).
"""

from __future__ import annotations

import numpy as np
import pytest
import zmq

from _transport_helpers import FakeOracle, run_meta, stub_sidecar
from edgewise._client import SidecarClient
from edgewise._codec import decode, encode

SOFT_LIMIT = 65536


@pytest.fixture(scope="module")
def sidecar():
    proc = stub_sidecar("--max-message-bytes", str(SOFT_LIMIT))
    yield proc
    proc.stop()


class Raw:
    """A bare DEALER that sends exactly the bytes it is given."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.next_id = 100

    def raw(self, frame: bytes) -> dict:
        self.sock.send(frame)
        assert self.sock.poll(5000), "no answer within 5 s"
        return decode(self.sock.recv())

    def ask(self, msg: dict) -> dict:
        self.next_id += 1
        return self.raw(encode({"id": self.next_id, **msg}))

    def session(self) -> str:
        ans = self.ask({"type": "hello", "protocol": 2, "client": "raw", "run": run_meta(m=2, d=2), "capabilities": []})
        assert ans["type"] == "welcome", ans
        return ans["session"]

    def to_blocks_op(self, sid: str) -> dict:
        """Starts a stub round and answers until the sidecar asks for blocks (m=2, k=2)."""
        op = self.ask({"type": "round", "session": sid, "step": 1, "epoch": 0, "lr": 0.1, "batch_size": 2, "n": 10,
                       "momentum": 0, "basis": 0, "budget": {}})
        assert op["op"] == "reset", op
        op = self.ask({"type": "result", "session": sid, "seq": 0, "op": "reset", "basis": 0, "hvps": 0, "wall_ms": 0})
        op = self.ask({"type": "result", "session": sid, "seq": 1, "op": "random", "basis": 2, "hvps": 0, "wall_ms": 0,
                       "kept": 2})
        assert op["op"] == "blocks" and op["seq"] == 2, op
        return op

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


@pytest.fixture
def raw(sidecar):
    r = Raw(sidecar.endpoint)
    yield r
    r.close()


@pytest.fixture
def good(sidecar):
    """A well-behaved session that must keep working after each bad input."""
    with SidecarClient(sidecar.endpoint, timeout=10) as c:
        c.open_session(run_meta())
        yield c


def assert_error(ans: dict, code: str, re: int | None = None) -> None:
    assert ans["type"] == "error", ans
    assert ans["code"] == code, ans
    assert isinstance(ans["message"], str) and len(ans["message"]) > 10, ans
    if re is not None:
        assert ans["re"] == re


def still_works(good: SidecarClient) -> None:
    oracle = FakeOracle()
    assert good.run_round(oracle, step=1, epoch=0, lr=0.1, batch_size=8, n=100)["lambda_max"] == pytest.approx(
        oracle.expected_lambda()
    )


def blocks_tensor(data: bytes, shape=(2, 2, 2), dtype="f64") -> dict:
    return {"data": data, "dtype": dtype, "shape": list(shape)}


def test_non_msgpack_frame(raw, good):
    assert_error(raw.raw(b"\xc1\xc1\xc1"), "malformed")
    still_works(good)


def test_truncated_frame(raw, good):
    assert_error(raw.raw(encode({"type": "heartbeat", "id": 1, "session": "s"})[:7]), "malformed")
    still_works(good)


def test_non_map_body(raw, good):
    assert_error(raw.raw(encode([1, 2, 3])), "malformed")
    still_works(good)


def test_missing_field(raw, good):
    sid = raw.session()
    ans = raw.ask({"type": "round", "session": sid, "step": 1})
    assert_error(ans, "malformed", raw.next_id)
    assert "epoch" in ans["message"]
    still_works(good)


def test_unknown_type(raw, good):
    assert_error(raw.ask({"type": "gossip"}), "unknown_type", raw.next_id)
    still_works(good)


def test_a_v1_client_is_refused_with_version_mismatch(raw, good):
    ans = raw.ask({"type": "hello", "protocol": 1, "client": "raw", "run": run_meta(), "capabilities": []})
    assert_error(ans, "version_mismatch", raw.next_id)
    assert ans["details"] == {"supported": [2]}
    assert "upgrade" in ans["message"]
    still_works(good)


def test_unknown_session(raw, good):
    assert_error(raw.ask({"type": "heartbeat", "session": "never-was"}), "unknown_session", raw.next_id)
    still_works(good)


def test_tensor_byte_length_not_shape_times_itemsize(raw, good):
    sid = raw.session()
    raw.to_blocks_op(sid)
    ans = raw.ask({"type": "result", "session": sid, "seq": 2, "op": "blocks", "basis": 2, "hvps": 4, "wall_ms": 0,
                   "blocks": blocks_tensor(b"\0" * 60)})
    assert_error(ans, "bad_tensor", raw.next_id)
    assert "64 bytes" in ans["message"]
    still_works(good)


def test_tensor_of_the_wrong_shape(raw, good):
    sid = raw.session()
    raw.to_blocks_op(sid)
    ans = raw.ask({"type": "result", "session": sid, "seq": 2, "op": "blocks", "basis": 2, "hvps": 4, "wall_ms": 0,
                   "blocks": blocks_tensor(np.zeros(4).tobytes(), shape=(2, 2, 1))})
    assert_error(ans, "bad_tensor")
    still_works(good)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_in_a_result_tensor(raw, good, bad):
    sid = raw.session()
    raw.to_blocks_op(sid)
    data = np.array([1.0, 0, 0, 1, 1, 0, 0, bad]).tobytes()
    ans = raw.ask({"type": "result", "session": sid, "seq": 2, "op": "blocks", "basis": 2, "hvps": 4, "wall_ms": 0,
                   "blocks": blocks_tensor(data)})
    assert_error(ans, "non_finite", raw.next_id)
    still_works(good)


def test_message_over_the_soft_limit(raw, good):
    sid = raw.session()
    ans = raw.ask({"type": "heartbeat", "session": sid, "pad": b"\0" * (SOFT_LIMIT + 1)})
    assert_error(ans, "too_large", raw.next_id)
    assert raw.ask({"type": "heartbeat", "session": sid})["type"] == "heartbeat"
    still_works(good)


def test_result_with_wrong_seq(raw, good):
    sid = raw.session()
    raw.to_blocks_op(sid)
    ans = raw.ask({"type": "result", "session": sid, "seq": 9, "op": "blocks", "basis": 2, "hvps": 4, "wall_ms": 0,
                   "blocks": blocks_tensor(np.zeros(8).tobytes())})
    assert_error(ans, "bad_state", raw.next_id)
    assert "seq 2" in ans["message"]
    # the round was abandoned: a new one can start at once
    raw.to_blocks_op(sid)
    still_works(good)


def test_result_with_no_op_outstanding(raw, good):
    sid = raw.session()
    ans = raw.ask({"type": "result", "session": sid, "seq": 0, "op": "reset", "basis": 0, "hvps": 0, "wall_ms": 0})
    assert_error(ans, "bad_state", raw.next_id)
    still_works(good)


def test_a_finished_round_after_bad_input(raw, good):
    """The misbehaving session itself recovers: a correct round after an error completes."""
    sid = raw.session()
    assert_error(raw.raw(b"\xc1"), "malformed")
    raw.to_blocks_op(sid)
    blocks = np.array([2.0, 1, 1, 2, 4, 1, 1, 4])  # mean [[3,1],[1,3]] -> 4
    ans = raw.ask({"type": "result", "session": sid, "seq": 2, "op": "blocks", "basis": 2, "hvps": 4, "wall_ms": 0,
                   "blocks": blocks_tensor(blocks.tobytes())})
    assert ans["type"] == "report" and ans["report"]["lambda_max"] == 4
    still_works(good)


def test_message_over_the_hard_limit_drops_that_connection_only(raw, good, sidecar):
    """Beyond twice the soft limit libzmq (ZMQ_MAXMSGSIZE) drops the connection: no answer;
    the peer's next connection and every other session are served."""
    sid = raw.session()
    raw.sock.send(b"\0" * (2 * SOFT_LIMIT + 1))
    assert not raw.sock.poll(1500), "an over-the-hard-limit frame was answered"
    still_works(good)
    # libzmq redialled: a new connection, which the old session does not belong to (sessions are
    # bound to the connection that opened them), so it is answered and can say hello again
    assert_error(raw.ask({"type": "heartbeat", "session": sid}), "unknown_session", raw.next_id)
    assert raw.session() != sid
    assert '"zmq_disconnected"' in sidecar.log_path.read_text()


def test_multi_frame_message(raw, good):
    raw.sock.send_multipart([encode({"id": 7, "type": "heartbeat"}), b"extra"])
    assert raw.sock.poll(5000)
    assert_error(decode(raw.sock.recv()), "malformed")
    still_works(good)
