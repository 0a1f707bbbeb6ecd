"""The uint8 tensors a quantized model's DeformConv offsets and masks come from.

In a QDQ model an offset or a mask is a channel Slice of a quantized convolution's output,
behind per-value operators: V1's mask is ``DQ -> Slice -> Q -> DQ -> Sigmoid -> Q -> DQ`` of
the merged offset convolution's uint8 output. ONNX Runtime ran each as Transpose, Slice and
QLinearSigmoid nodes, 0.4 ms of a V1 frame at one thread (2-core AVX2 EPYC). Here the sampler
reads the uint8 tensor itself, channels-last, at the Slice's channels, and each byte through
a 256-entry table: the per-value operators evaluated on every byte by ONNX Runtime itself, so
that the floats are the ones its own kernels gave (QLinearSigmoid's lookup table included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from edgeface.inference.dcn.proto import (
    _FLOAT,
    _UINT8,
    CutError,
    _len_field,
    _Node,
    _renamed,
    _str,
    _tensor_array,
    _value_info,
)

#: operators that map each value on its own, with no tensor input but constants
PER_VALUE = {"DequantizeLinear", "QuantizeLinear", "Sigmoid", "HardSigmoid", "Tanh", "Relu",
             "Identity"}
#: the tables model's input: the 256 byte values
TABLE_INPUT = "edgeface_byte"


@dataclass
class Source:
    """A DeformConv offset or mask as channels ``[start, stop)`` of a uint8 NCHW tensor
    (stop None: to its last channel), each byte through ``chain``."""

    tensor: str
    start: int = 0
    stop: Optional[int] = None
    chain: List[_Node] = field(default_factory=list)  # per-value nodes, tensor side first
    nodes: List[_Node] = field(default_factory=list)  # chain and the Slice, if any
    # (scale, zero point) of the DequantizeLinear that ends the chain, if one does: the
    # table may be that affine map, which the sampler computes vectorised
    linear: Optional[Tuple[float, int]] = None



def _scalar(name: str, inits: Dict[str, bytes]) -> Optional[np.ndarray]:
    """A one-value initializer; None for anything else (an element type the cut does not
    read, float16 or int16, stops the trace instead of the fast path)."""
    if name not in inits:
        return None
    try:
        a = _tensor_array(memoryview(inits[name]))[1]
    except CutError:
        return None
    return a if a.size == 1 else None


def computed(nodes: List[_Node], inits: Dict[str, bytes]) -> set:
    """The tensors that nodes compute from the graph's inputs (not from initializers alone,
    nodes being in topological order): only such a tensor is a segment's output for the
    sampler to read."""
    made = {o for n in nodes for o in n.outputs}
    found = {i for n in nodes for i in n.inputs if i and i not in inits and i not in made}
    for n in nodes:
        if n.op != "Constant" and any(i in found for i in n.inputs):
            found.update(n.outputs)
    return found - {i for n in nodes for i in n.inputs if i not in made}


def _per_value(node: _Node, inits: Dict[str, bytes]) -> bool:
    if node.op not in PER_VALUE or not node.inputs or not node.inputs[0]:
        return False
    if node.op in ("DequantizeLinear", "QuantizeLinear"):
        return all(_scalar(i, inits) is not None for i in node.inputs[1:] if i)
    return len([i for i in node.inputs if i]) == 1


def _uint8_input(node: _Node, inits: Dict[str, bytes]) -> bool:
    """Whether ``node`` is a DequantizeLinear of uint8: its zero point's type (without one,
    its input could be int8 or int32 as well)."""
    zp = node.inputs[2] if node.op == "DequantizeLinear" and len(node.inputs) > 2 else ""
    return bool(zp) and _scalar(zp, inits).dtype == np.uint8


def _channel_slice(node: _Node, inits: Dict[str, bytes]) -> Optional[Tuple[int, int]]:
    """(start, end) of a Slice of constant bounds along axis 1 with step 1; None otherwise."""
    ins = node.inputs + [""] * (5 - len(node.inputs))
    parts = [_scalar(i, inits) if i else None for i in ins[1:5]]
    starts, ends, axes, steps = parts
    if starts is None or ends is None or axes is None or int(axes.reshape(())) != 1 or \
            (ins[4] and (steps is None or int(steps.reshape(())) != 1)):
        return None
    start, end = int(starts.reshape(())), int(ends.reshape(()))
    return (start, end) if 0 <= start < end else None


def trace(name: str, inits: Dict[str, bytes], producers: Dict[str, _Node],
          computed_by_nodes: set) -> Optional[Source]:
    """The deepest uint8 tensor of ``computed_by_nodes`` (:func:`computed`) that ``name`` is
    per-value operators and at most one channel Slice of; None when there is none."""
    chain: List[_Node] = []
    nodes: List[_Node] = []
    start, stop = 0, None
    best = None
    current, uint8 = name, False
    while current in producers and current not in inits:
        p = producers[current]
        if p.domain not in ("", "ai.onnx"):
            break
        bounds = _channel_slice(p, inits) if p.op == "Slice" and stop is None else None
        if bounds is not None:
            start, stop = bounds  # a Slice keeps its input's type: `uint8` stays
        elif _per_value(p, inits):
            chain.insert(0, p)
            uint8 = _uint8_input(p, inits)
        else:
            break
        nodes.append(p)
        current = p.inputs[0]
        if uint8 and current in computed_by_nodes:
            best = Source(current, start, stop, list(chain), list(nodes))
    last = best.chain[-1] if best else None
    if last is not None and last.op == "DequantizeLinear" and len(last.inputs) > 2 and \
            last.inputs[2]:
        best.linear = (float(_scalar(last.inputs[1], inits).reshape(())),
                       int(_scalar(last.inputs[2], inits).reshape(())))
    return best


def find(nodes: List[_Node], inits: Dict[str, bytes], producers: Dict[str, _Node],
         outputs: Iterable[str]) -> Tuple[Dict[Tuple[int, int], Source], set]:
    """The sources of the DeformConv offsets (input 2) and masks (input 4) that have one, by
    (id of the DeformConv, input), and the ids of the nodes on their way that nothing else
    reads."""
    sources: Dict[Tuple[int, int], Source] = {}
    read: Dict[str, set] = {}
    by_nodes = computed(nodes, inits)
    for n in nodes:
        if n.op == "DeformConv" and n.domain in ("", "ai.onnx"):
            for slot in (2, 4):
                name = n.inputs[slot] if len(n.inputs) > slot else ""
                found = trace(name, inits, producers, by_nodes) if name else None
                if found:
                    sources[(id(n), slot)] = found
                    read.setdefault(name, set()).add(id(n))
    consumers: Dict[str, List[_Node]] = {}
    for n in nodes:
        for i in n.inputs:
            consumers.setdefault(i, []).append(n)
    return sources, droppable(sources.values(), consumers, read, outputs)


def droppable(sources: Iterable[Source], consumers: Dict[str, List[_Node]],
              read: Dict[str, set], outputs: Iterable[str]) -> set:
    """ids of the sources' nodes that nothing else reads: those whose every output goes only
    to such nodes, or to a DeformConv that reads it through a table (``read``: tensor -> ids of
    those DeformConvs)."""
    keep = {id(n): n for s in sources for n in s.nodes}
    outputs = set(outputs)
    changed = True
    while changed:
        changed = False
        for nid, node in list(keep.items()):
            if any(o in outputs or any(id(c) not in keep and id(c) not in read.get(o, ())
                                       for c in consumers.get(o, ()))
                   for o in node.outputs):
                del keep[nid]
                changed = True
    return set(keep)


def tables_model(head: List[bytes], sources: Dict[str, Source], inits: Dict[str, bytes]
                 ) -> bytes:
    """A model mapping the 256 byte values (uint8 ``[256]``) through each source's chain, one
    float32 ``[256]`` output per key of ``sources``."""
    nodes, used, outs = [], {}, []
    for key, src in sources.items():
        current = TABLE_INPUT
        for k, node in enumerate(src.chain):
            out = key if k == len(src.chain) - 1 else f"{key}/{k}"
            nodes.append(_renamed(node, [current] + node.inputs[1:], [out], f"{key}/node{k}"))
            used.update((i, inits[i]) for i in node.inputs[1:] if i in inits)
            current = out
        outs.append(key)
    body = (b"".join(_len_field(1, n) for n in nodes) + _str(2, "edgeface_byte_tables")
            + b"".join(_len_field(5, t) for t in used.values())
            + _len_field(11, _value_info(TABLE_INPUT, _UINT8, [256]))
            + b"".join(_len_field(12, _value_info(o, _FLOAT, [256])) for o in outs))
    return b"".join(head) + _len_field(7, body)
