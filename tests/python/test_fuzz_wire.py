"""Bounded fuzz of a live sidecar process from outside, at the wire and protocol levels (issue 10).

127.0.0.1 only, a fixed seed, a fixed number of inputs (over 50,000), about a minute here. The
wire level talks raw TCP to the sidecar's libzmq ROUTER: random bytes, truncated and garbled
ZMTP greetings, valid greetings followed by huge declared frames (2^62 bytes), endless
multipart messages, connect+reset storms (SO_LINGER 0) and silent peers. The protocol level
talks through a pyzmq DEALER: random MessagePack values, byte-mutated and field-mutated
messages, oversized strings (up to 1 MB) in every string field. After each batch a legitimate
SidecarClient completes a round whose λ is checked against numpy. At the end the sidecar is
still running, its resident memory after a quiet period is within 20 % of where it started, no
reply to a bad input was over 4 KiB and no line of its log is over 4 KiB.

The in-process protocol fuzz (sidecar/transport/fuzz_test.ts) checks every input is answered
from inside; this one adds the wire level and the process's memory and log file.
"""

from __future__ import annotations

import json
import random
import selectors
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any, Callable

import msgpack
import numpy as np
import pytest
import zmq

from _transport_helpers import FakeOracle, run_meta, stub_sidecar
from edgewise._client import SidecarClient

LIMIT = 4096  # bytes: the largest reply or log line allowed for a bad input
SEED = 20261127

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads RSS from /proc")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def log_events(lines: list[bytes]) -> dict[str, int]:
    """How many lines of each `event` the sidecar's JSON log holds."""
    events: dict[str, int] = {}
    for line in lines:
        try:
            name = str(json.loads(line).get("event"))
        except (ValueError, AttributeError):
            name = "(not JSON)"
        events[name] = events.get(name, 0) + 1
    return events


# --- ZMTP 3 pieces (RFC 23), to build greetings and frames byte by byte -------------------------

SIGNATURE = b"\xff" + b"\0" * 7 + b"\x01\x7f"


def greeting(major: int = 3, minor: int = 0, mechanism: bytes = b"NULL", as_server: int = 0) -> bytes:
    return SIGNATURE + bytes([major, minor]) + mechanism.ljust(20, b"\0")[:20] + bytes([as_server]) + b"\0" * 31


def zframe(body: bytes, *, more: bool = False, command: bool = False, declared: int | None = None) -> bytes:
    """One ZMTP frame; `declared` overrides the size in the header (a lie about the length)."""
    size = len(body) if declared is None else declared
    flags = (1 if more else 0) | (4 if command else 0)
    if size > 255:
        return bytes([flags | 2]) + struct.pack(">Q", size) + body
    return bytes([flags, size]) + body


def ready(socket_type: bytes = b"DEALER") -> bytes:
    prop = bytes([11]) + b"Socket-Type" + struct.pack(">I", len(socket_type)) + socket_type
    return zframe(b"\x05READY" + prop, command=True)


HELLO_DONE = greeting() + ready()  # a peer that finished the NULL handshake as a DEALER


# --- the test's bookkeeping --------------------------------------------------------------------

class Tally:
    """Counts inputs per kind and remembers the largest reply to any of them."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.largest = 0
        self.codes: dict[str, int] = {}
        self.opened = 0  # sessions that mutated hellos opened (closed again with bye)

    def add(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n

    def reply(self, size: int, what: str) -> None:
        self.largest = max(self.largest, size)
        assert size <= LIMIT, f"a reply of {size} bytes to a bad input ({what})"

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def reset_close(s: socket.socket) -> None:
    """Closes with an RST (SO_LINGER 0), as a crashed peer would."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def tcp_batch(addr: tuple[str, int], payloads: list[bytes], tally: Tally, kind: str, settle: float = 0.1) -> None:
    """Opens one connection per payload, sends it, reads whatever the sidecar answers until the
    connections go quiet for `settle` seconds, checks each answer's size, then resets them all."""
    socks: list[socket.socket] = []
    try:
        for p in payloads:
            s = socket.create_connection(addr, timeout=5)
            socks.append(s)
            try:
                s.sendall(p)
            except OSError:  # the sidecar already dropped it: fine
                pass
            tally.add(kind)
        got = [0] * len(socks)
        with selectors.DefaultSelector() as sel:
            for i, s in enumerate(socks):
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, i)
            deadline = time.monotonic() + settle
            while sel.get_map() and (events := sel.select(timeout=max(0.0, deadline - time.monotonic()))):
                for key, _ in events:
                    try:
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if data:
                        got[key.data] += len(data)
                        deadline = time.monotonic() + settle
                    else:
                        sel.unregister(key.fileobj)
        for i, n in enumerate(got):
            tally.reply(n, f"{kind}: {payloads[i][:40]!r}")
    finally:
        for s in socks:
            reset_close(s)


# --- wire-level generators ---------------------------------------------------------------------

def random_bytes(r: random.Random) -> bytes:
    head = r.choice([b"", b"\xff", SIGNATURE[:r.randint(1, 9)], b"GET / HTTP/1.1\r\n"])
    return head + r.randbytes(r.randint(1, 2000))


def bad_greeting(r: random.Random) -> bytes:
    g = greeting()
    roll = r.randrange(8)
    if roll == 0:
        return g[: r.randint(1, 63)]  # truncated
    if roll == 1:
        return SIGNATURE + r.randbytes(r.randint(1, 200))  # valid signature, then garbage
    if roll == 2:
        return greeting(major=r.randint(0, 255), minor=r.randint(0, 255))
    if roll == 3:
        mechanism = r.choice([b"CURVE", b"PLAIN", b"GSSAPI", r.randbytes(20), b""])
        return greeting(mechanism=mechanism, as_server=r.randint(0, 255))
    if roll == 4:  # a READY with a garbled or lying property list
        body = b"\x05READY" + r.randbytes(r.randint(0, 300))
        return g + zframe(body, command=True)
    if roll == 5:  # READY claiming a 4 GiB property value
        return g + zframe(b"\x05READY\x0bSocket-Type\xff\xff\xff\xffDEALER", command=True)
    if roll == 6:  # unknown command, or a message before READY
        return g + zframe(bytes([r.randint(0, 255)]) + r.randbytes(r.randint(0, 100)), command=r.random() < 0.5)
    return g + ready(r.choice([b"PUB", b"ROUTER", b"", r.randbytes(r.randint(1, 40))]))  # wrong or no socket type


def huge_frame(r: random.Random) -> bytes:
    roll = r.randrange(6)
    if roll == 0:  # a command declaring 2^62 bytes during the handshake
        return greeting() + zframe(r.randbytes(16), command=True, declared=2**62)
    if roll == 1:  # after the handshake, a message frame declaring 2^62 bytes
        return HELLO_DONE + zframe(r.randbytes(r.randint(0, 4000)), declared=2**62)
    if roll == 2:  # sizes with the top bit set
        return HELLO_DONE + zframe(b"x" * 64, declared=r.choice([2**63, 2**64 - 1, 2**63 + 5]))
    if roll == 3:  # 200 MB declared: over the hard limit (2 x 64 MiB)
        return HELLO_DONE + zframe(r.randbytes(1000), more=r.random() < 0.5, declared=200_000_000)
    if roll == 4:  # 1 MB declared, a few KB sent, then the peer vanishes
        return HELLO_DONE + zframe(r.randbytes(r.randint(1, 8000)), declared=1_000_000)
    return HELLO_DONE + zframe(b"", declared=r.randint(256, 2**32))  # long form, nothing follows


def endless_multipart(r: random.Random, frames: int) -> bytes:
    """A message whose frames all say `more`: it never ends."""
    return HELLO_DONE + b"".join(zframe(r.randbytes(r.randint(0, 8)), more=True) for _ in range(frames))


def reset_storm(addr: tuple[str, int], n: int, r: random.Random, tally: Tally) -> None:
    """Connects and resets at once, `n` times, some after a few bytes of a greeting."""
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(addr)
        if r.random() < 0.3:
            try:
                s.send(greeting()[: r.randint(1, 64)])
            except OSError:
                pass
        reset_close(s)
        tally.add("connect+reset")


def silent_peers(addr: tuple[str, int], n: int, r: random.Random, tally: Tally, meanwhile: Callable[[], None]) -> None:
    """Opens `n` connections that stop talking (nothing, half a greeting, or a finished
    handshake), runs `meanwhile` while they hang, then drops them (half FIN, half RST)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(addr, timeout=5)
            socks.append(s)
            s.sendall(r.choice([b"", SIGNATURE, greeting()[:40], HELLO_DONE]))
            tally.add("silent peer")
        meanwhile()
        time.sleep(0.5)
    finally:
        for s in socks:
            if r.random() < 0.5:
                reset_close(s)
            else:
                s.close()


# --- protocol-level generators -----------------------------------------------------------------

def random_value(r: random.Random, depth: int = 0) -> Any:
    roll = r.randrange(13 if depth < 4 else 8)
    if roll == 0:
        return None
    if roll == 1:
        return r.random() < 0.5
    if roll == 2:
        return r.choice([0, -1, 2**53 + 1, -(2**63), 2**64 - 1, r.randint(-(2**31), 2**32)])
    if roll == 3:
        return r.choice([float("nan"), float("inf"), -0.0, 1e308, r.uniform(-1e9, 1e9)])
    if roll == 4:
        return "".join(chr(r.randint(32, 0x2FFF)) for _ in range(r.randint(0, 40)))
    if roll == 5:
        return r.randbytes(r.randint(0, 3000))
    if roll == 6:
        return msgpack.ExtType(r.randint(0, 127), r.randbytes(r.randint(0, 40)))
    if roll == 7:
        return "Z" * r.randint(5000, 200_000)
    if roll in (8, 9):
        return [random_value(r, depth + 1) for _ in range(r.randint(0, 8))]
    if roll == 10:
        return [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
    # maps, with keys of any type (arrays become tuples to stay hashable here)
    kinds = [r.randint(-5, 5), "type", "id", "session", b"k", (1, 2), None, 1.5]
    keys = [r.choice(kinds) for _ in range(r.randint(0, 6))]
    return {k: random_value(r, depth + 1) for k in keys}


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def templates(session: str) -> list[dict[str, Any]]:
    run = run_meta(m=2, d=2, name="fuzz")
    blocks = {"data": np.zeros(8).tobytes(), "dtype": "f64", "shape": [2, 2, 2]}
    return [
        {"type": "hello", "protocol": 2, "client": "fuzz", "run": run, "capabilities": ["random"], "secret": "s" * 32},
        {"type": "round", "session": session, "step": 1, "epoch": 0, "lr": 0.1, "batch_size": 2, "n": 10, "momentum": 0,
         "basis": 0, "budget": {"hvps": 10}, "options": {"tol": 0.01, "bootstrap": 10, "batch_grid": [1, 2]}},
        {"type": "result", "session": session, "seq": 0, "op": "reset", "basis": 0, "hvps": 0, "wall_ms": 0},
        {"type": "result", "session": session, "seq": 2, "op": "blocks", "basis": 2, "hvps": 4, "wall_ms": 0,
         "blocks": blocks},
        {"type": "heartbeat", "session": session},
        {"type": "error", "session": session, "code": "oracle_failed", "message": "x", "seq": 0},
    ]


def string_paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Every place in `value` holding a string (map values and list items), as key paths."""
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in string_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in string_paths(v, (*path, i))]
    return []


def replaced(msg: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    out = dict(msg) if isinstance(msg, dict) else list(msg)
    out[path[0]] = replaced(msg[path[0]], path[1:], new)
    return out


def oversized_strings(session: str) -> list[dict[str, Any]]:
    """Each string field of each template, and each map key, set to 5 KB, 100 KB and 1 MB."""
    out = []
    for t in templates(session):
        for size in (5_000, 100_000, 1_000_000):
            out += [replaced(t, p, "Y" * size) for p in string_paths(t)]
            out.append({**t, "W" * size: 1})
    return out


def mutated(r: random.Random, session: str, msg_id: int) -> bytes:
    """A template with one field replaced, deleted or added (possibly one level down), or its
    encoding cut, flipped or given a lying length prefix."""
    t = {"id": msg_id, **r.choice(templates(session))}
    roll = r.random()
    if roll < 0.15:
        raw = bytearray(pack(t))
        for _ in range(r.randint(1, 8)):
            raw[r.randrange(len(raw))] = r.randint(0, 255)
        return bytes(raw)
    if roll < 0.22:
        raw = pack(t)
        return raw[: r.randrange(len(raw))] or b"\xc1"
    if roll < 0.27:  # str32 / bin32 / array32 / map32 declaring 4 G items, with little behind it
        return r.choice([b"\xdb", b"\xc6", b"\xdd", b"\xdf"]) + b"\xff\xff\xff\xff" + r.randbytes(r.randint(0, 64))
    key = r.choice(list(t))
    if roll < 0.35:
        del t[key]
    elif roll < 0.45:
        t[f"extra_{r.randint(0, 9)}"] = random_value(r)
    elif roll < 0.6 and isinstance(t[key], dict) and t[key]:
        t[key] = {**t[key], r.choice(list(t[key])): random_value(r)}
    else:
        t[key] = random_value(r)
    return pack(t)


class Fuzzer:
    """A pyzmq DEALER with its own session: each input must get one answer within 10 s."""

    def __init__(self, ctx: zmq.Context, endpoint: str, tally: Tally) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(endpoint)
        self.tally = tally
        self.next_id = 1
        ans = self.ask_raw(pack({"id": 1, "type": "hello", "protocol": 2, "client": "fuzz", "run": run_meta(m=2, d=2),
                                 "capabilities": []}), count=False)
        assert ans["type"] == "welcome", ans
        self.session = ans["session"]

    def ask_raw(self, frame: bytes | list[bytes], kind: str = "", count: bool = True) -> dict[str, Any]:
        if isinstance(frame, list):
            self.sock.send_multipart(frame)
        else:
            self.sock.send(frame)
        assert self.sock.poll(10_000), f"no answer within 10 s to a {kind} input"
        reply = self.sock.recv()
        if count:
            self.tally.add(kind)
            self.tally.reply(len(reply), kind)
        ans = msgpack.unpackb(reply, raw=False, strict_map_key=False)
        if count and ans.get("type") == "welcome":
            # a mutant that is still a valid hello opened a session: held state, not garbage, so
            # close it as a client would (else 256 idle sessions stay for 10 min and count as RSS)
            self.tally.opened += 1
            self.sock.send(pack({"id": 0, "type": "bye", "session": ans["session"]}))
            assert self.sock.poll(10_000), "no answer to bye"
            self.sock.recv()
        if ans.get("type") == "error":
            self.tally.codes[ans["code"]] = self.tally.codes.get(ans["code"], 0) + 1
        return ans

    def ask(self, msg: dict[str, Any], kind: str) -> dict[str, Any]:
        self.next_id += 1
        return self.ask_raw(pack({"id": self.next_id, **msg}), kind)

    def close(self) -> None:
        self.sock.close(linger=0)


def test_fuzz_wire_and_protocol_levels(tmp_path):
    proc = stub_sidecar("--log-level", "info", "--sessions-per-minute", "1000000", "--no-dashboard",
                        "--data-dir", str(tmp_path))
    ctx = zmq.Context()
    r = random.Random(SEED)
    tally = Tally()
    rounds = 0
    good: SidecarClient | None = None
    try:
        pid = proc.pid
        assert pid is not None
        host, port = proc.endpoint.removeprefix("tcp://").rsplit(":", 1)
        assert host == "127.0.0.1"
        addr = (host, int(port))
        good = SidecarClient(proc.endpoint, timeout=10)
        good.open_session(run_meta(name="legit"))

        def legit_round() -> None:
            """A well-behaved client completes a round, with the right λ, after every batch."""
            nonlocal rounds
            oracle = FakeOracle(seed=rounds)
            report = good.run_round(oracle, step=rounds, epoch=0, lr=0.1, batch_size=8, n=100)
            assert report["lambda_max"] == pytest.approx(oracle.expected_lambda()), report
            rounds += 1
            assert proc.alive(), f"the sidecar exited ({proc.returncode}):\n{proc.log_tail()}"

        fuzzer = Fuzzer(ctx, proc.endpoint, tally)
        big = oversized_strings(fuzzer.session)
        # each phase is a list of batches; a legit round follows every batch
        phases: list[list[Callable[[], Any]]] = [
            # wire level: raw TCP to the libzmq ROUTER
            [lambda: reset_storm(addr, 1000, r, tally)] * 12,
            [lambda: tcp_batch(addr, [random_bytes(r) for _ in range(100)], tally, "random bytes")] * 30,
            [lambda: tcp_batch(addr, [bad_greeting(r) for _ in range(100)], tally, "bad greeting")] * 30,
            [lambda: tcp_batch(addr, [huge_frame(r) for _ in range(100)], tally, "huge declared frame")] * 10,
            [lambda: tcp_batch(addr, [endless_multipart(r, 10_000) for _ in range(5)], tally, "endless multipart")] * 4,
            [lambda: silent_peers(addr, 100, r, tally, legit_round)] * 4,
            # a pyzmq DEALER sending complete messages of many frames: each answered, briefly
            [lambda: [fuzzer.ask_raw([r.randbytes(r.randint(0, 20)) for _ in range(r.randint(2, 2000))], "multipart")
                      for _ in range(50)]] * 4,
            # protocol level: the same DEALER, with a session of its own
            [lambda i=i: [fuzzer.ask(m, "oversized string") for m in big[i : i + 25]] for i in range(0, len(big), 25)],
            [lambda: [fuzzer.ask_raw(pack(random_value(r)), "random MessagePack") for _ in range(1000)]] * 6,
            [lambda: [fuzzer.ask_raw(mutated(r, fuzzer.session, 10**6 + k), "mutated message")
                      for k in range(1000)]] * 25,
        ]
        # warm-up: legit rounds, and one batch of every phase, so that the code paths the fuzz
        # takes are compiled (JIT code and its feedback are kept, not garbage) before RSS is read
        for _ in range(20):
            legit_round()
        for batches in phases:
            batches[0]()
            legit_round()
        warm_up = tally.total
        tally.counts.clear()
        time.sleep(3)  # past the sidecar's quiet-period collection (transport/idle_gc.ts)
        start = rss_kib(pid)
        t0 = time.monotonic()
        peak = start
        for batches in phases:
            for run in batches:
                run()
                peak = max(peak, rss_kib(pid))
                legit_round()
        fuzz_s = time.monotonic() - t0

        assert proc.alive(), f"the sidecar exited ({proc.returncode}):\n{proc.log_tail()}"
        assert "internal" not in tally.codes, f"client input answered `internal` {tally.codes['internal']} times"
        fuzzer.close()
        time.sleep(3)  # the quiet period after which the sidecar collects (transport/idle_gc.ts)
        after = rss_kib(pid)
        deadline = time.monotonic() + 10  # idle connections, pipes and V8 garbage go
        while after > 1.2 * start and time.monotonic() < deadline:
            time.sleep(0.5)
            after = rss_kib(pid)
        lines = proc.log_path.read_bytes().splitlines()
        longest = max(len(line) for line in lines)
        print(f"\nfuzz: {tally.total} malformed inputs (after {warm_up} in the warm-up) in {fuzz_s:.0f} s, "
              f"{rounds} legit rounds; "
              f"largest reply {tally.largest} B; log {len(lines)} lines, longest {longest} B; "
              f"{tally.opened} sessions opened and closed; "
              f"RSS start {start} KiB, peak {peak} KiB, after {after} KiB ({after / start:.2f}x)\n"
              f"  inputs {tally.counts}\n  error codes {tally.codes}\n  log events {log_events(lines)}")
        assert tally.total >= 50_000, tally.counts
        assert longest <= LIMIT, f"a log line of {longest} bytes"
        assert proc.alive(), f"the sidecar exited ({proc.returncode}):\n{proc.log_tail()}"
        assert after <= 1.2 * start, f"RSS {after} KiB after the fuzz, {start} KiB before (peak {peak} KiB)"
    finally:
        if good is not None:
            good.close()
        ctx.destroy(linger=0)
        proc.stop()
