"""Protocol v2 messages on the client side (protocol/SPEC.md §3-4): tensors, builders for
what the client sends, and validation of what the sidecar answers.

Example:
    >>> import numpy as np
    >>> from edgewise._protocol import encode_tensor, decode_tensor
    >>> t = encode_tensor(np.eye(2))
    >>> t["dtype"], t["shape"], len(t["data"])
    ('f64', [2, 2], 32)
    >>> decode_tensor(t, "eye").tolist()
    [[1.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import BadTensor, MalformedMessage, NonFinite, ProtocolError, error_for_code

PROTOCOL_VERSION = 2
#: Per-sample curvature a run may declare (``hello.run.curvature``).
CURVATURES = ("ggn", "ggn_mc", "hessian")
#: Ops the client executes (SPEC §4), announced in ``hello.capabilities``.
CAPABILITIES = ("reset", "random", "expand", "blocks", "rotate", "grads", "hutchinson", "hessian_gram")
#: Types the sidecar sends (SPEC §3).
SIDECAR_TYPES = ("welcome", "op", "report", "heartbeat", "bye", "error")

_DTYPES = {"f64": np.dtype("<f8"), "f32": np.dtype("<f4"), "i32": np.dtype("<i4")}
_RUN_FIELDS = {
    "id": str, "name": str, "params": int, "probe": int, "n": int, "batch_size": int,
    "curvature": str, "dtype": str,
}


def encode_tensor(array: Any, name: str = "tensor", *, finite: bool = True) -> dict[str, Any]:
    """Wraps an array as a little-endian f64 tensor map (SPEC §2).

    Args:
        array: anything ``numpy.asarray`` takes (a CPU torch tensor works too).
        name: field name for error messages.
        finite: refuse NaN/Inf (tensors carry curvature).

    Raises:
        NonFinite: ``finite`` and the array holds NaN or Inf.
        TypeError: the array is not numeric.
    """
    if hasattr(array, "detach"):  # torch tensor
        array = array.detach().cpu().numpy()
    a = np.asarray(array)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"expected a numeric array for {name!r}, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype="<f8")
    if finite and not np.isfinite(a).all():
        bad = int(np.flatnonzero(~np.isfinite(a.ravel()))[0])
        raise NonFinite(f"cannot send tensor {name!r}: element {bad} is {a.ravel()[bad]}")
    return {"data": a.tobytes(), "dtype": "f64", "shape": [int(s) for s in a.shape]}


def is_tensor(value: Any) -> bool:
    """Whether ``value`` looks like a tensor map (has exactly data, dtype and shape)."""
    return isinstance(value, dict) and set(value) == {"data", "dtype", "shape"}


def decode_tensor(value: Any, name: str, *, shape: Sequence[int] | None = None, finite: bool = True) -> np.ndarray:
    """Reads a tensor map into a float64 array (f32 and i32 are widened).

    Raises:
        BadTensor: not a tensor map, unknown dtype, byte length not shape x itemsize, or not
            the expected ``shape``.
        NonFinite: ``finite`` and the tensor holds NaN or Inf.
    """
    if not isinstance(value, dict):
        raise BadTensor(f"cannot read tensor {name!r}: expected a map, got {type(value).__name__}")
    dtype, data, shp = value.get("dtype"), value.get("data"), value.get("shape")
    if dtype not in _DTYPES:
        raise BadTensor(f"cannot read tensor {name!r}: unknown dtype {dtype!r}")
    if not isinstance(data, bytes):
        raise BadTensor(f"cannot read tensor {name!r}: data is not bin")
    if not isinstance(shp, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shp):
        raise BadTensor(f"cannot read tensor {name!r}: shape is not a list of non-negative integers")
    need = math.prod(shp) * _DTYPES[dtype].itemsize
    if len(data) != need:
        raise BadTensor(f"cannot read tensor {name!r}: shape {shp} of {dtype} needs {need} bytes, got {len(data)}")
    if shape is not None and list(shape) != shp:
        raise BadTensor(f"cannot read tensor {name!r}: expected shape {list(shape)}, got {shp}")
    a = np.frombuffer(data, dtype=_DTYPES[dtype]).astype(np.float64).reshape(shp)
    if finite and not np.isfinite(a).all():
        raise NonFinite(f"cannot use tensor {name!r}: it holds NaN or Inf")
    return a


def decode_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Op arguments with every tensor map turned into a float64 numpy array."""
    return {k: decode_tensor(v, k) if is_tensor(v) else v for k, v in args.items()}


def _plain(value: Any, name: str) -> Any:
    """One result field: arrays become f64 tensors (checked finite), numbers stay numbers."""
    if isinstance(value, np.ndarray) or hasattr(value, "detach"):
        return encode_tensor(value, name)
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise NonFinite(f"cannot send result field {name!r}: it is {value}")
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{name}[{i}]") for i, v in enumerate(value)]
    return value


# ---- client messages ----------------------------------------------------------------------


def hello(msg_id: int, client: str, run: Mapping[str, Any], secret: str | None = None) -> dict[str, Any]:
    """``hello`` (SPEC §3, protocol 2); validates ``run`` so a bad one fails here, not at the sidecar.
    ``secret`` (from an earlier ``welcome``) resumes the run's session or history.

    The factor route (curvature ``ggn``/``ggn_mc``) needs ``run["outputs"]``: the rows ``c``
    (or ``s`` sampled labels) of each per-sample factor.

    Raises:
        ValueError: a missing or mistyped run field.
    """
    for key, typ in _RUN_FIELDS.items():
        v = run.get(key)
        if not isinstance(v, typ) or isinstance(v, bool):
            raise ValueError(f"expected run[{key!r}] of type {typ.__name__}, got {v!r}")
    if run["curvature"] not in CURVATURES:
        raise ValueError(f"expected run['curvature'] in {CURVATURES}, got {run['curvature']!r}")
    outputs = run.get("outputs")
    if run["curvature"] != "hessian" and (not isinstance(outputs, int) or isinstance(outputs, bool) or outputs < 1):
        raise ValueError(f"expected run['outputs'] an int >= 1 (rows of each factor) for curvature {run['curvature']!r}, got {outputs!r}")
    if run["dtype"] not in ("f64", "f32"):
        raise ValueError(f"expected run['dtype'] 'f64' or 'f32', got {run['dtype']!r}")
    if run["probe"] < 1:
        raise ValueError(f"expected run['probe'] >= 1, got {run['probe']}")
    msg = {
        "type": "hello", "id": msg_id, "protocol": PROTOCOL_VERSION, "client": client,
        "run": dict(run), "capabilities": list(CAPABILITIES),
    }
    if secret is not None:
        msg["secret"] = secret
    return msg


def round_request(
    msg_id: int, session: str, *, step: int, epoch: int, lr: float, batch_size: int, n: int,
    momentum: float, basis: int, budget_hvps: float | None, budget_seconds: float | None,
    options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """``round`` (SPEC §3). Absent budget entries and options are omitted.

    Raises:
        ValueError: non-finite ``lr`` or a batch size below 1.
    """
    if not math.isfinite(lr):
        raise ValueError(f"expected a finite lr, got {lr}")
    if batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    budget = {k: v for k, v in (("hvps", budget_hvps), ("seconds", budget_seconds)) if v is not None}
    msg = {
        "type": "round", "id": msg_id, "session": session, "step": step, "epoch": epoch, "lr": lr,
        "batch_size": batch_size, "n": n, "momentum": momentum, "basis": basis, "budget": budget,
    }
    if options:
        msg["options"] = dict(options)
    return msg


def result(msg_id: int, session: str, seq: int, op: str, out: Mapping[str, Any], wall_ms: float) -> dict[str, Any]:
    """``result`` for an op from what the oracle returned (must include ``basis`` and ``hvps``).

    Raises:
        NonFinite: an array or number in ``out`` is NaN/Inf.
        ValueError: ``basis`` or ``hvps`` missing.
    """
    if "basis" not in out or "hvps" not in out:
        raise ValueError(f"expected the oracle's {op} result to include 'basis' and 'hvps', got keys {sorted(out)}")
    fields = {k: _plain(v, k) for k, v in out.items()}
    fields.update({"type": "result", "id": msg_id, "session": session, "seq": seq, "op": op, "wall_ms": wall_ms})
    return fields


def simple(kind: str, msg_id: int, session: str) -> dict[str, Any]:
    """``heartbeat`` or ``bye``."""
    return {"type": kind, "id": msg_id, "session": session}


def error(msg_id: int, session: str, code: str, message: str, seq: int | None = None) -> dict[str, Any]:
    """``error`` from the client (e.g. ``oracle_failed`` with the op's ``seq``)."""
    msg = {"type": "error", "id": msg_id, "session": session, "code": code, "message": message}
    if seq is not None:
        msg["seq"] = seq
    return msg


# ---- sidecar messages ---------------------------------------------------------------------


def _need(msg: Mapping[str, Any], key: str, typ: type | tuple[type, ...], what: str) -> Any:
    v = msg.get(key)
    if not isinstance(v, typ) or (isinstance(v, bool) and bool not in (typ if isinstance(typ, tuple) else (typ,))):
        raise MalformedMessage(f"cannot read {msg.get('type', 'message')}.{key}: expected {what}, got {v!r}")
    return v


def check_answer(msg: Any) -> dict[str, Any]:
    """Validates a decoded sidecar answer; an ``error`` answer is raised as its exception.

    Returns:
        The message (``welcome``, ``op``, ``report``, ``heartbeat`` or ``bye``).

    Raises:
        ProtocolError: the mapped exception of an ``error`` answer.
        MalformedMessage / UnknownType: the answer itself is bad.
    """
    if not isinstance(msg, dict):
        raise MalformedMessage(f"cannot read answer: expected a map, got {type(msg).__name__}")
    kind = _need(msg, "type", str, "a string")
    if kind not in SIDECAR_TYPES:
        raise error_for_code("unknown_type", f"cannot handle answer of type {kind!r}")
    if kind == "error":
        code = _need(msg, "code", str, "a string")
        details = msg.get("details") if isinstance(msg.get("details"), dict) else None
        raise error_for_code(code, str(msg.get("message", "")), details)
    if kind == "welcome":
        limits = _need(msg, "limits", dict, "a map")
        for k in ("max_message_bytes", "heartbeat_ms", "idle_timeout_ms", "op_timeout_ms"):
            _need(limits, k, (int, float), "a number")
        _need(msg, "session", str, "a string")
    elif kind == "op":
        _need(msg, "seq", int, "an integer")
        _need(msg, "op", str, "a string")
        _need(msg, "args", dict, "a map")
    elif kind == "report":
        _need(msg, "report", dict, "a map")
    return msg


def answer_re(msg: Any) -> int | None:
    """The ``re`` of a decoded answer, or None (an error to an unreadable message has none)."""
    if isinstance(msg, dict) and isinstance(msg.get("re"), int) and not isinstance(msg.get("re"), bool):
        return msg["re"]
    return None


__all__ = [
    "CAPABILITIES", "PROTOCOL_VERSION", "ProtocolError", "answer_re", "check_answer", "decode_args",
    "decode_tensor", "encode_tensor", "error", "hello", "is_tensor", "result", "round_request", "simple",
]
