"""``python -m edgewise``: dispatch by command name, and the sidecar's --help from the checkout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from edgewise.__main__ import COMMANDS, main

from _sidecar import process_gone


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgewise", *args], capture_output=True, text=True, timeout=120)


def test_usage_lists_the_commands_and_unknown_ones_fail():
    out = run()
    assert out.returncode == 0 and all(name in out.stdout for name in COMMANDS)
    bad = run("frobnicate")
    assert bad.returncode == 2 and "unknown command 'frobnicate'" in bad.stderr


def test_sidecar_help_is_the_sidecars_usage_and_bad_options_exit_2():
    out = run("sidecar", "--help")
    assert out.returncode == 0 and "--endpoint" in out.stdout and "--runner" in out.stdout
    bad = run("sidecar", "--no-such-option")
    assert bad.returncode == 2 and "--help for usage" in bad.stderr


def test_a_new_command_is_one_entry():
    COMMANDS["echo"] = (lambda args: len(args), "test")
    try:
        assert main(["echo", "a", "b"]) == 2
    finally:
        del COMMANDS["echo"]


def start_standalone(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgewise", "sidecar", "--endpoint", "tcp://127.0.0.1:*",
                             "--no-dashboard", "--workers", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def test_a_standalone_sidecar_runs_its_kernels_on_numpys_openblas():
    # started by hand, not spawned by a client: it must still find a BLAS (it did not, and its
    # rounds ran 3-10x slower on the TypeScript kernels)
    env = {k: v for k, v in os.environ.items() if k != "EDGEWISE_BLAS_LIB"}
    proc = start_standalone(env)
    try:
        blas = next(json.loads(line) for line in proc.stderr if '"blas"' in line)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "libscipy_openblas" in blas["lib"] and blas.get("dgemm"), blas


def test_stopping_python_m_edgewise_sidecar_stops_the_sidecar_too():
    # a supervisor that stops the command with SIGTERM left the Deno sidecar running, bound
    proc = start_standalone(dict(os.environ))
    pid = json.loads(proc.stdout.readline())["pid"]
    try:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        assert process_gone(pid, within=10.0), f"the sidecar (pid {pid}) outlived python -m edgewise sidecar"
    finally:
        if not process_gone(pid, within=0.0):
            os.kill(pid, signal.SIGKILL)
