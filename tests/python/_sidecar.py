"""A real sidecar process for live tests: started on a free port, killable, restartable."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from edgewise._sidecar_process import sidecar_env

ROOT = Path(__file__).resolve().parents[2]


def process_gone(pid: int, within: float) -> bool:
    """Whether process ``pid`` no longer exists, checked until ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SidecarProcess:
    """`tools/deno run -A sidecar/main.ts` on a fixed endpoint, for kill / restart tests."""

    def __init__(self, endpoint: str | None = None, *extra: str, data_dir: str | None = None) -> None:
        self.endpoint = endpoint or f"tcp://127.0.0.1:{free_port()}"
        self.extra = list(extra)
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "SidecarProcess":
        cmd = [str(ROOT / "tools" / "deno"), "run", "-A", str(ROOT / "sidecar" / "main.ts"),
               "--endpoint", self.endpoint, *self.extra]
        if self.data_dir is not None:
            cmd += ["--data-dir", self.data_dir]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, start_new_session=True, env=sidecar_env())
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"sidecar exited with {self.proc.wait()} before listening: {cmd}")
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "listening":
                return self
        raise TimeoutError(f"sidecar did not listen within {timeout} s")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no goodbye, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
