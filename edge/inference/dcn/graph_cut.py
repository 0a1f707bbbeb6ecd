"""Split an ONNX model at its DeformConv nodes: the fast form, derived at load.

The portable ``.onnx`` keeps ONNX ``DeformConv``. Here its graph is cut into ONNX Runtime
segments of standard ops, run in order, with the compiled sampler between them:

* a non-DCN node runs in segment ``L`` = the highest level of its inputs (graph inputs and
  weights are level 0); a DeformConv whose inputs reach level ``L`` is sampled after segment
  ``L``, and its output has level ``L + 1``. FeatherFace V1 thus runs as 4 segments with 3
  sampling stages (the SSH chains are 3 DCNs deep), 5 DCNs per stage.
* each DeformConv becomes the sampler's columns ``[N, OH, OW, K*C]`` -> a small GEMM model
  (``MatMul`` with the reordered weight ``[K*C, O]``, or for a QDQ model ``MatMulInteger``
  on uint8 columns and int8 weights, then ``Add`` bias and ``Transpose`` to NCHW) under the
  original output name, which segment ``L + 1`` takes as an input. The GEMM runs in MLAS
  right after its sampling, so one columns buffer serves every DCN.

The model is read and segments are written straight in the protobuf wire format (as
:mod:`edgeface.inference.onnx_proto` does), so the device needs no ``onnx`` package: nodes and
initializers are copied byte for byte. Field numbers are from ``onnx/onnx.proto``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from edgeface.inference.onnx_proto import _fields, _text

# TensorProto.DataType
_FLOAT = 1
_UINT8 = 2
_INT8 = 3
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64}


class CutError(ValueError):
    """The model cannot take the fast form (the reason is one line)."""


# -- wire format (writing) --------------------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


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
    code = {np.dtype(np.float32): _FLOAT, np.dtype(np.int8): _INT8}[a.dtype]
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return (b"".join(_int_field(1, d) for d in a.shape) + _int_field(2, code)
            + _str(8, name) + _len_field(9, a.tobytes()))


def _value_info(name: str, elem_type: int = _FLOAT) -> bytes:
    """ValueInfoProto: name=1, type=2 {tensor_type=1 {elem_type=1}}; the shape is left to
    ONNX Runtime's inference."""
    return _str(1, name) + _len_field(2, _len_field(1, _int_field(1, elem_type)))


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
        elif fn == 5:  # int32_data, which small integer types may use
            ints += _packed_varints(fv) if wire == 2 else [fv - (1 << 64) if fv >= 1 << 63
                                                           else fv]
    if dtype not in _DTYPES:
        raise CutError(f"initializer {name!r} has data type {dtype}, not float or int64")
    if raw is None and floats is None and ints and dtype in (2, 3, 6):
        return name, np.array(ints, dtype=_DTYPES[dtype]).reshape(dims)
    data = raw if raw is not None else floats
    if data is None:
        raise CutError(f"initializer {name!r} keeps its data outside raw_data/float_data")
    return name, np.frombuffer(data, dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<")
                               ).reshape(dims).astype(_DTYPES[dtype])


@dataclass
class Segment:
    model: bytes
    inputs: List[str]
    outputs: List[str]


@dataclass
class Dcn:
    """One DeformConv, as the runner executes it: sampled into ``cols``, then ``gemm``."""

    x: str
    offset: str
    mask: Optional[str]
    cols: str  # the segment input its columns fill
    kernel: Tuple[int, int]
    stride: Tuple[int, int]
    pads: Tuple[int, int, int, int]
    dilation: Tuple[int, int]
    # (scale, zero point): the sampler writes uint8 columns quantized so (QDQ models)
    quant: Optional[Tuple[float, int]] = None
    # cols -> the DeformConv's output: its own small model, run right after the sampling,
    # so that one columns buffer serves all 15 DCNs (per-DCN buffers read by the next
    # segment held 20 MB of FP32 columns at once)
    gemm: Optional[Segment] = None


@dataclass
class CutModel:
    """Segments in order; ``stages[s]`` are the DCNs sampled after ``segments[s]``."""

    segments: List[Segment]
    stages: List[List[Dcn]]
    graph_inputs: List[str]
    graph_outputs: List[str]


def _const(name: str, inits: Dict[str, bytes]) -> np.ndarray:
    return _tensor_array(memoryview(inits[name]))[1]


def _const_dq(name: str, inits: Dict[str, bytes], producers: Dict[str, _Node],
              data: bool = True) -> Optional[_Node]:
    """The DequantizeLinear producing ``name`` with a constant scale and zero point (and
    constant data, with ``data``), if that is what produces it."""
    p = producers.get(name)
    if p is None or p.op != "DequantizeLinear" or p.domain not in ("", "ai.onnx"):
        return None
    return p if all(i in inits for i in p.inputs[0 if data else 1:] if i) else None


@dataclass
class _Weight:
    """A DeformConv weight as the GEMM's [kh*kw*C, O] operand: float, or int8 with a scale
    and zero point per output channel (a QDQ model)."""

    shape: Tuple[int, int, int, int]  # O, C, kh, kw
    matrix: np.ndarray  # float32 or int8 [kh*kw*C, O]
    scale: Optional[np.ndarray] = None  # float32 [O]
    zero_point: Optional[np.ndarray] = None  # int8 [O]


def _weight(w_name: str, inits: Dict[str, bytes], producers: Dict[str, _Node]) -> _Weight:
    if w_name in inits:
        weight = _const(w_name, inits)
        if weight.dtype != np.float32 or weight.ndim != 4:
            raise CutError(f"DeformConv weight {w_name!r} is not a float32 [O, C, kh, kw] "
                           "tensor")
        return _Weight(weight.shape, weight.transpose(2, 3, 1, 0).reshape(-1, weight.shape[0]))
    dq = _const_dq(w_name, inits, producers)
    if dq is None:
        raise CutError(f"DeformConv weight {w_name!r} is not a constant")
    q, scale = _const(dq.inputs[0], inits), _const(dq.inputs[1], inits)
    zp = _const(dq.inputs[2], inits) if len(dq.inputs) > 2 and dq.inputs[2] else \
        np.zeros(1, np.int8)
    axis = dq.attrs.get("axis")
    axis = 1 if axis is None else axis
    if q.dtype != np.int8 or q.ndim != 4 or (scale.size > 1 and axis != 0) or \
            scale.size not in (1, q.shape[0]) or zp.size != scale.size:
        raise CutError(f"DeformConv weight {w_name!r} is not int8 per output channel")
    o = q.shape[0]
    return _Weight(q.shape, q.transpose(2, 3, 1, 0).reshape(-1, o),
                   np.broadcast_to(scale.reshape(-1), (o,)).astype(np.float32),
                   np.broadcast_to(zp.reshape(-1), (o,)).astype(np.int8))


def _reduce_range(w: _Weight) -> _Weight:
    """Weights requantized into [-63, 63] per output channel where they exceed it. MLAS's
    u8 x s8 kernel without VNNI (AVX2's vpmaddubsw) sums pairs of products in int16, which
    255 * 127 * 2 overflows (measured: errors of 4x the rounding bound); ONNX Runtime's
    quantizer's ``reduce_range`` is the same 7-bit remedy for its own convolutions."""
    amax = np.abs(w.matrix.astype(np.int32)).max(axis=0)
    if (amax <= 63).all() or w.zero_point.any():
        return w
    factor = np.where(amax > 63, amax / 63.0, 1.0)
    q = np.round(w.matrix / factor).astype(np.int8)
    return _Weight(w.shape, q, (w.scale * factor).astype(np.float32), w.zero_point)


def _gemm(index: int, cols: str, out: str, w: _Weight, bias: str, inits: Dict[str, bytes],
          x_dq: Optional[_Node], reduce_range: bool
          ) -> Tuple[List[bytes], List[bytes], Optional[Tuple[float, int]]]:
    """Nodes and new initializers computing the DeformConv output [N, O, OH, OW] from the
    columns [N, OH, OW, K*C], and the columns' quantization when the sampler is to write
    them as uint8."""
    pre, mm = f"{out}__dcn", f"{out}__dcn_mm"
    quantized = w.scale is not None and x_dq is not None and len(x_dq.inputs) == 3 and \
        _const(x_dq.inputs[1], inits).size == 1
    quant = None
    if quantized:
        # Columns are mask-weighted (mask in [0, 1]) convex combinations of x's values and
        # zeros, so x's quantization range holds them: quantized with x's own scale and
        # zero point, the GEMM runs on integers (MLAS's u8s8 kernel) like the convolutions
        # around it. Spelled out, not left to ONNX Runtime's Q/DQ fusion, which turns an
        # int8-weight DequantizeLinear -> MatMul into MatMulNBits, 3x slower here. uint8
        # columns come from the sampler itself: a QuantizeLinear pass over them cost more
        # than the integer GEMM saved.
        w = _reduce_range(w) if reduce_range else w
        xs, xzp = x_dq.inputs[1:]
        x_scale = float(_const(xs, inits).reshape(()))
        zp = _const(xzp, inits)
        zero = not w.zero_point.any()
        inits_out = [_tensor(f"{pre}_wq", w.matrix),
                     _tensor(f"{pre}_scale", (x_scale * w.scale).astype(np.float32))]
        if not zero:
            inits_out.append(_tensor(f"{pre}_wzp", w.zero_point))
        if zp.dtype == np.uint8:
            quant, lhs, nodes = (x_scale, int(zp.reshape(()))), cols, []
        else:  # int8 activations: ONNX Runtime quantizes the float columns
            lhs = f"{pre}_colq"
            nodes = [_node("QuantizeLinear", [cols, xs, xzp], [lhs], f"dcn{index}_colq")]
        nodes += [_node("MatMulInteger", [lhs, f"{pre}_wq", xzp]
                        + ([] if zero else [f"{pre}_wzp"]), [f"{pre}_i32"], f"dcn{index}_mmi"),
                  _node("Cast", [f"{pre}_i32"], [f"{pre}_f"], f"dcn{index}_cast", to=_FLOAT),
                  _node("Mul", [f"{pre}_f", f"{pre}_scale"], [mm], f"dcn{index}_scale")]
    else:
        matrix = w.matrix if w.scale is None else \
            ((w.matrix.astype(np.float32) - w.zero_point) * w.scale).astype(np.float32)
        inits_out = [_tensor(f"{pre}_wmat", matrix)]
        nodes = [_node("MatMul", [cols, f"{pre}_wmat"], [mm], f"dcn{index}_matmul")]
    if bias:
        nodes.append(_node("Add", [mm, bias], [f"{mm}_b"], f"dcn{index}_bias"))
        mm = f"{mm}_b"
    nodes.append(_node("Transpose", [mm], [out], f"dcn{index}_nchw", perm=[0, 3, 1, 2]))
    return nodes, inits_out, quant


def _dcn_from(node: _Node, inits: Dict[str, bytes], producers: Dict[str, _Node], index: int,
              quantize_columns: bool, reduce_range: bool) -> Tuple[Dcn, List[bytes], List[bytes]]:
    a = node.attrs
    if (a.get("group") or 1) != 1 or (a.get("offset_group") or 1) != 1:
        raise CutError("a DeformConv has group or offset_group != 1")
    ins = node.inputs + [""] * (5 - len(node.inputs))
    x, w_name, offset, bias, mask = ins[:5]
    out = node.outputs[0]
    cols = f"{out}__dcn_cols"
    w = _weight(w_name, inits, producers)
    x_dq = _const_dq(x, inits, producers, data=False) if quantize_columns else None
    nodes, new_inits, quant = _gemm(index, cols, out, w, bias, inits, x_dq, reduce_range)
    dcn = Dcn(x, offset, mask or None, cols, w.shape[2:],
              tuple(a.get("strides") or (1, 1)), tuple(a.get("pads") or (0, 0, 0, 0)),
              tuple(a.get("dilations") or (1, 1)), quant)
    return dcn, nodes, new_inits


def _quantization_record(metadata_prop) -> Optional[dict]:
    kv = {fn: _text(fv) for fn, _, fv in _fields(metadata_prop)}
    if kv.get(1) != "edgeface.quantization":
        return None
    try:
        return json.loads(kv.get(2, ""))
    except ValueError:
        return None


def cut(model_bytes: bytes, *, quantize_columns: bool = True,
        reduce_range: Optional[bool] = None) -> CutModel:
    """The fast form of a model; raises CutError when it has no DeformConv or one the
    sampler does not cover. In a QDQ model (int8 DeformConv weights behind DequantizeLinear),
    ``quantize_columns`` quantizes the columns with the DeformConv input's scale and zero
    point so that the GEMM runs in integers; otherwise it runs in float. ``reduce_range``
    (None: as the model's ``edgeface.quantization`` record says, else True) keeps the
    integer GEMM's weights within 7 bits."""
    view = memoryview(model_bytes)
    head, graph, record = [], None, None
    for fn, wire, fv in _fields(view):
        if fn == 7:
            graph = fv
        else:  # ir_version, opset_import, metadata...: copied into every segment
            head.append(_len_field(fn, bytes(fv)) if wire == 2 else _int_field(fn, fv))
            record = (_quantization_record(fv) if fn == 14 else None) or record
    if reduce_range is None:
        reduce_range = bool((record or {}).get("reduce_range", True))
    if graph is None:
        raise CutError("no graph")
    nodes, init_raw, inits, inputs, outputs = [], {}, {}, [], []
    io_info: Dict[str, bytes] = {}  # the graph's own inputs/outputs, types and shapes kept
    for fn, _, fv in _fields(graph):
        if fn == 1:
            nodes.append(_parse_node(fv))
        elif fn == 5:
            name = _text(next((v for n, _, v in _fields(fv) if n == 8), b""))
            init_raw[name] = inits[name] = bytes(fv)
        elif fn in (11, 12):
            name = _text(next(v for n, _, v in _fields(fv) if n == 1))
            (inputs if fn == 11 else outputs).append(name)
            io_info[name] = bytes(fv)
    if not any(n.op == "DeformConv" for n in nodes):
        raise CutError("the model has no DeformConv")
    if any(n.op in ("If", "Loop", "Scan") for n in nodes):
        raise CutError("the model has control-flow subgraphs")
    producers = {o: n for n in nodes for o in n.outputs}
    uses: Dict[str, int] = {}
    for n in nodes:
        for i in n.inputs:
            uses[i] = uses.get(i, 0) + 1
    # DequantizeLinear of an int8 DeformConv weight: folded into the segment's GEMM
    folded = {n.inputs[1] for n in nodes if n.op == "DeformConv" and len(n.inputs) > 1
              and uses.get(n.inputs[1]) == 1 and _const_dq(n.inputs[1], inits, producers)}
    level: Dict[str, int] = {}
    seg_nodes: List[List[bytes]] = [[]]
    stages: List[List[Dcn]] = [[]]
    seg_io_nodes: List[List[_Node]] = [[]]  # parsed nodes per segment, for its inputs/outputs
    for node in nodes:
        if node.outputs and node.outputs[0] in folded:
            continue
        lv = max((level.get(i, 0) for i in node.inputs if i), default=0)
        if node.op == "DeformConv" and node.domain in ("", "ai.onnx"):
            index = sum(map(len, stages))
            dcn, gemm, new_inits = _dcn_from(node, inits, producers, index, quantize_columns,
                                             reduce_range)
            while len(stages) <= lv + 1:
                stages.append([])
                seg_nodes.append([])
                seg_io_nodes.append([])
            parsed = [_parse_node(memoryview(g)) for g in gemm]
            made = {o for g in parsed for o in g.outputs}
            used = [init_raw[i] for i in dict.fromkeys(i for g in parsed for i in g.inputs)
                    if i in init_raw and i not in made]
            out = node.outputs[0]
            g = (b"".join(_len_field(1, n) for n in gemm) + _str(2, f"dcn{index}_gemm")
                 + b"".join(_len_field(5, t) for t in used + new_inits)
                 + _len_field(11, _value_info(dcn.cols, _UINT8 if dcn.quant else _FLOAT))
                 + _len_field(12, io_info.get(out) or _value_info(out)))
            dcn.gemm = Segment(b"".join(head) + _len_field(7, g), [dcn.cols], [out])
            stages[lv].append(dcn)
            level[out] = lv + 1
        else:
            seg_nodes[lv].append(node.raw)
            seg_io_nodes[lv].append(node)
            for o in node.outputs:
                level[o] = lv
    if any(n.op in ("QuantizeLinear", "DequantizeLinear") for n in nodes) and any(
            n.op == "DeformConv" and n.inputs[1] not in folded for n in nodes):
        # A Q/DQ model whose DeformConv stays float (TensorRT's target): cutting it moves
        # ONNX Runtime's Q/DQ fusions at the segment borders, which changed its outputs by
        # up to 0.4 (measured); ONNX Runtime's DeformConv runs it as written.
        raise CutError("a Q/DQ model whose DeformConv weights are not int8 (a TensorRT "
                       "target?) keeps ONNX Runtime's DeformConv")
    # what later segments, the samplers after this segment and the caller read from it
    later_reads: List[set] = []
    reads_after = set(outputs)
    for s in range(len(seg_io_nodes) - 1, -1, -1):
        for d in stages[s]:
            reads_after |= {d.x, d.offset} | ({d.mask} if d.mask else set())
        later_reads.insert(0, set(reads_after))
        for n in seg_io_nodes[s]:
            reads_after |= set(i for i in n.inputs if i)
    segments = []
    for s, group in enumerate(seg_io_nodes):
        produced = {o for n in group for o in n.outputs}
        needed = [i for n in group for i in n.inputs if i and i not in produced]
        seg_in = list(dict.fromkeys(i for i in needed if i not in inits))
        used_inits = [init_raw[i] for i in dict.fromkeys(needed) if i in init_raw]
        seg_out = [o for n in group for o in n.outputs if o in later_reads[s]]
        g = (b"".join(_len_field(1, n) for n in seg_nodes[s]) + _str(2, f"segment{s}")
             + b"".join(_len_field(5, t) for t in used_inits)
             + b"".join(_len_field(11, io_info.get(i) or _value_info(i)) for i in seg_in)
             + b"".join(_len_field(12, io_info.get(o) or _value_info(o)) for o in seg_out))
        segments.append(Segment(b"".join(head) + _len_field(7, g), seg_in, seg_out))
    return CutModel(segments, stages, [i for i in inputs if i not in inits], outputs)
