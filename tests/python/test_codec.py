"""The Python codec against the golden vectors (protocol/vectors) and SPEC §2's rules."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from edgewise._codec import decode, encode
from edgewise._protocol import decode_tensor, encode_tensor
from edgewise.errors import BadTensor, MalformedMessage, NonFinite

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"
FILES = sorted(p for p in VECTORS.glob("[0-9][0-9]_*.json"))


def from_json(v):
    """protocol/vectors/README.md's JSON conventions -> plain values."""
    if isinstance(v, dict):
        if set(v) == {"$bin"}:
            return bytes.fromhex(v["$bin"])
        if set(v) == {"$float"}:
            return float(v["$float"])
        if set(v) == {"$tensor"}:
            t = v["$tensor"]
            fmt = {"f64": "<d", "f32": "<f", "i32": "<i"}[t["dtype"]]
            return {"data": b"".join(struct.pack(fmt, from_json(x)) for x in t["data"]), "dtype": t["dtype"], "shape": t["shape"]}
        return {k: from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json(x) for x in v]
    return v


def same(a, b, path="$"):
    """Deep equality with numbers compared numerically and NaN equal to NaN."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        assert a == b or (math.isnan(a) and math.isnan(b)), f"{path}: {a!r} != {b!r}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: length"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} != {b!r}"


def test_vectors_cover_every_message_type():
    types = {json.loads(p.read_text(encoding="utf-8"))["value"].get("type") for p in FILES}
    assert {"hello", "welcome", "round", "op", "result", "report", "heartbeat", "bye", "error"} <= types
    assert len(FILES) >= 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_golden_vector_encode(path):
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert encode(from_json(doc["value"])).hex() == doc["msgpack_hex"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_golden_vector_decode(path):
    doc = json.loads(path.read_text(encoding="utf-8"))
    same(decode(bytes.fromhex(doc["msgpack_hex"])), from_json(doc["value"]))


def test_encode_canonical_numbers_and_numpy_scalars():
    assert encode(2.0) == b"\x02"
    assert encode(-0.0) == b"\x00"
    assert encode(np.float64(3.0)) == b"\x03"
    assert encode(np.int64(2**32)) == b"\xcb" + struct.pack(">d", 2.0**32)
    assert encode(np.bool_(True)) == b"\xc3"
    assert encode(float("nan")) == bytes.fromhex("cb7ff8000000000000")


def test_encode_sorts_keys_by_utf8_bytes():
    assert list(decode(encode({"ｚ": 1, "𝜆": 2, "a": 3, "10": 4, "9": 5}))) == ["10", "9", "a", "ｚ", "𝜆"]


@pytest.mark.parametrize("value", [{1: 2}, {"a": np.zeros(2)}, {"a": {1, 2}}])
def test_encode_refuses_what_spec_cannot_say(value):
    with pytest.raises(TypeError):
        encode(value)


@pytest.mark.parametrize(
    "data", [b"", b"\x82\x01", b"\xc1", b"\x01\x02", b"\xd4\x01\x02", b"\x81\x01\x02"],
    ids=["empty", "truncated", "reserved", "trailing", "ext", "int-key"],
)
def test_decode_refuses_bad_bytes(data):
    with pytest.raises(MalformedMessage):
        decode(data)


def test_tensor_round_trip_and_widening():
    a = np.arange(6.0).reshape(2, 3) / 7
    assert np.array_equal(decode_tensor(decode(encode(encode_tensor(a))), "a"), a)
    f32 = {"data": np.array([1.5, -2], dtype="<f4").tobytes(), "dtype": "f32", "shape": [2]}
    assert decode_tensor(f32, "x").tolist() == [1.5, -2.0]
    i32 = {"data": np.array([7, -1], dtype="<i4").tobytes(), "dtype": "i32", "shape": [2, 1]}
    assert decode_tensor(i32, "x").tolist() == [[7.0], [-1.0]]


@pytest.mark.parametrize(
    "tensor,shape",
    [
        ({"data": b"\0" * 8, "dtype": "f64", "shape": [2]}, None),
        ({"data": b"\0" * 8, "dtype": "f16", "shape": [4]}, None),
        ({"data": "x", "dtype": "f64", "shape": [1]}, None),
        ({"data": b"\0" * 8, "dtype": "f64", "shape": [-1]}, None),
        ({"data": b"\0" * 8, "dtype": "f64", "shape": [1]}, [1, 1]),
        ([1, 2], None),
    ],
    ids=["byte-length", "dtype", "data-not-bin", "negative-dim", "unexpected-shape", "not-a-map"],
)
def test_decode_tensor_refuses_bad_tensors(tensor, shape):
    with pytest.raises(BadTensor):
        decode_tensor(tensor, "x", shape=shape)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_tensors_refuse_non_finite(bad):
    with pytest.raises(NonFinite):
        encode_tensor(np.array([0.0, bad]))
    t = {"data": np.array([0.0, bad]).tobytes(), "dtype": "f64", "shape": [2]}
    with pytest.raises(NonFinite):
        decode_tensor(t, "x")


def test_the_client_hello_builder_produces_the_golden_v2_hello():
    """protocol 2, run.outputs, capabilities: the bytes the client sends equal 10_hello's."""
    from edgewise._client import CLIENT_NAME
    from edgewise._protocol import hello

    doc = json.loads((VECTORS / "10_hello.json").read_text(encoding="utf-8"))
    value = from_json(doc["value"])
    built = hello(value["id"], CLIENT_NAME, value["run"])
    assert built["protocol"] == 2
    assert encode(built).hex() == doc["msgpack_hex"]


def test_the_client_decodes_the_golden_factor_expand_op():
    from edgewise._protocol import decode_args

    doc = json.loads((VECTORS / "24_op_expand_factors.json").read_text(encoding="utf-8"))
    args = decode_args(decode(bytes.fromhex(doc["msgpack_hex"]))["args"])
    assert args["out_coeffs"].shape == (2, 2, 1) and args["basis_coeffs"].shape == (1, 1) and args["blocks"] is True


def test_the_client_round_builder_produces_the_golden_optimizer_round():
    """An AdamW read by the client gives 27_round_optimizer's options.optimizer, byte for byte."""
    import torch

    from edgewise._optimizer_model import read_optimizer
    from edgewise._protocol import round_request
    from edgewise._run_info import round_options

    doc = json.loads((VECTORS / "27_round_optimizer.json").read_text(encoding="utf-8"))
    value = from_json(doc["value"])
    model, _ = read_optimizer(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.001, weight_decay=0.01))
    options = round_options(seed=0, bootstrap=100, optimizer=model.wire())
    options.pop("seed")
    built = round_request(value["id"], value["session"], step=1300, epoch=3, lr=0.001, batch_size=64, n=60000,
                          momentum=model.round_momentum, basis=8, budget_hvps=4096, budget_seconds=None,
                          options=options)
    assert encode(built).hex() == doc["msgpack_hex"]


def test_the_client_answers_the_golden_hessian_gram_op_with_the_golden_result():
    from edgewise._protocol import decode_args, result

    op = decode(bytes.fromhex(json.loads((VECTORS / "28_op_hessian_gram.json").read_text())["msgpack_hex"]))
    assert op["op"] == "hessian_gram" and decode_args(op["args"]) == {"start": 0, "count": 2}
    doc = json.loads((VECTORS / "29_result_hessian_gram.json").read_text(encoding="utf-8"))
    value = from_json(doc["value"])
    out = {"gram": np.array([[4.0, 0.5, -0.125], [0.5, 2.25, 0.0]]), "basis": 3, "hvps": 8}
    built = result(value["id"], value["session"], value["seq"], "hessian_gram", out, 2.25)
    assert encode(built).hex() == doc["msgpack_hex"]
