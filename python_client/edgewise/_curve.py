"""CURVE keys for a sidecar on another machine: reading them and making them.

A sidecar started with ``--curve-keys DIR`` serves CURVE with ``DIR/server.key_secret`` and
admits only the clients whose public keys are in ``DIR/clients/*.key``. The training side
needs the server's public key (``DIR/server.key``) and its own key pair (``DIR/NAME.key_secret``).
Files are ZeroMQ certificates, as ``zmq.auth.create_certificates`` writes them.

Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> paths = make_keys(d, client="trainer")
    >>> sorted(p.name for p in paths)
    ['server.key', 'trainer.key_secret']
    >>> len(load_server_key(paths[0])), len(load_client_keys(paths[1])[1])
    (40, 40)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Union

import zmq
import zmq.auth

#: A Z85 key (40 characters) or a certificate file holding it.
KeySource = Union[str, bytes, os.PathLike]


def _is_z85(value: object) -> bool:
    return isinstance(value, (str, bytes)) and len(value) == 40 and not os.path.exists(value)


def load_server_key(value: KeySource) -> bytes:
    """The server's Z85 public key, given as the key itself or a certificate file.

    Raises:
        ValueError: the file has no public key.
        OSError: the file cannot be read.
    """
    if _is_z85(value):
        return value.encode() if isinstance(value, str) else value  # type: ignore[union-attr]
    public, _ = zmq.auth.load_certificate(os.fspath(value))
    if not public:
        raise ValueError(f"no public-key in {value}")
    return public


def load_client_keys(value: KeySource | tuple[KeySource, KeySource]) -> tuple[bytes, bytes]:
    """The client's Z85 ``(public, secret)`` pair, given as a pair or a ``.key_secret`` file.

    Raises:
        ValueError: the file has no secret key (a public ``.key`` file was given).
    """
    if isinstance(value, tuple):
        public, secret = (v.encode() if isinstance(v, str) else bytes(v) for v in value)  # type: ignore[arg-type]
        return public, secret
    public, secret = zmq.auth.load_certificate(os.fspath(value))
    if not secret:
        raise ValueError(f"expected a secret certificate (NAME.key_secret) for client_keys, got {value}: it has no secret-key")
    return public, secret


def apply_client_curve(sock: zmq.Socket, server_key: KeySource, client_keys: KeySource | tuple) -> None:
    """Makes ``sock`` a CURVE client of the server with this public key (before connecting)."""
    public, secret = load_client_keys(client_keys)
    sock.curve_serverkey = load_server_key(server_key)
    sock.curve_publickey = public
    sock.curve_secretkey = secret


def make_keys(directory: str | os.PathLike, client: str = "client") -> list[Path]:
    """Makes the server's key pair (kept if present) and a new client pair, allowed at once.

    Writes ``server.key`` / ``server.key_secret`` and ``clients/CLIENT.key`` (the allowed list)
    and ``CLIENT.key_secret`` (for the training machine) in ``directory``.

    Returns:
        ``[server.key, CLIENT.key_secret]``: what the client side needs.

    Raises:
        FileExistsError: a client of that name exists already.
    """
    d = Path(directory)
    (d / "clients").mkdir(parents=True, exist_ok=True)
    if not (d / "server.key_secret").exists():
        zmq.auth.create_certificates(d, "server")
    if (d / f"{client}.key_secret").exists() or (d / "clients" / f"{client}.key").exists():
        raise FileExistsError(f"client {client!r} already has keys in {d}; pick another name")
    public, _ = zmq.auth.create_certificates(d, client)
    shutil.move(public, d / "clients" / f"{client}.key")
    return [d / "server.key", d / f"{client}.key_secret"]
