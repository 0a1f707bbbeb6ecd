"""Split an ONNX model at its DeformConv nodes: the fast form, derived at load.

The portable ``.onnx`` keeps ONNX ``DeformConv``. Here its graph is cut into ONNX Runtime
segments of standard ops, run in order, with the compiled sampler between them:

* a non-DCN node runs in segment ``L`` = the highest level of its inputs (graph inputs and
  weights are level 0); a DeformConv whose inputs reach level ``L`` is sampled after segment
  ``L``, and its output has level ``L + 1``. FeatherFace V1 thus runs as 4 segments with 3
  sampling stages (the SSH chains are 3 DCNs deep), 5 DCNs per stage. Nodes of initializers
  alone (weight DequantizeLinear, Constant) run in every part that reads them.
* each DeformConv becomes the sampler's columns ``[N, OH, OW, K*C]`` -> a small GEMM model
  (:mod:`.gemm`: ``MatMul`` with the reordered weight ``[K*C, O]``, or for a QDQ model
  ``MatMulIntegerToFloat`` on uint8 columns and int8 weights) whose output, ``<name>__nhwc``, stays
  NHWC; each later part that reads the DeformConv's output transposes it to NCHW under the
  original name. The GEMM runs in MLAS right after its sampling, so one columns buffer
  serves every DCN.

The model is read and segments are written straight in the protobuf wire format
(:mod:`.proto`), so the device needs no ``onnx`` package: nodes and
initializers are copied byte for byte. Field numbers are from ``onnx/onnx.proto``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from edgeface.inference.dcn import uint8_inputs
from edgeface.inference.dcn.gemm import MS_DOMAIN, Dcn, Segment, TableInput, _const_dq, _dcn_from
from edgeface.inference.dcn.proto import (
    _FLOAT,
    _INT8,
    _UINT8,
    CutError,
    _fields,
    _int_field,
    _len_field,
    _Node,
    _node,
    _parse_node,
    _str,
    _tensor_array,
    _tensor_name,
    _text,
    _value_info,
)

__all__ = ["CutError", "CutModel", "Dcn", "Segment", "cut"]

#: An integer GEMM whose columns take at most this many bytes a pixel runs in the segment
#: after its stage, not in its own session: each ONNX Runtime run costs ~20 us of its own
#: (thread CPU, 2-core AVX2 EPYC: 29 us for V1's 13x13 GEMM of 0.3 M MACs). Its columns
#: then stay alive until that segment runs: V1's 9 SSH DCNs that read the 14-channel
#: branch (126 bytes a pixel) hold 0.9 MB at once; the 6 that read 56 channels (504 bytes,
#: 1.4 MB each at 52x52) keep their own run and the one shared buffer.
NEXT_PART_MAX_BYTES = 128


@dataclass
class CutModel:
    """Segments in order; ``stages[s]`` are the DCNs sampled after ``segments[s]``;
    ``tables``: the model whose outputs are the byte tables of uint8 offsets and masks
    (:mod:`.uint8_inputs`), run once at load."""

    segments: List[Segment]
    stages: List[List[Dcn]]
    graph_inputs: List[str]
    graph_outputs: List[str]
    tables: Optional[bytes] = None


def _quantization_record(metadata_prop) -> Optional[dict]:
    kv = {fn: _text(fv) for fn, _, fv in _fields(metadata_prop)}
    if kv.get(1) != "edgeface.quantization":
        return None
    try:
        return json.loads(kv.get(2, ""))
    except ValueError:
        return None


@dataclass
class _Graph:
    head: List[bytes]  # the model's fields but its graph, copied into every part
    record: Optional[dict]  # the edgeface.quantization metadata, if any
    nodes: List[_Node]
    inits: Dict[str, bytes]
    inputs: List[str]
    outputs: List[str]
    io_info: Dict[str, bytes]  # the graph's own inputs/outputs, types and shapes kept


def _read(model_bytes: bytes) -> _Graph:
    view = memoryview(model_bytes)
    head, graph, record = [], None, None
    for fn, wire, fv in _fields(view):
        if fn == 7:
            graph = fv
        else:  # ir_version, opset_import, metadata...: copied into every segment
            head.append(_len_field(fn, bytes(fv)) if wire == 2 else _int_field(fn, fv))
            record = (_quantization_record(fv) if fn == 14 else None) or record
    if graph is None:
        raise CutError("no graph")
    g = _Graph(head, record, [], {}, [], [], {})
    for fn, _, fv in _fields(graph):
        if fn == 1:
            g.nodes.append(_parse_node(fv))
        elif fn == 5:
            g.inits[_tensor_name(fv)] = bytes(fv)
        elif fn in (11, 12):
            name = _text(next(v for n, _, v in _fields(fv) if n == 1))
            (g.inputs if fn == 11 else g.outputs).append(name)
            g.io_info[name] = bytes(fv)
    if not any(n.op == "DeformConv" for n in g.nodes):
        raise CutError("the model has no DeformConv")
    if any(n.op in ("If", "Loop", "Scan") for n in g.nodes):
        raise CutError("the model has control-flow subgraphs")
    return g


def _with_constants(group: List[_Node], constants: Dict[str, _Node],
                    order: Dict[int, int]) -> List[_Node]:
    """``group`` preceded by the nodes that each part computes for itself, those it reads:

    * constant nodes (of initializers alone: weight DequantizeLinear, Constant). Computed in
      segment 0 and passed on as float tensors, the dequantized weights kept ONNX Runtime
      from fusing DequantizeLinear -> Conv -> QuantizeLinear into QLinearConv after the cut:
      the 18 convolutions behind the DCNs ran in float (2.8 of 37 ms of the INT8 model).
    * the Transpose of a DCN's NHWC output to its NCHW name. In the part that reads it,
      ONNX Runtime cancels it against the NCHW -> NHWC Transpose it puts before its NHWC
      (QLinear) convolutions; the sampler reads the NHWC output itself.
    * the DequantizeLinear of an activation that only ONNX Runtime nodes read (not a
      sampler): the parts then pass uint8 between them, where a float tensor cost a
      DequantizeLinear in the part that made it and a QuantizeLinear in each part that
      read it (V1: the SSH branches that wait for the last segment's concatenation).
      Such a node follows the node that makes its input when that is in ``group``.
    """
    produced = {o for n in group for o in n.outputs}
    todo = [i for n in group for i in n.inputs if i in constants and i not in produced]
    found: Dict[int, _Node] = {}
    while todo:
        node = constants[todo.pop()]
        if id(node) not in found:
            found[id(node)] = node
            todo += [i for i in node.inputs if i in constants]
    ordered = sorted(found.values(), key=lambda n: order[id(n)])
    after: Dict[str, List[_Node]] = {}
    first = []
    for node in ordered:
        inner = next((i for i in node.inputs if i in produced), None)
        (after.setdefault(inner, []) if inner else first).append(node)
    if not after:
        return first + group
    out = first
    for node in group:
        out.append(node)
        for o in node.outputs:
            out += after.pop(o, [])
    return out


def _imports(head: List[bytes], domain: str) -> bool:
    """Whether the model fields ``head`` have an opset_import (8) of ``domain``."""
    for field_bytes in head:
        for fn, _, fv in _fields(memoryview(field_bytes)):
            if fn == 8 and any(n == 1 and _text(v) == domain for n, _, v in _fields(fv)):
                return True
    return False


def _ms_opset(head: List[bytes], nodes: List[_Node]) -> List[bytes]:
    """``head`` with an opset_import (8) of ONNX Runtime's contrib domain when ``nodes`` use
    it (MatMulIntegerToFloat) and it has none."""
    if any(n.domain == MS_DOMAIN for n in nodes) and not _imports(head, MS_DOMAIN):
        return head + [_len_field(8, _str(1, MS_DOMAIN) + _int_field(2, 1))]
    return head


def _gemm_part(g: _Graph, dcn: Dcn, gemm: List[bytes], new_inits: List[bytes], index: int,
               out: str, constants: Dict[str, _Node], order: Dict[int, int]) -> Segment:
    nodes = _with_constants([_parse_node(memoryview(b)) for b in gemm], constants, order)
    made = {o for n in nodes for o in n.outputs}
    used = [g.inits[i] for i in dict.fromkeys(i for n in nodes for i in n.inputs)
            if i in g.inits and i not in made]
    head = b"".join(_ms_opset(g.head, nodes))
    body = (b"".join(_len_field(1, n.raw) for n in nodes) + _str(2, f"dcn{index}_gemm")
            + b"".join(_len_field(5, t) for t in used + new_inits)
            + _len_field(11, _value_info(dcn.cols, _UINT8 if dcn.quant else _FLOAT))
            + _len_field(12, _value_info(out)))
    return Segment(head + _len_field(7, body), [dcn.cols], [out])


def _zero_point_type(node: _Node, inits: Dict[str, bytes]) -> int:
    """The element type of a QuantizeLinear's output: its zero point's (uint8 without one)."""
    zp = node.inputs[2] if len(node.inputs) > 2 else ""
    if zp in inits and _tensor_array(memoryview(inits[zp]))[1].dtype == np.int8:
        return _INT8
    return _UINT8


def _segments(g: _Graph, groups: List[List[_Node]], stages: List[List[Dcn]],
              constants: Dict[str, _Node], order: Dict[int, int],
              uint8: set) -> List[Segment]:
    # what later segments, the samplers after this segment and the caller read from it
    groups = [_with_constants(group, constants, order) for group in groups]
    later_reads: List[set] = []
    reads_after = set(g.outputs)
    for s in range(len(groups) - 1, -1, -1):
        for d in stages[s]:
            reads_after |= {d.x, d.offset} | ({d.mask} if d.mask else set())
        later_reads.insert(0, set(reads_after))
        for n in groups[s]:
            reads_after |= set(i for i in n.inputs if i)
    # what crosses between parts is float but for QuantizeLinear outputs (uint8 or int8)
    types = {o: _zero_point_type(n, g.inits)
             for group in groups for n in group if n.op == "QuantizeLinear" for o in n.outputs}
    types.update((o, _UINT8) for o in uint8)
    # a GEMM's NHWC output read by a part: its rank, without which ONNX Runtime's NHWC
    # transformer leaves a QLinearConv reading it in NCHW between two Transposes
    dims = {d.output: [None, None, None, d.out_channels] for stage in stages for d in stage}
    dims.update((d.cols, [None, None, None, d.col_width]) for stage in stages for d in stage)
    segments = []
    for s, group in enumerate(groups):
        produced = {o for n in group for o in n.outputs}
        needed = [i for n in group for i in n.inputs if i and i not in produced]
        seg_in = list(dict.fromkeys(i for i in needed if i not in g.inits))
        used_inits = [g.inits[i] for i in dict.fromkeys(needed) if i in g.inits]
        seg_out = [o for n in group for o in n.outputs if o in later_reads[s]
                   and (o not in constants or o in g.outputs)]
        body = (b"".join(_len_field(1, n.raw) for n in group) + _str(2, f"segment{s}")
                + b"".join(_len_field(5, t) for t in used_inits)
                + b"".join(_len_field(11, g.io_info.get(i)
                                      or _value_info(i, types.get(i, _FLOAT), dims.get(i)))
                           for i in seg_in)
                + b"".join(_len_field(12, g.io_info.get(o) or _value_info(o, types.get(o, _FLOAT)))
                           for o in seg_out))
        segments.append(Segment(b"".join(g.head) + _len_field(7, body), seg_in, seg_out))
    return segments


def cut(model_bytes: bytes, *, quantize_columns: bool = True,
        reduce_range: Optional[bool] = None) -> CutModel:
    """The fast form of a model; raises CutError when it has no DeformConv or one the
    sampler does not cover. In a QDQ model (int8 DeformConv weights behind DequantizeLinear),
    ``quantize_columns`` quantizes the columns with the DeformConv input's scale and zero
    point so that the GEMM runs in integers; otherwise it runs in float. ``reduce_range``
    (None: as the model's ``edgeface.quantization`` record says, else True) keeps the
    integer GEMM's weights within 7 bits."""
    g = _read(model_bytes)
    if reduce_range is None:
        reduce_range = bool((g.record or {}).get("reduce_range", True))
    nodes, inits = g.nodes, g.inits
    producers = {o: n for n in nodes for o in n.outputs}
    uses: Dict[str, int] = {}
    sampled: set = set()  # what a DeformConv reads: the sampler needs it in a segment's outputs
    for n in nodes:
        for i in n.inputs:
            uses[i] = uses.get(i, 0) + 1
        if n.op == "DeformConv":
            sampled.update(n.inputs)
    # DequantizeLinear of an int8 DeformConv weight: folded into the segment's GEMM
    folded = {n.inputs[1] for n in nodes if n.op == "DeformConv" and len(n.inputs) > 1
              and uses.get(n.inputs[1]) == 1 and _const_dq(n.inputs[1], inits, producers)}
    # a uint8 offset or mask (behind per-value operators and a channel Slice): the sampler
    # reads the uint8 tensor through a table, and the nodes on the way that nothing else
    # reads are dropped
    sources, dropped = uint8_inputs.find(nodes, inits, producers, g.outputs) \
        if quantize_columns else ({}, set())
    tables: Dict[str, uint8_inputs.Source] = {}
    uint8: set = set()  # tensors the sampler reads or writes as uint8
    next_part: List[tuple] = []  # (segment, GEMM nodes) run in a segment
    order = {id(n): k for k, n in enumerate(nodes)}
    # output -> its node, for the nodes each part computes itself (:func:`_with_constants`)
    constants: Dict[str, _Node] = {}
    constant: set = set()  # outputs of nodes of initializers alone
    nhwc: Dict[str, str] = {}  # a DCN's output -> its GEMM's NHWC output
    level: Dict[str, int] = {}
    groups: List[List[_Node]] = [[]]  # the nodes of each segment
    stages: List[List[Dcn]] = [[]]
    for node in nodes:
        if id(node) in dropped:  # its outputs keep their level: the DCN reads them there
            lv = max((level.get(i, 0) for i in node.inputs if i), default=0)
            level.update((o, lv) for o in node.outputs)
            continue
        if node.outputs and node.outputs[0] in folded:
            continue
        if node.op != "DeformConv" and node.outputs and all(
                i in inits or i in constant for i in node.inputs if i):
            constant.update(node.outputs)
            constants.update((o, node) for o in node.outputs)
            continue
        lv = max((level.get(i, 0) for i in node.inputs if i), default=0)
        if node.op == "DequantizeLinear" and node.outputs[0] not in sampled and \
                node.outputs[0] not in g.outputs and node.domain in ("", "ai.onnx") and \
                _const_dq(node.outputs[0], inits, producers, data=False):
            constants[node.outputs[0]] = node  # in the parts that read it
            level[node.outputs[0]] = lv
            continue
        if node.op == "DeformConv" and node.domain in ("", "ai.onnx"):
            if any(i in inits or i in constants for i in node.inputs[0:5:2] if i):
                # no segment computes it for the sampler: ONNX Runtime's kernel reads it
                raise CutError("a DeformConv reads a constant input, offset or mask")
            index = sum(map(len, stages))
            dcn, gemm, new_inits, nchw = _dcn_from(node, inits, producers, index,
                                                   quantize_columns, reduce_range)
            for slot, kind in ((2, "offset"), (4, "mask")):
                src = sources.get((id(node), slot))
                if src is None:
                    continue
                key = f"dcn{index}_{kind}_table"
                tables[key] = src
                uint8.add(src.tensor)
                setattr(dcn, kind, src.tensor)
                setattr(dcn, f"{kind}_from", TableInput(src.start, src.stop, key, src.linear))
            if dcn.x not in nhwc:
                # a segment's output: that segment gives it in NHWC too, where ONNX Runtime
                # can cancel the Transpose against its own layout changes (the sampler's
                # to_nhwc copy of it took 0.3 ms CPU a frame)
                nhwc[dcn.x] = f"{dcn.x}__nhwc"
                groups[lv].append(_parse_node(memoryview(_node(
                    "Transpose", [dcn.x], [nhwc[dcn.x]], f"dcn{index}_nhwc", perm=[0, 2, 3, 1]))))
            dcn.x = nhwc[dcn.x]
            nhwc[node.outputs[0]] = dcn.output
            constants[node.outputs[0]] = nchw
            order[id(nchw)] = order[id(node)]
            while len(stages) <= lv + 1:
                stages.append([])
                groups.append([])
            if dcn.quant and dcn.col_width <= NEXT_PART_MAX_BYTES:
                next_part.append((lv + 1, [_parse_node(memoryview(b)) for b in gemm]))
                inits.update((_tensor_name(t), t) for t in new_inits)
                uint8.add(dcn.cols)
            else:
                dcn.gemm = _gemm_part(g, dcn, gemm, new_inits, index, dcn.output, constants,
                                      order)
            stages[lv].append(dcn)
            level[node.outputs[0]] = lv + 1
        else:
            groups[lv].append(node)
            for o in node.outputs:
                level[o] = lv
    if any(n.op in ("QuantizeLinear", "DequantizeLinear") for n in nodes) and any(
            n.op == "DeformConv" and n.inputs[1] not in folded for n in nodes):
        # A Q/DQ model whose DeformConv stays float (TensorRT's target): cutting it moves
        # ONNX Runtime's Q/DQ fusions at the segment borders, which changed its outputs by
        # up to 0.4 (measured); ONNX Runtime's DeformConv runs it as written.
        raise CutError("a Q/DQ model whose DeformConv weights are not int8 (a TensorRT "
                       "target?) keeps ONNX Runtime's DeformConv")
    for part, gemm_nodes in next_part:  # they read only their columns and weights: first
        groups[part][:0] = gemm_nodes
    g.head = _ms_opset(g.head, [n for _, gemm_nodes in next_part for n in gemm_nodes])
    # a graph output that no part reads (a constant, a DCN's output): the last part gives it
    groups[-1] += list({id(constants[o]): constants[o] for o in g.outputs
                        if o in constants}.values())
    return CutModel(_segments(g, groups, stages, constants, order, uint8), stages,
                    [i for i in g.inputs if i not in inits], g.outputs,
                    uint8_inputs.tables_model(g.head, tables, inits) if tables else None)
