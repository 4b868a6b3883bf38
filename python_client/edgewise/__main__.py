"""``python -m edgewise COMMAND``: small tools around the client.

    python -m edgewise keys DIR [--client NAME]   CURVE keys for a sidecar on another machine
"""

from __future__ import annotations

import argparse
import sys


def _keys(args: argparse.Namespace) -> int:
    from ._curve import make_keys

    try:
        server_key, client_secret = make_keys(args.dir, client=args.client)
    except (FileExistsError, OSError) as exc:
        print(f"edgewise keys: {exc}", file=sys.stderr)
        return 1
    print(f"sidecar (on the serving machine): tools/deno task sidecar --endpoint tcp://0.0.0.0:5555 --curve-keys {args.dir}")
    print(f"client (copy {server_key} and {client_secret} to the training machine):")
    print(f'  edgewise.Monitor(..., endpoint="tcp://HOST:5555", server_key="{server_key}", client_keys="{client_secret}")')
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgewise")
    sub = parser.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys", help="make CURVE keys: the sidecar's pair (once) and an allowed client's pair")
    keys.add_argument("dir", help="folder for server.key, server.key_secret, clients/NAME.key and NAME.key_secret")
    keys.add_argument("--client", default="client", help="name of the client key pair (default: client)")
    keys.set_defaults(run=_keys)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
