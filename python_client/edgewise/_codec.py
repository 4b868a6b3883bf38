"""Canonical MessagePack (protocol/SPEC.md §2): the only place msgpack's options are chosen.

Canonical means: map keys sorted by their UTF-8 bytes; a number that is integral and lies in
``[-2**31, 2**32)`` is an integer (so ``2.0`` encodes as ``0x02``), every other number a
float64; bytes are ``bin``; no extension types. The golden vectors in ``protocol/vectors``
pin the bytes.

Example:
    >>> from edgewise._codec import encode, decode
    >>> encode({"b": 2.0, "a": "x"}).hex()
    '82a161a178a16202'
    >>> decode(bytes.fromhex("82a161a178a16202"))
    {'a': 'x', 'b': 2}
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

from .errors import MalformedMessage

_INT_MIN, _INT_MAX = -(2**31), 2**32


def _number(x: int | float) -> int | float:
    if isinstance(x, int):
        return x if _INT_MIN <= x < _INT_MAX else float(x)
    if math.isfinite(x) and x == int(x) and _INT_MIN <= x < _INT_MAX:
        return int(x)
    return float(x)


def canonical(value: Any, path: str = "$") -> Any:
    """Returns ``value`` with keys sorted and numbers in canonical form (see module doc).

    Accepts numpy scalars; ``None``-valued map entries are kept (use omission for absent
    fields). Raises ``TypeError`` for values SPEC §2 has no encoding for.
    """
    if value is None or isinstance(value, (bool, str, bytes)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return _number(value.item() if isinstance(value, np.generic) else value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise TypeError(f"cannot encode map key {k!r} at {path}: expected str, got {type(k).__name__}")
        keys = sorted(value, key=lambda k: k.encode("utf-8"))
        return {k: canonical(value[k], f"{path}.{k}") for k in keys}
    if isinstance(value, (list, tuple)):
        return [canonical(x, f"{path}[{i}]") for i, x in enumerate(value)]
    if isinstance(value, np.ndarray):
        raise TypeError(f"cannot encode ndarray at {path}: wrap it as a tensor map first")
    raise TypeError(f"cannot encode {type(value).__name__} at {path}")


def encode(value: Any) -> bytes:
    """Encodes ``value`` as canonical MessagePack bytes.

    Raises:
        TypeError: a value SPEC §2 cannot encode (ndarray, set, non-str key, ...).
    """
    return msgpack.packb(canonical(value), use_bin_type=True, strict_types=False)


def _no_ext(code: int, data: bytes) -> Any:
    raise MalformedMessage(f"cannot decode message: extension type {code} is not allowed")


def decode(data: bytes) -> Any:
    """Decodes exactly one MessagePack value (maps as dicts, bin as bytes).

    Raises:
        MalformedMessage: not MessagePack, trailing bytes, extension types, non-str map keys.
    """
    if not data:
        raise MalformedMessage("cannot decode message: empty frame")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_no_ext)
    except MalformedMessage:
        raise
    except Exception as exc:  # msgpack raises several unrelated types
        raise MalformedMessage(f"cannot decode message: {type(exc).__name__}: {exc}") from None
