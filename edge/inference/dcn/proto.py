"""The protobuf wire format of ONNX, as much as the DCN cut needs: reading nodes and
initializers, writing nodes, tensors and value infos (field numbers from ``onnx/onnx.proto``),
so that the device needs no ``onnx`` package."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgeface.inference.onnx_proto import _fields, _text
from edgeface.inference.onnx_proto import encode_varint as _varint
from edgeface.inference.onnx_proto import length_field as _len_field

# TensorProto.DataType
_FLOAT = 1
_UINT8 = 2
_INT8 = 3
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64}


class CutError(ValueError):
    """The model cannot take the fast form (the reason is one line)."""


# -- wire format (writing) --------------------------------------------------------------------

def _int_field(number: int, n: int) -> bytes:
    return _varint(number << 3) + _varint(n)


def _str(number: int, s: str) -> bytes:
    return _len_field(number, s.encode())


def _node(op: str, inputs: List[str], outputs: List[str], name: str, domain: str = "",
          **attrs) -> bytes:
    """NodeProto; ``attrs``: int or list-of-int attributes (AttributeProto: name=1, i=3,
    ints=8, type=20 with INT = 2, INTS = 7)."""
    body = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs)
    body += _str(3, name) + _str(4, op) + (_str(7, domain) if domain else b"")
    for key, v in attrs.items():
        value = (b"".join(_int_field(8, e) for e in v) + _int_field(20, 7)
                 if isinstance(v, (list, tuple)) else _int_field(3, v) + _int_field(20, 2))
        body += _len_field(5, _str(1, key) + value)
    return body


def _tensor(name: str, a: np.ndarray) -> bytes:
    """TensorProto: dims=1, data_type=2, name=8, raw_data=9 (little-endian)."""
    code = {np.dtype(np.float32): _FLOAT, np.dtype(np.int8): _INT8,
            np.dtype(np.int32): 6}[a.dtype]
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return (b"".join(_int_field(1, d) for d in a.shape) + _int_field(2, code)
            + _str(8, name) + _len_field(9, a.tobytes()))


def _value_info(name: str, elem_type: int = _FLOAT,
                dims: Optional[Sequence[Optional[int]]] = None) -> bytes:
    """ValueInfoProto: name=1, type=2 {tensor_type=1 {elem_type=1, shape=2 {dim=1
    {dim_value=1}}}}. Without ``dims`` the shape is left to ONNX Runtime's inference; a None
    dim is unknown (its rank alone is known)."""
    tensor = _int_field(1, elem_type)
    if dims is not None:
        tensor += _len_field(2, b"".join(
            _len_field(1, b"" if d is None else _int_field(1, d)) for d in dims))
    return _str(1, name) + _len_field(2, _len_field(1, tensor))


def _renamed(node: _Node, inputs: List[str], outputs: List[str], name: str) -> bytes:
    """``node``'s NodeProto with new inputs (1), outputs (2) and name (3); its op type,
    domain and attributes copied byte for byte."""
    body = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs)
    body += _str(3, name)
    for fn, _, fv in _fields(memoryview(node.raw)):
        if fn not in (1, 2, 3):  # every other NodeProto field is length-delimited
            body += _len_field(fn, bytes(fv))
    return body


# -- reading ----------------------------------------------------------------------------------

@dataclass
class _Node:
    raw: bytes
    op: str
    domain: str
    inputs: List[str]
    outputs: List[str]
    attrs: Dict[str, object] = field(default_factory=dict)


def _packed_varints(v) -> List[int]:
    out, pos, buf = [], 0, bytes(v)
    while pos < len(buf):
        val, shift = 0, 0
        while True:
            b = buf[pos]
            pos += 1
            val |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        out.append(val - (1 << 64) if val >= 1 << 63 else val)
    return out


def _parse_node(v) -> _Node:
    n = _Node(bytes(v), "", "", [], [])
    for fn, _, fv in _fields(v):
        if fn == 1:
            n.inputs.append(_text(fv))
        elif fn == 2:
            n.outputs.append(_text(fv))
        elif fn == 4:
            n.op = _text(fv)
        elif fn == 7:
            n.domain = _text(fv)
        elif fn == 5:
            name, ints, i = "", [], None
            for an, wire, av in _fields(fv):
                if an == 1:
                    name = _text(av)
                elif an == 3:
                    i = av
                elif an == 8 and wire == 0:
                    ints.append(av)
                elif an == 8 and wire == 2:  # packed
                    ints += _packed_varints(av)
            n.attrs[name] = ints if ints else i
    return n


def _tensor_name(v) -> str:
    """A TensorProto's name (field 8), without decoding its data."""
    return _text(next((fv for fn, _, fv in _fields(memoryview(v)) if fn == 8), b""))


def _tensor_array(v) -> Tuple[str, np.ndarray]:
    dims, dtype, name, raw, floats, ints = [], None, "", None, None, []
    for fn, wire, fv in _fields(v):
        if fn == 1:
            dims.append(fv)
        elif fn == 2:
            dtype = fv
        elif fn == 8:
            name = _text(fv)
        elif fn == 9:
            raw = bytes(fv)
        elif fn == 4 and wire == 2:
            floats = bytes(fv)
        elif fn in (5, 7):  # int32_data (small integer types too), int64_data
            ints += _packed_varints(fv) if wire == 2 else [fv - (1 << 64) if fv >= 1 << 63
                                                           else fv]
    if dtype not in _DTYPES:
        raise CutError(f"initializer {name!r} has data type {dtype}, not float or int64")
    if raw is None and floats is None and ints and dtype in (2, 3, 6, 7):
        return name, np.array(ints, dtype=_DTYPES[dtype]).reshape(dims)
    data = raw if raw is not None else floats
    if data is None:
        raise CutError(f"initializer {name!r} keeps its data outside raw_data/float_data")
    return name, np.frombuffer(data, dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<")
                               ).reshape(dims).astype(_DTYPES[dtype])
