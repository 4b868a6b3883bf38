"""Spawning and stopping a local sidecar process (``deno run -A sidecar/main.ts``).

Which sidecar and which Deno: :func:`edgewise._sidecar_location.find_sidecar` (an installed
package's copy, or the repository checkout with ``tools/deno``).

The sidecar's stderr (JSON-lines logs) goes to a log file, never to the training console;
``SidecarProcess.log_path`` says where. The process is stopped on :meth:`SidecarProcess.stop`
and at interpreter exit (SIGTERM, then SIGKILL).

Example:
    >>> proc = SidecarProcess(extra_args=["--runner", "stub"])  # started by .start() or `with`
    >>> proc.command[1:3], proc.alive()
    (['run', '-A'], False)
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

from ._sidecar_location import find_sidecar
from .errors import SidecarStartError


def numpy_openblas() -> str | None:
    """Path of the OpenBLAS that numpy's wheel bundles (``numpy.libs/libscipy_openblas*.so``), if any."""
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy is a dependency
        return None
    libs = Path(numpy.__file__).resolve().parent.parent / "numpy.libs"
    found = sorted(libs.glob("libscipy_openblas*.so*")) if libs.is_dir() else []
    return str(found[0]) if found else None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def pyzmq_libzmq() -> str | None:
    """The libzmq file bundled in this environment's pyzmq wheel, or None (pyzmq built
    against a system libzmq, which the sidecar then finds by itself).

    Wheels keep it in ``pyzmq.libs/`` (Linux, Windows) or ``zmq/.dylibs/`` (macOS).
    """
    import zmq

    pkg = Path(zmq.__file__).resolve().parent
    for folder in (pkg.parent / "pyzmq.libs", pkg / ".dylibs"):
        if folder.is_dir():
            for f in sorted(folder.iterdir()):
                if f.name.startswith("libzmq") and (".so" in f.name or f.suffix in (".dylib", ".dll")):
                    return str(f)
    return None


def sidecar_env() -> dict[str, str]:
    """The environment for a spawned sidecar: ours, plus ``EDGEWISE_PYZMQ_LIB`` naming the
    libzmq this Python already loads (the sidecar's second discovery step, after
    ``--zmq-lib`` / ``EDGEWISE_ZMQ_LIB``), ``OPENBLAS_NUM_THREADS=1`` and ``EDGEWISE_BLAS_LIB``
    pointing at numpy's bundled OpenBLAS unless the user set them (the sidecar's dense kernels
    then run through BLAS; it logs which library it loaded, and falls back to TypeScript
    kernels without one)."""
    env = dict(os.environ)
    lib = pyzmq_libzmq()
    if lib:
        env["EDGEWISE_PYZMQ_LIB"] = lib
    # the sidecar's matrices are small (k ≤ a few hundred): one BLAS thread, which also keeps
    # a threaded OpenBLAS from spinning against the training process for the same cores
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    if not env.get("EDGEWISE_BLAS_LIB"):
        blas = numpy_openblas()
        if blas is not None:
            env["EDGEWISE_BLAS_LIB"] = blas
    return env


def _port_free(host: str, port: str) -> bool:
    """Whether ``host:port`` can be bound right now."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, int(port)))
        return True
    except (OSError, ValueError):
        return False


#: Op timeout (seconds) of a spawned sidecar, whose only client is this process.
SPAWNED_OP_TIMEOUT_S = 3600


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
        self.location = find_sidecar()
        self.root = self.location.root
        self.endpoint = endpoint or f"tcp://127.0.0.1:{free_port()}"
        # the child stops when our end of its stdin closes: when we exit, even by SIGKILL or a crash;
        # so it needs no short op timeout to notice a dead client, and a slow one (a large model on
        # a CPU takes minutes on an op) keeps its rounds; ``extra_args`` may set another
        self.command = self.location.command("--endpoint", self.endpoint, "--exit-on-stdin-eof",
                                             "--op-timeout", str(SPAWNED_OP_TIMEOUT_S), *extra_args)
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
                self.command, cwd=self.location.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                start_new_session=True,  # Ctrl-C in the training console is for the trainer
                env=sidecar_env(),
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
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass

    def __enter__(self) -> SidecarProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
