"""Bounded soak of the sidecar's libzmq transport (127.0.0.1 only, stops by itself): 16
clients connect, send bursts of pipelined requests, say bye and disconnect, in a loop. Every
request must be answered (none acknowledged then lost), and the sidecar's resident memory must
come back within 10 % of where it started once they have left. 20 s here; 100 s in the slow
tier (tools/test.sh --slow)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from _transport_helpers import run_meta, stub_sidecar
from edgewise import _protocol as proto
from edgewise._codec import decode, encode

CLIENTS, BURST = 16, 32

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads RSS from /proc")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def visit(ctx: zmq.Context, endpoint: str) -> tuple[int, int]:
    """One client's life: connect, hello, a pipelined burst, bye, disconnect. Returns
    (requests sent, requests answered)."""
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    try:
        def ask_all(msgs: list[dict]) -> dict[int, dict]:
            for m in msgs:
                sock.send(encode(m))
            answers: dict[int, dict] = {}
            deadline = time.monotonic() + 10
            while len(answers) < len(msgs) and sock.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                a = decode(sock.recv())
                answers[a.get("re")] = a
            return answers

        welcome = ask_all([proto.hello(1, "soak", run_meta(name="soak"))])
        session = welcome[1]["session"]
        burst = [proto.simple("heartbeat", i, session) for i in range(2, 2 + BURST)]
        answers = ask_all(burst)
        ok = sum(1 for m in burst if answers.get(m["id"], {}).get("type") == "heartbeat")
        ask_all([proto.simple("bye", 2 + BURST, session)])
        return len(burst), ok
    finally:
        sock.close(linger=0)


def test_soak_16_clients_connect_burst_disconnect(request):
    seconds = 100 if request.config.getoption("--run-slow") else 20
    # every visit opens a new session: far more than the default 120 per minute (issue 10 cap)
    proc = stub_sidecar("--log-level", "warn", "--sessions-per-minute", "1000000")
    ctx = zmq.Context()
    try:
        pid = proc.pid
        assert pid is not None
        for _ in range(200):  # warm up: hot paths compiled by the JIT
            visit(ctx, proc.endpoint)
        time.sleep(3)  # past the sidecar's quiet-period collection (transport/idle_gc.ts)
        start = rss_kib(pid)
        stop = time.monotonic() + seconds
        totals = [[0, 0, 0] for _ in range(CLIENTS)]  # visits, sent, answered
        failures: list[BaseException] = []

        def client(k: int) -> None:
            try:
                while time.monotonic() < stop:
                    sent, ok = visit(ctx, proc.endpoint)
                    totals[k][0] += 1
                    totals[k][1] += sent
                    totals[k][2] += ok
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        peak = start
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_kib(pid))
            time.sleep(0.5)
        assert not failures, failures[0]
        visits, sent, answered = (sum(t[i] for t in totals) for i in range(3))
        assert visits >= CLIENTS and sent == answered, f"{sent - answered} of {sent} acknowledged requests lost"
        after = rss_kib(pid)
        deadline = time.monotonic() + 15  # idle sessions, closed pipes and V8 garbage go
        while after > 1.1 * start and time.monotonic() < deadline:
            time.sleep(0.5)
            after = rss_kib(pid)
        print(f"soak: {visits} visits, {sent} requests, RSS start {start} KiB, peak {peak} KiB, after {after} KiB")
        assert after <= 1.1 * start, f"RSS {after} KiB after the soak, {start} KiB before (peak {peak} KiB)"
    finally:
        ctx.term()
        proc.stop()
