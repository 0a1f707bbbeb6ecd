"""The few facts of an ONNX file the GPU paths need, read without the ``onnx`` package.

A Jetson that only runs models has neither ``onnx`` nor ``torch``; building a TensorRT engine
and configuring ONNX Runtime's TensorRT provider still need the model's ``edgeface.*``
metadata, its operator types (DeformConv? Q/DQ?), its opset and its input shape. They are
read here straight from the protobuf wire format (field numbers from ``onnx/onnx.proto``:
ModelProto opset_import 8, graph 7, metadata_props 14; GraphProto node 1, initializer 5,
input 11; NodeProto op_type 4, domain 7), skipping the weights without copying them.
"""

from __future__ import annotations

import mmap
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from edgeface.errors import ModelError


@dataclass
class OnnxSummary:
    """What :func:`read_summary` found in a model file."""

    metadata: dict[str, str] = field(default_factory=dict)
    # "DeformConv" -> 15; ops outside the default domain as "domain:op"
    op_types: Counter = field(default_factory=Counter)
    opset: int | None = None  # the default (ai.onnx) domain's version
    inputs: list[tuple[str, list[int | str]]] = field(default_factory=list)  # name, dims

    @property
    def has_qdq(self) -> bool:
        return bool(self.op_types.get("QuantizeLinear") or self.op_types.get("DequantizeLinear"))


def encode_varint(n: int) -> bytes:
    """A non-negative int as a protobuf varint (7 bits a byte, low first)."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def length_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2): what writers of an ONNX file append."""
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value): an int for varints and fixed-size fields, a
    sub-view for length-delimited ones (strings, messages, packed arrays)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def _text(value: int | memoryview) -> str:
    return bytes(value).decode("utf-8", "replace") if isinstance(value, memoryview) else ""


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _dims(value_info: memoryview) -> tuple[str, list[int | str]]:
    name, dims = "", []
    for n, _, v in _fields(value_info):
        if n == 1:
            name = _text(v)
        elif n == 2 and isinstance(v, memoryview):  # TypeProto
            for tn, _, tv in _fields(v):
                if tn != 1 or not isinstance(tv, memoryview):  # tensor_type only
                    continue
                for sn, _, sv in _fields(tv):
                    if sn != 2 or not isinstance(sv, memoryview):  # shape
                        continue
                    for dn, _, dv in _fields(sv):
                        if dn != 1 or not isinstance(dv, memoryview):
                            continue
                        dim: int | str = "?"
                        for kn, _, kv in _fields(dv):
                            dim = _signed(kv) if kn == 1 and isinstance(kv, int) else (
                                _text(kv) if kn == 2 else dim)
                        dims.append(dim)
    return name, dims


def _summarize(buf: memoryview) -> OnnxSummary:
    out = OnnxSummary()
    graph: memoryview | None = None
    for n, _, v in _fields(buf):
        if n == 7 and isinstance(v, memoryview):
            graph = v
        elif n == 14 and isinstance(v, memoryview):
            kv = {fn: _text(fv) for fn, _, fv in _fields(v)}
            out.metadata[kv.get(1, "")] = kv.get(2, "")
        elif n == 8 and isinstance(v, memoryview):
            f = {fn: fv for fn, _, fv in _fields(v)}
            if _text(f.get(1, b"")) in ("", "ai.onnx") and isinstance(f.get(2), int):
                out.opset = f[2]
    if graph is None:
        raise ValueError("no graph")
    initializers: set[str] = set()
    inputs = []
    for n, _, v in _fields(graph):
        if not isinstance(v, memoryview):
            continue
        if n == 1:
            f = {fn: fv for fn, _, fv in _fields(v) if fn in (4, 7)}
            op, domain = _text(f.get(4, b"")), _text(f.get(7, b""))
            out.op_types[op if domain in ("", "ai.onnx") else f"{domain}:{op}"] += 1
        elif n == 5:
            initializers.update(_text(fv) for fn, _, fv in _fields(v) if fn == 8)
        elif n == 11:
            inputs.append(_dims(v))
    out.inputs = [i for i in inputs if i[0] not in initializers]
    return out


def read_summary(path: str | os.PathLike) -> OnnxSummary:
    """Metadata, operator counts, opset and graph inputs of an ONNX file. Raises ModelError
    (exit 3) naming the file when it is missing or not an ONNX model."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise ValueError("empty file")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                view = memoryview(mm)
                try:
                    return _summarize(view)
                finally:
                    view.release()
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, IndexError) as exc:
        raise ModelError(f"{path} is not an ONNX model ({exc})") from None
