"""Command line: ``python -m edgewise <command> [...]`` (also the ``edgewise`` script).

Commands are looked up by name in :data:`COMMANDS`; a new one is a function
``(args: list[str]) -> int`` and one line there.

Example:
    >>> main(["nonsense"])
    2
"""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Callable

from ._sidecar_location import find_sidecar
from ._sidecar_process import sidecar_env
from .errors import SidecarStartError


def sidecar(args: list[str]) -> int:
    """Runs a sidecar in the foreground with ``args`` (``--help`` lists them) until Ctrl-C, in
    the environment a spawned one gets (numpy's OpenBLAS for its kernels, pyzmq's libzmq)."""
    try:
        location = find_sidecar()
    except SidecarStartError as exc:
        print(f"edgewise sidecar: {exc}", file=sys.stderr)
        return 1
    try:
        child = subprocess.Popen(location.command(*args), cwd=location.cwd, env=sidecar_env())
    except OSError as exc:
        print(f"edgewise sidecar: cannot run {location.deno}: {exc}", file=sys.stderr)
        return 1
    # a supervisor stops this command with SIGTERM: pass it on, or the sidecar outlives us, bound
    previous = signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # the child got the same SIGINT and shuts down by itself
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)


def keys(args: list[str]) -> int:
    """Makes CURVE keys: the sidecar's pair (once) and an allowed client's pair, in ``DIR``."""
    import argparse

    from ._curve import make_keys

    parser = argparse.ArgumentParser(prog="python -m edgewise keys")
    parser.add_argument("dir", help="folder for server.key, server.key_secret, clients/NAME.key and NAME.key_secret")
    parser.add_argument("--client", default="client", help="name of the client key pair (default: client)")
    opts = parser.parse_args(args)
    try:
        server_key, client_secret = make_keys(opts.dir, client=opts.client)
    except (FileExistsError, OSError) as exc:
        print(f"edgewise keys: {exc}", file=sys.stderr)
        return 1
    print(f"sidecar (on the serving machine): python -m edgewise sidecar --endpoint tcp://0.0.0.0:5555 --curve-keys {opts.dir}")
    print(f"client (copy {server_key} and {client_secret} to the training machine):")
    print(f'  edgewise.Monitor(..., endpoint="tcp://HOST:5555", server_key="{server_key}", client_keys="{client_secret}")')
    return 0


#: Subcommand name -> ``(function, one-line help)``.
COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "sidecar": (sidecar, "run a standalone sidecar (python -m edgewise sidecar --help)"),
    "keys": (keys, "make CURVE keys for a sidecar on another machine (python -m edgewise keys DIR)"),
}


def usage() -> str:
    """The top-level help text."""
    lines = ["usage: python -m edgewise <command> [args]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatches ``argv`` (default ``sys.argv[1:]``) to a command; returns its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"edgewise: unknown command {name!r}\n{usage()}", file=sys.stderr)
        return 2
    return COMMANDS[name][0](rest)


if __name__ == "__main__":
    sys.exit(main())
