"""An op slower than the sidecar's op timeout (SPEC §7): the round is abandoned, the client says
why and what to do, and the next round works; ``--op-timeout`` sets the limit, and a sidecar the
client spawns (its only client, stopped when the client exits) gets an hour.

A large model on a slow device (ResNet-18 on a CPU) takes minutes on one op; the sidecar's
default 60 s then abandons every round, and its bare ``bad_state`` for the late result did not
say why. A real stub sidecar with a 1 s op timeout and an oracle that sleeps in ``blocks``.
"""

from __future__ import annotations

import time

import pytest

from _transport_helpers import FakeOracle, run_meta, stub_sidecar
from edgewise._client import SidecarClient
from edgewise.errors import OracleFailed


class SlowBlocks(FakeOracle):
    """The stub's oracle, ``seconds`` slower on ``blocks``."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def execute(self, op, args):
        if op == "blocks":
            time.sleep(self.seconds)
        return super().execute(op, args)


@pytest.fixture(scope="module")
def sidecar():
    proc = stub_sidecar("--op-timeout", "1")
    yield proc
    proc.stop()


def test_an_op_over_the_op_timeout_is_explained_and_the_next_round_works(sidecar):
    with SidecarClient(sidecar.endpoint, timeout=10) as client:
        client.open_session(run_meta())
        assert client.limits["op_timeout_ms"] == 1000
        with pytest.raises(OracleFailed) as err:
            client.run_round(SlowBlocks(1.5), step=1, epoch=0, lr=0.1, batch_size=8, n=100)
        assert "op timeout of 1 s" in err.value.message and "--op-timeout" in err.value.message
        assert err.value.details["op"] == "blocks" and err.value.details["wall_ms"] >= 1500
        fast = FakeOracle()
        report = client.run_round(fast, step=2, epoch=0, lr=0.1, batch_size=8, n=100)
        assert report["lambda_max"] == pytest.approx(fast.expected_lambda())


def test_an_op_under_the_op_timeout_completes(sidecar):
    with SidecarClient(sidecar.endpoint, timeout=10) as client:
        client.open_session(run_meta())
        slow = SlowBlocks(0.3)
        assert client.run_round(slow, step=1, epoch=0, lr=0.1, batch_size=8, n=100)["lambda_max"] == pytest.approx(
            slow.expected_lambda())


def test_a_spawned_sidecar_allows_an_hour_per_op():
    with SidecarClient(timeout=10, sidecar_args=["--runner", "stub"]) as client:
        client.open_session(run_meta())
        assert client.limits["op_timeout_ms"] == 3_600_000
