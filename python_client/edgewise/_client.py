"""The client end of the protocol: one DEALER socket to a sidecar, one session per run.

Every call sends one message and waits for its answer with the client's timeout (SPEC §1,
§7); a missing answer raises :class:`~edgewise.errors.SidecarTimeout`, after which the socket
is closed and reopened and the next call says ``hello`` again by itself. Not thread-safe: use
one client per thread.

Example (needs Deno; spawns a local sidecar)::

    with SidecarClient() as client:
        client.open_session(run)
        report = client.run_round(oracle, step=100, epoch=1, lr=0.1, batch_size=64, n=60000)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import _protocol as proto
from ._codec import decode, encode
from ._curve import KeySource, apply_client_curve
from ._sidecar_process import SidecarProcess
from .errors import (
    BadState,
    EdgewiseError,
    OracleFailed,
    ProtocolError,
    SidecarDied,
    SidecarTimeout,
    TooLarge,
    UnknownSession,
)

CLIENT_NAME = "edgewise-py/0.1.0"
#: Soft size limit assumed before the sidecar announces its own (SPEC §7 default).
DEFAULT_MAX_MESSAGE_BYTES = 64 * 2**20
#: How long ``close()`` waits for the answer to ``bye``.
BYE_TIMEOUT = 0.5
#: While waiting for an answer during a round, a heartbeat goes out this often (seconds).
PROBE_INTERVAL = 1.0
#: How often a spawned sidecar's process is checked while waiting (seconds).
PROCESS_CHECK = 0.1
#: Longest pause between two restarts of a spawned sidecar that keeps dying (seconds).
REVIVE_BACKOFF_CAP = 60.0
#: How long a ``hello`` after a silence waits when the sidecar announced no liveness window
#: (it never answered, or runs rounds on its event loop): seconds.
SILENT_HELLO_TIMEOUT = 5.0


class Oracle(Protocol):
    """What :meth:`SidecarClient.run_round` needs: SPEC §4 ops by name, and the basis size."""

    @property
    def basis_size(self) -> int: ...

    def execute(self, op: str, args: dict[str, Any]) -> dict[str, Any]: ...


class SidecarClient:
    """A connection to a sidecar.

    Args:
        endpoint: ``tcp://host:port`` or ``ipc://path`` of a running sidecar; ``None`` spawns a
            local one on a free port (stopped on :meth:`close` and at exit).
        timeout: seconds to wait for each answer.
        spawn: force spawning (``True``) or not (``False``); default: spawn when no endpoint.
        sidecar_args: extra arguments for a spawned sidecar (e.g. ``["--runner", "stub"]``).
        server_key: the CURVE public key of a sidecar started with ``--curve-keys`` (Z85 text,
            or its ``server.key`` file); needs ``client_keys``.
        client_keys: this client's CURVE key pair: a ``NAME.key_secret`` file from
            ``python -m edgewise keys``, or a Z85 ``(public, secret)`` pair.
        liveness: while a round waits for an answer, heartbeats go out every second; a sidecar
            that answers nothing at all for this many seconds is taken as gone
            (:class:`SidecarTimeout` at once instead of after ``timeout``); None disables it;
            ``"auto"`` (default) uses the sidecar's ``limits.liveness_ms``, which a sidecar
            announces only when it answers heartbeats during rounds (rounds in workers).
        patience: seconds a round's answer may take while the sidecar keeps echoing those
            heartbeats (alive, computing in a worker: an ``exact`` solve of a large span can
            compute for minutes between two ops); ``timeout`` then bounds only its silence
            (SPEC §7). None (default): ``timeout`` bounds every answer. Needs liveness probing.

    A spawned sidecar that exits is noticed within 0.1 s of any wait (:class:`SidecarDied`),
    reaped, and restarted by :meth:`revive`; the session secret from ``welcome`` then resumes
    the run and its history.

    Raises:
        SidecarStartError: a local sidecar could not be started.
        ValueError: only one of ``server_key`` and ``client_keys``.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        timeout: float = 30.0,
        spawn: bool | None = None,
        sidecar_args: Sequence[str] = (),
        server_key: KeySource | None = None,
        client_keys: KeySource | tuple[KeySource, KeySource] | None = None,
        liveness: float | str | None = "auto",
        patience: float | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"expected timeout > 0, got {timeout}")
        if patience is not None and not patience > 0:
            raise ValueError(f"expected patience > 0 or None, got {patience}")
        if (server_key is None) != (client_keys is None):
            raise ValueError("expected both server_key and client_keys for CURVE, or neither")
        self._curve = (server_key, client_keys) if server_key is not None else None
        self.timeout = float(timeout)
        self.process: SidecarProcess | None = None
        if spawn if spawn is not None else endpoint is None:
            self.process = SidecarProcess(endpoint, extra_args=sidecar_args).start()
            endpoint = self.process.endpoint
        if endpoint is None:
            raise ValueError("expected an endpoint when spawn=False")
        self.endpoint: str = endpoint
        self.dashboard_url: str | None = None
        self.limits: dict[str, Any] = {}
        self.session: str | None = None
        self.secret: str | None = None
        self.liveness = liveness
        self.patience = None if patience is None else float(patience)
        self.revivals = 0
        self._revive_after = 0.0
        self._run: dict[str, Any] | None = None
        self._next_id = 0
        self._ctx = zmq.Context()
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._closed = False
        self._last_answer = time.monotonic()
        self._silent = False  # the last request went unanswered (see _hello_timeout)
        self._probes: set[int] = set()
        self._open_socket()

    # ---- socket ------------------------------------------------------------------------

    def _open_socket(self) -> None:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        # ZMTP heartbeats (SPEC §7): a dead peer or half-open TCP connection is noticed and redialled
        sock.setsockopt(zmq.HEARTBEAT_IVL, 5000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
        if self._curve is not None:
            apply_client_curve(sock, *self._curve)
        # handshake failures say why a sidecar never answers (see _refusal)
        self._monitor = sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        sock.connect(self.endpoint)
        self._sock = sock

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.disable_monitor()
            self._sock.close(linger=0)
        if self._monitor is not None:
            self._monitor.close(linger=0)
        self._sock = self._monitor = None

    def _refusal(self) -> str:
        """Why the handshake failed, if the socket monitor saw it; else ''."""
        why = ""
        while self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                why = "; the sidecar refused this client's CURVE key (add its public key to the sidecar's clients/ folder)"
            elif event in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL) and not why:
                # a mechanism mismatch shows as either, depending on which side closes first
                why = ("; the handshake failed: the sidecar and this client probably disagree on security "
                       "(a sidecar with --curve-keys needs server_key= and client_keys=, and the right server key)")
        return why

    @property
    def run_id(self) -> str | None:
        """The run id the sidecar records this client's reports under (after ``welcome``)."""
        return None if self._run is None else self._run["id"]

    def _reset_socket(self) -> None:
        """Drops the connection and any answer in flight; the next call says hello again."""
        self._probes = set()
        self._close_socket()
        self.session = None
        if not self._closed:
            self._open_socket()

    def _request(self, msg: dict[str, Any], timeout: float | None = None, patience: float | None = None) -> dict[str, Any]:
        """Sends ``msg`` (its ``id`` is set here) and returns the checked answer.

        With ``patience`` (round messages) and liveness probing, the wait goes on past
        ``timeout`` while the sidecar echoes heartbeats, up to ``patience`` seconds in all:
        ``timeout`` then bounds the sidecar's silence, not its compute time.

        Raises:
            TooLarge: the message is over the soft limit (nothing was sent).
            SidecarTimeout: no answer within the timeout (the socket was reset).
            ProtocolError: the sidecar answered ``error`` (mapped by code).
        """
        if self._closed:
            raise EdgewiseError("the client is closed")
        timeout = self.timeout if timeout is None else timeout
        self._next_id += 1
        msg["id"] = msg_id = self._next_id
        frame = encode(msg)
        limit = int(self.limits.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES))
        if len(frame) > limit:
            raise TooLarge(f"cannot send {msg['type']} of {len(frame)} bytes: over max_message_bytes {limit}")
        assert self._sock is not None
        deadline = time.monotonic() + timeout
        if not self._sock.poll(int(timeout * 1000), zmq.POLLOUT):
            self._timed_out(msg, timeout)
        self._sock.send(frame, copy=len(frame) < 65536)
        liveness = self._liveness()
        probing = liveness is not None and self.session is not None and msg["type"] not in ("hello", "bye", "heartbeat")
        heard = sent = time.monotonic()
        next_probe = heard + PROBE_INTERVAL
        keep_alive = probing and patience is not None and patience > timeout
        while True:
            now = time.monotonic()
            self._check_process(msg)
            if keep_alive:  # alive and computing: the timeout counts silence (from the last echo), patience the wait
                deadline = min(sent + patience, max(sent + timeout, heard + timeout + PROBE_INTERVAL))  # type: ignore[operator]
            if now >= deadline:
                self._timed_out(msg, timeout if not keep_alive else round(now - sent, 1))
            if probing:
                if now - heard > liveness:  # type: ignore[operator]
                    self._reset_socket()
                    self._silent = True
                    raise SidecarTimeout(f"the sidecar at {self.endpoint} stopped answering (no answer and no heartbeat for {liveness:g} s) during {msg['type']}")
                if now >= next_probe:
                    self._probe()
                    next_probe = now + PROBE_INTERVAL
            wait = deadline - now
            if probing:
                wait = min(wait, max(0.0, next_probe - now))
            if self.process is not None:
                wait = min(wait, PROCESS_CHECK)
            if not self._sock.poll(max(1, int(wait * 1000)), zmq.POLLIN):
                continue
            answer = decode(self._sock.recv(copy=True))
            heard = time.monotonic()
            re = proto.answer_re(answer)
            if re is None and not (isinstance(answer, dict) and answer.get("type") == "error"):
                continue  # not an answer to anything we can place
            if re is not None and re != msg_id:
                if re in self._probes:
                    self._probes.discard(re)
                    proto.check_answer(answer)  # an error to a heartbeat (e.g. session lost) ends the wait
                continue  # stale answer to a request we gave up on
            self._last_answer = time.monotonic()
            self._silent = False
            return proto.check_answer(answer)

    def _liveness(self) -> float | None:
        """Seconds of silence during a round after which the sidecar is taken as gone."""
        if self.liveness == "auto":
            ms = self.limits.get("liveness_ms")
            return float(ms) / 1000.0 if isinstance(ms, (int, float)) and ms > 0 else None
        return None if self.liveness is None else float(self.liveness)

    def _probe(self) -> None:
        """Sends a heartbeat while waiting: its echo shows the sidecar is alive."""
        self._next_id += 1
        self._probes.add(self._next_id)
        assert self._sock is not None and self.session is not None
        self._sock.send(encode(proto.simple("heartbeat", self._next_id, self.session)))

    def _check_process(self, msg: Mapping[str, Any]) -> None:
        """Raises :class:`SidecarDied` (after reaping it) when the spawned sidecar exited."""
        if self.process is None or self.process.alive():
            return
        code = self.process.returncode
        self._reset_socket()
        raise SidecarDied(f"the sidecar process exited (status {code}) while waiting for the answer to {msg['type']}")

    def revive(self) -> bool:
        """Restarts a spawned sidecar that exited; True when a new one is listening.

        Restarts back off (1, 2, 4, ... up to 60 s between tries); the next call says
        ``hello`` with the session secret, so the run and its history continue.

        Raises:
            SidecarStartError: the new process did not start.
        """
        if self.process is None or self._closed or self.process.alive():
            return False
        now = time.monotonic()
        if now < self._revive_after:
            return False
        self._revive_after = now + min(2.0**self.revivals, REVIVE_BACKOFF_CAP)
        self.revivals += 1
        self.process.restart()
        self.endpoint = self.process.endpoint
        self._reset_socket()
        self._silent = False  # a new process: its first hello gets the whole timeout
        return True

    def _timed_out(self, msg: Mapping[str, Any], timeout: float) -> None:
        why = self._refusal()
        self._reset_socket()
        self._silent = True
        raise SidecarTimeout(f"no answer from the sidecar at {self.endpoint} to {msg['type']} within {timeout:g} s{why}")

    # ---- session -----------------------------------------------------------------------

    def open_session(self, run: Mapping[str, Any]) -> str:
        """Says hello for a training run and returns the session id.

        Args:
            run: SPEC §3 run metadata: id, name, params, probe, n, batch_size, curvature,
                dtype, optional model.

        Raises:
            ValueError: a bad ``run`` map.
            VersionMismatch: the sidecar speaks another protocol version (not retried).
            SidecarTimeout: no answer.
        """
        proto.hello(0, CLIENT_NAME, run)  # validate before keeping it
        self._run = dict(run)
        return self._hello()

    def _hello(self) -> str:
        if self._run is None:
            raise EdgewiseError("call open_session(run) before talking to the sidecar")
        ans = self._request(proto.hello(0, CLIENT_NAME, self._run, self.secret), timeout=self._hello_timeout())
        if ans["type"] != "welcome":
            raise BadState(f"expected welcome in answer to hello, got {ans['type']}")
        if isinstance(ans.get("secret"), str):
            self.secret = ans["secret"]
        if isinstance(ans.get("run"), str) and ans["run"] != self._run["id"]:
            self._run["id"] = ans["run"]  # the id was taken by another client: ours is a new run
        self.session = ans["session"]
        self.limits = dict(ans["limits"])
        self.dashboard_url = ans.get("dashboard") if isinstance(ans.get("dashboard"), str) else None
        return self.session

    def _hello_timeout(self) -> float | None:
        """After the sidecar went silent, a ``hello`` waits only its liveness window, or
        :data:`SILENT_HELLO_TIMEOUT` without one (a live sidecar answers hello from its event
        loop at once); else the client's timeout. Without this a blocking training loop waited
        the whole timeout at every retry of a dead or mistyped remote sidecar (30 s each,
        measured on the main example)."""
        if not self._silent:
            return None
        liveness = self._liveness()
        return min(self.timeout, liveness if liveness is not None else SILENT_HELLO_TIMEOUT)

    def _with_session(self, call: Any) -> Any:
        """Runs ``call()`` with a session, saying hello first if needed, and once more on
        ``unknown_session`` (sidecar restarted or session expired)."""
        if self.session is None:
            self._hello()
        try:
            return call()
        except UnknownSession:
            self.session = None
            self._hello()
            return call()

    def heartbeat(self) -> float:
        """Sends ``heartbeat``; returns the round-trip time in seconds.

        Raises:
            SidecarTimeout: no answer.
        """
        def call() -> float:
            t0 = time.perf_counter()
            ans = self._request(proto.simple("heartbeat", 0, self._sid()))
            if ans["type"] != "heartbeat":
                raise BadState(f"expected heartbeat echo, got {ans['type']}")
            return time.perf_counter() - t0

        return self._with_session(call)

    def maybe_heartbeat(self) -> bool:
        """Sends ``heartbeat`` if nothing was heard for ``limits.heartbeat_ms`` (SPEC §7);
        returns whether it did. Call it from the training loop between rounds.

        Raises:
            SidecarTimeout: no answer.
        """
        if self.session is None or self._closed:
            return False
        idle_ms = (time.monotonic() - self._last_answer) * 1000.0
        if idle_ms < float(self.limits.get("heartbeat_ms", 5000)):
            return False
        self.heartbeat()
        return True

    def _sid(self) -> str:
        assert self.session is not None
        return self.session

    # ---- rounds ------------------------------------------------------------------------

    def run_round(
        self,
        oracle: Oracle,
        *,
        step: int,
        epoch: int,
        lr: float,
        batch_size: int,
        n: int,
        momentum: float = 0.0,
        budget_hvps: float | None = None,
        budget_seconds: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Runs one round: executes the sidecar's ops on ``oracle`` until it reports.

        Args:
            oracle: executes SPEC §4 ops (``execute(op, args) -> dict`` with numpy arrays,
                numbers, ``basis`` and ``hvps``) and knows its ``basis_size``.
            step, epoch, lr, batch_size, n, momentum: the training state (SPEC §3 ``round``).
            budget_hvps, budget_seconds: optional budget; options: SPEC §3 ``round.options``.

        Returns:
            The report map (SPEC §5).

        Raises:
            OracleFailed: ``oracle.execute`` raised (chained to its exception).
            NonFinite: the oracle returned NaN/Inf (nothing non-finite is sent).
            SidecarTimeout: the sidecar did not answer in time.
            ProtocolError: any other error the sidecar answered.
        """
        def call() -> dict[str, Any]:
            msg = proto.round_request(
                0, self._sid(), step=int(step), epoch=int(epoch), lr=float(lr), batch_size=int(batch_size),
                n=int(n), momentum=float(momentum), basis=int(oracle.basis_size), budget_hvps=budget_hvps,
                budget_seconds=budget_seconds, options=options,
            )
            return self._drive(oracle, self._request(msg, patience=self.patience))

        return self._with_session(call)

    def _drive(self, oracle: Oracle, ans: dict[str, Any]) -> dict[str, Any]:
        while True:
            kind = ans["type"]
            if kind == "report":
                return ans["report"]
            if kind != "op":
                raise BadState(f"expected op or report during a round, got {kind}")
            seq, op = ans["seq"], ans["op"]
            try:
                args = proto.decode_args(ans["args"])
            except ProtocolError as exc:
                self._tell_error(exc.code, f"cannot read args of {op}: {exc.message}", seq)
                raise
            t0 = time.perf_counter()
            try:
                out = oracle.execute(op, args)
            except Exception as exc:
                self._tell_error("oracle_failed", f"{type(exc).__name__}: {exc}", seq)
                raise OracleFailed(f"the oracle failed on {op} (seq {seq}): {type(exc).__name__}: {exc}") from exc
            wall_ms = (time.perf_counter() - t0) * 1000.0
            try:
                msg = proto.result(0, self._sid(), seq, op, out, wall_ms)
            except ProtocolError as exc:
                self._tell_error(exc.code, f"result of {op}: {exc.message}", seq)
                raise
            except (TypeError, ValueError) as exc:
                self._tell_error("oracle_failed", f"result of {op}: {exc}", seq)
                raise OracleFailed(f"the oracle returned a bad result for {op}: {exc}") from exc
            try:
                ans = self._request(msg, patience=self.patience)
            except BadState as exc:
                raise self._explain_refused_result(exc, op, seq, wall_ms) from exc

    def _explain_refused_result(self, exc: BadState, op: str, seq: int, wall_ms: float) -> ProtocolError:
        """A result refused after a slow op: the sidecar abandoned the round at its op timeout
        (SPEC §7), which its bare ``bad_state`` does not say."""
        timeout_ms = float(self.limits.get("op_timeout_ms", 60_000))
        if wall_ms < 0.5 * timeout_ms:
            return exc
        return OracleFailed(
            f"the oracle took {wall_ms / 1000:.1f} s on {op} (seq {seq}), too close to or over the sidecar's op "
            f"timeout of {timeout_ms / 1000:.0f} s, so the sidecar abandoned the round; for a model this slow, run "
            "`python -m edgewise sidecar --op-timeout SECONDS` with a longer limit and pass its endpoint (endpoint=...)",
            {"op": op, "seq": seq, "wall_ms": wall_ms})

    def _tell_error(self, code: str, message: str, seq: int) -> None:
        """Tells the sidecar that an op failed (it abandons the round); best effort."""
        try:
            self._request(proto.error(0, self._sid(), code, message, seq), timeout=min(self.timeout, 2.0))
        except ProtocolError:
            pass  # the expected answer is an error that confirms the abandoned round

    # ---- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Says ``bye`` (best effort, short timeout), closes the socket, stops a spawned sidecar."""
        if self._closed:
            return
        try:
            if self.session is not None:
                self._request(proto.simple("bye", 0, self.session), timeout=BYE_TIMEOUT)
        except EdgewiseError:
            pass
        self._closed = True
        self._close_socket()
        self._ctx.term()
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> SidecarClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            if not self._closed and self._sock is not None:
                self._sock.close(linger=0)
        except Exception:
            pass
