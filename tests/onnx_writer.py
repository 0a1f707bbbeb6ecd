"""Write small ONNX models without the ``onnx`` package.

The runtime tests must run where only the device runtime is installed (numpy, OpenCV,
ONNX Runtime: no torch, no ``onnx``), yet they need a tiny model file. An ONNX file is one
serialized ``ModelProto`` protobuf message, so this module encodes it by hand: just the
message types and fields that tests need, with field numbers taken from onnx's
``onnx/onnx.proto``.

Protobuf wire format in brief: a message is a sequence of fields, each a *tag* (the field
number shifted left by 3, OR'ed with a wire type) followed by the value. Integers are
*varints* (wire type 0: 7 bits a byte, low bits first, high bit set on all but the last
byte); strings, bytes, sub-messages and packed repeated numbers are *length-delimited*
(wire type 2: a varint byte count, then the bytes). Fields are written in field-number order
and repeated scalars packed or not exactly as ``onnx.proto`` (a proto2 file) declares them, so
the bytes equal what ``onnx.helper`` + ``SerializeToString`` produce for the same model.
"""

from __future__ import annotations

import struct
from typing import Iterable, Mapping, Optional, Sequence, Union

# TensorProto.DataType values (also used as TypeProto.Tensor.elem_type).
FLOAT = 1
INT64 = 7

# AttributeProto.AttributeType values.
ATTR_INT = 2
ATTR_INTS = 7

_VARINT = 0  # wire type of int32/int64/enum fields
_LEN = 2  # wire type of string/bytes/message/packed fields

AttrValue = Union[int, Sequence[int]]


# -- wire format ------------------------------------------------------------------------------

def varint(n: int) -> bytes:
    """``n`` as a protobuf varint; negative numbers are 64-bit two's complement (10 bytes)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def int_field(field: int, n: int) -> bytes:
    """An int32/int64/enum field."""
    return _tag(field, _VARINT) + varint(n)


def bytes_field(field: int, payload: bytes) -> bytes:
    """A length-delimited field: bytes, or an already encoded sub-message."""
    return _tag(field, _LEN) + varint(len(payload)) + payload


def str_field(field: int, s: str) -> bytes:
    return bytes_field(field, s.encode("utf-8"))


def repeated_ints(field: int, values: Iterable[int]) -> bytes:
    """An unpacked repeated integer field: one tagged varint per value."""
    return b"".join(int_field(field, v) for v in values)


def packed_ints(field: int, values: Iterable[int]) -> bytes:
    """A packed repeated integer field: one length-delimited run of varints."""
    return bytes_field(field, b"".join(varint(v) for v in values))


def packed_floats(field: int, values: Sequence[float]) -> bytes:
    """A packed repeated float field: little-endian float32s."""
    return bytes_field(field, struct.pack(f"<{len(values)}f", *values))


# -- ONNX messages (each function returns the encoded message body) ---------------------------

def tensor(name: str, data_type: int, dims: Sequence[int], values: Sequence[float]) -> bytes:
    """TensorProto: dims=1 (unpacked), data_type=2, float_data=4 / int64_data=7 (packed),
    name=8."""
    if data_type == FLOAT:
        data = packed_floats(4, values)
    elif data_type == INT64:
        data = packed_ints(7, values)
    else:
        raise ValueError(f"unsupported tensor data type {data_type}")
    return repeated_ints(1, dims) + int_field(2, data_type) + data + str_field(8, name)


def attribute(name: str, value: AttrValue) -> bytes:
    """AttributeProto: name=1, i=3, ints=8 (unpacked), type=20."""
    if isinstance(value, int):
        return str_field(1, name) + int_field(3, value) + int_field(20, ATTR_INT)
    return str_field(1, name) + repeated_ints(8, value) + int_field(20, ATTR_INTS)


def node(op_type: str, inputs: Sequence[str], outputs: Sequence[str],
         **attrs: AttrValue) -> bytes:
    """NodeProto: input=1, output=2, op_type=4, attribute=5 (sorted by name, as
    ``onnx.helper.make_node`` does)."""
    return (b"".join(str_field(1, s) for s in inputs)
            + b"".join(str_field(2, s) for s in outputs)
            + str_field(4, op_type)
            + b"".join(bytes_field(5, attribute(k, v)) for k, v in sorted(attrs.items())))


def value_info(name: str, elem_type: int, shape: Sequence[int]) -> bytes:
    """ValueInfoProto{name=1, type=2: TypeProto{tensor_type=1: Tensor{elem_type=1,
    shape=2: TensorShapeProto{dim=1: Dimension{dim_value=1}}}}}."""
    dims = b"".join(bytes_field(1, int_field(1, d)) for d in shape)
    tensor_type = int_field(1, elem_type) + bytes_field(2, dims)
    return str_field(1, name) + bytes_field(2, bytes_field(1, tensor_type))


def graph(name: str, nodes: Sequence[bytes], inputs: Sequence[bytes],
          outputs: Sequence[bytes], initializers: Sequence[bytes] = ()) -> bytes:
    """GraphProto: node=1, name=2, initializer=5, input=11, output=12."""
    return (b"".join(bytes_field(1, n) for n in nodes)
            + str_field(2, name)
            + b"".join(bytes_field(5, t) for t in initializers)
            + b"".join(bytes_field(11, v) for v in inputs)
            + b"".join(bytes_field(12, v) for v in outputs))


def model(graph_body: bytes, *, ir_version: int, opset: int,
          metadata: Optional[Mapping[str, str]] = None) -> bytes:
    """ModelProto: ir_version=1, graph=7, opset_import=8 (OperatorSetIdProto{domain=1,
    version=2}; the default "" domain), metadata_props=14 (StringStringEntryProto{key=1,
    value=2})."""
    opset_import = str_field(1, "") + int_field(2, opset)
    return (int_field(1, ir_version)
            + bytes_field(7, graph_body)
            + bytes_field(8, opset_import)
            + b"".join(bytes_field(14, str_field(1, k) + str_field(2, v))
                       for k, v in (metadata or {}).items()))
