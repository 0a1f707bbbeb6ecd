"""An exact float rewrite of the pre-processed model, before calibration: BiFPN's zero-padded
max pooling finished by one ``Max`` with a constant instead of ``Where`` + ``Relu``.

The exporter writes FeatherFace's ``max_pool(pad(x, 0))`` (``MaxPool2dSame``) as
``Where(border, Relu(m), m)`` with ``m`` a ceil-mode ``MaxPool`` and ``border`` a constant
boolean [H, W] mask of the outputs whose window reaches into the padding, where the padding's
zero takes part in the max. That is ``Max(m, B)`` with ``B`` 0 on the border and float32's
lowest value elsewhere: the same for every finite ``m``. In the INT8 graph ONNX Runtime ran
each ``Where`` as a Transpose to NCHW, DequantizeLinear -> Relu -> QuantizeLinear, a
``QLinearWhere`` and a Transpose back: 4 poolings, ~0.45 ms of a 14 ms frame. ``Max`` stays
out of the quantized operators (its constant must stay float: -3.4e38 has no uint8 scale).
Measured on a 2-core AVX2 EPYC (no VNNI), 1 thread, thread CPU median of 180 V1 INT8 frames
through the DCN fast form, interleaved with the model quantized without it (load 1.2): 14.02
against 13.74 ms. INT8 AP 68.69 / 58.22 / 32.19 (FP32 68.20 / 58.45 / 32.41; without it
68.93 / 58.79 / 32.50): the float values are the same, the Max output's range is calibrated
on its own.

Unlike the ``Pad`` + ``MaxPool`` spelling (dropped: ONNX Runtime 1.23.2 fuses the zero ``Pad``
into the pooling's -inf padding and gets 19 of 338 values wrong) nothing here is a pattern
an optimizer fuses; the floor's outputs are checked in tests/quantize/test_border_max.py.
Runs after :func:`~edgeface.quantize.fold.fold_scalings`, which folds BiFPN's fusion
weights into the convolution through the ``Where`` (it does not walk through ``Max``). The
dynamic-shape export spells the border with Slice + Relu + Concat (no constant mask): left as
it is.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from edgeface.quantize.rewrite_graph import index, prune

LOWEST = np.finfo(np.float32).min  # max(m, LOWEST) == m for every finite float32 m


def _float_ranks(proto: Any) -> Dict[str, Optional[int]]:
    """Tensor name -> its rank where the graph says it is float32 (None: rank unknown);
    names the graph gives another type are absent. Shape inference fills what value_info
    lacks (the pre-processed model has it all; a hand-made test graph may not)."""
    from onnx import TensorProto, shape_inference

    g = proto.graph
    infos = list(g.value_info) + list(g.input) + list(g.output)
    known = {v.name for v in infos}
    if any(o not in known for n in g.node for o in n.output):
        try:
            inferred = shape_inference.infer_shapes(proto)
            infos = list(inferred.graph.value_info) + list(g.input) + list(g.output)
        except Exception:  # an op shape inference does not know: keep what we have
            pass
    out: Dict[str, Optional[int]] = {}
    for v in infos:
        t = v.type.tensor_type
        if t.elem_type != TensorProto.FLOAT:
            continue
        out[v.name] = len(t.shape.dim) if t.HasField("shape") else None
    return out


def spell_border_max(proto: Any) -> int:
    """Replace ``Where(C, Relu(m), m)`` (``C`` a constant bool initializer, the ``Relu`` read
    only by that ``Where``, ``m`` float32) by ``Max(m, B)``, ``B`` = 0 where ``C`` else
    float32's lowest, ``C``'s shape with leading ones up to ``m``'s rank (the broadcast is
    ``Where``'s). Changes ``proto`` in place; returns how many ``Where`` nodes it replaced."""
    from onnx import TensorProto, helper, numpy_helper

    g = proto.graph
    inits, producers, consumers, outputs = index(g)
    ranks: Optional[Dict[str, Optional[int]]] = None
    made: Dict[tuple, str] = {}
    dropped = set()
    for where in list(g.node):
        if where.op_type != "Where" or len(where.input) != 3 or where.input[0] not in inits or \
                inits[where.input[0]].data_type != TensorProto.BOOL:
            continue
        relu, m = producers.get(where.input[1]), where.input[2]
        if relu is None or relu.op_type != "Relu" or relu.input[0] != m or \
                relu.output[0] in outputs or len(consumers[relu.output[0]]) != 1:
            continue
        ranks = _float_ranks(proto) if ranks is None else ranks
        if m not in ranks:
            continue  # not float32, or its type is unknown: B's type would be a guess
        cond = numpy_helper.to_array(inits[where.input[0]])
        rank = max(cond.ndim, ranks[m] or 0)
        key = (where.input[0], rank)
        if key not in made:
            b = np.where(cond, np.float32(0), LOWEST).astype(np.float32)
            name = f"{where.input[0]}_border_max_r{rank}"
            g.initializer.append(numpy_helper.from_array(
                b.reshape((1,) * (rank - cond.ndim) + cond.shape), name))
            made[key] = name
        at = list(g.node).index(where)
        g.node.remove(where)
        g.node.insert(at, helper.make_node("Max", [m, made[key]], [where.output[0]],
                                           name=f"{where.name or where.output[0]}_max"))
        g.node.remove(relu)
        dropped.add(relu.output[0])
    if dropped:
        prune(g, dropped)
    return len(dropped)
