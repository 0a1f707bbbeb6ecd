"""ONNX graph helpers for INT8 quantization: load and inspect models, group nodes into the
blocks ``--exclude`` names, list the nodes that still run in float, store float-only ops'
weights as int8, and :func:`finalize_model` (the post-processing every quantized model gets).
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from edgeface import __version__
from edgeface.errors import ConfigError, ModelError, require
from edgeface.inference.model_info import META_PREFIX
from edgeface.quantize.compaction import compact_model
from edgeface.quantize.config import FLOAT_OP_TYPES, QDQ_OP_TYPES, QUANTIZED_OP_TYPES, Int8Config

_NO_COMPUTE = frozenset({"Constant", "Identity"})
META_QUANT = META_PREFIX + "quantization"
META_PRECISION = META_PREFIX + "precision"


def require_onnx():
    """The ``onnx`` module, or a clear MissingDependency."""
    return require("onnx", "quantize", "INT8 quantization edits the ONNX graph")


def load_model(path: str | os.PathLike):
    """Load an ONNX file or raise ModelError with one line."""
    onnx = require_onnx()
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    try:
        return onnx.load(str(p))
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelError(f"{p} is not an ONNX model ({type(exc).__name__})") from None


def is_quantized(proto) -> bool:
    return any(n.op_type in QDQ_OP_TYPES or n.op_type.startswith("QLinear")
               for n in proto.graph.node)


def _scopes(node) -> list[str]:
    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            try:
                v = ast.literal_eval(p.value)
            except (ValueError, SyntaxError):
                return []
            return [s for s in v[:-1] if s]  # the last entry names the node itself
    return []


def node_blocks(proto, depth: int = 3) -> dict[str, list[str]]:
    """Quantizable nodes grouped into blocks: the PyTorch module path cut to ``depth``
    components (``inner.body.stage1``, ``inner.ssh1.conv3X3``; from the exporter's
    ``name_scopes`` metadata). Nodes without it form a block of their own; top-level ops
    (softmax, output selection) form ``output``."""
    blocks: dict[str, list[str]] = {}
    for node in proto.graph.node:
        if node.op_type not in QUANTIZED_OP_TYPES or not node.name:
            continue
        scopes = _scopes(node)
        has_meta = any(p.key == "pkg.torch.onnx.name_scopes" for p in node.metadata_props)
        if scopes:
            key = ".".join(scopes[-1].split(".")[:depth])
        elif has_meta:
            key = "output"
        else:
            key = node.name
        blocks.setdefault(key, []).append(node.name)
    return blocks


def expand_exclusions(names: Iterable[str], blocks: Mapping[str, Sequence[str]],
                      proto) -> list[str]:
    """Node names for a list of node or block names; unknown names fail clearly."""
    nodes = {n.name for n in proto.graph.node}
    out: list[str] = []
    for name in names:
        if name in blocks:
            out.extend(blocks[name])
        elif name in nodes:
            out.append(name)
        else:
            some = ", ".join(list(blocks)[:6])
            raise ConfigError(f"--exclude: no node or block named {name!r} (blocks: {some}, ...)")
    return list(dict.fromkeys(out))


def float_nodes(proto) -> list[dict[str, str]]:
    """Compute nodes of a QDQ graph that run in float: op types without an INT8 kernel, and
    nodes not wrapped as DequantizeLinear -> op -> QuantizeLinear (ONNX Runtime fuses only
    those into integer kernels)."""
    inits = {i.name for i in proto.graph.initializer}
    producers = {o: n for n in proto.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in proto.graph.output}
    out = []
    for n in proto.graph.node:
        if n.op_type in QDQ_OP_TYPES or n.op_type in _NO_COMPUTE:
            continue
        if n.op_type in FLOAT_OP_TYPES:
            out.append({"name": n.name, "op_type": n.op_type, "reason": "no INT8 kernel"})
            continue
        acts = [i for i in n.input if i and i not in inits]
        float_in = [i for i in acts if getattr(producers.get(i), "op_type", None)
                    != "DequantizeLinear"]
        float_w = [i for i in n.input if i in inits and n.op_type in ("Conv", "MatMul", "Gemm")]
        float_out = [o for o in n.output if o in graph_outputs or not consumers.get(o) or any(
            c.op_type != "QuantizeLinear" for c in consumers[o])]
        if float_in or float_w or float_out:
            reason = ("float input" if float_in or float_w else "float output")
            out.append({"name": n.name, "op_type": n.op_type, "reason": reason})
    return out


def summarize_float_nodes(nodes: Sequence[Mapping[str, str]]) -> str:
    if not nodes:
        return "none"
    counts: dict[tuple[str, str], int] = {}
    for n in nodes:
        k = (n["op_type"], n["reason"])
        counts[k] = counts.get(k, 0) + 1
    return ", ".join(f"{op} x{c} ({why})" for (op, why), c in
                     sorted(counts.items(), key=lambda t: -t[1]))


def quantize_float_weights(proto, op_types: Iterable[str] = FLOAT_OP_TYPES) -> int:
    """Store the float weights (input 1, an initializer) of ``op_types`` nodes as per-output-
    channel symmetric int8 + DequantizeLinear. The op still computes in float; the file loses
    3/4 of those bytes. Returns the number of weights converted."""
    from onnx import TensorProto, helper, numpy_helper

    ops = set(op_types)
    inits = {i.name: i for i in proto.graph.initializer}
    users: dict[str, int] = {}
    for n in proto.graph.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    converted = 0
    new_nodes = []
    for node in proto.graph.node:
        if node.op_type not in ops or len(node.input) < 2:
            continue
        name = node.input[1]
        init = inits.get(name)
        if init is None or init.data_type != TensorProto.FLOAT or users.get(name, 0) != 1:
            continue
        w = numpy_helper.to_array(init).astype(np.float32)
        amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.round(w / scale.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127)
        qname, sname, zname = name + "_int8", name + "_scale", name + "_zero_point"
        proto.graph.initializer.remove(init)
        proto.graph.initializer.extend([
            numpy_helper.from_array(q.astype(np.int8), qname),
            numpy_helper.from_array(scale, sname),
            numpy_helper.from_array(np.zeros(w.shape[0], np.int8), zname)])
        new_nodes.append((node, helper.make_node(
            "DequantizeLinear", [qname, sname, zname], [name], name=name + "_dequantize",
            axis=0)))
        converted += 1
    for consumer, dq in new_nodes:
        pos = list(proto.graph.node).index(consumer)
        proto.graph.node.insert(pos, dq)
    return converted


def finalize_model(proto, fp32_meta: Mapping[str, str], provenance: Mapping[str, Any],
                   config: Int8Config) -> None:
    """Post-process the quantizer's output in place: weights of float-only ops to int8,
    drop per-node metadata, :func:`compact_model`, carry over the FP32 model's ``edgeface.*``
    metadata and record how this model was made."""
    if config.dcn_weights_int8:
        quantize_float_weights(proto)
    if config.strip_debug_metadata:
        for n in proto.graph.node:
            del n.metadata_props[:]
            n.doc_string = ""
        del proto.graph.value_info[:]  # shape hints ONNX Runtime infers again at load
    if config.compact:
        compact_model(proto)
    meta = {k: v for k, v in fp32_meta.items() if k.startswith(META_PREFIX)}
    meta[META_PRECISION] = "int8"
    meta[META_QUANT] = json.dumps(provenance, sort_keys=True)
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name = "edgeface"
    proto.producer_version = __version__

