"""Each DeformConv as a GEMM over the sampler's columns: the weight reordered to
``[kh*kw*C, O]``, float (``MatMul``) or, in a QDQ model, int8 (ONNX Runtime's
``MatMulIntegerToFloat`` on uint8 columns: scales and float bias applied in the GEMM's output
pass; int8 activations: ``MatMulInteger``, the bias added in int32, then one per-channel
DequantizeLinear), its output left in NHWC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from edgeface.inference.dcn.proto import (
    CutError,
    _Node,
    _node,
    _parse_node,
    _tensor,
    _tensor_array,
)

#: the domain of ONNX Runtime's contrib operators (MatMulIntegerToFloat)
MS_DOMAIN = "com.microsoft"


@dataclass
class Segment:
    model: bytes
    inputs: List[str]
    outputs: List[str]


@dataclass
class TableInput:
    """Channels ``[start, stop)`` (stop None: to the last) of a uint8 NCHW tensor, each byte
    read as ``CutModel.tables``' output ``table`` gives it; ``linear``: the (scale, zero
    point) of the DequantizeLinear that ends the chain, which the table may equal."""

    start: int
    stop: Optional[int]
    table: str
    linear: Optional[Tuple[float, int]] = None


@dataclass
class Dcn:
    """One DeformConv, as the runner executes it: sampled into ``cols``, then ``gemm``."""

    x: str  # NHWC: a segment's Transpose of the DeformConv input, or another DCN's GEMM output
    offset: str
    mask: Optional[str]
    cols: str  # the segment input its columns fill
    kernel: Tuple[int, int]
    stride: Tuple[int, int]
    pads: Tuple[int, int, int, int]
    dilation: Tuple[int, int]
    output: str = ""  # the GEMM's output: the DeformConv's, in NHWC
    out_channels: int = 0
    col_width: int = 0  # kh * kw * C: a column's values
    # (scale, zero point): the sampler writes uint8 columns quantized so (QDQ models)
    quant: Optional[Tuple[float, int]] = None
    # a uint8 offset / mask (:mod:`.uint8_inputs`): ``offset`` (``mask``) names the uint8
    # tensor, read at channels [start, stop) through a table
    offset_from: Optional[TableInput] = None
    mask_from: Optional[TableInput] = None
    # cols -> the DeformConv's output: its own small model, run right after the sampling,
    # so that one columns buffer serves all 15 DCNs (per-DCN buffers read by the next
    # segment held 20 MB of FP32 columns at once); None: the next segment runs the GEMM
    # (narrow integer columns, :data:`graph_cut.NEXT_PART_MAX_BYTES`)
    gemm: Optional[Segment] = None


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
    """Nodes and new initializers computing the DeformConv output in NHWC, [N, OH, OW, O], as
    ``out`` from the columns [N, OH, OW, K*C], and the columns' quantization when the sampler
    is to write them as uint8."""
    pre = f"{out}__dcn"
    mm = f"{pre}_mm"
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
        inits_out = [_tensor(f"{pre}_wq", w.matrix)]
        if not zero:
            inits_out.append(_tensor(f"{pre}_wzp", w.zero_point))
        if zp.dtype == np.uint8 and (not bias or bias in inits):
            # One MatMulIntegerToFloat (ONNX Runtime's contrib op): MLAS applies the scales
            # and adds the float bias in the GEMM's own output pass, where MatMulInteger, an
            # int32 Add and a per-channel DequantizeLinear made two more passes over the
            # output (0.95 of 2.46 ms a V1 frame at one thread, 2-core AVX2 EPYC).
            quant = (x_scale, int(zp.reshape(())))
            inits_out.append(_tensor(f"{pre}_wscale", w.scale.astype(np.float32)))
            ins = [cols, f"{pre}_wq", xs, f"{pre}_wscale", xzp,
                   "" if zero else f"{pre}_wzp"] + ([bias] if bias else [])
            node = _node("MatMulIntegerToFloat", ins, [out], f"dcn{index}_mmf",
                         domain=MS_DOMAIN)
            return [node], inits_out, quant
        inits_out.append(_tensor(f"{pre}_scale", (x_scale * w.scale).astype(np.float32)))
        if zp.dtype == np.uint8:
            quant, lhs, nodes = (x_scale, int(zp.reshape(()))), cols, []
        else:  # int8 activations: ONNX Runtime quantizes the float columns
            lhs = f"{pre}_colq"
            nodes = [_node("QuantizeLinear", [cols, xs, xzp], [lhs], f"dcn{index}_colq")]
        nodes.append(_node("MatMulInteger", [lhs, f"{pre}_wq", xzp]
                           + ([] if zero else [f"{pre}_wzp"]), [f"{pre}_i32"],
                           f"dcn{index}_mmi"))
        acc = f"{pre}_i32"
        if bias in inits:
            # the bias in accumulator units, added in int32, and one per-channel
            # DequantizeLinear: two passes over the output where Cast, Mul and Add made three
            # (rounded to half of x_scale * w_scale: below one column step times one weight step)
            step = (x_scale * w.scale).astype(np.float64)
            bq = np.clip(np.rint(_const(bias, inits).astype(np.float64) / step),
                         -2 ** 31, 2 ** 31 - 1).astype(np.int32)
            inits_out.append(_tensor(f"{pre}_bq", bq))
            nodes.append(_node("Add", [acc, f"{pre}_bq"], [f"{pre}_i32b"], f"dcn{index}_bias"))
            acc, bias = f"{pre}_i32b", ""
        nodes.append(_node("DequantizeLinear", [acc, f"{pre}_scale"], [mm if bias else out],
                           f"dcn{index}_dq", axis=3))
    else:
        matrix = w.matrix if w.scale is None else \
            ((w.matrix.astype(np.float32) - w.zero_point) * w.scale).astype(np.float32)
        inits_out = [_tensor(f"{pre}_wmat", matrix)]
        nodes = [_node("MatMul", [cols, f"{pre}_wmat"], [mm if bias else out],
                       f"dcn{index}_matmul")]
    if bias:
        nodes.append(_node("Add", [mm, bias], [out], f"dcn{index}_bias"))
    return nodes, inits_out, quant


def _dcn_from(node: _Node, inits: Dict[str, bytes], producers: Dict[str, _Node], index: int,
              quantize_columns: bool, reduce_range: bool
              ) -> Tuple[Dcn, List[bytes], List[bytes], _Node]:
    """The DCN, its GEMM's nodes (columns -> the output in NHWC, ``<output>__nhwc``) and new
    initializers, and the Transpose node that gives the DeformConv's own (NCHW) output."""
    a = node.attrs
    if (a.get("group") or 1) != 1 or (a.get("offset_group") or 1) != 1:
        raise CutError("a DeformConv has group or offset_group != 1")
    ins = node.inputs + [""] * (5 - len(node.inputs))
    x, w_name, offset, bias, mask = ins[:5]
    out = node.outputs[0]
    cols = f"{out}__dcn_cols"
    w = _weight(w_name, inits, producers)
    x_dq = _const_dq(x, inits, producers, data=False) if quantize_columns else None
    nhwc = f"{out}__nhwc"
    nodes, new_inits, quant = _gemm(index, cols, nhwc, w, bias, inits, x_dq, reduce_range)
    dcn = Dcn(x, offset, mask or None, cols, w.shape[2:],
              tuple(a.get("strides") or (1, 1)), tuple(a.get("pads") or (0, 0, 0, 0)),
              tuple(a.get("dilations") or (1, 1)), output=nhwc, out_channels=w.shape[0],
              col_width=w.shape[1] * w.shape[2] * w.shape[3], quant=quant)
    nchw = _parse_node(memoryview(_node("Transpose", [nhwc], [out], f"dcn{index}_nchw",
                                        perm=[0, 3, 1, 2])))
    return dcn, nodes, new_inits, nchw
