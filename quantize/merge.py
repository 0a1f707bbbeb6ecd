"""An exact float rewrite of the pre-processed model, before calibration: sibling offset
convolutions merged into one.

In each SSH context module two DeformConvs read the same tensor, so their offset/mask
convolutions (3x3, 27 output channels each, read only through channel Slices) are siblings:
same input, same attributes. One convolution with both weights stacked (54 channels) does
the im2col once and fills MLAS's kernels better. Measured on a 2-core AVX2 EPYC, one thread,
QDQ INT8 at 52x52: 56 input channels 1.27 against 1.53 ms for the pair, 14 channels 0.50
against 0.62 ms (float: 1.82 against 2.02 ms). The Slices that read the second one read the
merged output at shifted channels; the merged output gets one quantization scale, so the
accuracy guard (or ``edgeface eval``) has the last word.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, List, Optional

import numpy as np

from edgeface.quantize.rewrite_graph import index, prune

_INT64_MAX = np.iinfo(np.int64).max


def _array(name: str, inits: Dict[str, Any]) -> Optional[np.ndarray]:
    from onnx import numpy_helper

    return numpy_helper.to_array(inits[name]) if name in inits else None


def _channel_slice(node: Any, inits: Dict[str, Any], channels: int) -> Optional[tuple]:
    """(start, end) of a Slice that takes channels [start, end) of a [N, C, H, W] tensor
    with constant arguments (axis 1, step 1), or None."""
    if node.op_type != "Slice" or len(node.input) < 4:
        return None
    args = [_array(i, inits) if i else None for i in node.input[1:5]]
    if any(a is None for a in args[:3]) or any(a.size != 1 for a in args[:3] if a is not None):
        return None
    start, end, axis = (int(a.reshape(())) for a in args[:3])
    step = 1 if len(args) < 4 or args[3] is None else int(args[3].reshape(()))
    if axis not in (1, -3) or step != 1:
        return None
    start, end = (v + channels if v < 0 else v for v in (start, end))
    start, end = min(max(start, 0), channels), min(max(end, 0), channels)
    return (start, end) if start < end else None


def _sliced_only(conv: Any, consumers: Dict[str, List[Any]], inits: Dict[str, Any],
                 channels: int, outputs: set) -> bool:
    readers = consumers[conv.output[0]]
    return bool(readers) and conv.output[0] not in outputs and all(
        r.input[0] == conv.output[0] and conv.output[0] not in r.input[1:] and
        _channel_slice(r, inits, channels) is not None for r in readers)


def _siblings(g: Any, inits: Dict[str, Any], consumers: Dict[str, List[Any]]) -> List[list]:
    outputs = {o.name for o in g.output}
    groups: Dict[tuple, list] = defaultdict(list)
    for n in g.node:
        if n.op_type != "Conv" or n.input[1] not in inits or len(n.output) != 1 or \
                any(a.name == "group" and a.i != 1 for a in n.attribute):
            continue
        if len(n.input) > 2 and n.input[2] and n.input[2] not in inits:
            continue
        w = inits[n.input[1]]
        if not _sliced_only(n, consumers, inits, int(w.dims[0]), outputs):
            continue
        key = (n.input[0], tuple(w.dims[1:]), w.data_type,
               tuple(sorted(a.SerializeToString() for a in n.attribute)))
        groups[key].append(n)
    return [v for v in groups.values() if len(v) > 1]


def merge_sibling_convs(proto: Any) -> int:
    """Merge Convs that read the same tensor with the same attributes and whose outputs are
    read only by constant channel Slices. Changes ``proto`` in place; returns how many Conv
    nodes it removed."""
    from onnx import numpy_helper

    g = proto.graph
    inits, _, consumers, _ = index(g)
    removed, reshaped = set(), set()
    for group in _siblings(g, inits, consumers):
        first = group[0]
        weights = [numpy_helper.to_array(inits[c.input[1]]) for c in group]
        biases = [numpy_helper.to_array(inits[c.input[2]]) if len(c.input) > 2 and c.input[2]
                  else np.zeros(w.shape[0], w.dtype) for c, w in zip(group, weights)]
        base, stem = 0, f"{first.output[0]}_merged"
        for c, w in zip(group, weights):
            for r in consumers[c.output[0]]:
                start, end = _channel_slice(r, inits, w.shape[0])
                names = [f"{stem}_{len(inits)}_start", f"{stem}_{len(inits)}_end"]
                for name, v in zip(names, (start + base, end + base)):
                    t = numpy_helper.from_array(np.array([v], np.int64), name)
                    g.initializer.append(t)
                    inits[name] = t
                r.input[0], r.input[1], r.input[2] = first.output[0], names[0], names[1]
            base += w.shape[0]
            if c is not first:
                removed.add(c.output[0])
        reshaped.add(first.output[0])
        for suffix, arr in (("w", np.concatenate(weights)), ("b", np.concatenate(biases))):
            t = numpy_helper.from_array(arr, f"{stem}_{suffix}")
            g.initializer.append(t)
        x = first.input[0]
        del first.input[:]
        first.input.extend([x, f"{stem}_w", f"{stem}_b"])
    if removed:
        kept = [n for n in g.node if not n.output or n.output[0] not in removed]
        del g.node[:]
        g.node.extend(kept)
        prune(g, reshaped)
    return len(removed)
