"""Spawning and stopping a local sidecar process (``tools/deno run -A sidecar/main.ts``).

The sidecar's stderr (JSON-lines logs) goes to a log file, never to the training console;
``SidecarProcess.log_path`` says where. The process is stopped on :meth:`SidecarProcess.stop`
and at interpreter exit (SIGTERM, then SIGKILL).

Example:
    >>> from edgewise._sidecar_process import find_root
    >>> (find_root() / "deno.json").is_file()
    True
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import SidecarStartError


def find_root() -> Path:
    """The repository root: ``$EDGEWISE_ROOT``, else the nearest ancestor of this file with
    ``deno.json`` and ``tools/deno``.

    Raises:
        SidecarStartError: no such directory.
    """
    env = os.environ.get("EDGEWISE_ROOT")
    if env:
        root = Path(env)
        if not (root / "tools" / "deno").exists():
            raise SidecarStartError(f"EDGEWISE_ROOT={env} has no tools/deno")
        return root
    for d in Path(__file__).resolve().parents:
        if (d / "deno.json").is_file() and (d / "tools" / "deno").exists():
            return d
    raise SidecarStartError(
        f"cannot find the Edgewise repository (deno.json and tools/deno) above {__file__}; set EDGEWISE_ROOT"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_free(host: str, port: str) -> bool:
    """Whether ``host:port`` can be bound right now."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, int(port)))
        return True
    except (OSError, ValueError):
        return False


class SidecarProcess:
    """A sidecar child process bound to ``endpoint``.

    Args:
        endpoint: where to bind; default ``tcp://127.0.0.1:<free port>``.
        extra_args: more command-line arguments for ``sidecar/main.ts`` (e.g. ``["--runner", "stub"]``).
        start_timeout: seconds to wait for the ``listening`` line.
        log_path: file for the sidecar's stderr; default a new temporary file.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        extra_args: Sequence[str] = (),
        start_timeout: float = 60.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.root = find_root()
        self.endpoint = endpoint or f"tcp://127.0.0.1:{free_port()}"
        self.command = [str(self.root / "tools" / "deno"), "run", "-A", "sidecar/main.ts", "--endpoint", self.endpoint, *extra_args]
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="edgewise-sidecar-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._last_returncode: int | None = None

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        """The exit status once the child exited (negative: killed by that signal)."""
        return self._proc.returncode if self._proc is not None else self._last_returncode

    def restart(self) -> SidecarProcess:
        """Reaps an exited child and starts a new one, on the same endpoint when it is free,
        else on a new free port (``endpoint`` then changes).

        Raises:
            SidecarStartError: the new child did not start.
        """
        self.stop()
        host_port = self.endpoint.rsplit(":", 1)
        if self.endpoint.startswith("tcp://") and len(host_port) == 2 and not _port_free(host_port[0][6:], host_port[1]):
            self.endpoint = f"tcp://127.0.0.1:{free_port()}"
            self.command[self.command.index("--endpoint") + 1] = self.endpoint
        return self.start()

    def alive(self) -> bool:
        """Whether the child is running."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> SidecarProcess:
        """Starts the child and waits until it says it is listening.

        Raises:
            SidecarStartError: it exited, or said nothing within ``start_timeout``; the message
                names the command and ends with the tail of its log.
        """
        if self.alive():
            return self
        log = open(self.log_path, "ab")
        try:
            self._proc = subprocess.Popen(
                self.command, cwd=self.root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                start_new_session=True,  # Ctrl-C in the training console is for the trainer
            )
        except OSError as exc:
            raise SidecarStartError(f"cannot run {' '.join(self.command)}: {exc}") from exc
        finally:
            log.close()
        atexit.register(self.stop)
        line = self._wait_listening()
        if line is None:
            rc = self._proc.poll()
            self.stop()
            why = f"it exited with status {rc}" if rc is not None else f"no 'listening' line within {self.start_timeout:.0f} s"
            raise SidecarStartError(f"sidecar did not start ({why}): {' '.join(self.command)}\n{self.log_tail()}")
        self.endpoint = line.get("endpoint", self.endpoint)
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _wait_listening(self) -> dict | None:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    break
                chunk = os.read(self._proc.stdout.fileno(), 4096)
                if not chunk:
                    return None
                buf += chunk
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    try:
                        msg = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(msg, dict) and msg.get("event") == "listening":
                        return msg
        return None

    def _drain(self) -> None:
        """Copies anything else the child prints on stdout into the log."""
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        try:
            with open(self.log_path, "ab") as log:
                for chunk in iter(lambda: proc.stdout.read1(4096), b""):  # type: ignore[union-attr]
                    log.write(chunk)
        except (OSError, ValueError):
            pass

    def log_tail(self, n: int = 20) -> str:
        """The last ``n`` lines of the sidecar's log."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:]) or "(log is empty)"

    def kill(self) -> None:
        """SIGKILL at once (tests simulate a crash with it)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; idempotent."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is None:
            return
        self._last_returncode = proc.poll()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            try:
                proc.stdout.close()
            except OSError:
                pass

    def __enter__(self) -> SidecarProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
