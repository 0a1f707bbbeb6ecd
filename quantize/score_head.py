"""An exact float rewrite of the pre-processed model, before calibration: the face score as a
sigmoid of one logit difference instead of a two-class softmax and a Gather.

The exported graph computes ``scores = Gather(Softmax(Concat_i(Reshape(Transpose(Conv_i))),
axis=-1), 1, axis=2)``: each ClassHead convolution gives 2 classes for each of its anchors
(channel ``2a + k``: anchor ``a``, class ``k``), NHWC then [N, -1, 2]. ``softmax([u, v])[1]
== sigmoid(v - u)``, so a convolution with weights ``W[2a+1] - W[2a]`` (bias likewise; one
channel per anchor) through the same Transpose and a Reshape to [N, -1] gives the same
scores in the same order (within 1.2e-7 on V1), then a Sigmoid per level and the Concat.
In the INT8 graph that is 3 small ``QLinearSigmoid`` instead of ``QLinearSoftmax`` (0.075
ms) and a ``Gather`` (0.065 ms).

Measured on a 2-core AVX2 EPYC (no VNNI), 1 thread, thread CPU median of V1 INT8 frames
through the DCN fast form, interleaved (150 each, load 1.0): with the pooling border's Max
(border_max.py) 13.80 ms, plus this rewrite, quantized, 13.59 ms.

The score path (the convolutions through the Concat) stays in float: quantized, the logit
differences calibrate to ranges like [-16, 5] whose uint8 steps (0.08) blur the low scores
that AP ranks, and INT8 AP fell to 68.37 / 58.10 / 31.99 (FP32 68.20 / 58.45 / 32.41: hard
0.42 below); in float it is 68.75 / 58.37 / 32.31, for +0.08 ms a frame (13.57 against
13.49 ms, 300 frames each interleaved, load 0.9). The convolutions are 56 -> 2 channels:
the float part is their input's DequantizeLinear and 7,098 sigmoids. A Sigmoid per level
rather than one after the Concat was the better of the two while the path was quantized
(hard 31.99 against 31.92).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from edgeface.quantize.rewrite_graph import index, prune


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _array(name: str, inits: Dict[str, Any]) -> Optional[np.ndarray]:
    from onnx import numpy_helper

    return numpy_helper.to_array(inits[name]) if name in inits else None


def _only_reader(name: str, consumers: Dict[str, List[Any]], outputs: set) -> Optional[Any]:
    readers = consumers[name]
    return readers[0] if len(readers) == 1 and name not in outputs else None


def _branch(t: str, producers: Dict[str, Any], consumers: Dict[str, List[Any]],
            inits: Dict[str, Any], outputs: set) -> Optional[tuple]:
    """(Conv, Transpose, Reshape) of one Concat input ``Reshape([N, K, 2], Transpose(NHWC,
    Conv(x, W[2A, ...], b)))``, each read only by the next, or None."""
    reshape = producers.get(t)
    if reshape is None or reshape.op_type != "Reshape" or len(reshape.input) != 2:
        return None
    shape = _array(reshape.input[1], inits)
    if shape is None or shape.shape != (3,) or shape[2] != 2 or \
            (shape[1] == 0 and not _attr(reshape, "allowzero", 0)):
        return None  # 0 would copy dim 1 (H): not a flattening
    tr = producers.get(reshape.input[0])
    if tr is None or tr.op_type != "Transpose" or list(_attr(tr, "perm", [])) != [0, 2, 3, 1]:
        return None
    conv = producers.get(tr.input[0])
    if conv is None or conv.op_type != "Conv" or conv.input[1] not in inits or \
            _attr(conv, "group", 1) != 1 or len(conv.output) != 1:
        return None
    bias = conv.input[2] if len(conv.input) > 2 and conv.input[2] else None
    if bias is not None and bias not in inits:
        return None
    w = _array(conv.input[1], inits)
    if w.dtype != np.float32 or w.shape[0] % 2:
        return None
    for n in (conv, tr, reshape):
        if _only_reader(n.output[0], consumers, outputs) is None:
            return None
    return conv, tr, reshape


def _match(gather: Any, producers: Dict[str, Any], consumers: Dict[str, List[Any]],
           inits: Dict[str, Any], outputs: set) -> Optional[tuple]:
    """(Softmax, Concat, [branches]) under a Gather of class 1 on axis 2, or None."""
    index = _array(gather.input[1], inits) if len(gather.input) == 2 else None
    if index is None or index.shape != () or int(index) not in (1, -1) or \
            _attr(gather, "axis", 0) not in (2, -1):
        return None
    soft = producers.get(gather.input[0])
    if soft is None or soft.op_type != "Softmax" or _attr(soft, "axis", -1) not in (2, -1) or \
            _only_reader(soft.output[0], consumers, outputs) is None:
        return None
    cat = producers.get(soft.input[0])
    if cat is None or cat.op_type != "Concat" or _attr(cat, "axis", None) not in (1, -2) or \
            _only_reader(cat.output[0], consumers, outputs) is None:
        return None
    branches = [_branch(t, producers, consumers, inits, outputs) for t in cat.input]
    return None if any(b is None for b in branches) else (soft, cat, branches)


def spell_face_scores(proto: Any) -> List[str]:
    """Replace the two-class ``Softmax`` + ``Gather`` of class 1 over concatenated
    ClassHead convolutions by the ``Sigmoid`` of each level's logit difference (see above),
    keeping the output's name, shape and type. Changes ``proto`` in place; returns the names
    of the nodes that now compute the scores (convolutions to Concat), which the quantizer
    keeps in float (module docstring); empty when nothing matched."""
    from onnx import helper, numpy_helper

    g = proto.graph
    inits, producers, consumers, outputs = index(g)
    removed, changed, path = [], set(), []
    for gather in [n for n in g.node if n.op_type == "Gather"]:
        found = _match(gather, producers, consumers, inits, outputs)
        if found is None:
            continue
        soft, cat, branches = found
        for conv, tr, reshape in branches:
            w = _array(conv.input[1], inits)
            b = _array(conv.input[2], inits) if len(conv.input) > 2 and conv.input[2] \
                else np.zeros(w.shape[0], np.float32)
            stem = f"{conv.output[0]}_logit"
            shape = _array(reshape.input[1], inits)[:2].astype(np.int64)
            for name, arr in (("w", w[1::2] - w[0::2]), ("b", b[1::2] - b[0::2]),
                              ("shape", shape)):
                g.initializer.append(numpy_helper.from_array(arr, f"{stem}_{name}"))
            x = conv.input[0]
            del conv.input[:]
            conv.input.extend([x, f"{stem}_w", f"{stem}_b"])
            reshape.input[1] = f"{stem}_shape"
            changed |= {conv.output[0], tr.output[0], reshape.output[0]}
            for n in (conv, tr, reshape):  # kept in float by name: every one needs one
                n.name = n.name or f"{n.output[0]}_score_path"
                path.append(n.name)
        for k, t in enumerate(list(cat.input)):  # a Sigmoid per level: see the docstring
            g.node.insert(list(g.node).index(cat), helper.make_node(
                "Sigmoid", [t], [f"{t}_score"], name=f"{t}_sigmoid"))
            cat.input[k] = f"{t}_score"
            path.append(f"{t}_sigmoid")
        for a in cat.attribute:
            if a.name == "axis":
                a.i = 1
        changed.add(cat.output[0])
        cat.output[0] = gather.output[0]
        cat.name = cat.name or f"{cat.output[0]}_score_path"
        path.append(cat.name)
        removed += [soft, gather]
        changed |= {soft.output[0], gather.output[0]}
    if removed:
        for n in removed:
            g.node.remove(n)
        prune(g, changed)
    return path
