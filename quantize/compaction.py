"""Compaction and size accounting of a quantized ONNX model: :func:`compact_model` shrinks the
file without changing what it computes (exporter metadata dropped, identical constants merged,
short internal names); :func:`size_breakdown` says where a file's bytes go.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

from edgeface.quantize.config import QDQ_OP_TYPES

_NAME_HEAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NAME_TAIL = _NAME_HEAD + "0123456789_"


def short_names(reserved: Iterable[str] = ()) -> Iterator[str]:
    """``a, b, ..., Z, aa, ab, ...``: the shortest C identifiers (ONNX names must be), skipping
    ``reserved``."""
    skip = set(reserved)
    for length in range(1, 8):
        for index in range(len(_NAME_HEAD) * len(_NAME_TAIL) ** (length - 1)):
            index, first = divmod(index, len(_NAME_HEAD))
            chars = [_NAME_HEAD[first]]
            for _ in range(length - 1):
                index, c = divmod(index, len(_NAME_TAIL))
                chars.append(_NAME_TAIL[c])
            name = "".join(chars)
            if name not in skip:
                yield name
    raise RuntimeError("ran out of short names")  # 52 * 63**6 names: unreachable


def _has_subgraphs(graph) -> bool:
    from onnx import AttributeProto

    return any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS)
               for n in graph.node for a in n.attribute)


def _dedupe_initializers(graph, keep: set[str]) -> int:
    """Point every use of an initializer at the first one with the same type, shape and bytes
    (the quantizer writes one scale and one zero point per tensor, mostly equal). Returns how
    many were removed."""
    from onnx import numpy_helper

    first: dict[tuple, str] = {}
    alias: dict[str, str] = {}
    for init in graph.initializer:
        if init.name in keep:
            continue
        key = (init.data_type, tuple(init.dims), numpy_helper.to_array(init).tobytes())
        alias[init.name] = first.setdefault(key, init.name)
    alias = {a: b for a, b in alias.items() if a != b}
    if not alias:
        return 0
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    kept = [i for i in graph.initializer if i.name not in alias]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return len(alias)


def _rename_tensors(graph, keep: set[str]) -> int:
    """Give every tensor but ``keep`` (graph inputs/outputs) the shortest free name, the most
    referenced first. Returns how many were renamed."""
    uses: dict[str, int] = {}
    for init in graph.initializer:
        uses[init.name] = uses.get(init.name, 0) + 1
    for node in graph.node:
        for name in (*node.input, *node.output):
            if name:
                uses[name] = uses.get(name, 0) + 1
    order = sorted((n for n in uses if n not in keep), key=lambda n: -uses[n])  # stable
    new = dict(zip(order, short_names(keep)))
    for init in graph.initializer:
        init.name = new.get(init.name, init.name)
    for node in graph.node:
        for field_ in (node.input, node.output):
            for i, name in enumerate(field_):
                if name in new:
                    field_[i] = new[name]
    for vi in graph.value_info:
        vi.name = new.get(vi.name, vi.name)
    return len(new)


def compact_model(proto) -> dict[str, int]:
    """Shrink a QDQ model in place without changing what it computes: drop the exporter's
    graph-level metadata (a dump of the PyTorch program's signature, naming parameters that
    no longer exist here) and empty doc strings, merge identical initializers, rename internal
    tensors to the shortest free names, name Q/DQ nodes likewise (compute nodes keep their
    exporter names, which reports and profiles use), drop opset imports no node uses. Graph
    inputs/outputs and model metadata are untouched. The names of graphs with subgraphs
    (If/Loop) are left as they are. Returns what was done."""
    graph = proto.graph
    stats = {"graph_metadata_dropped": len(graph.metadata_props), "initializers_merged": 0,
             "tensors_renamed": 0, "nodes_renamed": 0, "opsets_dropped": 0}
    del graph.metadata_props[:]
    for node in graph.node:
        if not node.doc_string:
            node.ClearField("doc_string")  # an empty string set is still written
    if _has_subgraphs(graph) or len(graph.sparse_initializer):
        return stats
    keep = {v.name for v in (*graph.input, *graph.output)}
    stats["initializers_merged"] = _dedupe_initializers(graph, keep)
    stats["tensors_renamed"] = _rename_tensors(graph, keep)
    qdq = [n for n in graph.node if n.op_type in QDQ_OP_TYPES]
    kept_names = {n.name for n in graph.node if n.op_type not in QDQ_OP_TYPES and n.name}
    for node, name in zip(qdq, short_names(kept_names)):
        node.name = name
    stats["nodes_renamed"] = len(qdq)
    used = {n.domain for n in graph.node} | {""}
    unused = [o for o in proto.opset_import if o.domain not in used]
    for o in unused:
        proto.opset_import.remove(o)
    stats["opsets_dropped"] = len(unused)
    return stats


def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def _field_len(n: int) -> int:
    """Bytes a length-delimited protobuf field of ``n`` bytes takes (1-byte tag)."""
    return 1 + _varint_len(n) + n


def size_breakdown(proto) -> dict[str, Any]:
    """Where an ONNX file's bytes go (serialized protobuf sizes, tags included; the parts add
    up to the file size): initializers by data type (payload and names), node protos (names,
    tensor references, attributes, metadata), value_info, model and graph metadata, the
    rest."""
    from onnx import TensorProto

    g = proto.graph
    total = proto.ByteSize()
    inits: dict[str, dict[str, int]] = {}
    for t in g.initializer:
        d = inits.setdefault(TensorProto.DataType.Name(t.data_type).lower(),
                             {"count": 0, "bytes": 0, "name_bytes": 0, "elements": 0})
        d["count"] += 1
        d["bytes"] += _field_len(t.ByteSize())
        d["name_bytes"] += _field_len(len(t.name.encode()))
        d["elements"] += int(np.prod(t.dims, dtype=np.int64)) if len(t.dims) else 1
    nodes = {"count": len(g.node), "bytes": 0, "name_bytes": 0, "tensor_ref_bytes": 0,
             "attribute_bytes": 0, "metadata_bytes": 0}
    for n in g.node:
        nodes["bytes"] += _field_len(n.ByteSize())
        nodes["name_bytes"] += _field_len(len(n.name.encode())) if n.name else 0
        nodes["tensor_ref_bytes"] += sum(_field_len(len(x.encode()))
                                         for x in (*n.input, *n.output))
        nodes["attribute_bytes"] += sum(_field_len(a.ByteSize()) for a in n.attribute)
        nodes["metadata_bytes"] += sum(_field_len(p.ByteSize()) for p in n.metadata_props)
    parts = {
        "initializers": sum(d["bytes"] for d in inits.values()),
        "nodes": nodes["bytes"],
        "value_info": sum(_field_len(v.ByteSize()) for v in g.value_info),
        "model_metadata": sum(_field_len(p.ByteSize()) for p in proto.metadata_props),
        "graph_metadata": sum(_field_len(p.ByteSize()) for p in g.metadata_props),
    }
    parts["other"] = total - sum(parts.values())  # graph I/O, opsets, headers
    return {"total_bytes": total, "parts": parts, "initializers_by_type": inits,
            "initializer_name_bytes": sum(d["name_bytes"] for d in inits.values()),
            "node_detail": nodes, "value_info_count": len(g.value_info),
            "model_metadata_count": len(proto.metadata_props)}
