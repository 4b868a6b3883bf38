"""Regenerate the golden vectors: `.venv/bin/python protocol/vectors/generate.py`.

The bytes come from the hand-written MessagePack writer below, which follows SPEC §2 byte by
byte and shares no code with either codec (no msgpack library, no edgewise, no msgpackr), so a
codec that agrees with these files agrees with the spec, not just with the other codec.
The JSON conventions for values are described in README.md.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent


# ---- JSON convention -> Python value ------------------------------------------------------

def from_json(v):
    """Turn the README's JSON convention into a plain value (bytes for bin, float for $float)."""
    if isinstance(v, dict):
        if set(v) == {"$bin"}:
            return bytes.fromhex(v["$bin"])
        if set(v) == {"$float"}:
            return float(v["$float"])
        if set(v) == {"$tensor"}:
            t = v["$tensor"]
            fmt = {"f64": "<d", "f32": "<f", "i32": "<i"}[t["dtype"]]
            data = b"".join(struct.pack(fmt, from_json(x)) for x in t["data"])
            return {"data": data, "dtype": t["dtype"], "shape": list(t["shape"])}
        return {k: from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json(x) for x in v]
    return v


# ---- hand-written canonical writer (SPEC §2) ----------------------------------------------

def w_int(i: int) -> bytes:
    if 0 <= i <= 0x7F:
        return bytes([i])
    if -32 <= i < 0:
        return struct.pack("b", i)
    if i >= 0:
        if i <= 0xFF:
            return b"\xcc" + struct.pack(">B", i)
        if i <= 0xFFFF:
            return b"\xcd" + struct.pack(">H", i)
        return b"\xce" + struct.pack(">I", i)
    if i >= -0x80:
        return b"\xd0" + struct.pack(">b", i)
    if i >= -0x8000:
        return b"\xd1" + struct.pack(">h", i)
    return b"\xd2" + struct.pack(">i", i)


def w_num(x) -> bytes:
    if isinstance(x, int) or (math.isfinite(x) and x == int(x)):
        if -(2**31) <= x < 2**32:
            return w_int(int(x))
    return b"\xcb" + struct.pack(">d", float(x))


def w_len(n: int, fix: int, fixmax: int, codes: tuple[int | None, int, int]) -> bytes:
    if n <= fixmax:
        return bytes([fix | n])
    c8, c16, c32 = codes
    if c8 is not None and n <= 0xFF:
        return bytes([c8, n])
    if n <= 0xFFFF:
        return bytes([c16]) + struct.pack(">H", n)
    return bytes([c32]) + struct.pack(">I", n)


def w(v) -> bytes:
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, (int, float)):
        return w_num(v)
    if isinstance(v, str):
        b = v.encode("utf-8")
        return w_len(len(b), 0xA0, 31, (0xD9, 0xDA, 0xDB)) + b
    if isinstance(v, bytes):
        n = len(v)
        if n <= 0xFF:
            return bytes([0xC4, n]) + v
        if n <= 0xFFFF:
            return b"\xc5" + struct.pack(">H", n) + v
        return b"\xc6" + struct.pack(">I", n) + v
    if isinstance(v, list):
        return w_len(len(v), 0x90, 15, (None, 0xDC, 0xDD)) + b"".join(w(x) for x in v)
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-8"))
        out = w_len(len(keys), 0x80, 15, (None, 0xDE, 0xDF))
        return out + b"".join(w(k) + w(v[k]) for k in keys)
    raise TypeError(f"cannot encode {type(v).__name__}")


def main() -> None:
    sources = json.loads((HERE / "_sources.json").read_text(encoding="utf-8"))
    for name, src in sources.items():
        value = src["value"]
        doc = {
            "description": src["description"],
            "value": value,
            "msgpack_hex": w(from_json(value)).hex(),
        }
        (HERE / f"{name}.json").write_text(
            json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    print(f"wrote {len(sources)} vectors")


if __name__ == "__main__":
    main()
